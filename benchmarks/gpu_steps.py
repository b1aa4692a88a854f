"""Curriculum fine-tuning step and video inference throughput, on a GPU (or a CPU for a smoke run).

    python benchmarks/gpu_steps.py finetune --device cuda --preset base --image-size 224 --batch-size 128 --compile
    python benchmarks/gpu_steps.py video --device cuda --preset base --image-size 224 --frames 2000

`finetune`: `ViTForCompoundExpression` of `--preset`, forward + BCE + backward + AdamW (fused on CUDA), bf16
autocast with float32 master weights (`--precision`), SDPA attention, optionally `torch.compile`. Batches come
from the curriculum data path at its last stage (every sample a CutMix/Mixup compound of two basics:
`CurriculumDataset` + `CurriculumSampler` + `CurriculumCollator`) in `--workers` DataLoader workers. Prints
model-only images/s (one batch kept on the device) and end-to-end images/s (through the loader), medians of
`--rounds` alternating rounds.

`video`: `CompoundExpressionPredictor` on the device over a synthetic face video (`synthetic_video`, frames
upscaled to `--frame-size`) through the video pipeline (`predict_frames`: preprocessing in the predictor,
Gaussian smoothing) with faces already cropped (the Haar detector is CPU-bound and measured by
`benchmarks/video_throughput.py`). Prints the pipeline's frames/s and the model-only frames/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil  # noqa: E402

from cer_hf.curriculum.augment import TrainAugment  # noqa: E402
from cer_hf.curriculum.collate import CurriculumCollator  # noqa: E402
from cer_hf.curriculum.dataset import CurriculumDataset, CurriculumSchedule  # noqa: E402
from cer_hf.curriculum.mixing import CompoundMixer  # noqa: E402
from cer_hf.curriculum.trainer import CurriculumSampler  # noqa: E402
from cer_hf.data.synthetic import synthetic_dataset, synthetic_video  # noqa: E402
from cer_hf.inference.predictor import CompoundExpressionPredictor  # noqa: E402
from cer_hf.inference.video import Frame, predict_frames  # noqa: E402
from cer_hf.inference.faces import make_detector  # noqa: E402
from cer_hf.modeling.convert import compound_config  # noqa: E402
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression  # noqa: E402
from cer_hf.presets import ENCODER_PRESETS  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build_model(args, device: torch.device) -> ViTForCompoundExpression:
    config = compound_config("abaw7", image_size=args.image_size, patch_size=args.patch_size,
                             **ENCODER_PRESETS[args.preset])
    torch.manual_seed(0)
    return ViTForCompoundExpression(config).to(device)


def finetune(args) -> None:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    model = build_model(args, device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=cuda)
    forward = torch.compile(model) if args.compile else model
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    rows = synthetic_dataset(args.rows, kind="basic", image_size=args.image_size, seed=0)
    schedule = CurriculumSchedule([1], [1.0])  # the last stage: every sample a mixed compound
    samples = args.batch_size * (args.steps + args.warmup_steps) * (args.rounds + 1)
    dataset = CurriculumDataset(rows, schedule, batch_size=args.batch_size, image_size=args.image_size,
                                samples_per_epoch=samples)
    loader = DataLoader(dataset, sampler=CurriculumSampler(len(dataset)), batch_size=args.batch_size,
                        num_workers=args.workers, pin_memory=cuda, persistent_workers=args.workers > 0,
                        collate_fn=CurriculumCollator(mixer=CompoundMixer(), augment=TrainAugment()))
    batches = iter(loader)

    def step(batch) -> None:
        pixels = batch["pixel_values"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        with torch.autocast(**autocast):
            loss = forward(pixel_values=pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    fixed = {key: value.to(device) for key, value in next(batches).items() if torch.is_tensor(value)}

    def model_round() -> float:
        for _ in range(args.warmup_steps):
            step(fixed)
        sync(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            step(fixed)
        sync(device)
        return args.steps * args.batch_size / (time.perf_counter() - start)

    def loader_round() -> float:
        for _ in range(args.warmup_steps):
            step(next(batches))
        sync(device)
        start, images = time.perf_counter(), 0
        for _ in range(args.steps):
            batch = next(batches)
            images += len(batch["pixel_values"])
            step(batch)
        sync(device)
        return images / (time.perf_counter() - start)

    model_rates, e2e_rates = [], []
    for index in range(args.rounds):
        order = (model_round, loader_round) if index % 2 == 0 else (loader_round, model_round)
        for measure in order:
            (model_rates if measure is model_round else e2e_rates).append(measure())
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"curriculum fine-tune step: {args.preset} ({params:.1f} M), {args.image_size} px, batch {args.batch_size}, "
          f"{args.precision}, {device}{' compiled' if args.compile else ''}, {args.workers} workers")
    print(f"  model only (batch on device):      {statistics.median(model_rates):10.1f} images/s")
    print(f"  end to end (curriculum collator):  {statistics.median(e2e_rates):10.1f} images/s")


def video(args) -> None:
    device = torch.device(args.device)
    model = build_model(args, device).eval()
    processor = ViTImageProcessorPil(size={"height": args.image_size, "width": args.image_size})
    dtype = "bfloat16" if args.precision == "bf16" else "float32"
    predictor = CompoundExpressionPredictor(model, processor, device=device, batch_size=args.batch_size, dtype=dtype)
    rows = synthetic_video(min(args.frames, 120), image_size=args.frame_size, seed=0)
    images = [np.asarray(row["image"].convert("RGB")) for row in rows]
    frames = [Frame(index=i, timestamp=i / 30, image=images[i % len(images)], name=f"{i:05d}")
              for i in range(args.frames)]
    detector = make_detector("none")
    predict_frames(predictor, frames[: 2 * args.batch_size], detector=detector, smoothing="gaussian")  # warm-up
    sync(device)
    start = time.perf_counter()
    result = predict_frames(predictor, frames, detector=detector, smoothing="gaussian", delta=10)
    sync(device)
    pipeline = len(result.frame_names) / (time.perf_counter() - start)
    crops = [row["image"].convert("RGB") for row in rows]
    start = time.perf_counter()
    for _ in range(max(1, args.frames // len(crops))):
        predictor.scores(crops)
    sync(device)
    model_only = max(1, args.frames // len(crops)) * len(crops) / (time.perf_counter() - start)
    print(f"video: {args.preset}, {args.image_size} px, {args.frames} frames of {args.frame_size} px, batch "
          f"{args.batch_size}, {dtype}, {device}")
    print(f"  video pipeline (faces cropped, gaussian smoothing): {pipeline:10.1f} frames/s")
    print(f"  predictor.scores on PIL crops (preprocess + model): {model_only:10.1f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["finetune", "video"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="base", choices=list(ENCODER_PRESETS))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers of the curriculum loader")
    parser.add_argument("--rows", type=int, default=256, help="synthetic basic faces the curriculum mixes")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=2000, help="video frames")
    parser.add_argument("--frame-size", type=int, default=256, help="side of the synthetic video frames")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    finetune(args) if args.what == "finetune" else video(args)


if __name__ == "__main__":
    main()
