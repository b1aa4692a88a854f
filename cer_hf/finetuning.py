"""Fine-tuning library for the curriculum recipe: data sources, the Trainer subclass, LLRD groups, BMC loss, metrics.

`recipes/curriculum.py` wires these together; everything a library user may want to reuse lives here.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback

from .augment import TrainAugment
from .curriculum import (
    BASIC,
    CurriculumCallback,
    CurriculumCollator,
    CurriculumDataset,
    CurriculumSampler,
    CurriculumSchedule,
    LabelledImageDataset,
)
from .data.readers import NON_TARGET_LABELS, drop_unreadable_images, filter_targets, load_labelled_source
from .mixing import CompoundMixer
from .taxonomy import EMOTION_BASICS, compound_set, constituents, parse_label


# ----------------------------------------------------------------------------- data sources


def load_source(spec: str, *, image_size: int | None = None, seed: int = 0):
    """Load a labelled source (`synthetic:basic:2000`, `imagefolder:/path`, `csv:/file.csv`, ...) as a `datasets.Dataset`.

    The one call site for data (`cer_hf.data.readers.load_labelled_source`). Rows whose image
    cannot be decoded are dropped and reported by file, so one corrupt file does not stop a run.
    `image_size`/`seed` only apply to `synthetic:` specs.
    """
    options = {"seed": seed, **({"image_size": image_size} if image_size else {})} if spec.startswith("synthetic:") else {}
    dataset = load_labelled_source(spec, **options)
    if not spec.startswith("synthetic:"):  # generated images are always readable
        dataset, _ = drop_unreadable_images(dataset, source=spec)  # logs what it skipped
    return dataset


def keep_targets(dataset, *, drop: Sequence[str] = NON_TARGET_LABELS, verbose: bool = True):
    """Drop rows labelled Neutral/Contempt/Other (or unlabelled); returns `(dataset, dropped Counter)`."""
    dataset, report = filter_targets(dataset, drop=drop, verbose=verbose)
    return dataset, Counter(report.dropped)


def split_by_kind(dataset, label_space: Sequence[str] = EMOTION_BASICS):
    """Split rows into (basic rows, compound rows) over `label_space`.

    Compound rows are every compound whose two constituents are in the label space, also
    compounds outside the evaluated set (RAF-DB's "Happily Disgusted" still teaches Happiness +
    Disgust). Any other label is an error naming the row (filter with `keep_targets` first).
    """
    space = set(label_space)
    basic_rows, compound_rows = [], []
    for index, label in enumerate(dataset["label"]):
        parts = constituents(label)
        if len(parts) == 1 and parts[0] in space:
            basic_rows.append(index)
        elif len(parts) == 2 and set(parts) <= space:
            compound_rows.append(index)
        else:
            raise ValueError(f"row {index}: label {label!r} is outside the label space {sorted(space)}")
    return dataset.select(basic_rows), dataset.select(compound_rows)


def keep_evaluated(dataset, compound_set_name: str = "abaw7", label_space: Sequence[str] = EMOTION_BASICS):
    """Keep rows the compound metric scores: basics of `label_space` and compounds of the set; returns (rows, dropped)."""
    allowed = set(label_space) | {c.name for c in compound_set(compound_set_name)}
    keep, dropped = [], Counter()
    for index, label in enumerate(dataset["label"]):
        name = parse_label(label)
        if name in allowed:
            keep.append(index)
        else:
            dropped[name] += 1
    return (dataset if not dropped else dataset.select(keep)), dropped


# ----------------------------------------------------------------------------- optimisation


def layer_id(name: str, num_layers: int) -> int:
    """MAE fine-tuning's layer index: 0 embeddings, i + 1 for block i, num_layers + 1 for norm and head."""
    if name.startswith("vit.embeddings"):
        return 0
    if name.startswith("vit.layers."):
        return int(name.split(".")[2]) + 1
    return num_layers + 1


