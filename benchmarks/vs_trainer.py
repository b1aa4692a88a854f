"""Our MAE recipe against a plain `transformers.Trainer` MAE run, same model, data, batch, workers and steps.

    PYTHONPATH=$PWD python benchmarks/vs_trainer.py --preset micro --image-size 32 --patch-size 8 --pairs 3
    PYTHONPATH=$PWD python benchmarks/vs_trainer.py --preset base --image-size 224 --batch-size 256 \
        --num-workers 14 --steps 60 --images 4096 --source-size 256            # on a GPU

Writes `--images` synthetic faces as JPEG files into an image folder, then runs, alternating, in fresh
processes: `recipes/pretrain_mae.py --sources imagefolder:DIR` and `benchmarks/trainer_mae_baseline.py`
(`load_dataset("imagefolder")` + `set_transform` + the default `ViTMAEForPreTraining` + `Trainer`, written as
a user would). Both build the same `ViTMAEConfig` (`cer_hf.presets.mae_config`). Each run's steady-state
images/s excludes its first `--warmup-steps` steps (start-up, worker launch, first compilations).

Ours is given the Trainer's optimisation (peak lr 1.5e-4, beta2 0.999, gradient clipping at 1) and no crop, and
each run's mean training loss is printed beside its speed: the speed must not come from doing less work. (The
inputs still differ in small ways: our bicubic resize, flip and ImageNet mean/std against the image processor's
bilinear resize and 0.5/0.5; and ours starts from the paper's sin-cos position tables where the plain model keeps
transformers' zeros. So the two losses sit at different levels; the FLOP count below is the same-work check.)

First it prints what makes the comparison fair or not: both models' trainable parameters and FLOPs of one
forward + backward (`torch.utils.flop_counter`, same batch and mask noise), the CPU time each side needs to
prepare a batch on one thread (as a loader worker), and how many pass boundaries fall in the timed span (the
Trainer restarts its loader workers at each one, ours keeps them alive).

Two comparisons, each over `--pairs` pairs: the medians, their ratio ours / Trainer and the median of the
per-pair ratios (the steadier figure when the machine's load drifts between pairs), each over the whole timed
span (every stall counted) and for the median window of `--warmup-steps` steps (the steady step alone):
  equal     the same precision (bf16 on a GPU, fp32 on a CPU unless `--bf16`) and the same workers on both;
  defaults  ours as recommended (precision as above, `--num-workers` persistent workers, and with `--compile`
            `--torch_compile true`) against the Trainer's plain defaults (fp32, `dataloader_num_workers=0`).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from cer_hf.data.synthetic import synthetic_sample  # noqa: E402
from cer_hf.data.transforms import MAETrainTransform, normalize_pixels  # noqa: E402
from cer_hf.image_io import normalization  # noqa: E402
from cer_hf.modeling.mae import build_mae_for_pretraining  # noqa: E402
from cer_hf.presets import DECODER_FIELDS, ENCODER_PRESETS, mae_config  # noqa: E402


def write_faces(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rendered = [synthetic_sample(i, image_size=size)["image"] for i in range(min(count, 64))]
    for index in range(count):
        rendered[index % len(rendered)].rotate(index // len(rendered)).save(folder / f"{index:05d}.jpg", quality=90)


losses: dict[tuple[str, str], float] = {}  # (run tag, who) -> mean training loss over the run


def run(command: list[str], workdir: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_DATASETS_CACHE=str(workdir / "hf-cache"))
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")


def ours(args, folder: Path, workdir: Path, bf16: bool, tag: str, torch_compile: bool = False) -> tuple[float, float]:
    out = workdir / f"ours-{tag}"
    run([sys.executable, str(ROOT / "recipes" / "pretrain_mae.py"), "--output_dir", str(out), "--report_to", "none",
         "--model_preset", args.preset, "--image_size", str(args.image_size), "--patch_size", str(args.patch_size),
         "--sources", f"imagefolder:{folder}", "--shuffle_buffer", str(args.shuffle_buffer),
         "--per_device_batch_size", str(args.batch_size), "--num_workers", str(args.num_workers),
         "--max_steps", str(args.steps), "--warmup_steps", "0", "--logging_steps", str(args.warmup_steps),
         # the Trainer's optimisation and input: peak lr 1.5e-4 (ours scales base lr x batch / 256), Adam's beta2,
         # gradient clipping at 1, no crop
         "--base_learning_rate", str(1.5e-4 * 256 / args.batch_size), "--adam_beta2", "0.999",
         "--max_grad_norm", "1.0", "--crop_scale_min", "1.0",
         "--save_steps", str(10 * args.steps), "--mixed_precision", "bf16" if bf16 else "no",
         "--torch_compile", str(torch_compile).lower()], workdir)
    windows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [w["images_per_s"] for w in windows[1:]]  # equal windows after the first (warm-up) one
    losses[tag, "ours"] = statistics.mean(w["loss"] for w in windows)  # equal windows: the run's mean loss
    drop_weights(out)
    return span_and_steady(rates)


def drop_weights(run_dir: Path) -> None:
    """Delete a finished run's weights and checkpoints (about 1.3 GB at the base size); its logs stay."""
    for checkpoint in run_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    (run_dir / "model.safetensors").unlink(missing_ok=True)


