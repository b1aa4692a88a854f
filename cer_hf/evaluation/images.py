"""Evaluate a compound-expression model on a labelled image source (the library behind `cer-hf evaluate`).

    results = evaluate_model("outputs/curriculum", "synthetic:all:700")
    print(format_table(results))

Compound macro F1 (the ABAW7 CE metric), per-class F1 and basic macro F1 from the shipped
`compound_f1` module; the compound confusion matrix can be saved as a PNG (needs matplotlib).
Images are normalised with the statistics of the checkpoint's own image processor.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from transformers import AutoImageProcessor

from cer_hf.data.labelled import LabelledImageDataset, keep_evaluated, keep_targets, load_labelled
from cer_hf.evaluation.metrics import load_compound_metric
from cer_hf.hub.loading import check_model_location, load_model
from cer_hf.taxonomy import EMOTION_BASICS

logger = logging.getLogger(__name__)


def load_evaluation_images(data: str, *, image_size: int, seed: int = 0, compound_set_name: str = "abaw7",
                           label_space=None):
    """Rows (`image`, `label`) to evaluate on from a source spec: Neutral/Contempt/Other and
    compounds outside the model's set are filtered (counts printed).

    The single place where `cer-hf evaluate` reads its data, so another source kind (videos) can
    be dispatched here.
    """
    rows = load_labelled(data, image_size=image_size, seed=seed)
    rows, dropped = keep_targets(rows)
    rows, other = keep_evaluated(rows, compound_set_name, label_space or EMOTION_BASICS)
    dropped.update(other)
    if dropped:
        logger.info(f"{data}: left out {sum(dropped.values())} rows ("
              + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) + ")")
    if len(rows) == 0:
        raise ValueError(f"{data}: no rows with a basic or compound label to evaluate on (unreadable images and "
                         "left-out labels, if any, are listed above)")
    return rows


@torch.no_grad()
def predict_probabilities(model, rows, image_processor=None, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Basic probabilities `(n, num_basics)` and multi-hot references for labelled rows."""
    size = model.config.image_size
    dataset = LabelledImageDataset(rows, image_size=size, label_space=tuple(model.config.basic_labels))
    mean = torch.tensor(getattr(image_processor, "image_mean", None) or [0.5] * 3).view(1, 3, 1, 1)
    std = torch.tensor(getattr(image_processor, "image_std", None) or [0.5] * 3).view(1, 3, 1, 1)
    model.eval()
    probabilities, references = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        pixels = (torch.stack([item["image"] for item in items]) - mean) / std
        probabilities.append(model(pixel_values=pixels.to(model.device, model.dtype)).probabilities.float().cpu())
        references.append(torch.stack([item["target"] for item in items]))
    return torch.cat(probabilities).numpy(), torch.cat(references).numpy()


def evaluate_model(model_path: str, data: str, *, batch_size: int = 64, seed: int = 0) -> dict:
    """Compound/basic F1 of a saved `ViTForCompoundExpression` on a source spec (metric module output)."""
    path = Path(model_path)
    check_model_location(model_path)
    if not path.is_dir():
        raise FileNotFoundError(f"{model_path}: no such checkpoint folder; expected a saved ViTForCompoundExpression "
                                "folder")
    model = load_model(str(path))  # safetensors only; a pickle-only checkpoint is refused
    try:
        processor = AutoImageProcessor.from_pretrained(path)
    except (OSError, ValueError):
        processor = None
    rows = load_evaluation_images(data, image_size=model.config.image_size, seed=seed,
                                  compound_set_name=model.config.compound_set,
                                  label_space=tuple(model.config.basic_labels))
    probabilities, references = predict_probabilities(model, rows, processor, batch_size)
    results = load_compound_metric().compute(
        predictions=probabilities,
        references=references,
        basic_labels=list(model.config.basic_labels),
        compound_names=list(model.config.compound_names),
        compound_constituents=[list(p) for p in model.config.compound_constituents],
    )
    results["compound_names"] = list(model.config.compound_names)
    return results


def format_table(results: dict) -> str:
    """A plain-text table of the metric output."""
    lines = []
    if "compound_macro_f1" in results:
        lines.append(f"compound macro F1  {results['compound_macro_f1']:.4f}   ({results['num_compound']} samples, "
                     f"accuracy {results['compound_accuracy']:.4f})")
        lines += [f"  {name:<24s} F1 {value:.4f}" for name, value in results["compound_f1"].items()]
    if "basic_macro_f1" in results:
        lines.append(f"basic macro F1     {results['basic_macro_f1']:.4f}   ({results['num_basic']} samples, "
                     f"accuracy {results['basic_accuracy']:.4f})")
        lines += [f"  {name:<24s} F1 {value:.4f}" for name, value in results["basic_f1"].items()]
    return "\n".join(lines)


def save_confusion_png(confusion, names, path: str | Path) -> Path:
    """Save the compound confusion matrix (rows true, columns predicted) as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("saving the confusion matrix needs matplotlib: pip install 'cer_hf[plots]'") from None
    confusion = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(names), 1.0 + 0.8 * len(names)))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(confusion):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > confusion.max() / 2 else "black")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


