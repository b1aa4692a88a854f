"""The curriculum's collator: turns planned samples into a model batch (mix, augment, normalise, stack)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from cer_hf.curriculum.mixing import CompoundMixer
from cer_hf.taxonomy import EMOTION_BASICS


@dataclass
class CurriculumCollator:
    """Turns curriculum items into a model batch: mixes synthesized pairs, augments, normalizes, stacks.

    Runs in the DataLoader workers and holds no curriculum state: each item carries its seed,
    kind and stage; mixing and augmentation parameters come from `numpy.random.default_rng(seed)`
    and augmentation runs batched (`TrainAugment.apply`). Returns `pixel_values`, `labels` (float multi-hot), and `sample_kind` /
    `curriculum_stage` (ints per row, for logging; the model ignores them).
    """

    mixer: CompoundMixer | None = None
    augment: Callable | None = None
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)
    num_labels: int = len(EMOTION_BASICS)
    augment_stages: tuple[int, ...] | None = None  # None: augment in every stage

    def __call__(self, items: list[dict]) -> dict:
        images, targets, augmented, params = [], [], [], []
        for row, item in enumerate(items):
            rng = np.random.default_rng(int(item["seed"]))
            image = item["image"]
            if "partner" in item:
                if self.mixer is None:
                    raise ValueError("a synthesized compound sample reached a collator without a mixer")
                first, second = item["pair"]
                image, target = self.mixer(image, item["partner"], first, second, self.num_labels, rng)
            else:
                target = item["target"]
            stage = int(item["stage"])  # -1: an evaluation item, never augmented
            if self.augment is not None and stage >= 0 and (self.augment_stages is None or stage in self.augment_stages):
                augmented.append(row)
                params.append(self.augment.sample_params(rng))
            images.append(image)
            targets.append(target)
        pixels = torch.stack(images)
        if len(augmented) == len(items):
            pixels = self.augment.apply(pixels, params)
        elif augmented:
            rows = torch.tensor(augmented)
            pixels[rows] = self.augment.apply(pixels[rows], params)
        mean = torch.tensor(self.image_mean, dtype=pixels.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.image_std, dtype=pixels.dtype).view(1, -1, 1, 1)
        return {
            "pixel_values": pixels.sub_(mean).div_(std),
            "labels": torch.stack(targets).float(),
            "sample_kind": torch.tensor([int(item["kind"]) for item in items]),
            "curriculum_stage": torch.tensor([int(item["stage"]) for item in items]),
        }

