"""Model inference throughput on CPU — PyTorch fp32 / bf16, ONNX fp32 / int8 — and what int8 costs in F1.

    PYTHONPATH=$PWD python benchmarks/inference_throughput.py --preset tiny --image-size 112 --seconds 5
    PYTHONPATH=$PWD python benchmarks/inference_throughput.py --model runs/demo/cer     # a trained checkpoint

Frames/s is the model alone on ready pixel tensors (batches of `--batch-size`; no decoding, face detection
or resizing: `benchmarks/video_throughput.py` measures the whole video pipeline), wall clock and per
process-CPU-second (less sensitive to other processes on a shared machine). The ONNX graphs are exported
into a temporary folder with `cer_hf.inference.onnx_backend.export_onnx` (int8: dynamic quantisation).

Quality: compound macro F1 of fp32 and int8 onnxruntime on `--eval` (default `synthetic:all:700`, read by
`cer_hf.evaluation.images`), and the share of images whose predicted compound is the same. A model from
`--preset` has random weights: its F1 means nothing, only the agreement does; pass `--model` for a trained one.
Needs `pip install 'cer_hf[onnx]'`.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoImageProcessor  # noqa: E402

from cer_hf.evaluation.images import load_evaluation_images, predict_probabilities  # noqa: E402
from cer_hf.evaluation.metrics import load_compound_metric  # noqa: E402
from cer_hf.hub.loading import load_model  # noqa: E402
from cer_hf.inference.onnx_backend import OnnxCompoundModel, export_onnx  # noqa: E402
from cer_hf.modeling.build import ModelArguments, build_model  # noqa: E402


def throughput(run, pixels: torch.Tensor, seconds: float) -> tuple[float, float]:
    """(frames per wall second, frames per process-CPU second) of `run(pixels)` repeated for `seconds`."""
    for _ in range(2):  # warm-up: allocator, onnxruntime's first-run graph preparation
        run(pixels)
    frames, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        run(pixels)
        frames += len(pixels)
    return frames / (time.perf_counter() - wall), frames / max(time.process_time() - cpu, 1e-9)


def compound_f1(model, rows, processor) -> tuple[float, np.ndarray]:
    """Compound macro F1 on the rows and the predicted compound indices (rows with a compound label)."""
    probabilities, references = predict_probabilities(model, rows, processor)
    config = model.config
    results = load_compound_metric().compute(
        predictions=probabilities, references=references, basic_labels=list(config.basic_labels),
        compound_names=list(config.compound_names), compound_constituents=[list(p) for p in config.compound_constituents],
    )
    matrix = np.zeros((len(config.compound_names), len(config.basic_labels)))
    for row, parts in enumerate(config.compound_constituents):
        for part in parts:
            matrix[row, list(config.basic_labels).index(part)] = 1
    return results["compound_macro_f1"], np.argmax(probabilities @ matrix.T, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a saved ViTForCompoundExpression (default: a random preset)")
    parser.add_argument("--preset", default="tiny", help="encoder preset of the random model: micro, tiny, small, base")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per backend")
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime intra-op threads")
    parser.add_argument("--eval", default="synthetic:all:700", help="labelled source for the F1 check ('' skips it)")
    parser.add_argument("--eval-seed", type=int, default=12345,
                        help="seed of a synthetic --eval source (default: cer-hf evaluate's, held out from training)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.model:
        model, processor = load_model(args.model), AutoImageProcessor.from_pretrained(args.model)
        name = args.model
    else:
        torch.manual_seed(0)
        model, processor = build_model(ModelArguments(model_preset=args.preset, image_size=args.image_size,
                                                      patch_size=args.patch_size, drop_path_rate=0.0))
        name = f"random {args.preset} preset"
    model.eval()
    size = model.config.image_size
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {name}, {params / 1e6:.2f} M parameters, {size} px, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")

    workdir = Path(tempfile.mkdtemp(prefix="cer-onnx-bench-"))
    atexit.register(shutil.rmtree, workdir, True)
    backends = {"onnx fp32": workdir / "fp32", "onnx int8": workdir / "int8"}
    for label, folder in backends.items():
        info = export_onnx(model, folder, image_processor=processor, quantize="int8" if "int8" in label else None)
        print(f"exported {label}: {info['bytes'] / 1e6:.2f} MB, max |onnx - torch| compound scores "
              f"{info['max_abs_diff']['compound_scores']:.2e}")
    onnx_models = {label: OnnxCompoundModel.from_pretrained(folder) for label, folder in backends.items()}
    bf16_model = type(model).from_pretrained(args.model, use_safetensors=True) if args.model else None
    if bf16_model is None:
        bf16_model = type(model)(model.config)
        bf16_model.load_state_dict(model.state_dict())
    bf16_model = bf16_model.to(torch.bfloat16).eval()

    pixels = torch.rand(args.batch_size, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    runs = {
        "pytorch fp32": lambda x: model(pixel_values=x),
        "pytorch bf16": lambda x: bf16_model(pixel_values=x.to(torch.bfloat16)),
        **{label: (lambda x, m=m: m(x)) for label, m in onnx_models.items()},
    }
    print(f"{'backend':<14s} {'frames/s':>10s} {'frames/CPU-s':>13s}")
    with torch.inference_mode():
        for label, run in runs.items():
            wall, cpu = throughput(run, pixels, args.seconds)
            print(f"{label:<14s} {wall:10.1f} {cpu:13.1f}")

    if args.eval:
        rows = load_evaluation_images(args.eval, image_size=size, seed=args.eval_seed,
                                      compound_set_name=model.config.compound_set,
                                      label_space=tuple(model.config.basic_labels))
        f1_fp32, predicted_fp32 = compound_f1(onnx_models["onnx fp32"], rows, processor)
        f1_int8, predicted_int8 = compound_f1(onnx_models["onnx int8"], rows, processor)
        agreement = float(np.mean(predicted_fp32 == predicted_int8))
        note = "" if args.model else "  (random weights: the F1 values mean nothing, the agreement does)"
        print(f"{args.eval}: compound macro F1 onnx fp32 {f1_fp32:.4f}, int8 {f1_int8:.4f} "
              f"(change {f1_int8 - f1_fp32:+.4f}); same predicted compound on {agreement:.1%} of {len(rows)} images"
              f"{note}")


if __name__ == "__main__":
    main()
