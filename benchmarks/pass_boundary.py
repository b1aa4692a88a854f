"""The stall at a pass boundary of the MAE pretraining stream: DataLoader workers restarted vs kept alive.

    PYTHONPATH=$PWD python benchmarks/pass_boundary.py --images 256 --batch-size 32 --num-workers 2 --passes 4

Writes `--images` synthetic faces as JPEG files into a temporary image folder (the `imagefolder:` source;
a few passes of it per run, like a small real dataset), builds the recipe's stream (shuffle buffer,
MAE crop + flip in the workers) and its DataLoader, and runs `--passes` passes through
`cer_hf.pretraining.epoch_batches` with a stand-in training step of `--step-ms` milliseconds (sleep), with
`persistent_workers=False` (the recipe before: new workers every pass), `True` (the recipe's default now) and
`True` plus a second loader priming the next pass (`--prime_next_pass true`), alternating for `--rounds` rounds. Per setting it prints the median wait for a batch inside a pass, the
median wait for the first batch of a pass (passes 2+, the boundary), and steps/s over the whole run.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from cer_hf.data.streams import FaceStream, collate_faces, pretraining_stream, single_threaded_worker  # noqa: E402
from cer_hf.data.synthetic import synthetic_sample  # noqa: E402
from cer_hf.data.transforms import MAETrainTransform  # noqa: E402
from cer_hf.pretraining import epoch_batches  # noqa: E402


def write_faces(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rendered = [synthetic_sample(i, image_size=size)["image"] for i in range(min(count, 32))]
    for index in range(count):
        rendered[index % len(rendered)].rotate(index // len(rendered)).save(folder / f"{index:05d}.jpg", quality=90)


def run(folder: Path, args, persistent: bool, primed: bool) -> dict:
    def make_stream():
        return FaceStream(
            pretraining_stream([f"imagefolder:{folder}"], seed=0, shuffle_buffer=args.shuffle_buffer,
                               num_workers=args.num_workers),
            MAETrainTransform(args.image_size, seed=0),
        )

    def make_loader(dataset):
        return torch.utils.data.DataLoader(
            dataset, batch_size=args.batch_size, collate_fn=collate_faces, num_workers=args.num_workers,
            worker_init_fn=single_threaded_worker, prefetch_factor=args.prefetch_factor,
            persistent_workers=persistent,
        )

    batches = epoch_batches(make_stream(), make_loader, next_stream=make_stream() if primed else None)
    waits: list[tuple[int, int, float]] = []
    start = time.perf_counter()
    while True:
        before = time.perf_counter()
        epoch, index, _ = next(batches)
        if epoch >= args.passes:
            break
        waits.append((epoch, index, time.perf_counter() - before))
        time.sleep(args.step_ms / 1000)  # the training step
    elapsed = before - start  # up to the request that reached the pass after the last
    batches.close()
    inside = [w for e, i, w in waits if i > 0]
    boundary = [w for e, i, w in waits if i == 0 and e > 0]
    return {"inside_ms": 1000 * statistics.median(inside), "boundary_ms": 1000 * statistics.median(boundary),
            "steps_per_s": len(waits) / elapsed, "steps": len(waits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--source-size", type=int, default=80, help="side of the stored JPEG faces")
    parser.add_argument("--image-size", type=int, default=64, help="crop size fed to the model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--prefetch-factor", type=int, default=4)
    parser.add_argument("--shuffle-buffer", type=int, default=256)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--step-ms", type=float, default=50.0, help="stand-in training step (sleep)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cer-boundary-"))
    atexit.register(shutil.rmtree, workdir, True)
    folder = workdir / "faces"
    write_faces(folder, args.images, args.source_size)
    print(f"{args.images} JPEG faces ({args.source_size} px) → {args.image_size} px crops, batch {args.batch_size}, "
          f"{args.num_workers} workers, {args.passes} passes, step {args.step_ms:g} ms, torch {torch.__version__}")
    print(f"{'workers':<16s} {'round':>5s} {'in-pass wait ms':>16s} {'boundary wait ms':>17s} {'steps/s':>8s}")
    settings = {"restarted": (False, False), "kept": (True, False), "kept + primed": (True, True)}
    for round_ in range(args.rounds):
        for name, (persistent, primed) in settings.items():
            result = run(folder, args, persistent, primed)
            print(f"{name:<16s} {round_:5d} {result['inside_ms']:16.1f} {result['boundary_ms']:17.1f} "
                  f"{result['steps_per_s']:8.2f}", flush=True)


if __name__ == "__main__":
    main()
