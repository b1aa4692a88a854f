"""`cer-hf export-onnx MODEL OUT`: export a `ViTForCompoundExpression` to ONNX for onnxruntime inference."""

from __future__ import annotations

import argparse

from cer_hf.inference.onnx_backend import QUANTIZATIONS, export_onnx


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `cer-hf export-onnx MODEL OUT [--quantize int8]`."""
    parser = subparsers.add_parser(
        "export-onnx",
        help="export a model to ONNX (model.onnx + configs) for onnxruntime",
        description="Writes OUT/model.onnx (input pixel_values with a dynamic batch; outputs logits, probabilities, "
        "compound_scores), config.json and the image processor's config. `cer-hf predict OUT ...` and "
        "CompoundExpressionPredictor.from_pretrained(OUT) then run onnxruntime. Needs pip install 'cer_hf[onnx]'.",
    )
    parser.add_argument("model", help="local checkpoint directory or Hub repo id (safetensors)")
    parser.add_argument("out_dir", help="folder to write the export to")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) to pin")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--quantize", default=None, choices=QUANTIZATIONS,
                        help="int8: dynamic quantisation of the linear layers (model.onnx; the float graph is kept "
                        "as model_fp32.onnx)")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> None:
    info = export_onnx(args.model, args.out_dir, revision=args.revision, opset=args.opset, quantize=args.quantize)
    diffs = ", ".join(f"{name} {value:.2e}" for name, value in info["max_abs_diff"].items())
    print(f"exported {args.model} -> {args.out_dir}/{info['onnx_file']} ({info['bytes'] / 1e6:.2f} MB, opset "
          f"{info['opset']}, quantize {info['quantize'] or 'none'}); max |onnxruntime - torch| on a random batch: "
          f"{diffs}")
