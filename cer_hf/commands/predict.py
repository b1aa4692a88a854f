"""`cer-hf predict MODEL INPUT...`: compound expressions for images, folders of frames and videos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cer_hf.commands.checks import check_batch_size, check_device, check_output_folder
from cer_hf.image_io import load_rgb_image
from cer_hf.inference import video
from cer_hf.inference.faces import FaceDetector, face_or_whole_image, make_detector
from cer_hf.inference.predictor import CompoundExpressionPredictor, set_cpu_threads
from cer_hf.inference.smoothing import SMOOTHING_METHODS

ABAW_FILE = "abaw_predictions.txt"
NO_FACE = "none – whole image used"


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `cer-hf predict MODEL INPUT... [--output DIR]` for images, folders of frames and videos."""
    parser = subparsers.add_parser(
        "predict",
        help="predict compound expressions for images, folders of frames and videos",
        description="Images print a table (or, with --output, go to OUT/images.csv). Each video file or folder "
        "of frame images is one sequence: per-frame CSV, summary JSON and an ABAW-style file go to --output.",
    )
    parser.add_argument("model", help="local checkpoint directory or Hub repo id")
    parser.add_argument("inputs", nargs="+", help="image files, video files, or folders of frame images")
    parser.add_argument("--output", default=None, help="output folder for per-frame CSVs, summaries, ABAW file, plots")
    add_pipeline_arguments(parser)
    parser.add_argument("--frame-rate", type=float, default=None, help="frame rate of frame folders, for timestamps")
    parser.add_argument("--plot", action="store_true", help="also write a PNG timeline per sequence (matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run_cli)


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, face and smoothing options that `predict` and `app` share (MODEL itself is the caller's)."""
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) to pin")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="model precision (bfloat16: ~3x faster on CPUs with AVX512-BF16 or AMX)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: CPU count - 1, leaving a core to decoding and detection)")
    faces = parser.add_argument_group("faces")
    faces.add_argument("--faces-cropped", action="store_true",
                       help="inputs are already face crops (e.g. ABAW cropped_aligned): skip face detection")
    faces.add_argument("--face-selection", default="largest", choices=["largest", "confidence", "center"],
                       help="which face to analyse when several are found (default: largest)")
    faces.add_argument("--margin", type=float, default=0.2, help="crop margin per side, fraction of the face box")
    faces.add_argument("--detect-every", type=int, default=1,
                       help="run the face detector on every k-th frame and reuse its box in between (default 1)")
    faces.add_argument("--detect-width", type=int, default=160,
                       help="frame width the Haar detector runs at (default 160; raise it for small faces)")
    temporal = parser.add_argument_group("temporal smoothing (videos and frame folders)")
    temporal.add_argument("--smoothing", default=None, choices=SMOOTHING_METHODS,
                          help="none | box | gaussian | vote (default: gaussian for sequences; images are never smoothed)")
    temporal.add_argument("--delta", type=int, default=10, help="window half-width δ in frames (default 10)")
    temporal.add_argument("--sigma", type=float, default=None, help="Gaussian σ in exp(-(j-i)²/σ) (default δ²/4)")


def check_pipeline_options(args: argparse.Namespace) -> None:
    """Reject bad face and smoothing option values before any model is loaded or input read."""
    if args.detect_every < 1:
        raise ValueError(f"--detect-every must be >= 1, got {args.detect_every}")
    if args.delta < 0:
        raise ValueError(f"--delta must be >= 0 frames, got {args.delta}")
    if args.sigma is not None and not args.sigma > 0:
        raise ValueError(f"--sigma must be positive, got {args.sigma}")
    if args.margin < 0:
        raise ValueError(f"--margin must be >= 0, got {args.margin}")


def load_pipeline(args: argparse.Namespace) -> tuple[CompoundExpressionPredictor, FaceDetector]:
    """The predictor (on its device, with the CPU thread count set) and the face detector the options ask for."""
    predictor = CompoundExpressionPredictor.from_pretrained(
        args.model, revision=args.revision, device=args.device, batch_size=args.batch_size, dtype=args.dtype
    )
    set_cpu_threads(args.threads, predictor.device)
    detector = make_detector("none") if args.faces_cropped else make_detector("haar", detect_width=args.detect_width)
    return predictor, detector


