"""`ViTForCompoundExpression`: a ViT encoder with a multi-label head over the basic expressions.

The encoder has the parameter names and shapes of transformers' ViTMAE encoder
(`vit.embeddings…`, `vit.layers.N.attention.q_proj…`, `vit.layernorm`), so an MAE checkpoint
converts by copying tensors. Compounds are scored as the sum of the probabilities of their two
constituent basics (ABAW7 winning recipe); the predicted compound is the argmax of those sums.

Self-contained (imports only torch and transformers) so that `push_to_hub` can ship it as remote code.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

try:  # package import (cer_hf installed) or flat import (remote code on the Hub)
    from .configuration_cer import ViTForCompoundExpressionConfig
except ImportError:  # pragma: no cover
    from configuration_cer import ViTForCompoundExpressionConfig


@dataclass
class CompoundExpressionOutput(ModelOutput):
    """Output of `ViTForCompoundExpression`.

    Attributes:
        loss: multi-label BCE over the basic expressions, when `labels` were passed.
        logits: `(batch, num_basics)` one logit per basic expression of `config.basic_labels`.
        probabilities: `(batch, num_basics)` sigmoid of the logits.
        compound_scores: `(batch, num_compounds)` per compound, the sum of its constituents' probabilities.
        pooled_output: `(batch, hidden)` the pooled (and normed) encoder features fed to the head.
        last_hidden_state: `(batch, 1 + patches, hidden)` the encoder output.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    probabilities: torch.Tensor | None = None
    compound_scores: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None