def layerwise_lr_groups(model: torch.nn.Module, lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
    """Optimizer parameter groups with layer-wise lr decay: layer i gets `lr * layer_decay ** (L + 1 - i)`.

    No weight decay on biases, norms and 1-D parameters, nor on the CLS token (MAE's `param_groups_lrd`).
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"--layer_decay must be in (0, 1], got {layer_decay}")
    num_layers = model.config.num_hidden_layers
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim == 1 or name.endswith(".bias") or "cls_token" in name
        depth = layer_id(name, num_layers)
        key = (depth, no_decay)
        if key not in groups:
            scale = layer_decay ** (num_layers + 1 - depth)
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay, "lr": lr * scale,
                           "lr_scale": scale}
        groups[key]["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def bmc_loss(predictions: torch.Tensor, targets: torch.Tensor, noise_var: float = 1.0) -> torch.Tensor:
    """Balanced MSE, batch Monte-Carlo form (Ren et al., CVPR 2022), as shipped in the ABAW7 authors' code.

    Each prediction is classified against every target of the batch with logits
    `-||p_i - y_j||² / (2 noise_var)`; the loss is the cross-entropy of the true pairing times `2 noise_var`.
    """
    distances = torch.cdist(predictions.float(), targets.float()).pow(2)
    logits = -0.5 * distances / noise_var
    labels = torch.arange(predictions.shape[0], device=predictions.device)
    return F.cross_entropy(logits, labels) * (2 * noise_var)


class CurriculumTrainer(Trainer):
    """`Trainer` for curriculum fine-tuning.

    * trains on a `CurriculumDataset` through a `CurriculumSampler` (tokens carry the epoch);
    * optional layer-wise lr decay (`layer_decay`) in `create_optimizer`;
    * `loss="bce"` (the model's multi-label BCE) or `"bmc"` (Balanced MSE on the probabilities);
    * adds to each training log the curriculum stage, the scheduled compound share and the share
      of compound samples the model actually saw since the last log.
    """

    def __init__(self, *args, layer_decay: float | None = None, loss: str = "bce", bmc_noise_var: float = 1.0,
                 **kwargs):
        if loss not in ("bce", "bmc"):
            raise ValueError(f"--loss must be 'bce' or 'bmc', got {loss!r}")
        super().__init__(*args, **kwargs)
        # The model's forward takes **kwargs, so the Trainer would assume its loss is normalized by
        # `num_items_in_batch` (skipping the gradient-accumulation division and rescaling across
        # devices). Its BCE is a per-batch mean: let the Trainer scale it.
        self.model_accepts_loss_kwargs = False
        self.layer_decay, self.loss_name, self.bmc_noise_var = layer_decay, loss, bmc_noise_var
        self._seen = Counter()
        self.curriculum_sampler = None

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if isinstance(dataset, CurriculumDataset):
            self.curriculum_sampler = CurriculumSampler(len(dataset))
            for callback in self.callback_handler.callbacks:
                if isinstance(callback, CurriculumCallback):
                    callback.sampler = self.curriculum_sampler
            return self.curriculum_sampler
        return super()._get_train_sampler(train_dataset)

    def create_optimizer(self, model=None):
        if self.layer_decay is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        groups = layerwise_lr_groups(opt_model, self.args.learning_rate, self.args.weight_decay, self.layer_decay)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        kinds = inputs.pop("sample_kind", None)
        stages = inputs.pop("curriculum_stage", None)
        if model.training and kinds is not None:
            self._seen["samples"] += int(kinds.numel())
            self._seen["compound"] += int((kinds != BASIC).sum())
            if stages is not None and stages.numel():
                self._seen["stage"] = int(stages.max()) + 1
        if self.loss_name == "bce":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = bmc_loss(outputs.probabilities, labels, self.bmc_noise_var)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, start_time=None) -> None:
        if "loss" in logs and self._seen["samples"]:
            logs["curriculum_stage"] = self._seen["stage"]
            logs["compound_share_seen"] = round(self._seen["compound"] / self._seen["samples"], 4)
            dataset = self.train_dataset
            if isinstance(dataset, CurriculumDataset):
                epoch = int(math.floor((self.state.epoch or 0) - 1e-9)) if self.state.epoch else 0
                logs["compound_share_scheduled"] = dataset.schedule.share_of_epoch(max(epoch, 0))
            self._seen = Counter()
        super().log(logs, start_time)


# ----------------------------------------------------------------------------- metrics


def keep_logits(logits, labels):
    """`preprocess_logits_for_metrics`: keep only the basic logits (drop hidden states before gathering)."""
    return logits[0] if isinstance(logits, (tuple, list)) else logits


def compound_metrics_fn(config, metric=None):
    """A `compute_metrics` for the Trainer: compound macro F1 and friends over the whole gathered eval set.

    The Trainer gathers every rank's predictions before calling it (no per-batch averaging).
    Returns flat float metrics (per-class F1 as `f1_<Compound_Name>`).
    """
    from .evaluation import load_compound_metric

    metric = metric or load_compound_metric()

    def compute_metrics(eval_prediction) -> dict:
        logits = np.asarray(eval_prediction.predictions, dtype=np.float64)
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        results = metric.compute(
            predictions=probabilities,
            references=np.asarray(eval_prediction.label_ids),
            basic_labels=list(config.basic_labels),
            compound_names=list(config.compound_names),
            compound_constituents=[list(p) for p in config.compound_constituents],
        )
        return flatten_metrics(results)

    return compute_metrics


def flatten_metrics(results: dict) -> dict:
    """Scalars from the metric's output: per-class dicts become `f1_<Name>` keys; the confusion matrix is dropped."""
    flat = {}
    for key, value in results.items():
        if key == "compound_confusion_matrix":
            continue
        if isinstance(value, dict):
            prefix = "f1_" if key == "compound_f1" else "basic_f1_"
            flat.update({prefix + name.replace(" ", "_"): v for name, v in value.items()})
        else:
            flat[key] = value
    return flat


# ----------------------------------------------------------------------------- recipe wiring

# The ABAW7 authors' face statistics, used for models built from scratch.
FACE_MEAN = [0.499, 0.410, 0.366]
FACE_STD = [0.297, 0.270, 0.265]


@dataclass
class ModelOptions:
    """Which model to fine-tune: a converted checkpoint, an MAE checkpoint, or a fresh preset."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "converted ViTForCompoundExpression dir"})
    mae_checkpoint: str | None = field(default=None, metadata={"help": "MAE checkpoint dir, converted on the fly"})
    model_preset: str = field(default="micro", metadata={"help": "encoder preset of a fresh model (cer_hf.presets)"})
    image_size: int | None = field(default=None, metadata={"help": "input size (default: the checkpoint's, else 224)"})
    patch_size: int = field(default=16, metadata={"help": "patch size of a fresh model"})
    compound_set: str = field(default="abaw7", metadata={"help": "compound classes: abaw7 or rafdb"})
    pooling: str = field(default="mean", metadata={"help": "mean (MAE fine-tuning) or cls"})
    head_hidden_sizes: list[int] = field(default_factory=list, metadata={"help": "MLP head widths"})
    head_dropout: float = field(default=0.0)
    drop_path_rate: float = field(default=0.1, metadata={"help": "stochastic depth (MAE fine-tuning: 0.1)"})


@dataclass
class DataOptions:
    """Where the basic, natural-compound and evaluation images come from (source specs)."""

    basic_source: str = field(default="synthetic:basic:2000", metadata={"help": "basic-expression source spec"})
    compound_source: str | None = field(default=None, metadata={"help": "natural compound source spec (optional)"})
    eval_source: str | None = field(default="synthetic:all:700", metadata={"help": "evaluation source spec"})
    eval_seed: int = field(default=12345, metadata={"help": "seed of a synthetic eval source (held out)"})
    drop_labels: list[str] = field(default_factory=lambda: list(NON_TARGET_LABELS),
                                   metadata={"help": "labels filtered out of every source"})
    samples_per_epoch: int | None = field(default=None, metadata={"help": "default: the number of basic rows"})


@dataclass
class CurriculumOptions:
    """The curriculum schedule, compound synthesis, augmentation, loss and optimiser options."""

    stage_epochs: list[int] = field(default_factory=lambda: [5, 5, 3, 3], metadata={"help": "epochs per stage"})
    compound_shares: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 1.0],
                                         metadata={"help": "compound share per stage"})
    curriculum_mode: str = field(default="batch", metadata={"help": "batch (paper) or pool (authors' code)"})
    natural_fraction: float | None = field(default=None, metadata={"help": "share of compounds that are natural"})
    compound_pool_size: int | None = field(default=None, metadata={"help": "pool mode: compound pool size"})
    mixup_prob: float = field(default=0.5, metadata={"help": "probability of Mixup for a synthesized compound"})
    cutmix_prob: float = field(default=0.5, metadata={"help": "probability of CutMix (mixup_prob + cutmix_prob = 1)"})
    mixup_weight: float = field(default=0.1, metadata={"help": "fixed blend weight of the second image (paper 0.1)"})
    mixup_sampling: str = field(default="fixed", metadata={"help": "fixed (mixup_weight) or beta (Beta(alpha))"})
    mixup_alpha: float = field(default=0.4)
    cutmix_mode: str = field(default="random", metadata={"help": "random, left_right or upper_lower"})
    cutmix_alpha: float = field(default=1.0)
    mix_target: str = field(default="union", metadata={"help": "union (multi-hot) or proportional"})
    any_pair: bool = field(default=False, metadata={"help": "mix any two different basics, not only compounds"})
    augment: bool = field(default=True, metadata={"help": "crop, flip, colour jitter, cutout"})
    augment_first_stage_only: bool = field(default=False)
    crop_scale_min: float = field(default=0.6)
    erase_prob: float = field(default=0.25)
    loss: str = field(default="bce", metadata={"help": "bce (paper) or bmc (Balanced MSE, authors' code)"})
    bmc_noise_var: float = field(default=1.0)
    layer_decay: float = field(default=0.75, metadata={"help": "layer-wise lr decay; 1.0 disables it"})
    base_learning_rate: float | None = field(
        default=None, metadata={"help": "if set: learning_rate = base_learning_rate * effective batch / 256"})
    evaluate_each_stage: bool = field(default=True, metadata={"help": "evaluate at the end of every stage"})


def build_model(model_args: ModelOptions):
    """The model and its image processor from a converted checkpoint, an MAE checkpoint or a preset."""
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    from .convert import compound_config, convert_mae_model, image_processor_for, load_mae_encoder
    from .modeling_cer import ViTForCompoundExpression
    from .presets import ENCODER_PRESETS

    head = dict(pooling=model_args.pooling, head_hidden_sizes=list(model_args.head_hidden_sizes),
                head_dropout=model_args.head_dropout, drop_path_rate=model_args.drop_path_rate)
    if model_args.model_name_or_path and model_args.mae_checkpoint:
        raise ValueError("give either --model_name_or_path or --mae_checkpoint, not both")
    if model_args.model_name_or_path:
        path = Path(model_args.model_name_or_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--model_name_or_path {path}: no config.json (expected a converted checkpoint)")
        model = ViTForCompoundExpression.from_pretrained(path, drop_path_rate=model_args.drop_path_rate)
        if model_args.image_size and model_args.image_size != model.config.image_size:
            raise ValueError(f"--image_size {model_args.image_size} differs from the checkpoint's "
                             f"{model.config.image_size}; re-convert with `cer-hf convert --image-size`")
        try:
            processor = ViTImageProcessorPil.from_pretrained(path)
        except OSError:
            size = model.config.image_size
            processor = ViTImageProcessorPil(size={"height": size, "width": size}, image_mean=FACE_MEAN,
                                             image_std=FACE_STD)
        return model, processor
    if model_args.mae_checkpoint:
        mae = load_mae_encoder(model_args.mae_checkpoint)
        model = convert_mae_model(mae, compound_set_name=model_args.compound_set, image_size=model_args.image_size,
                                  **head)
        return model, image_processor_for(model_args.mae_checkpoint, model.config.image_size)
    if model_args.model_preset not in ENCODER_PRESETS:
        raise ValueError(f"--model_preset {model_args.model_preset!r}: choose one of {', '.join(ENCODER_PRESETS)}")
    size = model_args.image_size or 224
    config = compound_config(model_args.compound_set, image_size=size, patch_size=model_args.patch_size,
                             **ENCODER_PRESETS[model_args.model_preset], **head)
    model = ViTForCompoundExpression(config)
    processor = ViTImageProcessorPil(size={"height": size, "width": size}, image_mean=FACE_MEAN, image_std=FACE_STD)
    return model, processor


def build_mixer(options: CurriculumOptions) -> CompoundMixer:
    """The `CompoundMixer` described by the options."""
    if options.mixup_sampling not in ("fixed", "beta"):
        raise ValueError(f"--mixup_sampling must be 'fixed' or 'beta', got {options.mixup_sampling!r}")
    return CompoundMixer(
        mixup_prob=options.mixup_prob, cutmix_prob=options.cutmix_prob,
        mixup_weight=options.mixup_weight if options.mixup_sampling == "fixed" else None,
        mixup_alpha=options.mixup_alpha, cutmix_mode=options.cutmix_mode, cutmix_alpha=options.cutmix_alpha,
        target=options.mix_target,
    )


def build_curriculum_trainer(model_args: ModelOptions, data_args: DataOptions, options: CurriculumOptions,
                             training_args, *, callbacks=None, verbose: bool = True):
    """Everything `recipes/curriculum.py` trains with: returns `(CurriculumTrainer, context dict)`.

    Validates the schedule and the mixing options first, so a bad option fails before data or
    model are loaded. Overrides `num_train_epochs` (the schedule's total) and
    `remove_unused_columns` (False: the collator's columns must reach it).
    """
    schedule = CurriculumSchedule(options.stage_epochs, options.compound_shares, options.curriculum_mode)
    mixer = build_mixer(options)
    if options.loss not in ("bce", "bmc"):
        raise ValueError(f"--loss must be 'bce' or 'bmc', got {options.loss!r}")
    log = print if verbose and training_args.process_index == 0 else (lambda *a, **k: None)

    # Model and image processor.
    model, processor = build_model(model_args)
    size = model.config.image_size
    label_space = tuple(model.config.basic_labels)

    # Data: basic rows (plus natural compounds), filtered to the six basics and the compound set.
    drop = tuple(data_args.drop_labels)
    basic_rows, dropped = keep_targets(load_source(data_args.basic_source, image_size=size, seed=training_args.seed),
                                       drop=drop, verbose=False)
    basic_rows, natural_in_basic = split_by_kind(basic_rows, label_space)
    log(f"[data] {data_args.basic_source}: {len(basic_rows)} basic rows; dropped {sum(dropped.values())} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(dropped.items())) or 'none'})")
    natural = natural_in_basic if len(natural_in_basic) else None
    if data_args.compound_source:
        compound_rows, dropped = keep_targets(
            load_source(data_args.compound_source, image_size=size, seed=training_args.seed + 1), drop=drop,
            verbose=False)
        _, natural = split_by_kind(compound_rows, label_space)
        log(f"[data] {data_args.compound_source}: {len(natural)} natural compound rows; dropped "
            f"{sum(dropped.values())}")
    train_dataset = CurriculumDataset(
        basic_rows, schedule, batch_size=training_args.per_device_train_batch_size, natural=natural,
        natural_fraction=options.natural_fraction, image_size=size, label_space=label_space,
        compound_set_name=model.config.compound_set, any_pair=options.any_pair,
        samples_per_epoch=data_args.samples_per_epoch, compound_pool_size=options.compound_pool_size,
        seed=training_args.seed,
    )
    eval_dataset = None
    if data_args.eval_source:
        eval_rows, _ = keep_targets(load_source(data_args.eval_source, image_size=size, seed=data_args.eval_seed),
                                    drop=drop, verbose=False)
        eval_rows, other = keep_evaluated(eval_rows, model.config.compound_set, label_space)
        eval_dataset = LabelledImageDataset(eval_rows, image_size=size, label_space=label_space)
        log(f"[data] {data_args.eval_source}: {len(eval_dataset)} evaluation rows"
            + (f"; dropped {sum(other.values())} compounds outside {model.config.compound_set}" if other else ""))

    # Collator: synthesis, augmentation and normalization, seeded per sample.
    augment = None
    if options.augment:
        augment = TrainAugment(crop_scale=(options.crop_scale_min, 1.0), erase_prob=options.erase_prob)
    collator = CurriculumCollator(
        mixer=mixer, augment=augment, image_mean=tuple(processor.image_mean), image_std=tuple(processor.image_std),
        num_labels=len(label_space), augment_stages=(0,) if options.augment_first_stage_only else None,
    )

    # Training arguments the curriculum relies on; the learning rate (base and effective).
    push_to_hub = bool(training_args.push_to_hub)
    training_args.push_to_hub = False  # publishing happens at the end through cer_hf.hub (no Hub at init)
    training_args.remove_unused_columns = False
    training_args.num_train_epochs = schedule.num_epochs
    training_args.max_steps = -1
    effective_batch = (training_args.per_device_train_batch_size * training_args.world_size
                       * training_args.gradient_accumulation_steps)
    if options.base_learning_rate is not None:
        training_args.learning_rate = options.base_learning_rate * effective_batch / 256
    log(f"[optim] effective batch {effective_batch}; lr {training_args.learning_rate:g}"
        + (f" (base lr {options.base_learning_rate:g} x {effective_batch}/256)" if options.base_learning_rate else "")
        + f"; layer decay {options.layer_decay:g}; drop path {model.config.drop_path_rate:g}; loss {options.loss}")
    log(f"[curriculum] {schedule.mode} mode: epochs {schedule.stage_epochs}, compound shares "
        f"{schedule.compound_shares}; {len(train_dataset)} samples per epoch")

    trainer = CurriculumTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        compute_metrics=compound_metrics_fn(model.config) if eval_dataset is not None else None,
        preprocess_logits_for_metrics=keep_logits,
        callbacks=list(callbacks or []),
        layer_decay=options.layer_decay if options.layer_decay < 1.0 else None,
        loss=options.loss,
        bmc_noise_var=options.bmc_noise_var,
    )
    curriculum_callback = CurriculumCallback(
        schedule, sampler=None, evaluate_each_stage=options.evaluate_each_stage and eval_dataset is not None)
    trainer.add_callback(curriculum_callback)
    trainer.add_callback(NonFiniteLossCallback())
    context = {"schedule": schedule, "processor": processor, "push_to_hub": push_to_hub,
               "curriculum_callback": curriculum_callback}
    return trainer, context


def finish_run(trainer, context: dict, *, push_to_hub: bool = False, hub_model_id: str | None = None) -> dict:
    """Evaluate, save model + image processor + `eval_results.json`/`metrics.json`, optionally publish."""
    import json

    output_dir = Path(trainer.args.output_dir)
    metrics = {}
    if trainer.eval_dataset is not None:
        metrics = trainer.evaluate()
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        context["processor"].save_pretrained(output_dir)
        summary = {key.removeprefix("eval_"): value for key, value in metrics.items()}
        (output_dir / "eval_results.json").write_text(json.dumps(metrics, indent=2))
        (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        if "compound_macro_f1" in summary:
            print(f"[result] compound macro F1 {summary['compound_macro_f1']:.4f} "
                  f"(chance 1/{len(trainer.model.config.compound_names)}); "
                  f"basic macro F1 {summary.get('basic_macro_f1', float('nan')):.4f}", flush=True)
        if push_to_hub:
            if not hub_model_id:
                raise ValueError("--push_to_hub needs --hub_model_id (owner/name)")
            from .hub import publish

            url = publish(str(output_dir), hub_model_id, card="cer", metrics=summary)
            print(f"[hub] published {url}")
    return metrics


class NonFiniteLossCallback(TrainerCallback):
    """Stops training with a clear error as soon as a logged training loss is NaN or infinite."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {loss} at step {state.global_step}; lower --learning_rate or check the data")
        return control
