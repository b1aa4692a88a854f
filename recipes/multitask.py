"""Multi-task AU / expression / valence-arousal training (ABAW MTL track; Liu et al., ABAW7, sec. 3.2, 3.4).

Single-task or joint (λ per task; a task with λ = 0 is not trained), optional feature fusion
from frozen single-task checkpoints, optional temporal module over frame windows. Defaults train
on the embedded synthetic faces, so it runs anywhere with no data:

    accelerate launch --config_file accelerate_configs/cpu.yaml recipes/multitask.py --config recipes/configs/multitask_tiny.yaml
    python recipes/multitask.py --config recipes/configs/multitask_tiny.yaml --lambda_expr 0 --lambda_va 0  # AU only
    python recipes/multitask.py --config recipes/configs/multitask_temporal_tiny.yaml  # LSTM over synthetic videos
    python recipes/multitask.py --train_source affwild2-mtl:/data/affwild2 --eval_source affwild2-mtl:/data/affwild2:val \
        --mae_checkpoint outputs/mae --image_size 224 --patch_size 16

Outputs in --output_dir: the model (safetensors + config), resolved_args.json, metrics.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from cer_hf.arguments import parse_args, run_main, save_args
from cer_hf.extensions.multitask.data import (
    FrameDataset,
    WindowDataset,
    group_videos,
    load_rows,
    without_images,
)
from cer_hf.extensions.multitask.modeling import (
    ViTForMultiTaskExpression,
    ViTMultiTaskExpressionConfig,
)
from cer_hf.extensions.multitask.train import (
    fit,
    predict_frames,
    predict_videos,
    rows_class_weights,
    score,
)
from cer_hf.modeling.convert import checkpoint_normalization
from cer_hf.presets import ENCODER_PRESETS


@dataclass
class ModelArguments:
    """Model: encoder source, task weights, fusion and temporal options."""

    mae_checkpoint: str | None = field(default=None, metadata={"help": "MAE checkpoint whose encoder initialises the model"})
    model_preset: str = field(default="micro", metadata={"help": "encoder size when not converting an MAE checkpoint"})
    image_size: int = 32
    patch_size: int = 8
    pooling: str = "mean"
    head_dropout: float = 0.0
    lambda_au: float = field(default=1.0, metadata={"help": "AU loss weight (0: not trained)"})
    lambda_expr: float = field(default=1.0, metadata={"help": "expression loss weight (0: not trained)"})
    lambda_va: float = field(default=1.0, metadata={"help": "valence/arousal loss weight (0: not trained)"})
    class_weighting: bool = field(default=True, metadata={"help": "AU and expression class weights from the training labels"})
    au_loss_form: str = field(default="paper", metadata={
        "help": "paper: the AU weight scales the whole BCE term (eq. 2); pos_weight: only the positive term"})
    expression_loss_form: str = field(default="paper", metadata={
        "help": "paper: weighted CE averaged over frames (eq. 3); weight_sum: divided by the sum of the weights"})
    fusion: str = field(default="", metadata={"help": "task=sources;... e.g. 'va=au;expr=au,va'"})
    fusion_checkpoints: str = field(default="", metadata={"help": "source=dir,... e.g. 'au=outputs/au'"})
    temporal_module: str = field(default="none", metadata={"help": "none, lstm or transformer"})
    temporal_tasks: str = field(default="expr,va", metadata={"help": "tasks that use the temporal module"})
    temporal_layers: int = 2
    sequence_length: int = 16
    temporal_stride: int = 8


@dataclass
class DataArguments:
    """Data: 'synthetic' (default) or a readers spec such as 'affwild2-mtl:/root'."""

    train_source: str = "synthetic"
    eval_source: str = "synthetic"
    num_train: int = field(default=1200, metadata={"help": "training frames (synthetic: generated; else: first N, 0 = all)"})
    num_eval: int = 400
    missing_rate: float = field(default=0.1, metadata={"help": "synthetic: share of rows with each task's label hidden"})
    videos: bool = field(default=False, metadata={"help": "train/evaluate on videos (always on with a temporal module)"})
    frames_per_video: int = 120
    data_seed: int = 0


@dataclass
class TrainArguments:
    """Optimisation and outputs."""

    output_dir: str = "outputs/multitask"
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    seed: int = 0
    log_every: int = 20


def parse_mapping(text: str, option: str) -> dict[str, list[str]]:
    """'a=x,y;b=z' -> {'a': ['x', 'y'], 'b': ['z']} (error names the option)."""
    mapping = {}
    for part in filter(None, (p.strip() for p in text.replace(";", " ").split())):
        if "=" not in part:
            raise SystemExit(f"--{option}: expected key=value[,value] entries, got {part!r}")
        key, values = part.split("=", 1)
        mapping[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return mapping


def main(argv=None):
    model_args, data_args, train_args = parse_args((ModelArguments, DataArguments, TrainArguments), argv)
    accelerator = Accelerator()
    temporal = model_args.temporal_module != "none"
    videos = data_args.videos or temporal

    # Normalisation: the MAE checkpoint's own image statistics, else the ABAW7 face statistics.
    normalization = checkpoint_normalization(model_args.mae_checkpoint, model_args.image_size)

    # Data: rows in the toolkit schema; videos grouped by video_id for temporal training.
    train_rows = load_rows(data_args.train_source, num_samples=data_args.num_train, seed=data_args.data_seed,
                           image_size=model_args.image_size, missing_rate=data_args.missing_rate, videos=videos,
                           num_frames=data_args.frames_per_video)
    eval_rows = load_rows(data_args.eval_source, num_samples=data_args.num_eval, seed=data_args.data_seed + 1,
                          image_size=model_args.image_size, missing_rate=0.0, videos=videos,
                          num_frames=data_args.frames_per_video)
    if temporal:
        dataset = WindowDataset(group_videos(train_rows), model_args.image_size, model_args.sequence_length,
                                model_args.temporal_stride, normalization)
    else:
        dataset = FrameDataset(train_rows, model_args.image_size, normalization)

    # Model: MAE encoder or a fresh preset, heads sized by the config, class weights from the training labels.
    fields = dict(
        pooling=model_args.pooling,
        head_dropout=model_args.head_dropout,
        task_weights={"au": model_args.lambda_au, "expr": model_args.lambda_expr, "va": model_args.lambda_va},
        fusion=parse_mapping(model_args.fusion, "fusion"),
        temporal_module=model_args.temporal_module,
        temporal_tasks=[t for t in model_args.temporal_tasks.split(",") if t],
        temporal_layers=model_args.temporal_layers,
        sequence_length=model_args.sequence_length,
        temporal_stride=model_args.temporal_stride,
        expression_loss_form=model_args.expression_loss_form,
        **(rows_class_weights(train_rows, model_args.au_loss_form) if model_args.class_weighting else {}),
    )
    if model_args.mae_checkpoint:
        model = ViTForMultiTaskExpression.from_mae(model_args.mae_checkpoint, image_size=model_args.image_size,
                                                   seed=train_args.seed, **fields)
    else:
        if model_args.model_preset not in ENCODER_PRESETS:
            raise SystemExit(f"--model_preset {model_args.model_preset!r}: choose one of {', '.join(ENCODER_PRESETS)}")
        torch.manual_seed(train_args.seed)
        model = ViTForMultiTaskExpression(ViTMultiTaskExpressionConfig(
            image_size=model_args.image_size, patch_size=model_args.patch_size,
            **ENCODER_PRESETS[model_args.model_preset], **fields))
    checkpoints = {k: v[0] for k, v in parse_mapping(model_args.fusion_checkpoints, "fusion_checkpoints").items()}
    for source in model.config.fusion_sources:
        if source not in checkpoints:
            raise SystemExit(f"--fusion uses source {source!r} but --fusion_checkpoints gives no directory for it")
        model.load_fusion_source(source, checkpoints[source])

    # Train.
    effective_batch = train_args.batch_size * accelerator.num_processes
    accelerator.print(
        f"{len(dataset)} training {'windows' if temporal else 'frames'}; tasks {model.config.trained_tasks}; "
        f"fusion {model.config.fusion or 'none'}; temporal {model.config.temporal_module}; "
        f"lr {train_args.learning_rate} (base = effective, not scaled) at effective batch {effective_batch}"
    )
    start = time.time()
    losses = fit(model, dataset, epochs=train_args.epochs, batch_size=train_args.batch_size,
                 learning_rate=train_args.learning_rate, weight_decay=train_args.weight_decay,
                 warmup_ratio=train_args.warmup_ratio, seed=train_args.seed, accelerator=accelerator,
                 log_every=train_args.log_every)
    train_seconds = time.time() - start

    # Evaluate (main process) and save.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        if videos:
            eval_videos = group_videos(eval_rows)
            predictions = predict_videos(model, eval_videos, model_args.image_size, normalization=normalization)
            eval_rows = [row for frames in eval_videos.values() for row in without_images(frames)]
        else:
            predictions = predict_frames(model, eval_rows, model_args.image_size, normalization=normalization)
        metrics = score(predictions, eval_rows, model.config.au_threshold)
        metrics.update(final_loss=losses[-1], train_seconds=train_seconds, eval_frames=len(eval_rows))
        output = Path(train_args.output_dir)
        model.save_pretrained(output)
        save_args((model_args, data_args, train_args), output)
        (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
        summary = {k: round(v, 4) for k, v in metrics.items() if k in ("P", "ccc_mean", "f1_expr", "f1_au")}
        accelerator.print(f"eval on {len(eval_rows)} frames: {summary}; saved to {output}")
    accelerator.end_training()


if __name__ == "__main__":
    run_main(main)  # option errors: "error: ..." and exit 2, no traceback
