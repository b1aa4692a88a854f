"""Turn images into compound labels and scores with a `ViTForCompoundExpression` checkpoint.

    from cer_hf import CompoundExpressionPredictor
    predictor = CompoundExpressionPredictor.from_pretrained("path/or/repo-id")
    for prediction in predictor.predict(["face1.jpg", "face2.png"]):
        print(prediction.compound, prediction.compound_scores)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor

from cer_hf.hub.loading import check_model_location, load_model
from cer_hf.image_io import load_rgb_image, to_rgb
from cer_hf.inference.onnx_backend import OnnxCompoundModel, is_onnx_export
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression


@dataclass
class CompoundPrediction:
    """The prediction for one image: the compound, all compound scores and all basic probabilities."""

    compound: str
    compound_scores: dict[str, float]
    basic_probabilities: dict[str, float]


class CompoundExpressionPredictor:
    """Batched inference: PIL images (or paths) → compound predictions, on CPU or GPU."""

    def __init__(
        self, model: ViTForCompoundExpression | OnnxCompoundModel, image_processor, *, device=None,
        batch_size: int = 32, dtype=None,
    ):
        if isinstance(model, OnnxCompoundModel):  # onnxruntime backend: float32 inputs prepared on the CPU
            if dtype is not None and _torch_dtype(dtype) != torch.float32:
                raise ValueError(f"dtype {dtype} with an ONNX export: the graph takes float32 (export with "
                                 "--quantize int8 for a smaller, faster CPU model)")
            self.device, self.model, self.dtype = torch.device("cpu"), model, torch.float32
        else:
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self.model = model.to(self.device).eval()
            if dtype is not None:  # e.g. torch.bfloat16: ~3x faster on CPUs with AVX512-BF16/AMX
                self.model = self.model.to(_torch_dtype(dtype))
            self.dtype = next(self.model.parameters()).dtype
        self.image_processor = image_processor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, revision: str | None = None, **kwargs) -> CompoundExpressionPredictor:
        """Load a model and its image processor from a local directory or a Hub repo id.

        `kwargs` go to the constructor: `device`, `batch_size`, `dtype` ("float32", "bfloat16", "float16").
        A local folder written by `cer-hf export-onnx` (it holds `model.onnx`) runs on onnxruntime instead
        of PyTorch; `device="cuda"` then asks for onnxruntime's CUDA provider. A `name_or_path` that is
        neither a checkpoint folder nor a Hub repo id is a `FileNotFoundError` naming it.
        """
        check_model_location(name_or_path)
        if is_onnx_export(name_or_path):
            cuda = str(kwargs.get("device") or "cpu").startswith("cuda")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
            model = OnnxCompoundModel.from_pretrained(name_or_path, providers=providers)
            processor = AutoImageProcessor.from_pretrained(name_or_path)
            return cls(model, processor, **kwargs)
        model = load_model(name_or_path, revision=revision)  # safetensors only; pickles are refused
        processor = AutoImageProcessor.from_pretrained(name_or_path, revision=revision)
        return cls(model, processor, **kwargs)

    @torch.inference_mode()
    def scores(self, images: list[Image.Image | str | Path]) -> tuple[np.ndarray, np.ndarray]:
        """Basic probabilities `(n, num_basics)` and compound scores `(n, num_compounds)` for the images."""
        probabilities, compound_scores = [], []
        for start in range(0, len(images), self.batch_size):
            batch = [load_rgb_image(im) if not isinstance(im, Image.Image) else to_rgb(im)
                     for im in images[start : start + self.batch_size]]
            pixels = self.image_processor(batch, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
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


def _torch_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"unknown dtype {dtype!r}; choose float32, bfloat16 or float16")
    return getattr(torch, dtype)


def set_cpu_threads(threads: int | None, device: torch.device) -> None:
    """On CPU, give torch `threads` intra-op threads (default: all cores but one).

    The video pipeline decodes and detects faces in a second thread, so the model should leave it a core;
    oversubscribed OpenMP threads spin-wait and, on a busy 2-core machine, ran the model 3-4x slower.
    """
    if device.type != "cpu":
        return
    if threads is None:
        threads = max(1, (os.cpu_count() or 2) - 1)
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