def span_and_steady(window_rates: list[float]) -> tuple[float, float]:
    """(images/s over the whole timed span, images/s of the median window) from equal-length windows' rates.
    The span counts every stall, e.g. at a pass boundary; the median window is the steady step."""
    return len(window_rates) / sum(1 / r for r in window_rates), statistics.median(window_rates)


def trainer(args, folder: Path, workdir: Path, bf16: bool, workers: int, tag: str) -> tuple[float, float]:
    config = mae_config(args.preset, image_size=args.image_size, patch_size=args.patch_size)
    sizes = [item for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                               *DECODER_FIELDS) for item in (f"--{name}", str(getattr(config, name)))]
    out = workdir / f"trainer-{tag}.json"
    run([sys.executable, str(ROOT / "benchmarks" / "trainer_mae_baseline.py"), "--data_dir", str(folder),
         "--image_size", str(args.image_size), "--patch_size", str(args.patch_size), *sizes,
         "--batch_size", str(args.batch_size), "--num_workers", str(workers), "--max_steps", str(args.steps),
         "--warmup_steps", str(args.warmup_steps), "--output", str(out), *(["--bf16"] if bf16 else []),
         *([] if torch.cuda.is_available() else ["--use_cpu"])], workdir)
    result = json.loads(out.read_text())
    losses[tag, "trainer"] = result["mean_loss"]
    return span_and_steady(result["window_images_per_s"])


