"""MAE pretraining throughput: model only vs end to end from encoded images, and MFU.

For one model and batch size it measures
  1. model images/s: fwd + bwd + AdamW step on in-memory random tensors (no data pipeline);
  2. end-to-end images/s: JPEG bytes in parquet → streamed (`pretraining_stream`) → decoded, cropped and
     flipped in DataLoader workers (`FaceStream`) → normalised on the device → the same train step;
  3. their ratio (the data pipeline's efficiency: 1.0 = the model never waits for data), and the
     pipeline alone (data-only images/s: how much headroom the workers have);
  4. model FLOPs per image (`cer_hf.pretraining.flops_per_image`: encoder on the visible 25% of patches,
     decoder on all patches, fwd + bwd = 3 × fwd) and MFU = FLOPs/image × images/s / peak.
Both measurements run in alternating rounds and the median is reported, so a neighbour's load
on a shared machine hits both alike.

    python benchmarks/pretrain_throughput.py --preset tiny --image-size 112 --batch-size 32 --device cpu
    python benchmarks/pretrain_throughput.py --device cuda --preset base --image-size 224 --batch-size 256 \
        --precision bf16 --peak-tflops 989 --num-workers 14 --compile
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import ViTMAEForPreTraining  # noqa: E402

from cer_hf.data.streams import FaceStream, collate_faces, pretraining_stream, single_threaded_worker  # noqa: E402
from cer_hf.image_io import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from cer_hf.data.transforms import MAETrainTransform, normalize_pixels  # noqa: E402
from cer_hf.presets import ENCODER_PRESETS, mae_config  # noqa: E402
from cer_hf.pretraining import epoch_batches, flops_per_image, mask_noise, param_groups  # noqa: E402


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=list(ENCODER_PRESETS))
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--decoder-preset", default=None,
                        help="MAE decoder: micro|tiny|small|mae|scaled (default: the recipe's, mae for non-micro)")
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (H100 SXM bf16 dense: 989)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--prefetch-factor", type=int, default=4)
    parser.add_argument(
        "--num-images", type=int, default=2048,
        help="distinct encoded images in the parquet (a small set is a new pass every few steps; workers persist)",
    )
    parser.add_argument("--source-size", type=int, default=None, help="stored JPEG side (default 1.25 × image size)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels_last memory format for the model and the pixels (only the patch conv sees it)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the training process")
    return parser.parse_args()


def write_encoded_faces(path: Path, count: int, size: int, shards: int) -> None:
    """`count` synthetic faces as JPEG bytes in one parquet file with `shards` row groups."""
    from cer_hf.data.synthetic import synthetic_sample

    images = []
    for index in range(min(count, 64)):  # render a few, re-encode flipped/shifted variants for the rest
        images.append(synthetic_sample(index, image_size=size)["image"])
    encoded = []
    for index in range(count):
        image = images[index % len(images)]
        if (index // len(images)) % 2:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        encoded.append({"bytes": buffer.getvalue(), "path": f"{index}.jpg"})
    pq.write_table(pa.table({"image": pa.array(encoded)}), path, row_group_size=max(1, count // shards))


def main() -> None:
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    autocast_dtype = torch.bfloat16 if args.precision == "bf16" else None

    config = mae_config(args.preset, image_size=args.image_size, patch_size=args.patch_size,
                        decoder=args.decoder_preset)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = ViTMAEForPreTraining(config).to(device).train()  # fp32 master weights; bf16 via autocast
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95), fused=cuda)
    forward = torch.compile(model) if args.compile else model
    num_patches = (args.image_size // args.patch_size) ** 2
    step_counter = [0]

    def train_step(pixels: torch.Tensor) -> None:
        noise = mask_noise(len(pixels), num_patches, seed=0, step=step_counter[0], rank=0, device=device)
        pixels = pixels.contiguous(memory_format=memory_format)
        step_counter[0] += 1
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = forward(pixel_values=pixels, noise=noise).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    # Model only: the same random batch every step, already on the device.
    fixed = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)

    def model_round() -> float:
        for _ in range(args.warmup_steps):
            train_step(fixed)
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            train_step(fixed)
        sync()
        return args.steps * args.batch_size / (time.perf_counter() - start)

    # End to end: encoded JPEGs streamed from parquet, decoded and augmented in workers.
    workdir = tempfile.TemporaryDirectory()
    parquet = Path(workdir.name) / "faces.parquet"
    shards = max(1, args.num_workers) * 4
    write_encoded_faces(parquet, args.num_images, args.source_size or int(args.image_size * 1.25), shards)
    stream = FaceStream(
        pretraining_stream([f"parquet:{parquet}"], seed=0, shuffle_buffer=256, num_workers=args.num_workers),
        MAETrainTransform(args.image_size, seed=0),
    )

    def make_loader(dataset):
        return torch.utils.data.DataLoader(
            dataset, batch_size=args.batch_size, collate_fn=collate_faces, num_workers=args.num_workers,
            prefetch_factor=args.prefetch_factor if args.num_workers else None, pin_memory=cuda,
            worker_init_fn=single_threaded_worker, persistent_workers=args.num_workers > 0,
        )

    batches = epoch_batches(stream, make_loader)

    def next_pixels() -> torch.Tensor:
        uint8 = next(batches)[2]["pixel_values"].to(device, non_blocking=True)
        return normalize_pixels(uint8, IMAGENET_MEAN, IMAGENET_STD)

    def end_to_end_round() -> float:
        for _ in range(args.warmup_steps):
            train_step(next_pixels())
        sync()
        start, images = time.perf_counter(), 0
        for _ in range(args.steps):
            pixels = next_pixels()
            images += len(pixels)
            train_step(pixels)
        sync()
        return images / (time.perf_counter() - start)

    def data_round() -> float:
        start, images = time.perf_counter(), 0
        for _ in range(args.steps):
            images += len(next_pixels())
        sync()
        return images / (time.perf_counter() - start)

    model_rates, e2e_rates, data_rates = [], [], []
    for round_index in range(args.rounds):
        if round_index % 2:  # alternate the order so a neighbour's load burst does not favour one side
            e2e_rates.append(end_to_end_round())
            model_rates.append(model_round())
        else:
            model_rates.append(model_round())
            e2e_rates.append(end_to_end_round())
        data_rates.append(data_round())
        print(f"round {round_index}: model {model_rates[-1]:.1f} img/s, end to end {e2e_rates[-1]:.1f} img/s, "
              f"data only {data_rates[-1]:.1f} img/s", flush=True)
    model_rate, e2e_rate = statistics.median(model_rates), statistics.median(e2e_rates)
    data_rate = statistics.median(data_rates)
    flops = flops_per_image(config)

    print(f"\npreset {args.preset}, {args.image_size} px, patch {args.patch_size}, batch {args.batch_size}, "
          f"{args.precision}, device {device}{' (compiled)' if args.compile else ''}"
          f"{', channels_last' if args.channels_last else ''}, "
          f"{args.num_workers} workers, torch threads {torch.get_num_threads()}")
    print(f"model only (in-memory tensors):         {model_rate:10.1f} images/s")
    print(f"end to end (JPEG parquet → workers):    {e2e_rate:10.1f} images/s")
    print(f"data only (pipeline, no model):         {data_rate:10.1f} images/s")
    print(f"data-pipeline efficiency (e2e / model): {e2e_rate / model_rate:10.3f}")
    print(f"model FLOPs per image (fwd+bwd = 3×fwd): {flops / 1e9:10.3f} GFLOP")
    print(f"achieved (model only / end to end):     {flops * model_rate / 1e12:10.4f} / {flops * e2e_rate / 1e12:.4f} TFLOP/s")
    if args.peak_tflops:
        print(f"MFU (model only / end to end):          {flops * model_rate / 1e12 / args.peak_tflops:10.2%} / "
              f"{flops * e2e_rate / 1e12 / args.peak_tflops:.2%} of {args.peak_tflops:g} TFLOP/s")
    workdir.cleanup()


if __name__ == "__main__":
    main()
