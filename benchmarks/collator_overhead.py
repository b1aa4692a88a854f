"""Cost of the curriculum data path against a plain basic-batch pipeline, and against a model step.

Three pipelines, same images, batch size, image size and augmentation, end to end through a
`torch.utils.data.DataLoader`:

* plain: basic rows -> stack + augment + normalize (what fine-tuning without a curriculum needs);
* curriculum, share 0: `CurriculumDataset` + `CurriculumSampler` + `CurriculumCollator` in stage 1;
* curriculum, share 1: the same at the stage-4 share (every sample a CutMix/Mixup of two basics).

and one training step (forward + backward + AdamW) of a ViT of `--preset` at `--image-size`.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/collator_overhead.py --image-size 112 --batch-size 32

Prints ms per batch and the overheads: (curriculum - plain) / plain and / model step.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from cer_hf.curriculum.augment import TrainAugment
from cer_hf.modeling.convert import compound_config
from cer_hf.curriculum.collate import CurriculumCollator
from cer_hf.curriculum.dataset import CurriculumDataset, CurriculumSchedule
from cer_hf.curriculum.trainer import CurriculumSampler
from cer_hf.data.labelled import LabelledImageDataset
from cer_hf.data.synthetic import synthetic_dataset
from cer_hf.curriculum.mixing import CompoundMixer
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
from cer_hf.presets import ENCODER_PRESETS


class PlainCollator:
    """Stack basic samples, augment (same `TrainAugment`), normalize: the no-curriculum baseline."""

    def __init__(self, augment):
        self.augment = augment

    def __call__(self, items):
        import numpy as np

        pixels = torch.stack([item["image"] for item in items])
        params = [self.augment.sample_params(np.random.default_rng(int(item["seed"]))) for item in items]
        pixels = self.augment.apply(pixels, params)
        return {"pixel_values": pixels.sub_(0.5).div_(0.25), "labels": torch.stack([item["target"] for item in items])}


def time_loader(loader, batches: int, epoch: int = 0) -> float:
    """Mean seconds per batch over `batches` batches (after one warm-up batch)."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, CurriculumSampler):
        sampler.set_epoch(epoch)
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return (time.perf_counter() - start) / batches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rows", type=int, default=600, help="synthetic basic rows")
    parser.add_argument("--batches", type=int, default=15, help="timed batches per pipeline")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--preset", default="tiny", help="model preset of the step timing")
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed model steps")
    parser.add_argument("--repeats", type=int, default=3, help="take the best of this many timings")
    args = parser.parse_args(argv)

    rows = synthetic_dataset(args.rows, kind="basic", image_size=args.image_size, seed=0)
    augment = TrainAugment()
    schedule = CurriculumSchedule([1, 1], [0.0, 1.0])  # epoch 0: share 0; epoch 1: the stage-4 share
    curriculum = CurriculumDataset(rows, schedule, batch_size=args.batch_size, image_size=args.image_size,
                                   samples_per_epoch=args.batch_size * (args.batches + 1))
    plain = LabelledImageDataset(rows, image_size=args.image_size)
    loader_options = dict(batch_size=args.batch_size, num_workers=args.workers)
    curriculum_loader = DataLoader(curriculum, sampler=CurriculumSampler(len(curriculum)),
                                   collate_fn=CurriculumCollator(mixer=CompoundMixer(), augment=augment),
                                   **loader_options)
    plain_loader = DataLoader(plain, shuffle=True, collate_fn=PlainCollator(augment), **loader_options)

    # Data pipelines (best of `repeats`: the machine is shared).
    best = lambda fn: min(fn() for _ in range(args.repeats))  # noqa: E731
    t_plain = best(lambda: time_loader(plain_loader, args.batches))
    t_share0 = best(lambda: time_loader(curriculum_loader, args.batches, epoch=0))
    t_share1 = best(lambda: time_loader(curriculum_loader, args.batches, epoch=1))

    # One training step of the model.
    config = compound_config("abaw7", image_size=args.image_size, patch_size=args.patch_size,
                             **ENCODER_PRESETS[args.preset])
    model = ViTForCompoundExpression(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = next(iter(curriculum_loader))

    def step_time():
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return (time.perf_counter() - start) / args.steps

    step_time()  # warm-up
    t_step = best(step_time)

    print(f"image {args.image_size}px, batch {args.batch_size}, workers {args.workers}, "
          f"torch threads {torch.get_num_threads()}")
    print("| pipeline | ms / batch | vs plain | vs model step |")
    print("| --- | --- | --- | --- |")
    print(f"| plain basic batches | {t_plain * 1e3:.1f} | – | {t_plain / t_step:.1%} |")
    for name, value in (("curriculum, share 0", t_share0), ("curriculum, share 1 (all mixed)", t_share1)):
        print(f"| {name} | {value * 1e3:.1f} | {(value - t_plain) / t_plain:+.1%} | "
              f"{(value - t_plain) / t_step:+.2%} |")
    print(f"| model step ({args.preset}, fwd+bwd+AdamW) | {t_step * 1e3:.1f} | | |")


if __name__ == "__main__":
    main()