def _run_cli(args: argparse.Namespace) -> int:
    sequences = [p for p in args.inputs if Path(p).is_dir() or video.is_video_file(p)]
    images = [p for p in args.inputs if p not in sequences]
    _check_options(args)
    predictor, detector = load_pipeline(args)
    output = Path(args.output) if args.output else None
    if output:
        # An ABAW file of another model is refused now, not after every sequence ran.
        video.read_abaw_rows(output / ABAW_FILE, predictor.model.config.compound_names)
        output.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    written = False
    options = dict(face_selection=args.face_selection, margin=args.margin, detect_every=args.detect_every)

    if images:
        written = _predict_images(predictor, images, detector, options, output, failures, args.faces_cropped)

    results, used_names = [], set()
    for source in sequences:
        name = _unique_name(Path(source).name if Path(source).is_dir() else Path(source).stem, used_names)
        try:
            result = video.predict_video(
                predictor, source, detector=detector, name=name, frame_rate=args.frame_rate,
                smoothing=args.smoothing or "gaussian", delta=args.delta, sigma=args.sigma,
                progress=not args.no_progress, **options,
            )
        except (ValueError, FileNotFoundError) as error:
            failures.append(str(error))
            print(f"cer-hf predict: error: {error}", file=sys.stderr)
            continue
        results.append(result)
        summary = result.summary()
        top = max(summary["label_distribution"].items(), key=lambda item: item[1])[0] if result.num_frames else ""
        skipped = len(result.unreadable_frames)
        print(f"{source}\t{summary['frames']} frames\tfaces {summary['faces_found_percent']}%\t"
              f"most frequent: {top}\t{summary['fps_processed']} frames/s"
              + (f"\t{skipped} unreadable frame{'s' if skipped > 1 else ''} skipped (named above)" if skipped else ""))
        if output:
            video.write_frames_csv(result, output / f"{name}.csv")
            video.write_summary_json(result, output / f"{name}.summary.json")
            if args.plot:
                video.plot_timeline(result, output / f"{name}.timeline.png")
            written = True
    if output and results:  # merged by sequence: earlier calls' sequences stay, a re-run one is replaced
        video.merge_abaw_predictions(results, output / ABAW_FILE)
    if output:
        print(f"wrote results to {output}" if written else f"nothing written to {output} (every input failed)")
    if failures:
        print(f"cer-hf predict: {len(failures)} of {len(args.inputs)} inputs failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


def _check_options(args: argparse.Namespace) -> None:
    """Reject bad option values before any model is loaded or input read."""
    check_pipeline_options(args)
    check_batch_size(args.batch_size)
    check_device(args.device)
    check_output_folder(args.output)
    if args.plot:
        if not args.output:
            raise ValueError("--plot writes PNG files into --output: give --output DIR")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install 'cer_hf[plots]'") from None


def _unique_name(name: str, used: set[str]) -> str:
    candidate, number = name, 2
    while candidate in used:
        candidate, number = f"{name}_{number}", number + 1
    used.add(candidate)
    return candidate


def _face_note(face, faces_cropped: bool) -> str:
    """The table's `face` cell: whether the scores are of a detected face, a given crop or the whole image."""
    if faces_cropped:
        return "given (--faces-cropped)"
    return "detected" if face else NO_FACE


def _predict_images(predictor, images, detector, options, output, failures, faces_cropped: bool) -> bool:
    """Still images: crop the detected face (the whole image when none is found) and score them in one go.

    The table's `face` column (and images.csv's face_found) says where no face was found and the whole
    image was scored; a note on stderr counts them. With `output`, rows are merged into images.csv by
    image (earlier calls' rows stay). Returns whether anything was written.
    """
    frames, crops = [], []
    for index, path in enumerate(images):
        try:
            image = np.asarray(load_rgb_image(path))
        except ValueError as error:
            failures.append(str(error))
            print(f"cer-hf predict: error: {error}", file=sys.stderr)
            continue
        crop, face = face_or_whole_image(image, detector, options["face_selection"], options["margin"])
        frames.append((path, face))
        crops.append(Image.fromarray(crop))
    if not frames:
        return False
    probabilities, compound_scores = predictor.scores(crops)
    config = predictor.model.config
    names = list(config.compound_names)
    faceless = sum(face is None for _, face in frames)
    if faceless and not faces_cropped:
        print(f"cer-hf predict: note: no face found in {faceless} of {len(frames)} images: the whole image was "
              f"scored ('{NO_FACE}' in the face column); pass --faces-cropped if they are face crops already, or "
              "raise --detect-width for small faces", file=sys.stderr)
    if output is None:
        print("\t".join(["image", "compound", "face", *names]))
        for (path, face), scores in zip(frames, compound_scores):
            print("\t".join([path, names[int(np.argmax(scores))], _face_note(face, faces_cropped),
                             *[f"{s:.4f}" for s in scores]]))
        return False
    labels = compound_scores.argmax(axis=1)
    result = video.VideoPrediction(
        name="images", source="", basic_labels=list(config.basic_labels), compound_names=names,
        frame_names=[path for path, _ in frames], timestamps=np.full(len(frames), np.nan),
        boxes=np.asarray([(f.x, f.y, f.width, f.height) if f else (-1, -1, -1, -1) for _, f in frames]),
        face_found=np.asarray([f is not None for _, f in frames]), probabilities=probabilities,
        compound_scores=compound_scores, smoothed_scores=compound_scores, raw_labels=labels, labels=labels,
        smoothing={"method": "none"},
    )
    video.write_frames_csv(result, output / "images.csv", merge=True)
    return True

