"""Training and evaluation loops of the multi-task model (used by `recipes/multitask.py` and the benchmark).

The loop is plain accelerate: `fit` prepares the model, an AdamW optimiser and the loader,
and steps with a warmup + cosine schedule; `evaluate_frames` / `evaluate_videos` score
frame-aligned predictions with the shipped ABAW metric (P = mean CCC + F1_expr + F1_AU).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from cer_hf.evaluation.metrics import load_abaw_metric
from cer_hf.image_io import FACE_MEAN, FACE_STD
from cer_hf.extensions.multitask.modeling import AU_LOSS_FORMS, ViTForMultiTaskExpression, class_weights
from cer_hf.extensions.multitask.data import FrameDataset, au_targets, encode_rows, expression_index, va_targets, without_images

_METRIC = None


def labels_for_weights(rows: Sequence[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """AU and expression targets of `rows` (no images decoded), to compute class weights."""
    rows = list(without_images(rows))
    au = torch.tensor([au_targets(row.get("aus")) for row in rows])
    expr = torch.tensor([expression_index(row.get("label")) for row in rows])
    return au, expr


def rows_class_weights(rows: Sequence[dict], au_loss_form: str = "paper") -> dict:
    """Class-weight config fields from training rows: the per-AU weights and `expression_class_weights`.

    `au_loss_form="paper"` puts the per-AU weights in `au_weights` (they scale the whole BCE term,
    eq. 2); `"pos_weight"` in `au_pos_weight` (they scale only the positive term).
    """
    if au_loss_form not in AU_LOSS_FORMS:
        raise ValueError(f"au_loss_form must be one of {AU_LOSS_FORMS}, got {au_loss_form!r}")
    au_class_weights, expression_weights = class_weights(*labels_for_weights(rows))
    field = "au_weights" if au_loss_form == "paper" else "au_pos_weight"
    return {field: au_class_weights, "expression_class_weights": expression_weights}


def fit(
    model: ViTForMultiTaskExpression,
    dataset: torch.utils.data.Dataset,
    *,
    epochs: int = 5,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.05,
    warmup_ratio: float = 0.1,
    seed: int = 0,
    accelerator: Accelerator | None = None,
    log_every: int = 0,
    num_workers: int = 0,
) -> list[float]:
    """Train `model` on `dataset` (frames or windows) and return the per-step losses.

    Raises `FloatingPointError` on a non-finite loss instead of silently training on NaNs.
    """
    accelerator = accelerator or Accelerator()
    set_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=generator, drop_last=len(dataset) > batch_size,
        num_workers=num_workers,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases and norms
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
        betas=(0.9, 0.95),
    )
    total = max(1, epochs * len(loader))
    warmup = int(warmup_ratio * total)

    def schedule(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    losses = []
    model.train()
    for epoch in range(epochs):
        for batch in loader:
            loss = model(**batch).loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {loss.item()} at epoch {epoch}, step {len(losses)}")
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            if log_every and len(losses) % log_every == 0:
                accelerator.print(f"epoch {epoch} step {len(losses)}/{total} loss {np.mean(losses[-log_every:]):.4f}")
    model.eval()
    return losses


@torch.no_grad()
def predict_frames(model, rows: Sequence[dict], image_size: int, batch_size: int = 128,
                   normalization=(FACE_MEAN, FACE_STD)) -> dict[str, np.ndarray]:
    """Per-frame predictions for independent frames: AU probabilities, expression probabilities, VA."""
    model = getattr(model, "module", model).eval()
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(FrameDataset(rows, image_size, normalization), batch_size=batch_size)
    parts = {"au_probabilities": [], "expr_probabilities": [], "va": []}
    for batch in loader:
        out = model(batch["pixel_values"].to(device))
        parts["au_probabilities"].append(torch.sigmoid(out.au_logits).cpu())
        parts["expr_probabilities"].append(out.expr_logits.softmax(-1).cpu())
        parts["va"].append(out.va.cpu())
    return {key: torch.cat(value).numpy() for key, value in parts.items()}


@torch.no_grad()
def predict_videos(model, videos: dict[str, list[dict]], image_size: int, batch_size: int = 128,
                   normalization=(FACE_MEAN, FACE_STD)) -> dict[str, np.ndarray]:
    """Frame-aligned predictions over whole videos (temporal windows averaged), concatenated in `videos` order."""
    model = getattr(model, "module", model).eval()
    device = next(model.parameters()).device
    parts = {"au_probabilities": [], "expr_probabilities": [], "va": []}
    for frames in videos.values():
        pixels = encode_rows(frames, image_size, normalization)["pixel_values"].to(device)
        for key, value in model.predict_video(pixels, batch_size=batch_size).items():
            parts[key].append(value.cpu())
    return {key: torch.cat(value).numpy() for key, value in parts.items()}


def score(predictions: dict[str, np.ndarray], rows: Sequence[dict], au_threshold: float = 0.5) -> dict:
    """The ABAW metric (shipped `evaluate` module) of `predictions` against `rows`' labels (missing ones excluded)."""
    global _METRIC
    if _METRIC is None:
        _METRIC = load_abaw_metric()
    encoded_au, encoded_expr = labels_for_weights(rows)
    va = np.array([va_targets(row) for row in without_images(rows)])
    return _METRIC.compute(
        au_predictions=(predictions["au_probabilities"] >= au_threshold).astype(int).tolist(),
        au_references=encoded_au.long().tolist(),
        expr_predictions=predictions["expr_probabilities"].argmax(-1).tolist(),
        expr_references=encoded_expr.tolist(),
        valence_predictions=predictions["va"][:, 0].tolist(),
        valence_references=va[:, 0].tolist(),
        arousal_predictions=predictions["va"][:, 1].tolist(),
        arousal_references=va[:, 1].tolist(),
    )