def work_per_step(args) -> tuple[tuple[int, float], tuple[int, float]]:
    """(trainable parameters, FLOPs of one forward + backward) of our model and of the Trainer script's, counted by
    `torch.utils.flop_counter` on the same batch and mask noise: the evidence that both sides do the same work."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    config = mae_config(args.preset, image_size=args.image_size, patch_size=args.patch_size)
    plain = ViTMAEConfig(image_size=args.image_size, patch_size=args.patch_size, norm_pix_loss=True,
                         **{name: getattr(config, name) for name in (
                             "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                             *DECODER_FIELDS)})  # as trainer_mae_baseline.py builds it
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=generator)
    noise = torch.rand(args.batch_size, (args.image_size // args.patch_size) ** 2, generator=generator)
    counts = []
    for model in (build_mae_for_pretraining(config), ViTMAEForPreTraining(plain)):
        counter = FlopCounterMode(display=False)
        with counter:
            model(pixel_values=pixels, noise=noise).loss.backward()
        counts.append((sum(p.numel() for p in model.parameters() if p.requires_grad), counter.get_total_flops()))
    return counts[0], counts[1]


def data_cost(args, folder: Path, workdir: Path, repeats: int = 5) -> tuple[float, float]:
    """CPU seconds to prepare one batch on one thread, as a loader worker does: ours (JPEG file → decode, resize,
    flip → uint8; then the float normalisation the recipe does in the main process) against the Trainer script's
    (`dataset[i:j]` through its `set_transform`: imagefolder row → PIL → ViT image processor → float tensor).
    On a machine with few cores the workers share them with the training step, so this cost slows the step."""
    from datasets import load_dataset

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from trainer_mae_baseline import image_transform

    files = sorted(folder.glob("*.jpg"))[: args.batch_size]
    transform = MAETrainTransform(args.image_size, scale=(1.0, 1.0))  # no crop, as ours is run here
    mean, std = normalization("imagenet")
    dataset = load_dataset("imagefolder", data_dir=str(folder), split="train", cache_dir=str(workdir / "hf-cache"))
    dataset.set_transform(image_transform(args.image_size))

    def ours_batch():
        pixels = torch.stack([transform(path.read_bytes(), key=path.name)[0] for path in files])
        return normalize_pixels(pixels, mean, std)

    def trainer_batch():
        return dataset[: args.batch_size]["pixel_values"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        seconds = []
        for prepare in (ours_batch, trainer_batch):
            prepare()  # untimed: first file reads and imports
            times = []
            for _ in range(repeats):
                start = time.process_time()
                prepare()
                times.append(time.process_time() - start)
            seconds.append(statistics.median(times))
    finally:
        torch.set_num_threads(threads)
    return seconds[0], seconds[1]


def run_parser(description: str, steps: int) -> argparse.ArgumentParser:
    """The options of a side-by-side run of the recipe (model, JPEG folder, batch, workers, steps, pairs)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="micro", choices=list(ENCODER_PRESETS))
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--source-size", type=int, default=40, help="side of the stored JPEG faces")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--shuffle-buffer", type=int, default=256)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed first steps (also ours' log window)")
    parser.add_argument("--pairs", type=int, default=3)
    return parser


def workdir_with_faces(args, prefix: str) -> tuple[Path, Path]:
    """A temporary work dir (removed at exit) holding the `--images` JPEG faces in its `faces/` folder."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, workdir, True)
    write_faces(workdir / "faces", args.images, args.source_size)
    return workdir, workdir / "faces"


def parse_run_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, and refuse a step count the log windows do not divide."""
    args = parser.parse_args()
    if args.steps % args.warmup_steps or args.steps < 2 * args.warmup_steps:
        raise SystemExit("--steps must be a multiple of --warmup-steps and at least twice it")
    return args


def main() -> None:
    parser = run_parser(__doc__, steps=50)
    parser.add_argument("--bf16", action="store_true", help="bf16 also on a CPU (default: bf16 only on a GPU)")
    parser.add_argument("--modes", nargs="+", default=["equal", "defaults"], choices=["equal", "defaults"])
    parser.add_argument("--compile", action="store_true",
                        help="defaults mode: ours also with --torch_compile true (recommended at base size and up on "
                             "a CPU; the compiling falls in the first, untimed window)")
    args = parse_run_args(parser)
    bf16 = args.bf16 or torch.cuda.is_available()

    workdir, folder = workdir_with_faces(args, prefix="cer-vs-trainer-")
    print(f"{args.preset} {args.image_size} px, {args.images} JPEG faces of {args.source_size} px, batch "
          f"{args.batch_size}, {args.num_workers} workers, {args.steps} steps ({args.warmup_steps} untimed), "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}, {args.pairs} alternating pairs", flush=True)
    (ours_params, ours_flops), (trainer_params, trainer_flops) = work_per_step(args)
    print(f"work per step (forward + backward, torch.utils.flop_counter): ours {ours_params:,} trainable parameters, "
          f"{ours_flops / 1e9:.2f} GFLOP; Trainer {trainer_params:,}, {trainer_flops / 1e9:.2f} GFLOP", flush=True)
    ours_data, trainer_data = data_cost(args, folder, workdir)
    print(f"data preparation, CPU time per batch of {args.batch_size} on one thread: ours {ours_data * 1000:.0f} ms, "
          f"Trainer's set_transform {trainer_data * 1000:.0f} ms ({trainer_data / ours_data:.1f}x)", flush=True)
    steps_per_pass = -(-args.images // args.batch_size)
    boundaries = sum(1 for step in range(args.warmup_steps, args.steps) if step % steps_per_pass == 0)
    print(f"one pass over the folder = {steps_per_pass} steps: {boundaries} pass boundaries in the timed span "
          "(the Trainer restarts its loader workers at each; ours keeps them)", flush=True)
    for mode in args.modes:
        trainer_bf16, trainer_workers = (bf16, args.num_workers) if mode == "equal" else (False, 0)
        rates = {"ours": [], "trainer": []}  # (span, steady) images/s per run
        for pair in range(args.pairs):
            order = ("ours", "trainer") if pair % 2 == 0 else ("trainer", "ours")
            for who in order:
                tag = f"{mode}-{pair}"
                rate = (ours(args, folder, workdir, bf16, tag, torch_compile=args.compile and mode == "defaults")
                        if who == "ours"
                        else trainer(args, folder, workdir, trainer_bf16, trainer_workers, tag))
                rates[who].append(rate)
            (ours_span, ours_steady), (trainer_span, trainer_steady) = rates["ours"][-1], rates["trainer"][-1]
            print(f"  {mode} pair {pair}: ours {ours_span:.1f} (steady {ours_steady:.1f}), Trainer {trainer_span:.1f} "
                  f"(steady {trainer_steady:.1f}) images/s; mean loss ours {losses[tag, 'ours']:.4f}, "
                  f"Trainer {losses[tag, 'trainer']:.4f}", flush=True)
        trainer_setting = (f"{'bf16' if trainer_bf16 else 'fp32'}, {trainer_workers} workers")
        compiled = ", compiled" if args.compile and mode == "defaults" else ""
        print(f"{mode}: ours ({'bf16' if bf16 else 'fp32'}, {args.num_workers} persistent workers{compiled}) "
              f"vs Trainer ({trainer_setting})")
        for index, what in enumerate(("whole timed span", f"steady, median {args.warmup_steps}-step window")):
            a = statistics.median(r[index] for r in rates["ours"])
            b = statistics.median(r[index] for r in rates["trainer"])
            pair_ratio = statistics.median(x[index] / y[index] for x, y in zip(rates["ours"], rates["trainer"]))
            print(f"  {what:32s} {a:.1f} vs {b:.1f} images/s: ratio of medians {a / b:.2f}, median of the "
                  f"per-pair ratios {pair_ratio:.2f}")


if __name__ == "__main__":
    main()
