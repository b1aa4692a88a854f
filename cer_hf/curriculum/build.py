"""Wiring of a curriculum run: the options as `*Arguments` dataclasses, and the trainer built from them.

`recipes/curriculum.py` reads top to bottom with these calls:

    schedule = build_schedule(curriculum_args)                        # validated before anything loads
    check_optimiser_options(training_args, curriculum_args)          # lr > 0, batch >= 1
    overrides = training_overrides(training_args, curriculum_args, schedule)
    for name, value in overrides.items(): setattr(training_args, name, value)   # printed by the recipe
    run = build_curriculum_trainer(model_args, data_args, curriculum_args, training_args, schedule)
    run.trainer.train(); finish_run(run, ...)

Nothing here changes the caller's `TrainingArguments`: the values the curriculum needs are
returned by `training_overrides` for the recipe to apply where a reader sees them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from datasets import concatenate_datasets
from transformers import set_seed

from cer_hf.curriculum.augment import TrainAugment
from cer_hf.curriculum.collate import CurriculumCollator
from cer_hf.curriculum.dataset import CurriculumDataset
from cer_hf.curriculum.mixing import CompoundMixer
from cer_hf.curriculum.schedule import CurriculumSchedule
from cer_hf.curriculum.trainer import CurriculumTrainer
from cer_hf.data.labelled import LabelledImageDataset, keep_evaluated, keep_targets, load_labelled, split_by_kind
from cer_hf.evaluation.metrics import compound_metrics_fn, keep_logits
from cer_hf.hub.publish import publish
from cer_hf.modeling.build import ModelArguments, build_model, model_class_for
from cer_hf.modeling.cnn import CNN_PRESETS
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
from cer_hf.pretraining import scaled_lr
from cer_hf.safe_weights import check_safe_folder
from cer_hf.taxonomy import NON_TARGET_LABELS, parse_label

logger = logging.getLogger(__name__)
LOSSES = ("bce", "bmc")
_LEFT_OUT = "unreadable images and left-out labels, if any, are listed above"


@dataclass
class DataArguments:
    """Where the basic, natural-compound and evaluation images come from (source specs)."""

    basic_source: str = field(default="synthetic:basic:2000", metadata={"help": "basic-expression source spec"})
    compound_source: str | None = field(default=None, metadata={"help": "natural compound source spec (optional)"})
    eval_source: str | None = field(default="synthetic:all:700", metadata={"help": "evaluation source spec"})
    eval_seed: int = field(default=12345, metadata={"help": "seed of a synthetic eval source (held out)"})
    drop_labels: list[str] = field(default_factory=lambda: list(NON_TARGET_LABELS),
                                   metadata={"help": "labels filtered out of every source"})
    samples_per_epoch: int | None = field(default=None, metadata={"help": "default: the number of basic rows"})
    negative_labels: list[str] = field(default_factory=list, metadata={
        "help": "labels of the basic source trained as the all-zero target (e.g. Neutral), not dropped"})


@dataclass
class CurriculumArguments:
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
    mix_pairs: str | None = field(default=None, metadata={
        "help": "which compounds synthesis makes: abaw7 (7 pairs) or rafdb (the authors' 11); default: the model's set"})
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
    teacher_model: str | None = field(default=None, metadata={
        "help": "a trained compound model folder (e.g. the CNN baseline's --output_dir): its sigmoid probabilities "
                "on each training batch become soft targets beside the labels (knowledge distillation)"})
    teacher_preset: str | None = field(default=None, metadata={
        "help": "a CNN baseline (resnet-tiny, resnet-small, resnet-18) trained first on the same data and "
                "curriculum, saved to OUTPUT_DIR/teacher, then distilled as --teacher_model; none: no teacher"})
    distill_weight: float = field(default=0.5, metadata={
        "help": "with a teacher: loss = (1 - w) BCE(labels) + w BCE(teacher probabilities)"})


def build_mixer(options: CurriculumArguments) -> CompoundMixer:
    """The `CompoundMixer` described by the options."""
    if options.mixup_sampling not in ("fixed", "beta"):
        raise ValueError(f"--mixup_sampling must be 'fixed' or 'beta', got {options.mixup_sampling!r}")
    return CompoundMixer(
        mixup_prob=options.mixup_prob, cutmix_prob=options.cutmix_prob,
        mixup_weight=options.mixup_weight if options.mixup_sampling == "fixed" else None,
        mixup_alpha=options.mixup_alpha, cutmix_mode=options.cutmix_mode, cutmix_alpha=options.cutmix_alpha,
        target=options.mix_target,
    )


def build_schedule(options: CurriculumArguments) -> CurriculumSchedule:
    """The validated schedule; bad `--stage_epochs`, `--compound_shares`, `--curriculum_mode`, `--loss` or teacher
    options fail here (`--teacher_preset none` becomes None)."""
    if options.loss not in LOSSES:
        raise ValueError(f"--loss must be 'bce' or 'bmc', got {options.loss!r}")
    if options.teacher_preset in ("none", "None", ""):  # how a command line switches off a preset's teacher
        options.teacher_preset = None
    if options.teacher_preset is not None:
        if options.teacher_preset not in CNN_PRESETS:
            raise ValueError(f"--teacher_preset {options.teacher_preset!r}: choose one of {', '.join(CNN_PRESETS)} "
                             "or none")
        if options.teacher_model is not None:
            raise ValueError(f"--teacher_preset {options.teacher_preset} trains the teacher that --teacher_model "
                             f"{options.teacher_model} would give: set only one of them")
    if options.teacher_model is not None or options.teacher_preset is not None:
        if options.loss != "bce":
            raise ValueError(f"a teacher distils into the BCE loss; it cannot be used with --loss {options.loss}")
        if not 0.0 <= options.distill_weight <= 1.0:
            raise ValueError(f"--distill_weight must be in [0, 1], got {options.distill_weight:g}")
    build_mixer(options)  # validates the mixing options too
    return CurriculumSchedule(options.stage_epochs, options.compound_shares, options.curriculum_mode)


def check_optimiser_options(training_args, options: CurriculumArguments) -> None:
    """Refuse a learning rate that is not positive and an empty batch, naming the option, before anything loads.

    (torch's AdamW would refuse a negative lr only once the model and the data were loaded, without
    naming the option; a zero lr trains nothing.)
    """
    if not training_args.learning_rate > 0:  # also catches NaN
        raise ValueError(f"--learning_rate {training_args.learning_rate:g}: must be positive")
    if options.base_learning_rate is not None and not options.base_learning_rate > 0:
        raise ValueError(f"--base_learning_rate {options.base_learning_rate:g}: must be positive")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(training_args, name) < 1:
            raise ValueError(f"--{name} {getattr(training_args, name)}: must be at least 1")


def training_overrides(training_args, options: CurriculumArguments, schedule: CurriculumSchedule) -> dict:
    """The `TrainingArguments` values a curriculum run needs, for the recipe to apply (and print).

    * `num_train_epochs` = the schedule's total and `max_steps` = -1: the schedule decides the length;
    * `remove_unused_columns` = False: the collator's columns must reach it;
    * `push_to_hub` = False: publishing happens at the end through `cer_hf.hub.publish` (no Hub at init);
    * `learning_rate` = `base_learning_rate` × effective batch / 256 when a base lr is given (MAE's rule).
    """
    overrides = {"num_train_epochs": schedule.num_epochs, "max_steps": -1, "remove_unused_columns": False,
                 "push_to_hub": False}
    if options.base_learning_rate is not None:
        overrides["learning_rate"] = scaled_lr(options.base_learning_rate, effective_batch_size(training_args))
    return overrides


def effective_batch_size(training_args) -> int:
    """Per-device batch × processes × gradient-accumulation steps."""
    return (training_args.per_device_train_batch_size * training_args.world_size
            * training_args.gradient_accumulation_steps)


@dataclass
class CurriculumRun:
    """A built curriculum run: the trainer, the schedule and the image processor saved beside the model."""

    trainer: CurriculumTrainer
    schedule: CurriculumSchedule
    processor: object


def build_curriculum_trainer(model_args: ModelArguments, data_args: DataArguments, options: CurriculumArguments,
                             training_args, schedule: CurriculumSchedule, *, callbacks=None) -> CurriculumRun:
    """Model, data, collator and `CurriculumTrainer` for a curriculum run (training_args already overridden).

    Logs (logger `cer_hf.curriculum.build`) what was loaded and dropped from each source.
    """
    mixer = build_mixer(options)

    # Model and image processor; a fresh model's initialisation follows --seed.
    set_seed(training_args.seed)
    model, processor = build_model(model_args)
    size = model.config.image_size
    label_space = tuple(model.config.basic_labels)

    # Data: basic rows (plus natural compounds), filtered to the six basics and the compound set.
    drop = tuple(data_args.drop_labels)
    negatives = negative_label_set(data_args.negative_labels, label_space)
    basic_rows = load_labelled(data_args.basic_source, image_size=size, seed=training_args.seed)
    basic_rows, negative_rows = split_labels(basic_rows, negatives)
    basic_rows, dropped = keep_targets(basic_rows, drop=drop)
    basic_rows, natural_in_basic = split_by_kind(basic_rows, label_space)
    if len(negative_rows):
        logger.info(f"[data] {data_args.basic_source}: {len(negative_rows)} rows of {sorted(negatives)} "
                    "as all-zero targets")
        basic_rows = concatenate_datasets([basic_rows, negative_rows])
    if len(basic_rows) == 0:
        raise ValueError(f"--basic_source {data_args.basic_source}: no basic-expression rows to train on "
                         f"({_LEFT_OUT})")
    logger.info(f"[data] {data_args.basic_source}: {len(basic_rows)} basic rows; dropped {sum(dropped.values())} "
                f"({', '.join(f'{k} {v}' for k, v in sorted(dropped.items())) or 'none'})")
    natural = natural_in_basic if len(natural_in_basic) else None
    if data_args.compound_source:
        compound_rows, dropped = keep_targets(
            load_labelled(data_args.compound_source, image_size=size, seed=training_args.seed + 1), drop=drop)
        _, natural = split_by_kind(compound_rows, label_space)
        if len(natural) == 0:
            raise ValueError(f"--compound_source {data_args.compound_source}: no natural compound rows ({_LEFT_OUT})")
        logger.info(f"[data] {data_args.compound_source}: {len(natural)} natural compound rows; dropped "
                    f"{sum(dropped.values())}")
    train_dataset = CurriculumDataset(
        basic_rows, schedule, batch_size=training_args.per_device_train_batch_size, natural=natural,
        natural_fraction=options.natural_fraction, image_size=size, label_space=label_space,
        compound_set_name=options.mix_pairs or model.config.compound_set, any_pair=options.any_pair,
        samples_per_epoch=data_args.samples_per_epoch, compound_pool_size=options.compound_pool_size,
        seed=training_args.seed, negative_labels=tuple(negatives),
    )
    eval_dataset = None
    if data_args.eval_source:
        eval_rows, _ = keep_targets(load_labelled(data_args.eval_source, image_size=size, seed=data_args.eval_seed),
                                    drop=drop)
        eval_rows, other = keep_evaluated(eval_rows, model.config.compound_set, label_space)
        if len(eval_rows) == 0:
            raise ValueError(f"--eval_source {data_args.eval_source}: no rows to evaluate on ({_LEFT_OUT})")
        eval_dataset = LabelledImageDataset(eval_rows, image_size=size, label_space=label_space)
        logger.info(f"[data] {data_args.eval_source}: {len(eval_dataset)} evaluation rows"
                    + (f"; dropped {sum(other.values())} compounds outside {model.config.compound_set}" if other else ""))

    # Collator: synthesis, augmentation and normalization (the model's image processor's statistics).
    augment = None
    if options.augment:
        augment = TrainAugment(crop_scale=(options.crop_scale_min, 1.0), erase_prob=options.erase_prob)
    collator = CurriculumCollator(
        mixer=mixer, augment=augment, image_mean=tuple(processor.image_mean), image_std=tuple(processor.image_std),
        num_labels=len(label_space), augment_stages=(0,) if options.augment_first_stage_only else None,
    )
    logger.info(f"[curriculum] {schedule.mode} mode: epochs {schedule.stage_epochs}, compound shares "
                f"{schedule.compound_shares}; {len(train_dataset)} samples per epoch; layer decay "
                f"{options.layer_decay:g}; drop path {model.config.drop_path_rate:g}; loss {options.loss}; "
                f"{type(model).__name__} {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    teacher = None
    if options.teacher_model is not None:
        teacher = load_teacher(options.teacher_model, model.config, processor)
        logger.info(f"[distill] teacher {options.teacher_model} ({type(teacher).__name__}), weight "
                    f"{options.distill_weight:g}")

    trainer = CurriculumTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        compute_metrics=compound_metrics_fn(model.config) if eval_dataset is not None else None,
        preprocess_logits_for_metrics=keep_logits,
        callbacks=list(callbacks or []),
        # layer-wise lr decay needs a ViT's layer index; the CNN baseline trains at one lr
        layer_decay=options.layer_decay if options.layer_decay < 1.0 and isinstance(model, ViTForCompoundExpression) else None,
        loss=options.loss,
        bmc_noise_var=options.bmc_noise_var,
        evaluate_each_stage=options.evaluate_each_stage and eval_dataset is not None,
        teacher=teacher,
        distill_weight=options.distill_weight,
    )
    return CurriculumRun(trainer=trainer, schedule=schedule, processor=processor)


def load_teacher(path: str, student_config, student_processor):
    """A frozen teacher for distillation: a saved compound model that reads the student's exact inputs.

    It sees the student's normalised, mixed and augmented batch, so its image size, normalisation and basic
    labels must be the student's; anything else is refused, naming `--teacher_model`.
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"--teacher_model {folder}: no config.json (expected a trained model folder, "
                                "e.g. a curriculum --output_dir)")
    check_safe_folder(folder, f"--teacher_model {folder}")
    teacher = model_class_for(folder).from_pretrained(folder, use_safetensors=True)
    mismatches = [f"{name} {getattr(teacher.config, name)} (student {getattr(student_config, name)})"
                  for name in ("image_size", "basic_labels") if getattr(teacher.config, name) != getattr(student_config, name)]
    if (folder / "preprocessor_config.json").is_file():
        stats = json.loads((folder / "preprocessor_config.json").read_text())
        for name in ("image_mean", "image_std"):
            if [round(v, 6) for v in stats.get(name, [])] != [round(v, 6) for v in getattr(student_processor, name)]:
                mismatches.append(f"{name} {stats.get(name)} (student {list(getattr(student_processor, name))})")
    if mismatches:
        raise ValueError(f"--teacher_model {folder} does not read the student's inputs: {'; '.join(mismatches)}")
    return teacher.eval().requires_grad_(False)


