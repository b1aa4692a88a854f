"""Configuration of `ViTForCompoundExpression`.

Self-contained (imports only transformers) so that `push_to_hub` can ship it as remote code.
"""

from transformers import PretrainedConfig

# The ABAW7 compound set (C-EXPR-DB) and its constituents, the default of every new model.
ABAW7_COMPOUNDS = [
    ("Fearfully Surprised", ["Fear", "Surprise"]),
    ("Happily Surprised", ["Happiness", "Surprise"]),
    ("Sadly Surprised", ["Sadness", "Surprise"]),
    ("Disgustedly Surprised", ["Disgust", "Surprise"]),
    ("Angrily Surprised", ["Anger", "Surprise"]),
    ("Sadly Fearful", ["Sadness", "Fear"]),
    ("Sadly Angry", ["Sadness", "Anger"]),
]
SIX_BASICS = ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]


class ViTForCompoundExpressionConfig(PretrainedConfig):
    """Configuration of a ViT encoder (ViTMAE-encoder shapes) with a multi-label basic-expression head.

    The encoder arguments mirror `ViTMAEConfig`, so an MAE encoder converts one to one. The label
    space is `basic_labels` (one logit each, default: the six basics without Neutral); each
    compound in `compound_names` is scored as the sum of the probabilities of its
    `compound_constituents`, and the predicted compound is the argmax of those scores.

    Args:
        pooling: "mean" (mean of patch tokens, then `fc_norm`; the MAE fine-tuning default) or "cls".
        head_hidden_sizes: hidden widths of the MLP head; empty means a single linear layer.
        head_dropout: dropout before each head layer.
        drop_path_rate: stochastic depth, rising linearly to this rate over the layers.
        conv_stem_channels: widths of an optional convolutional stem (stride-2 3x3 convolutions before the
            patch projection; e.g. [32, 64, 128] with patch_size 8). Empty: ViT's plain patchify.
        conv_stem_convs_per_stage: 3x3 convolutions per stem stage.
        conv_stem_style: "strided" (each stage opens with a stride-2 convolution) or "pooled" (a
            full-resolution first stage, then a 2x2 max-pool before each later stage).
        compound_set: name of the compound set (e.g. "abaw7"), stored for reference.
    """

    model_type = "vit_compound_expression"
    # Large per-image tensors the Trainer should not gather during evaluation.
    keys_to_ignore_at_inference = ["pooled_output", "last_hidden_state"]

    def __init__(
        self,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        image_size=224,
        patch_size=16,
        num_channels=3,
        qkv_bias=True,
        pooling="mean",
        head_hidden_sizes=(),
        head_dropout=0.0,
        drop_path_rate=0.0,
        conv_stem_channels=(),
        conv_stem_convs_per_stage=1,
        conv_stem_style="strided",
        basic_labels=None,
        compound_set="abaw7",
        compound_names=None,
        compound_constituents=None,
        **kwargs,
    ):
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.qkv_bias = qkv_bias
        self.pooling = pooling
        self.head_hidden_sizes = list(head_hidden_sizes)
        self.head_dropout = head_dropout
        self.drop_path_rate = drop_path_rate
        self.conv_stem_channels = list(conv_stem_channels or [])
        self.conv_stem_convs_per_stage = conv_stem_convs_per_stage
        self.conv_stem_style = conv_stem_style

        self.basic_labels = list(basic_labels) if basic_labels is not None else list(SIX_BASICS)
        if compound_names is None:
            compound_names = [name for name, _ in ABAW7_COMPOUNDS]
            compound_constituents = [parts for _, parts in ABAW7_COMPOUNDS]
        if compound_constituents is None or len(compound_constituents) != len(compound_names):
            raise ValueError("compound_constituents must give the constituents of every compound_names entry")
        for name, parts in zip(compound_names, compound_constituents):
            unknown = [p for p in parts if p not in self.basic_labels]
            if unknown:
                raise ValueError(
                    f"compound {name!r} is made of {unknown}, which are not in basic_labels {self.basic_labels}"
                )
        self.compound_set = compound_set
        self.compound_names = list(compound_names)
        self.compound_constituents = [list(parts) for parts in compound_constituents]

        # The logits are one per basic expression, scored independently (sigmoid).
        kwargs["id2label"] = dict(enumerate(self.basic_labels))
        kwargs["label2id"] = {label: i for i, label in enumerate(self.basic_labels)}
        kwargs["problem_type"] = "multi_label_classification"
        super().__init__(**kwargs)
