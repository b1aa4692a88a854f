"""What `--torch_compile true` gives the MAE recipe: eager and compiled runs, alternating, same data and steps.

    T="--preset tiny --image-size 112 --patch-size 16 --source-size 128 --images 512 --batch-size 32"
    PYTHONPATH=$PWD python benchmarks/compile_gain.py $T --num-workers 2 --steps 40 --warmup-steps 5 --pairs 3 --bf16
    B="--preset base --image-size 224 --patch-size 16 --source-size 256 --images 256 --batch-size 8"
    PYTHONPATH=$PWD python benchmarks/compile_gain.py $B --num-workers 2 --steps 40 --warmup-steps 5 --pairs 3 --bf16

Each run is `recipes/pretrain_mae.py` exactly as `benchmarks/vs_trainer.py` runs ours (a JPEG image folder,
`--num-workers` persistent workers), in a fresh process, with and without `--torch_compile true`. The
compiling falls in the first `--warmup-steps` window, which is not timed; its cost is printed apart (the
first window's seconds, compiled minus eager). Per run: the steady rate (median window, images/s) and the
mean training loss, which must be the same for both up to rounding: compiling must not change the work. Then
mean ± sd over the runs and the ratio of the means.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_trainer import losses, ours, parse_run_args, run_parser, workdir_with_faces  # noqa: E402


def first_window_seconds(workdir: Path, tag: str, window_images: int) -> float:
    """Seconds the run's first (untimed) logging window took: start-up of the step, and compiling if any."""
    first = json.loads((workdir / f"ours-{tag}" / "metrics.jsonl").read_text().splitlines()[0])
    return window_images / first["images_per_s"]


def main() -> None:
    parser = run_parser(__doc__, steps=40)
    parser.add_argument("--bf16", action="store_true", help="--mixed_precision bf16 on both")
    args = parse_run_args(parser)

    workdir, folder = workdir_with_faces(args, prefix="cer-compile-gain-")
    print(f"{args.preset} {args.image_size} px, batch {args.batch_size}, {args.num_workers} workers, "
          f"{'bf16' if args.bf16 else 'fp32'}, {args.steps} steps ({args.warmup_steps} untimed), "
          f"{args.pairs} alternating pairs", flush=True)
    steady = {"eager": [], "compiled": []}
    first_window = {"eager": [], "compiled": []}
    for pair in range(args.pairs):
        order = ("compiled", "eager") if pair % 2 == 0 else ("eager", "compiled")
        for who in order:
            tag = f"{who}-{pair}"
            _, rate = ours(args, folder, workdir, args.bf16, tag, torch_compile=who == "compiled")
            steady[who].append(rate)
            first_window[who].append(first_window_seconds(workdir, tag, args.warmup_steps * args.batch_size))
            print(f"  pair {pair} {who:8s}: steady {rate:.2f} images/s, first window {first_window[who][-1]:.1f} s, "
                  f"mean loss {losses[tag, 'ours']:.4f}", flush=True)
    mean = {who: statistics.mean(rates) for who, rates in steady.items()}
    sd = {who: statistics.stdev(rates) if len(rates) > 1 else 0.0 for who, rates in steady.items()}
    loss_gap = max(abs(losses[f"eager-{p}", "ours"] - losses[f"compiled-{p}", "ours"]) for p in range(args.pairs))
    print(f"steady images/s: eager {mean['eager']:.2f} ± {sd['eager']:.2f}, compiled {mean['compiled']:.2f} ± "
          f"{sd['compiled']:.2f}: ratio of means {mean['compiled'] / mean['eager']:.2f}")
    print(f"compiling cost (first window, compiled minus eager, median): "
          f"{statistics.median(first_window['compiled']) - statistics.median(first_window['eager']):.1f} s; "
          f"largest gap between a pair's mean losses {loss_gap:.1e}")


if __name__ == "__main__":
    main()