def negative_label_set(labels, label_space) -> set[str]:
    """The canonical names of `--negative_labels`; a model output (a basic of `label_space`) cannot be one."""
    negatives = {parse_label(label) for label in labels}
    clash = sorted(negatives & set(label_space))
    if clash:
        raise ValueError(f"--negative_labels {clash}: these are model outputs (basic_labels {list(label_space)}), "
                         "they cannot also be the all-zero target")
    return negatives


def split_labels(rows, labels: set[str]):
    """Split `rows` into (rows whose label is not in `labels`, rows whose label is)."""
    inside = [label in labels for label in rows["label"]] if labels else []  # labels are canonical by now
    if not any(inside):
        return rows, rows.select([])
    outside_rows = [row for row, is_inside in enumerate(inside) if not is_inside]
    inside_rows = [row for row, is_inside in enumerate(inside) if is_inside]
    return rows.select(outside_rows), rows.select(inside_rows)


def finish_run(run: CurriculumRun, *, push_to_hub: bool = False, hub_model_id: str | None = None,
               tag: str = "result") -> dict:
    """Evaluate, save model + image processor + `eval_results.json`/`metrics.json` (written last), optionally
    publish. The figure is logged as `[tag] compound macro F1 ...`."""
    trainer = run.trainer
    output_dir = Path(trainer.args.output_dir)
    metrics = {}
    if trainer.eval_dataset is not None:
        metrics = trainer.evaluate()
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        run.processor.save_pretrained(output_dir)
        summary = {key.removeprefix("eval_"): value for key, value in metrics.items()}
        (output_dir / "eval_results.json").write_text(json.dumps(metrics, indent=2))
        (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        if "compound_macro_f1" in summary:
            basic = summary.get("basic_macro_f1")
            basic = "n/a (no basic rows in the evaluation set)" if basic is None or basic != basic else f"{basic:.4f}"
            logger.info(f"[{tag}] compound macro F1 {summary['compound_macro_f1']:.4f} "
                        f"(chance 1/{len(trainer.model.config.compound_names)}); basic macro F1 {basic}")
        if push_to_hub:
            if not hub_model_id:
                raise ValueError("--push_to_hub needs --hub_model_id (owner/name)")
            url = publish(str(output_dir), hub_model_id, card="cer", metrics=summary)
            logger.info(f"[hub] published {url}")
    return metrics