def sincos_position_embedding(grid_size: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding, `(1, 1 + grid², dim)` with a zero CLS row (MAE style)."""
    coords = torch.arange(grid_size, dtype=torch.float32)
    grid_h, grid_w = torch.meshgrid(coords, coords, indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim / 4))
    parts = []
    for grid in (grid_w, grid_h):
        angles = grid.reshape(-1, 1) * omega.reshape(1, -1)
        parts += [angles.sin(), angles.cos()]
    embedding = torch.cat(parts, dim=1)
    embedding = F.pad(embedding, (0, dim - embedding.shape[1]))
    return torch.cat([torch.zeros(1, dim), embedding]).unsqueeze(0)


def compound_matrix(config, device=None, dtype=None) -> torch.Tensor:
    """`(num_compounds, num_basics)` 0/1 matrix of a config: row c marks the constituents of compound c.

    Built from the config on each call (a few dozen numbers) rather than kept as a buffer,
    because non-persistent buffers are not restored when weights load on the meta device.
    """
    matrix = torch.zeros(len(config.compound_names), len(config.basic_labels), device=device, dtype=dtype)
    for row, parts in enumerate(config.compound_constituents):
        for part in parts:
            matrix[row, config.basic_labels.index(part)] = 1.0
    return matrix


def multi_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over basics and images; integer class labels `(batch,)` are one-hot encoded."""
    if labels.ndim == 1:
        labels = F.one_hot(labels.long(), num_classes=logits.shape[-1])
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def compound_expression_output(config, logits, labels, pooled_output, last_hidden_state) -> CompoundExpressionOutput:
    """The output of a compound-expression model from its basic logits: sigmoid probabilities, compound scores
    (summed constituent probabilities) and, given labels, the multi-label BCE loss."""
    probabilities = torch.sigmoid(logits)
    compound_scores = probabilities @ compound_matrix(config, probabilities.device, probabilities.dtype).T
    return CompoundExpressionOutput(
        loss=multi_label_loss(logits, labels) if labels is not None else None,
        logits=logits,
        probabilities=probabilities,
        compound_scores=compound_scores,
        pooled_output=pooled_output,
        last_hidden_state=last_hidden_state,
    )


CONV_STEM_STYLES = ("strided", "pooled")


class ViTCompoundExpressionConvStem(nn.Module):
    """A convolutional stem (Xiao et al., NeurIPS 2021, "Early convolutions help transformers see better").

    `len(channels)` stages of 3x3 convolutions, each followed by BatchNorm and ReLU, `convs_per_stage`
    per stage. Two layouts:

    - "strided": every stage opens with a stride-2 convolution (Xiao et al.); `len(channels)` halvings.
    - "pooled": the first stage runs at full resolution and every later stage opens with a 2x2 max-pool
      (VGG's layout); `len(channels) - 1` halvings. Subtle expressions live in a few pixels of brow and
      lip, and only this layout, with its full-resolution first stage and a receptive field that spans
      a face region, lets the encoder learn them from a few thousand faces (docs/curriculum.md, "Small data").

    Optional: with `conv_stem_channels` empty the model patchifies with one strided convolution, as ViT
    and MAE do. The MAE encoder uses the same module (`cer_hf.modeling.mae`), so conversion stays exact.
    """

    def __init__(self, in_channels: int, channels, convs_per_stage: int = 1, style: str = "strided"):
        super().__init__()
        if style not in CONV_STEM_STYLES:
            raise ValueError(f"conv_stem_style {style!r}: choose one of {', '.join(CONV_STEM_STYLES)}")
        layers = []
        for stage, width in enumerate(channels):
            if style == "pooled" and stage > 0:
                layers.append(nn.MaxPool2d(2))
            for index in range(convs_per_stage):
                stride = 2 if style == "strided" and index == 0 else 1
                layers += [nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                in_channels = width
        self.convs = nn.Sequential(*layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.convs(pixel_values)


def conv_stem_reduction(conv_stem_channels, style: str = "strided") -> int:
    """How much a stem of this layout shrinks the image (1 without a stem)."""
    if not conv_stem_channels:
        return 1
    return 2 ** (len(conv_stem_channels) - (style == "pooled"))


def stem_projection_stride(patch_size: int, conv_stem_channels, style: str = "strided") -> int:
    """The stride of the patch projection after the stem, so that each token still covers `patch_size` pixels."""
    reduction = conv_stem_reduction(conv_stem_channels, style)
    if patch_size % reduction:
        raise ValueError(f"patch_size {patch_size} is not a multiple of the conv stem's reduction {reduction} "
                         f"({len(conv_stem_channels)} {style} stages)")
    return patch_size // reduction


class ViTCompoundExpressionPatchEmbeddings(nn.Module):
    """Split an image into patches and project each to `hidden_size` (a strided convolution, after the
    optional convolutional stem)."""

    def __init__(self, config):
        super().__init__()
        channels = list(getattr(config, "conv_stem_channels", None) or [])
        style = getattr(config, "conv_stem_style", "strided")
        stride = stem_projection_stride(config.patch_size, channels, style)
        depth = getattr(config, "conv_stem_convs_per_stage", 1)
        self.stem = ViTCompoundExpressionConvStem(config.num_channels, channels, depth, style) if channels else None
        self.projection = nn.Conv2d(
            channels[-1] if channels else config.num_channels, config.hidden_size, kernel_size=stride, stride=stride
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            pixel_values = self.stem(pixel_values)
        return self.projection(pixel_values).flatten(2).transpose(1, 2)


class ViTCompoundExpressionEmbeddings(nn.Module):
    """CLS token + patch embeddings + fixed position embeddings (no masking: this is the fine-tuning model)."""

    def __init__(self, config):
        super().__init__()
        self.image_size = config.image_size
        num_patches = (config.image_size // config.patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embeddings = ViTCompoundExpressionPatchEmbeddings(config)
        self.position_embeddings = nn.Parameter(torch.zeros(1, num_patches + 1, config.hidden_size), requires_grad=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        if height != self.image_size or width != self.image_size:
            raise ValueError(
                f"input images are {height}x{width} but the model expects {self.image_size}x{self.image_size}; "
                "resize them (the image processor does) or convert the checkpoint with --image-size"
            )
        patches = self.patch_embeddings(pixel_values) + self.position_embeddings[:, 1:]
        cls = (self.cls_token + self.position_embeddings[:, :1]).expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1)


class ViTCompoundExpressionAttention(nn.Module):
    """Multi-head self-attention with ViTMAE's projection names, computed by `scaled_dot_product_attention`."""

    float32_core_on_cpu = True  # benchmarks/curriculum_precision.py turns it off to measure what it saves

    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.dropout = config.attention_probs_dropout_prob
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = hidden_states.shape
        q, k, v = (
            proj(hidden_states).view(batch, tokens, self.num_heads, -1).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        dropout = self.dropout if self.training else 0.0
        if self.float32_core_on_cpu and q.device.type == "cpu" and q.dtype != torch.float32:
            # CPU flash attention is 3-4x slower in bf16 than in float32 at ViT lengths: run only the core in
            # float32 (autocast off, or it casts straight back), the projections around it stay bf16
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=dropout).to(q.dtype)
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return self.o_proj(out.transpose(1, 2).reshape(batch, tokens, -1))


class ViTCompoundExpressionMLP(nn.Module):
    """The transformer block's two-layer feed-forward network."""

    def __init__(self, config):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for a random subset of samples, rescaling the rest."""
    if rate == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - rate)
    return x * keep / (1.0 - rate)


class ViTCompoundExpressionLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block (ViTMAE layout) with optional drop path."""

    def __init__(self, config, drop_path_rate: float = 0.0):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = ViTCompoundExpressionAttention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = ViTCompoundExpressionMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.drop_path_rate = drop_path_rate

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        attended = self.dropout(self.attention(self.layernorm_before(hidden_states)))
        hidden_states = hidden_states + drop_path(attended, self.drop_path_rate, self.training)
        transformed = self.dropout(self.mlp(self.layernorm_after(hidden_states)))
        return hidden_states + drop_path(transformed, self.drop_path_rate, self.training)


class ViTCompoundExpressionEncoder(nn.Module):
    """The ViT encoder: embeddings, the transformer blocks and the final LayerNorm."""

    def __init__(self, config):
        super().__init__()
        self.embeddings = ViTCompoundExpressionEmbeddings(config)
        rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers).tolist()
        self.layers = nn.ModuleList([ViTCompoundExpressionLayer(config, rate) for rate in rates])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden_states = self.embeddings(pixel_values)
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return self.layernorm(hidden_states)


class ViTForCompoundExpressionPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading glue shared by the compound-expression models."""

    config_class = ViTForCompoundExpressionConfig
    base_model_prefix = "vit"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ViTCompoundExpressionLayer"]
    # The loss is a plain mean: the Trainer must still divide it by gradient-accumulation steps
    # (forward's **kwargs would otherwise make it assume a num_items_in_batch-normalised loss).
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, ViTCompoundExpressionEmbeddings):
            grid = module.image_size // self.config.patch_size
            if not getattr(module.position_embeddings, "_is_hf_initialized", False):
                module.position_embeddings.copy_(sincos_position_embedding(grid, module.position_embeddings.shape[-1]))
            if not getattr(module.cls_token, "_is_hf_initialized", False):
                module.cls_token.normal_(std=self.config.initializer_range)


class ViTForCompoundExpression(ViTForCompoundExpressionPreTrainedModel):
    """ViT encoder + MLP head giving one logit per basic expression, with compound scores on top.

    Pass float multi-hot `labels` of shape `(batch, num_basics)` (soft targets allowed) to get the
    multi-label BCE loss, so the HF `Trainer` works unchanged. Integer class indices of shape
    `(batch,)` are accepted too and one-hot encoded.
    """

    def __init__(self, config: ViTForCompoundExpressionConfig):
        super().__init__(config)
        self.vit = ViTCompoundExpressionEncoder(config)
        self.fc_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.pooling == "mean" else None
        head, width = [], config.hidden_size
        for hidden in config.head_hidden_sizes:
            head += [nn.Dropout(config.head_dropout), nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        head += [nn.Dropout(config.head_dropout), nn.Linear(width, len(config.basic_labels))]
        self.head = nn.Sequential(*head)
        self.post_init()

    def compound_matrix(self, device=None, dtype=None) -> torch.Tensor:
        """`(num_compounds, num_basics)` 0/1 matrix: row c marks the constituents of compound c."""
        return compound_matrix(self.config, device, dtype)

    def pool(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        """Reduce the encoder output to one feature vector per image (`config.pooling`)."""
        if self.fc_norm is None:
            return last_hidden_state[:, 0]
        return self.fc_norm(last_hidden_state[:, 1:].mean(dim=1))

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs
    ) -> CompoundExpressionOutput:
        last_hidden_state = self.vit(pixel_values)
        pooled = self.pool(last_hidden_state)
        return compound_expression_output(self.config, self.head(pooled), labels, pooled, last_hidden_state)

    def predict_compounds(self, pixel_values: torch.Tensor) -> list[str]:
        """The predicted compound name for each image: argmax of the summed constituent probabilities."""
        scores = self(pixel_values).compound_scores
        return [self.config.compound_names[i] for i in scores.argmax(dim=-1).tolist()]
