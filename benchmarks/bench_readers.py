"""How long the labelled-dataset readers take on large layouts (label parsing + dataset build).

    PYTHONPATH=$PWD python benchmarks/bench_readers.py --videos 100 --frames 1000 --fer-rows 5000

Writes an Aff-Wild2-style tree (empty frame files: readers only list them; images decode
lazily later), a CSV over the same files and a FER2013 CSV into a temporary folder, then
times `read_affwild2_mtl` (per-task and combined layouts), `read_table` and `read_fer2013`.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from cer_hf.data.readers import affwild2
from cer_hf.data.readers.fer2013 import read_fer2013
from cer_hf.data.readers.files import read_table

AU_HEADER = ",".join(affwild2.AU_NAMES)
EXPR_HEADER = ",".join(affwild2.AFFWILD2_EXPR_LABELS)


def write_tree(root: Path, videos: int, frames: int, rng: random.Random) -> None:
    for task, folder in (("EXPR", "EXPR_Recognition_Challenge"), ("AU", "AU_Detection_Challenge"),
                         ("VA", "VA_Estimation_Challenge")):
        (root / folder / "Train_Set").mkdir(parents=True)
    combined = ["image,valence,arousal,expression,aus"]
    table = ["file,label"]
    for v in range(videos):
        video = f"video_{v:04d}"
        frame_dir = root / "cropped_aligned" / video
        frame_dir.mkdir(parents=True)
        expr, aus, va = [EXPR_HEADER], [AU_HEADER], ["valence,arousal"]
        for k in range(frames):
            (frame_dir / affwild2.image_name(k)).touch()
            code = rng.randrange(-1, 8)
            au = ",".join(str(rng.randrange(2)) for _ in affwild2.AU_NAMES)
            pair = f"{rng.uniform(-1, 1):.3f},{rng.uniform(-1, 1):.3f}"
            expr.append(str(code))
            aus.append(au)
            va.append(pair)
            combined.append(f"{video}/{affwild2.image_name(k)},{pair},{code},{au}")
            if code >= 0:
                table.append(f"cropped_aligned/{video}/{affwild2.image_name(k)},{affwild2.AFFWILD2_EXPR_LABELS[code]}")
        (root / "EXPR_Recognition_Challenge" / "Train_Set" / f"{video}.txt").write_text("\n".join(expr) + "\n")
        (root / "AU_Detection_Challenge" / "Train_Set" / f"{video}.txt").write_text("\n".join(aus) + "\n")
        (root / "VA_Estimation_Challenge" / "Train_Set" / f"{video}.txt").write_text("\n".join(va) + "\n")
    (root / "training_set_annotations.txt").write_text("\n".join(combined) + "\n")
    (root / "labels.csv").write_text("\n".join(table) + "\n")


def write_fer(path: Path, rows: int, rng: random.Random) -> None:
    lines = ["emotion,pixels,Usage"]
    for _ in range(rows):
        pixels = " ".join(str(rng.randrange(256)) for _ in range(48 * 48))
        lines.append(f"{rng.randrange(7)},{pixels},Training")
    path.write_text("\n".join(lines) + "\n")


def timed(name: str, function, *args, **kwargs):
    start = time.perf_counter()
    dataset = function(*args, **kwargs)
    seconds = time.perf_counter() - start
    print(f"{name:<28} {len(dataset):>9} rows  {seconds:7.2f} s  {len(dataset) / seconds:>10.0f} rows/s")
    return dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--fer-rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_tree(root, args.videos, args.frames, rng)
        write_fer(root / "fer2013.csv", args.fer_rows, rng)
        print(f"fixtures: {args.videos} videos x {args.frames} frames, {args.fer_rows} FER rows "
              f"({time.perf_counter() - start:.1f} s to write)")
        timed("affwild2-mtl (per-task)", affwild2.read_affwild2_mtl, root, split="train", layout="per-task")
        timed("affwild2-mtl (combined)", affwild2.read_affwild2_mtl, root, split="train", layout="combined")
        timed("affwild2-expr", affwild2.read_affwild2_expr, root, split="train")
        timed("csv (file,label)", read_table, root / "labels.csv")
        timed("fer2013 (PNG encode)", read_fer2013, root / "fer2013.csv")


if __name__ == "__main__":
    main()
