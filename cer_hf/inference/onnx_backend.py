"""ONNX export of a `ViTForCompoundExpression` and an onnxruntime model the predictor can run.

    export_onnx("runs/demo/cer", "runs/demo/cer-onnx", quantize="int8")
    predictor = CompoundExpressionPredictor.from_pretrained("runs/demo/cer-onnx")   # runs onnxruntime

The export uses `torch.onnx.export(..., dynamo=False)` (the TorchScript tracer; it needs `onnx`, not
`onnxscript`) rather than optimum: optimum would be one more dependency, and it exports the
architectures it knows, while ours is custom remote code. The graph takes `pixel_values`
`(batch, 3, size, size)` with a dynamic batch and returns `logits`, `probabilities` and
`compound_scores`. The exported folder holds `model.onnx`, `config.json` (the model's config, for
label names) and the image processor's config, so `CompoundExpressionPredictor.from_pretrained`
loads it like a PyTorch checkpoint. With `quantize="int8"`, `model.onnx` is the dynamically
quantised graph (int8 weights of the linear layers, `onnxruntime.quantization.quantize_dynamic`)
and the float graph stays beside it as `model_fp32.onnx`.

`onnx` and `onnxruntime` are the optional extra `cer_hf[onnx]`; they are imported only inside the
functions that need them.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoImageProcessor

from cer_hf.hub.loading import load_model
from cer_hf.modeling.configuration_cer import ViTForCompoundExpressionConfig
from cer_hf.modeling.modeling_cer import CompoundExpressionOutput, ViTForCompoundExpression

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
FLOAT_FILE = "model_fp32.onnx"
EXPORT_INFO_FILE = "onnx_export.json"
OUTPUT_NAMES = ("logits", "probabilities", "compound_scores")
QUANTIZATIONS = ("int8",)
INSTALL_HINT = "pip install 'cer_hf[onnx]'"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(f"the ONNX backend needs onnxruntime: {INSTALL_HINT}") from None
    return onnxruntime


def is_onnx_export(path: str | Path) -> bool:
    """True when `path` is a local folder written by `export_onnx` (it holds `model.onnx`)."""
    return (Path(path) / ONNX_FILE).is_file()


class _ExportedOutputs(nn.Module):
    """The model with a tuple of the three exported outputs (ONNX graphs return tensors, not ModelOutputs)."""

    def __init__(self, model: ViTForCompoundExpression):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor):
        output = self.model(pixel_values=pixel_values)
        return output.logits, output.probabilities, output.compound_scores


def export_onnx(
    model_or_path: ViTForCompoundExpression | str | Path,
    out_dir: str | Path,
    *,
    image_processor=None,
    revision: str | None = None,
    opset: int = 17,
    quantize: str | None = None,
    check_batch: int = 4,
    seed: int = 0,
) -> dict:
    """Export a `ViTForCompoundExpression` (an instance, a local folder or a Hub repo id) to `out_dir`.

    Writes `model.onnx` (dynamic batch), `config.json`, the image processor's config and
    `onnx_export.json`, then runs the exported graph on a random batch with onnxruntime and records the
    largest absolute difference to PyTorch per output. Returns that record.
    """
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZATIONS)} (or leave it out)")
    onnxruntime = _onnxruntime()
    if isinstance(model_or_path, (str, Path)):
        model = load_model(str(model_or_path), revision=revision)  # safetensors only
        if image_processor is None:
            image_processor = AutoImageProcessor.from_pretrained(str(model_or_path), revision=revision)
    else:
        model = model_or_path
    if image_processor is None:
        raise ValueError("export_onnx needs the model's image processor (pass image_processor=)")
    first = next(model.parameters())
    if first.dtype != torch.float32 or first.device.type != "cpu":  # export a float32 CPU copy, leave the caller's
        model = copy.deepcopy(model).float().cpu()
    was_training = model.training
    model.eval()
    try:
        return _export(model, image_processor, Path(out_dir), opset, quantize, check_batch, seed, onnxruntime)
    finally:
        model.train(was_training)


def _export(model, image_processor, out: Path, opset, quantize, check_batch, seed, onnxruntime) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    size = model.config.image_size
    example = torch.rand(2, model.config.num_channels, size, size, generator=torch.Generator().manual_seed(seed))
    float_path = out / (FLOAT_FILE if quantize else ONNX_FILE)
    dynamic = {name: {0: "batch"} for name in ("pixel_values", *OUTPUT_NAMES)}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer fixes the image size (the model checks it in Python): the graph takes that size only.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            _ExportedOutputs(model), (example,), str(float_path), input_names=["pixel_values"],
            output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic, opset_version=opset, dynamo=False,
        )
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(float_path), str(out / ONNX_FILE), weight_type=QuantType.QInt8)
    else:
        (out / FLOAT_FILE).unlink(missing_ok=True)  # left by an earlier int8 export into this folder
    model.config.save_pretrained(out)
    image_processor.save_pretrained(out)

    # Check the graph that will be served against PyTorch on a batch of another size than the traced one.
    pixels = torch.rand(check_batch, *example.shape[1:], generator=torch.Generator().manual_seed(seed + 1))
    session = onnxruntime.InferenceSession(str(out / ONNX_FILE), providers=["CPUExecutionProvider"])
    results = session.run(list(OUTPUT_NAMES), {"pixel_values": pixels.numpy()})
    with torch.no_grad():
        reference = _ExportedOutputs(model)(pixels)
    info = {
        "onnx_file": ONNX_FILE, "opset": opset, "quantize": quantize, "image_size": size,
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        "max_abs_diff": {name: float(np.abs(result - ref.numpy()).max())
                         for name, result, ref in zip(OUTPUT_NAMES, results, reference)},
        "bytes": (out / ONNX_FILE).stat().st_size,
    }
    (out / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    logger.info(f"exported {out / ONNX_FILE} ({info['bytes'] / 1e6:.1f} MB, quantize={quantize}); "
                f"max |onnx - torch| {info['max_abs_diff']}")
    return info


class OnnxCompoundModel:
    """An exported model run by onnxruntime, called like the PyTorch model: `model(pixels).compound_scores`.

    The session is created on the first call, with torch's intra-op thread count at that moment, so
    `set_cpu_threads` (the `--threads` option) applies to onnxruntime too. `device`, `dtype` and `eval()`
    let code written for the PyTorch model (`cer_hf.evaluation.images.predict_probabilities`) run it.
    """

    device = torch.device("cpu")  # where inputs are prepared; the providers decide where the graph runs
    dtype = torch.float32

    def __init__(self, onnx_path: str | Path, config: ViTForCompoundExpressionConfig, *, providers=None):
        self.onnxruntime = _onnxruntime()
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such ONNX file")
        self.config = config
        self.providers = list(providers or ["CPUExecutionProvider"])
        self._session = None

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, providers=None) -> OnnxCompoundModel:
        """Load `model.onnx` and `config.json` from a folder written by `export_onnx`."""
        directory = Path(directory)
        config = ViTForCompoundExpressionConfig.from_pretrained(directory)
        return cls(directory / ONNX_FILE, config, providers=providers)

    def eval(self) -> OnnxCompoundModel:
        return self

    @property
    def session(self):
        if self._session is None:
            options = self.onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            self._session = self.onnxruntime.InferenceSession(str(self.path), options, providers=self.providers)
        return self._session

    def __call__(self, pixel_values: torch.Tensor | np.ndarray) -> CompoundExpressionOutput:
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = pixel_values.detach().float().cpu().numpy()
        logits, probabilities, compound_scores = self.session.run(
            list(OUTPUT_NAMES), {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)})
        return CompoundExpressionOutput(
            logits=torch.from_numpy(logits), probabilities=torch.from_numpy(probabilities),
            compound_scores=torch.from_numpy(compound_scores),
        )
