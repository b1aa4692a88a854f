"""Turn images into compound labels and scores with a `ViTForCompoundExpression` checkpoint.

    from cer_hf import CompoundExpressionPredictor
    predictor = CompoundExpressionPredictor.from_pretrained("path/or/repo-id")
    for prediction in predictor.predict(["face1.jpg", "face2.png"]):
        print(prediction.compound, prediction.compound_scores)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor

from .image_io import load_rgb_image
from .modeling_cer import ViTForCompoundExpression


@dataclass
class CompoundPrediction:
    """The prediction for one image: the compound, all compound scores and all basic probabilities."""

    compound: str
    compound_scores: dict[str, float]
    basic_probabilities: dict[str, float]


class CompoundExpressionPredictor:
    """Batched inference: PIL images (or paths) → compound predictions, on CPU or GPU."""

    def __init__(self, model: ViTForCompoundExpression, image_processor, *, device=None, batch_size: int = 32):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.image_processor = image_processor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, revision: str | None = None, **kwargs) -> CompoundExpressionPredictor:
        """Load a model and its image processor from a local directory or a Hub repo id."""
        model = ViTForCompoundExpression.from_pretrained(name_or_path, revision=revision)
        processor = AutoImageProcessor.from_pretrained(name_or_path, revision=revision)
        return cls(model, processor, **kwargs)

    @torch.inference_mode()
    def scores(self, images: list[Image.Image | str | Path]) -> tuple[np.ndarray, np.ndarray]:
        """Basic probabilities `(n, num_basics)` and compound scores `(n, num_compounds)` for the images."""
        probabilities, compound_scores = [], []
        for start in range(0, len(images), self.batch_size):
            batch = [load_rgb_image(im) if not isinstance(im, Image.Image) else im.convert("RGB")
                     for im in images[start : start + self.batch_size]]
            pixels = self.image_processor(batch, return_tensors="pt")["pixel_values"].to(self.device)
            output = self.model(pixels)
            probabilities.append(output.probabilities.float().cpu().numpy())
            compound_scores.append(output.compound_scores.float().cpu().numpy())
        config = self.model.config
        if not probabilities:
            return np.zeros((0, len(config.basic_labels))), np.zeros((0, len(config.compound_names)))
        return np.concatenate(probabilities), np.concatenate(compound_scores)

    def predict(self, images: list[Image.Image | str | Path]) -> list[CompoundPrediction]:
        """One `CompoundPrediction` per image, in order."""
        probabilities, compound_scores = self.scores(images)
        config = self.model.config
        return [
            CompoundPrediction(
                compound=config.compound_names[int(np.argmax(scores))],
                compound_scores=dict(zip(config.compound_names, scores.tolist())),
                basic_probabilities=dict(zip(config.basic_labels, probs.tolist())),
            )
            for probs, scores in zip(probabilities, compound_scores)
        ]


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `cer-hf predict MODEL IMAGE...`."""
    parser = subparsers.add_parser("predict", help="predict compound expressions for images")
    parser.add_argument("model", help="local checkpoint directory or Hub repo id")
    parser.add_argument("inputs", nargs="+", help="image files")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) to pin")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> None:
    predictor = CompoundExpressionPredictor.from_pretrained(
        args.model, revision=args.revision, device=args.device, batch_size=args.batch_size
    )
    names = predictor.model.config.compound_names
    print("\t".join(["image", "compound", *names]))
    for path, prediction in zip(args.inputs, predictor.predict(args.inputs)):
        scores = [f"{prediction.compound_scores[name]:.4f}" for name in names]
        print("\t".join([path, prediction.compound, *scores]))
