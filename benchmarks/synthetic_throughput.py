"""Throughput of the synthetic face generator: render_face alone and synthetic_stream.

Usage: PYTHONPATH=. python benchmarks/synthetic_throughput.py --image-size 112 --num 2000
Single process; the machine load average is printed because other processes share the CPU.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np

from cer_hf.data.synthetic import expression_aus, render_face, synthetic_stream
from cer_hf.taxonomy import EMOTION_BASICS


def main() -> None:
    """Parse arguments, time both paths and print images/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} (cpus: {os.cpu_count()})")
    prototypes = [expression_aus(label) for label in EMOTION_BASICS]
    start = time.perf_counter()
    for i in range(args.num):
        render_face(prototypes[i % len(prototypes)], image_size=args.image_size,
                    rng=np.random.default_rng([args.seed, i]))
    elapsed = time.perf_counter() - start
    print(f"render_face        {args.image_size}px: {args.num / elapsed:8.1f} images/s")

    stream = synthetic_stream(num_samples=None, image_size=args.image_size, seed=args.seed)
    start = time.perf_counter()
    for row in itertools.islice(stream, args.num):
        row["image"].load()
    elapsed = time.perf_counter() - start
    print(f"synthetic_stream   {args.image_size}px: {args.num / elapsed:8.1f} images/s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
