"""Semi-supervised teacher/student pseudo-labelling for expression classification (Yu et al., ABAW6, sec. 3.2-3.3).

A teacher trained on a few class-balanced labelled faces labels a stream of unlabelled faces;
students train on the confident pseudo-labels plus the labelled data and become the next
teacher. Defaults use the embedded synthetic faces (few labels, many unlabelled):

    accelerate launch --config_file accelerate_configs/cpu.yaml recipes/pseudo_label.py --config recipes/configs/pseudo_label_tiny.yaml
    python recipes/pseudo_label.py --config recipes/configs/pseudo_label_tiny.yaml --flexmatch true --feedback true

The loop runs in one process (on the accelerator's device); a multi-process launch is refused.
Outputs in --output_dir: the final student (a `ViTForCompoundExpression`), resolved_args.json, metrics.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import torch
from accelerate import Accelerator

from cer_hf.arguments import parse_args, run_main, save_args
from cer_hf.extensions.multitask.data import pixels_from_images
from cer_hf.extensions.pseudo_label import (
    PseudoLabelConfig,
    macro_f1,
    predict_classes,
    pseudo_label_rounds,
    train_supervised,
)
from cer_hf.image_io import FACE_MEAN, FACE_STD
from cer_hf.modeling.convert import (
    checkpoint_normalization,
    compound_config,
    convert_mae_model,
    load_mae_encoder,
)
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
from cer_hf.presets import ENCODER_PRESETS
from cer_hf.taxonomy import EMOTION_BASICS, compound_set, parse_label


@dataclass
class ModelArguments:
    """The model every teacher and student starts from."""

    mae_checkpoint: str | None = field(default=None, metadata={"help": "MAE checkpoint to convert (else a fresh preset)"})
    model_preset: str = "micro"
    image_size: int = 32
    patch_size: int = 8
    compound_set: str = "abaw7"


@dataclass
class DataArguments:
    """Labelled, unlabelled and evaluation faces ('synthetic' or a readers spec)."""

    train_source: str = "synthetic"
    unlabelled_source: str = "synthetic"
    eval_source: str = "synthetic"
    labelled_per_class: int = field(default=8, metadata={"help": "labelled faces kept per class"})
    num_unlabelled: int = 2000
    num_eval: int = 600
    data_seed: int = 0


@dataclass
class RunArguments:
    """Outputs and the labelled-only baseline."""

    output_dir: str = "outputs/pseudo_label"
    baseline: bool = field(default=True, metadata={"help": "also train a labelled-only model for comparison"})


def class_names(task: str, compound_set_name: str) -> list[str]:
    if task == "basic":
        return list(EMOTION_BASICS)
    return [c.name for c in compound_set(compound_set_name)]


def rows_from(spec: str, split_seed: int, kind: str, compound_set_name: str, count: int, image_size: int):
    """Up to `count` rows from the synthetic stream or a readers source."""
    if spec == "synthetic":
        from cer_hf.data.synthetic import synthetic_stream

        stream = synthetic_stream(num_samples=count, kind=kind, compound_set=compound_set_name,
                                  image_size=image_size, seed=split_seed, num_shards=4)
        return list(islice(stream, count))
    try:
        from cer_hf.data.labelled import load_labelled_source
    except ImportError as error:
        raise SystemExit(f"--train_source {spec!r}: dataset readers are not available ({error})") from None
    return list(islice(load_labelled_source(spec), count))


def labelled_tensors(rows, classes, per_class=None, image_size=32, mean=FACE_MEAN, std=FACE_STD):
    """Pixels and class indices of the rows whose label is one of `classes` (at most `per_class` each)."""
    kept, counts = [], {c: 0 for c in classes}
    for row in rows:
        label = row.get("label")
        if not label:
            continue
        name = parse_label(label)
        if name in counts and (per_class is None or counts[name] < per_class):
            counts[name] += 1
            kept.append((row["image"], classes.index(name)))
    missing = [c for c, n in counts.items() if n == 0]
    if missing:
        raise SystemExit(f"no labelled faces of class(es) {missing}: every class needs at least one")
    return pixels_from_images([image for image, _ in kept], image_size, mean, std), torch.tensor([c for _, c in kept])


def main(argv=None):
    model_args, data_args, config, run_args = parse_args((ModelArguments, DataArguments, PseudoLabelConfig, RunArguments), argv)
    accelerator = Accelerator()
    if accelerator.num_processes > 1:
        raise SystemExit("recipes/pseudo_label.py runs in one process; launch it with --num_processes 1")
    device = accelerator.device
    classes = class_names(config.task, model_args.compound_set)

    # Normalisation: the MAE checkpoint's own image statistics, else the ABAW7 face statistics.
    size = model_args.image_size
    mean, std = checkpoint_normalization(model_args.mae_checkpoint, size)
    config.image_mean, config.image_std = list(mean), list(std)

    # Data: a few labelled faces per class, a stream of unlabelled faces, a held-out evaluation set.
    labelled_rows = rows_from(data_args.train_source, data_args.data_seed, config.task, model_args.compound_set,
                              data_args.labelled_per_class * len(classes) * 4, size)
    pixels, labels = labelled_tensors(labelled_rows, classes, data_args.labelled_per_class, size, mean, std)
    unlabelled_rows = rows_from(data_args.unlabelled_source, data_args.data_seed + 1, config.task,
                                model_args.compound_set, data_args.num_unlabelled, size)
    unlabelled = pixels_from_images([row["image"] for row in unlabelled_rows], size, mean, std)
    eval_pixels, eval_labels = labelled_tensors(
        rows_from(data_args.eval_source, data_args.data_seed + 2, config.task, model_args.compound_set,
                  data_args.num_eval, size), classes, None, size, mean, std)
    print(f"{len(labels)} labelled ({data_args.labelled_per_class}/class over {len(classes)} {config.task} classes), "
          f"{len(unlabelled)} unlabelled, {len(eval_labels)} evaluation faces; lr {config.learning_rate} "
          f"(base = effective, not scaled) at {config.per_class * len(classes)} labelled + {config.unlabelled_batch} "
          f"unlabelled per step")

    # Model factory: every teacher/student starts from the same encoder (MAE conversion or a seeded preset).
    mae = load_mae_encoder(model_args.mae_checkpoint) if model_args.mae_checkpoint else None

    def make_model(seed: int) -> ViTForCompoundExpression:
        torch.manual_seed(seed)
        if mae is not None:
            return convert_mae_model(mae, compound_set_name=model_args.compound_set, image_size=size)
        if model_args.model_preset not in ENCODER_PRESETS:
            raise SystemExit(f"--model_preset {model_args.model_preset!r}: choose one of {', '.join(ENCODER_PRESETS)}")
        return ViTForCompoundExpression(compound_config(
            model_args.compound_set, image_size=size, patch_size=model_args.patch_size,
            **ENCODER_PRESETS[model_args.model_preset]))

    metrics = {}
    start = time.time()
    # Baseline: labelled data only, as many steps as the teacher and all students together.
    if run_args.baseline:
        baseline = make_model(config.seed)
        steps = config.teacher_steps + config.rounds * config.student_steps
        train_supervised(baseline, pixels, labels, config, steps=steps, device=device)
        metrics["labelled_only_macro_f1"] = macro_f1(
            predict_classes(baseline, eval_pixels, config.task, device=device), eval_labels, len(classes))
        print(f"labelled only: macro F1 {metrics['labelled_only_macro_f1']:.4f}")

    # Teacher, then student rounds.
    model, reports = pseudo_label_rounds(make_model, pixels, labels, unlabelled, config,
                                         evaluation=(eval_pixels, eval_labels), device=device, log=print)
    metrics["rounds"] = [{k: v for k, v in asdict(r).items() if k != "losses"} for r in reports]
    metrics["pseudo_labelled_macro_f1"] = reports[-1].score
    metrics["seconds"] = time.time() - start

    # Save the final student.
    output = Path(run_args.output_dir)
    model.save_pretrained(output)
    save_args((model_args, data_args, config, run_args), output)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"pseudo-labelled: macro F1 {reports[-1].score:.4f}; saved to {output}")


if __name__ == "__main__":
    run_main(main)  # option errors: "error: ..." and exit 2, no traceback
