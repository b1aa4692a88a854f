"""`cer-hf evaluate-video MODEL --videos V... --labels L...`: frame F1 without and with smoothing, per δ."""

from __future__ import annotations

import json
from pathlib import Path

from cer_hf.commands.checks import check_batch_size, check_device, check_output_file
from cer_hf.evaluation.videos import evaluate_videos
from cer_hf.inference.predictor import CompoundExpressionPredictor, set_cpu_threads


def register_cli(subparsers) -> None:
    """Add `cer-hf evaluate-video MODEL --videos V... --labels L... [--deltas 5 10 20]`."""
    parser = subparsers.add_parser(
        "evaluate-video", help="frame-level compound macro F1 of videos, without and with temporal smoothing"
    )
    parser.add_argument("model", help="local checkpoint directory or Hub repo id")
    parser.add_argument("--videos", nargs="+", required=True, help="video files or folders of frames")
    parser.add_argument("--labels", nargs="+", required=True,
                        help="one label file per video: a compound index or name per frame line, -1 = unlabelled")
    parser.add_argument("--deltas", nargs="+", type=int, default=[5, 10, 20, 30, 50], help="window half-widths δ")
    parser.add_argument("--methods", nargs="+", default=["box", "gaussian", "vote"], choices=["box", "gaussian", "vote"])
    parser.add_argument("--sigma", type=float, default=None, help="Gaussian σ (default δ²/4 for each δ)")
    parser.add_argument("--faces-cropped", action="store_true", help="frames are already face crops: skip detection")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: CPU count - 1)")
    parser.add_argument("--output", default=None, help="also write the results as JSON to this file")
    parser.set_defaults(func=_run_evaluate_cli)


def _run_evaluate_cli(args) -> int:
    check_batch_size(args.batch_size)
    check_device(args.device)
    check_output_file(args.output, "--output")
    if min(args.deltas) < 0:
        raise ValueError(f"--deltas must be >= 0 frames, got {min(args.deltas)}")
    if args.sigma is not None and not args.sigma > 0:
        raise ValueError(f"--sigma must be positive, got {args.sigma:g}")
    predictor = CompoundExpressionPredictor.from_pretrained(
        args.model, revision=args.revision, device=args.device, batch_size=args.batch_size, dtype=args.dtype
    )
    set_cpu_threads(args.threads, predictor.device)
    report = evaluate_videos(
        predictor, args.videos, args.labels, args.deltas, methods=args.methods, sigma=args.sigma,
        faces_cropped=args.faces_cropped, progress=True,
    )
    print(f"{report['labelled_frames']} labelled frames of {report['frames']}")
    print("method\tdelta\tmacro_f1")
    for row in report["results"]:
        print(f"{row['method']}\t{row['delta']}\t{row['macro_f1']:.4f}")
    best = report["best"]
    print(f"best: {best['method']} delta={best['delta']} macro_f1={best['macro_f1']:.4f}")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return 0

