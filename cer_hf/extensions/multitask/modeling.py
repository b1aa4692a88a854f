"""Multi-task affect model for the ABAW multi-task track: 12 AUs, 8 expressions, valence/arousal.

`ViTForMultiTaskExpression` puts three heads on the toolkit's ViT encoder (the same `ViTCompoundExpressionEncoder`
as `ViTForCompoundExpression`, so an MAE checkpoint or a compound model converts by copying
tensors), following Liu et al., "Affective Behaviour Analysis via Progressive Learning"
(ABAW7, ECCV 2024 workshop, sec. 3.2 and 3.4):

* AU detection: one logit per AU, class-weighted BCE (eq. 2);
* expression: 8-way softmax (Neutral, six basics, Other), class-weighted CE (eq. 3);
* valence/arousal: tanh outputs in [-1, 1], loss 1 - CCC per dimension (eq. 4-5);
* overall loss: λ_AU·L_AU + λ_EXPR·L_EXPR + λ_VA·L_VA (eq. 6).

Missing labels (Aff-Wild2 convention: AU -1, expression -1, valence/arousal -5) are masked out
per task, never treated as a class. A task whose weight is 0 is not trained: its head (and its
fusion/temporal modules) are frozen and it adds nothing to the loss.

Optional per task: the feature fusion module (`FeatureFusion`, eq. 1: features of frozen
single-task models added to the current features, then Linear-act-Dropout-Linear) and a
temporal module over frame sequences (`cer_hf.extensions.temporal`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig
from transformers.utils import ModelOutput

from cer_hf.modeling.modeling_cer import ViTCompoundExpressionEncoder, ViTForCompoundExpressionPreTrainedModel
from cer_hf.extensions.temporal import TEMPORAL_MODULES, apply_temporal, build_temporal_module

from cer_hf.taxonomy import AFFWILD2_EXPR_LABELS as EXPRESSION_NAMES, AU_NAMES, MISSING_VA
from cer_hf.modeling.convert import ENCODER_FIELDS, load_mae_encoder, mae_encoder_fields, mae_encoder_state

TASKS = ("au", "expr", "va")
# How the per-AU class weight enters the BCE: "paper" scales the whole term (Liu et al., ABAW7 MTL, eq. 2:
# `au_weights`), "pos_weight" only the positive term (`au_pos_weight`, the toolkit's former form).
AU_LOSS_FORMS = ("paper", "pos_weight")
# How the class-weighted expression CE is normalised (see `masked_expression_loss`).
EXPRESSION_LOSS_FORMS = ("paper", "weight_sum")


class ViTMultiTaskExpressionConfig(PretrainedConfig):
    """Configuration of `ViTForMultiTaskExpression`: the ViT encoder fields plus heads, fusion and temporal options.

    Args:
        pooling: "mean" (patch tokens averaged, then LayerNorm) or "cls".
        head_dropout: dropout before each task head.
        task_weights: λ per task, e.g. `{"au": 1, "expr": 1, "va": 1}`; a task with weight 0 is not trained.
        au_pos_weight: per-AU weight of the positive term of the BCE (e.g. #negatives/#positives), or None.
        au_weights: per-AU weight of the whole BCE term (eq. 2's W_au), or None.
        expression_class_weights: per-class CE weight (eq. 3's W_exp), or None.
        expression_loss_form: "paper" (eq. 3: the weighted CE averaged over the annotated frames) or
            "weight_sum" (divided by the sum of their weights, torch's `cross_entropy(weight=)` mean).
        au_threshold: probability above which an AU is predicted active.
        fusion: task -> names of frozen single-task feature sources fused into that task's features,
            e.g. `{"va": ["au"]}`. Load the sources' weights with `load_fusion_source`.
        fusion_dropout: dropout inside the fusion module.
        temporal_module: "none", "lstm" (Liu et al., ABAW7 MTL) or "transformer" (Yu et al., ABAW6).
        temporal_tasks: the tasks whose features go through the temporal module (004: expr and va).
        temporal_layers, temporal_heads, temporal_dropout: size of the temporal module.
        temporal_residual: add the temporal module's output to the frame features (refine, not replace);
            False feeds the heads the module's output alone, as Liu et al.'s (ABAW7 MTL) figure draws it.
        sequence_length, temporal_stride: frames per window and the step between windows (video inference).
    """

    model_type = "vit_multitask_expression"
    keys_to_ignore_at_inference = ["features"]

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
        drop_path_rate=0.0,
        pooling="mean",
        head_dropout=0.0,
        au_names=AU_NAMES,
        expression_names=EXPRESSION_NAMES,
        task_weights=None,
        au_pos_weight=None,
        au_weights=None,
        expression_class_weights=None,
        expression_loss_form="paper",
        au_threshold=0.5,
        fusion=None,
        fusion_dropout=0.1,
        temporal_module="none",
        temporal_tasks=("expr", "va"),
        temporal_layers=2,
        temporal_heads=4,
        temporal_dropout=0.1,
        temporal_residual=True,
        sequence_length=16,
        temporal_stride=8,
        **kwargs,
    ):
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        task_weights = {"au": 1.0, "expr": 1.0, "va": 1.0} if task_weights is None else dict(task_weights)
        unknown = sorted(set(task_weights) - set(TASKS))
        if unknown:
            raise ValueError(f"task_weights: unknown task(s) {unknown}; tasks are {list(TASKS)}")
        task_weights = {task: float(task_weights.get(task, 0.0)) for task in TASKS}
        if any(w < 0 for w in task_weights.values()) or not any(task_weights.values()):
            raise ValueError(f"task_weights must be >= 0 with at least one > 0, got {task_weights}")
        fusion = {task: list(sources) for task, sources in (fusion or {}).items() if sources}
        unknown = sorted(set(fusion) - set(TASKS))
        if unknown:
            raise ValueError(f"fusion: unknown task(s) {unknown}; tasks are {list(TASKS)}")
        if expression_loss_form not in EXPRESSION_LOSS_FORMS:
            raise ValueError(f"expression_loss_form must be one of {EXPRESSION_LOSS_FORMS}, got {expression_loss_form!r}")
        if temporal_module not in TEMPORAL_MODULES:
            raise ValueError(f"temporal_module must be one of {TEMPORAL_MODULES}, got {temporal_module!r}")
        unknown = sorted(set(temporal_tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"temporal_tasks: unknown task(s) {unknown}; tasks are {list(TASKS)}")
        for name, values, size in (
            ("au_pos_weight", au_pos_weight, len(au_names)),
            ("au_weights", au_weights, len(au_names)),
            ("expression_class_weights", expression_class_weights, len(expression_names)),
        ):
            if values is not None and len(values) != size:
                raise ValueError(f"{name} needs {size} values, got {len(values)}")
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
        self.drop_path_rate = drop_path_rate
        self.pooling = pooling
        self.head_dropout = head_dropout
        self.au_names = list(au_names)
        self.expression_names = list(expression_names)
        self.task_weights = task_weights
        self.au_pos_weight = None if au_pos_weight is None else [float(w) for w in au_pos_weight]
        self.au_weights = None if au_weights is None else [float(w) for w in au_weights]
        self.expression_class_weights = (
            None if expression_class_weights is None else [float(w) for w in expression_class_weights]
        )
        self.expression_loss_form = expression_loss_form
        self.au_threshold = au_threshold
        self.fusion = fusion
        self.fusion_dropout = fusion_dropout
        self.temporal_module = temporal_module
        self.temporal_tasks = list(temporal_tasks)
        self.temporal_layers = temporal_layers
        self.temporal_heads = temporal_heads
        self.temporal_dropout = temporal_dropout
        self.temporal_residual = temporal_residual
        self.sequence_length = sequence_length
        self.temporal_stride = temporal_stride
        kwargs.setdefault("id2label", dict(enumerate(self.expression_names)))
        kwargs.setdefault("label2id", {name: i for i, name in enumerate(self.expression_names)})
        super().__init__(**kwargs)

    @property
    def trained_tasks(self) -> list[str]:
        """The tasks with a weight above 0."""
        return [task for task in TASKS if self.task_weights[task] > 0]

    @property
    def fusion_sources(self) -> list[str]:
        """Every frozen feature source some task fuses, sorted."""
        return sorted({source for sources in self.fusion.values() for source in sources})


@dataclass
class MultiTaskOutput(ModelOutput):
    """Output of `ViTForMultiTaskExpression`. Per-frame tensors keep a `(batch, seq)` prefix for sequence input.

    Attributes:
        loss: λ-weighted sum of the per-task losses of the trained tasks that got labels.
        au_loss, expr_loss, va_loss: the per-task losses (None when not computed).
        au_logits: `(..., 12)`; sigmoid gives AU probabilities.
        expr_logits: `(..., 8)` expression logits.
        va: `(..., 2)` valence and arousal in [-1, 1].
        features: `(..., hidden)` pooled encoder features (before fusion/temporal modules).
    """

    loss: torch.Tensor | None = None
    au_loss: torch.Tensor | None = None
    expr_loss: torch.Tensor | None = None
    va_loss: torch.Tensor | None = None
    au_logits: torch.Tensor | None = None
    expr_logits: torch.Tensor | None = None
    va: torch.Tensor | None = None
    features: torch.Tensor | None = None


# ----------------------------------------------------------------------------- losses


def _zero_loss(output: torch.Tensor) -> torch.Tensor:
    # Keeps the graph (so distributed training sees every parameter used) with an exactly zero gradient.
    return output.sum() * 0.0


def masked_au_loss(
    logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None = None, au_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Class-weighted BCE over the AUs that are annotated (label 0 or 1), averaged over them; -1 entries are ignored.

    `au_weights` W_j scale the whole BCE term of AU j, as Liu et al.'s (ABAW7 MTL) eq. 2:
    -1/12 Σ_j W_j [y_j log ŷ_j + (1 - y_j) log(1 - ŷ_j)]. `pos_weight` p_j scales only the positive term
    (-[p_j y_j log ŷ_j + (1 - y_j) log(1 - ŷ_j)], the former `au_loss_form="pos_weight"`).
    """
    logits, labels = logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1, logits.shape[-1]).float()
    mask = labels >= 0
    if not mask.any():
        return _zero_loss(logits)
    per_entry = F.binary_cross_entropy_with_logits(logits, labels.clamp(min=0), pos_weight=pos_weight, reduction="none")
    if au_weights is not None:
        per_entry = per_entry * au_weights
    return (per_entry * mask).sum() / mask.sum()


def masked_expression_loss(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None, form: str = "paper"
) -> torch.Tensor:
    """Class-weighted CE over the annotated frames (label -1 ignored).

    form "paper" (Liu et al., ABAW7 MTL, eq. 3: -W_z log ẑ_z per frame): Σ_i W_{y_i} CE_i / N, the mean
    over the N annotated frames; eq. 3's constant 1/8 is left to λ_EXPR, so without weights every
    form is the plain CE mean. form "weight_sum": Σ_i W_{y_i} CE_i / Σ_i W_{y_i}, torch's
    `cross_entropy(weight=...)` mean, whose divisor changes with the classes in each batch.
    """
    if form not in EXPRESSION_LOSS_FORMS:
        raise ValueError(f"form must be one of {EXPRESSION_LOSS_FORMS}, got {form!r}")
    logits, labels = logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1).long()
    valid = labels >= 0  # MISSING_EXPR (-1): not annotated
    if not valid.any():
        return _zero_loss(logits)
    per_frame = F.cross_entropy(logits[valid], labels[valid], reduction="none")
    if class_weights is None:
        return per_frame.mean()
    weights = class_weights.to(per_frame.dtype)[labels[valid]]
    return (weights * per_frame).sum() / (valid.sum() if form == "paper" else weights.sum())


def concordance_correlation(predictions: torch.Tensor, targets: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Lin's CCC = 2·cov / (var_p + var_t + (mean_p - mean_t)²) with population (biased) moments."""
    mean_p, mean_t = predictions.mean(), targets.mean()
    var_p, var_t = predictions.var(unbiased=False), targets.var(unbiased=False)
    covariance = ((predictions - mean_p) * (targets - mean_t)).mean()
    return 2 * covariance / (var_p + var_t + (mean_p - mean_t) ** 2 + eps)


def masked_ccc_loss(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Σ over valence and arousal of (1 - CCC), each over its annotated frames (label -5 ignored).

    A dimension with fewer than two annotated frames in the batch contributes 0 (CCC is undefined).
    """
    predictions, labels = predictions.reshape(-1, 2).float(), labels.reshape(-1, 2).float()
    total = _zero_loss(predictions)
    for dim in range(2):
        valid = labels[:, dim] > MISSING_VA + 1
        if valid.sum() >= 2:
            total = total + 1 - concordance_correlation(predictions[valid, dim], labels[valid, dim])
    return total


# ----------------------------------------------------------------------------- modules


class FeatureFusion(nn.Module):
    """Seed 004's feature fusion module F_f: `F_m = F_f(F_other + F_current)`, two linear layers, activation, dropout."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, current: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return self.layers(current + other)


class FrozenFeatureExtractor(nn.Module):
    """The encoder and pooling of a trained single-task model, kept frozen and in eval mode (a fusion source)."""

    def __init__(self, config):
        super().__init__()
        self.vit = ViTCompoundExpressionEncoder(config)
        self.fc_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.pooling == "mean" else None
        self.requires_grad_(False)

    def train(self, mode: bool = True):
        return super().train(False)  # dropout/drop path stay off whatever the parent does

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.vit(pixel_values)
        return hidden[:, 0] if self.fc_norm is None else self.fc_norm(hidden[:, 1:].mean(dim=1))


class ViTForMultiTaskExpression(ViTForCompoundExpressionPreTrainedModel):
    """ViT encoder + AU, expression and valence/arousal heads, with optional fusion and temporal modules per task.

    `pixel_values` is `(batch, 3, H, W)` for frames or `(batch, seq, 3, H, W)` for frame sequences
    (the temporal module then runs over `seq`; a single frame is a sequence of one). Labels:
    `au_labels` `(…, 12)` in {0, 1, -1}, `expr_labels` `(…)` class index or -1, `va_labels` `(…, 2)`
    in [-1, 1] or -5. Any subset may be passed; the loss covers the trained tasks that got labels.
    """

    config_class = ViTMultiTaskExpressionConfig

    def __init__(self, config: ViTMultiTaskExpressionConfig):
        super().__init__(config)
        dim = config.hidden_size
        self.vit = ViTCompoundExpressionEncoder(config)
        self.fc_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps) if config.pooling == "mean" else None
        self.fusion_sources = nn.ModuleDict({name: FrozenFeatureExtractor(config) for name in config.fusion_sources})
        self.fusion = nn.ModuleDict({task: FeatureFusion(dim, config.fusion_dropout) for task in config.fusion})
        self.temporal = nn.ModuleDict()
        for task in config.temporal_tasks if config.temporal_module != "none" else ():
            self.temporal[task] = build_temporal_module(
                config.temporal_module,
                dim,
                num_layers=config.temporal_layers,
                num_heads=config.temporal_heads,
                dropout=config.temporal_dropout,
            )
        sizes = {"au": len(config.au_names), "expr": len(config.expression_names), "va": 2}
        self.heads = nn.ModuleDict(
            {task: nn.Sequential(nn.Dropout(config.head_dropout), nn.Linear(dim, sizes[task])) for task in TASKS}
        )
        self.post_init()
        self.freeze_untrained_tasks()

    def freeze_untrained_tasks(self) -> None:
        """Tasks with weight 0 get no gradient: freeze their head, fusion and temporal modules."""
        for task in TASKS:
            trained = self.config.task_weights[task] > 0
            for modules in (self.heads, self.fusion, self.temporal):
                if task in modules:
                    modules[task].requires_grad_(trained)
        self.fusion_sources.requires_grad_(False)

    # ------------------------------------------------------------------ building from other checkpoints

    @classmethod
    def from_mae(cls, mae, *, image_size: int | None = None, seed: int = 0, **config_fields) -> "ViTForMultiTaskExpression":
        """A new multi-task model whose encoder is an MAE encoder (a `ViTMAEModel` or a checkpoint directory).

        Copies the tensors exactly (the same conversion as `cer_hf.modeling.convert.convert_mae_model`);
        heads are freshly initialised with `seed`. `config_fields` are further config options.
        """

        if isinstance(mae, (str, Path)):
            mae = load_mae_encoder(mae)
        config = ViTMultiTaskExpressionConfig(**mae_encoder_fields(mae.config, image_size), **config_fields)
        torch.manual_seed(seed)
        model = cls(config)
        state = mae_encoder_state(mae, config.image_size)
        model._load_encoder_state(state, source="MAE encoder")
        return model

    @classmethod
    def from_compound_model(cls, compound_model, *, seed: int = 0, **config_fields) -> "ViTForMultiTaskExpression":
        """A new multi-task model sharing the encoder (and pooling norm) of a `ViTForCompoundExpression`."""

        source = compound_model.config
        fields = {f: getattr(source, f) for f in (*ENCODER_FIELDS, "image_size", "pooling", "drop_path_rate")}
        config = ViTMultiTaskExpressionConfig(**{**fields, **config_fields})
        torch.manual_seed(seed)
        model = cls(config)
        state = {k: v for k, v in compound_model.state_dict().items() if k.startswith(("vit.", "fc_norm."))}
        model._load_encoder_state(state, source="compound model")
        return model

    def _load_encoder_state(self, state: dict, source: str) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(name.startswith("vit.") for name in missing):
            raise ValueError(f"{source} does not match the encoder: missing {missing}, unexpected {unexpected}")

    def load_fusion_source(self, name: str, checkpoint) -> None:
        """Load the frozen feature source `name` from a trained model (instance or saved directory).

        Any checkpoint with `vit.*` (and `fc_norm.*` for mean pooling) weights of the same encoder
        shape works: a single-task `ViTForMultiTaskExpression` or a `ViTForCompoundExpression`.
        """
        if name not in self.fusion_sources:
            raise ValueError(f"fusion source {name!r} is not used by config.fusion {self.config.fusion}")
        if isinstance(checkpoint, (str, Path)):
            path = Path(checkpoint) / "model.safetensors"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: fusion source {name!r} needs a saved model (model.safetensors)")
            from safetensors.torch import load_file

            state, where = load_file(str(path)), str(path)
        else:
            state, where = checkpoint.state_dict(), type(checkpoint).__name__
        state = {k: v for k, v in state.items() if k.startswith(("vit.", "fc_norm."))}
        try:
            self.fusion_sources[name].load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"fusion source {name!r} from {where} does not match this encoder: {error}") from None

    # ------------------------------------------------------------------ forward

    def pool(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        """One feature vector per image (`config.pooling`)."""
        if self.fc_norm is None:
            return last_hidden_state[:, 0]
        return self.fc_norm(last_hidden_state[:, 1:].mean(dim=1))

    def task_features(self, features: torch.Tensor, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per task, the frame features after its fusion module (if any); `features` and pixels are flat `(N, …)`."""
        sources = {name: extractor(pixel_values) for name, extractor in self.fusion_sources.items()}
        out = {}
        for task in TASKS:
            if task in self.fusion:
                other = sum(sources[name] for name in self.config.fusion[task])
                out[task] = self.fusion[task](features, other)
            else:
                out[task] = features
        return out

    def heads_forward(self, per_task: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Apply the task heads (tanh on valence/arousal)."""
        return {
            "au": self.heads["au"](per_task["au"]),
            "expr": self.heads["expr"](per_task["expr"]),
            "va": torch.tanh(self.heads["va"](per_task["va"])),
        }

    def forward(
        self,
        pixel_values: torch.Tensor,
        au_labels: torch.Tensor | None = None,
        expr_labels: torch.Tensor | None = None,
        va_labels: torch.Tensor | None = None,
        **kwargs,
    ) -> MultiTaskOutput:
        if pixel_values.ndim == 5:
            batch, seq = pixel_values.shape[:2]
            pixel_values = pixel_values.flatten(0, 1)
        elif pixel_values.ndim == 4:
            batch, seq = pixel_values.shape[0], None
        else:
            raise ValueError(f"pixel_values must be (batch, 3, H, W) or (batch, seq, 3, H, W), got {tuple(pixel_values.shape)}")
        features = self.pool(self.vit(pixel_values))
        per_task = self.task_features(features, pixel_values)
        for task, module in self.temporal.items():
            frames = per_task[task]
            temporal = module(frames.view(batch, seq or 1, -1)).reshape(frames.shape)
            per_task[task] = frames + temporal if self.config.temporal_residual else temporal
        outputs = self.heads_forward(per_task)
        if seq is not None:
            outputs = {task: value.view(batch, seq, *value.shape[1:]) for task, value in outputs.items()}
            features = features.view(batch, seq, -1)
        losses = self.task_losses(outputs, au_labels, expr_labels, va_labels)
        loss = None
        if losses:
            loss = sum(self.config.task_weights[task] * value for task, value in losses.items())
        return MultiTaskOutput(
            loss=loss,
            au_loss=losses.get("au"),
            expr_loss=losses.get("expr"),
            va_loss=losses.get("va"),
            au_logits=outputs["au"],
            expr_logits=outputs["expr"],
            va=outputs["va"],
            features=features,
        )

    def task_losses(self, outputs, au_labels=None, expr_labels=None, va_labels=None) -> dict[str, torch.Tensor]:
        """The masked loss of each trained task whose labels were given."""
        config, losses = self.config, {}
        device = outputs["au"].device

        def weights(values):
            return None if values is None else torch.tensor(values, device=device, dtype=torch.float32)

        if au_labels is not None and config.task_weights["au"] > 0:
            losses["au"] = masked_au_loss(
                outputs["au"], au_labels, weights(config.au_pos_weight), weights(config.au_weights)
            )
        if expr_labels is not None and config.task_weights["expr"] > 0:
            losses["expr"] = masked_expression_loss(
                outputs["expr"], expr_labels, weights(config.expression_class_weights),
                getattr(config, "expression_loss_form", "weight_sum"),  # configs saved before the option: as then
            )
        if va_labels is not None and config.task_weights["va"] > 0:
            losses["va"] = masked_ccc_loss(outputs["va"], va_labels)
        return losses

    @torch.no_grad()
    def predict_video(self, pixel_values: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """Frame-aligned predictions for one video `(T, 3, H, W)`.

        Frames are encoded in chunks; each temporal task's features go through the temporal module
        over windows of `config.sequence_length` every `config.temporal_stride` frames, and overlapping
        windows are averaged back onto frames. Returns `au_probabilities (T, 12)`,
        `expr_probabilities (T, 8)` and `va (T, 2)`.
        """
        features, per_task_chunks = [], []
        for chunk in pixel_values.split(batch_size):
            pooled = self.pool(self.vit(chunk))
            features.append(pooled)
            per_task_chunks.append(self.task_features(pooled, chunk))
        per_task = {task: torch.cat([c[task] for c in per_task_chunks]) for task in TASKS}
        for task, module in self.temporal.items():
            temporal = apply_temporal(
                module, per_task[task], self.config.sequence_length, self.config.temporal_stride, batch_size
            )
            per_task[task] = per_task[task] + temporal if self.config.temporal_residual else temporal
        outputs = self.heads_forward(per_task)
        return {
            "au_probabilities": torch.sigmoid(outputs["au"]),
            "expr_probabilities": outputs["expr"].softmax(-1),
            "va": outputs["va"],
        }


def class_weights(au_labels=None, expr_labels=None, num_expressions: int = len(EXPRESSION_NAMES), max_weight=20.0):
    """Class weights from training labels (missing entries ignored).

    Returns `(au_class_weights, expression_class_weights)`: per AU #negatives/#positives (used as
    `au_weights` (eq. 2) or `au_pos_weight`, see `AU_LOSS_FORMS`), and per
    expression class N / (K · count) (inverse frequency, mean 1 over a balanced set); both
    clipped to `max_weight` so an absent class does not explode the loss. Either may be None.
    """
    au_pos_weight = expression_weights = None
    if au_labels is not None:
        au = torch.as_tensor(au_labels, dtype=torch.float32)
        positives = (au == 1).sum(0).float()
        negatives = (au == 0).sum(0).float()
        au_pos_weight = (negatives / positives.clamp(min=1)).clamp(min=1 / max_weight, max=max_weight).tolist()
    if expr_labels is not None:
        labels = torch.as_tensor(expr_labels).long()
        labels = labels[labels >= 0]
        counts = torch.bincount(labels, minlength=num_expressions).float()
        weights = labels.numel() / (num_expressions * counts.clamp(min=1))
        expression_weights = weights.clamp(max=max_weight).tolist()
    return au_pos_weight, expression_weights


AutoConfig.register(ViTMultiTaskExpressionConfig.model_type, ViTMultiTaskExpressionConfig, exist_ok=True)
AutoModel.register(ViTMultiTaskExpressionConfig, ViTForMultiTaskExpression, exist_ok=True)
