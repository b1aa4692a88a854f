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
    """Turns curriculum items into a model batch: augments each face, mixes synthesized pairs, normalizes, stacks.

    Runs in the DataLoader workers and holds no curriculum state: each item carries its seed,
    kind and stage; augmentation and mixing parameters come from `numpy.random.default_rng(seed)`
    in that order (first face, partner face, then the mix). Augmentation runs batched
    (`TrainAugment.apply`) on every source face BEFORE mixing, so a crop can never cut the pasted
    face out of a CutMix compound. Returns `pixel_values`, `labels` (float multi-hot), and
    `sample_kind` / `curriculum_stage` (ints per row, for logging; the model ignores them).
    """

    mixer: CompoundMixer | None = None
    augment: Callable | None = None
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)
    num_labels: int = len(EMOTION_BASICS)
    augment_stages: tuple[int, ...] | None = None  # None: augment in every stage

    def _augments(self, stage: int) -> bool:
        # stage -1: an evaluation item, never augmented
        return self.augment is not None and stage >= 0 and (self.augment_stages is None or stage in self.augment_stages)

    def __call__(self, items: list[dict]) -> dict:
        faces, targets, mixes, augmented, params = [], [], [], [], []
        for item in items:
            rng = np.random.default_rng(int(item["seed"]))
            augment = self._augments(int(item["stage"]))
            first = len(faces)
            faces.append(item["image"])
            if augment:
                augmented.append(first)
                params.append(self.augment.sample_params(rng))
            if "partner" not in item:
                mixes.append((first, None, None))
                targets.append(item["target"])
                continue
            if self.mixer is None:
                raise ValueError("a synthesized compound sample reached a collator without a mixer")
            second = len(faces)
            faces.append(item["partner"])
            if augment:
                augmented.append(second)
                params.append(self.augment.sample_params(rng))
            height, width = item["image"].shape[-2:]
            mix = self.mixer.sample(rng, height, width)
            first_label, second_label = item["pair"]
            mixes.append((first, second, mix))
            targets.append(self.mixer.target_for(first_label, second_label, mix, (height, width), self.num_labels))
        pixels = torch.stack(faces)
        if len(augmented) == len(faces):
            pixels = self.augment.apply(pixels, params)
        elif augmented:
            rows = torch.tensor(augmented)
            pixels[rows] = self.augment.apply(pixels[rows], params)
        if any(second is not None for _, second, _ in mixes):
            pixels = torch.stack([pixels[first] if second is None else CompoundMixer.apply(pixels[first], pixels[second], mix)
                                  for first, second, mix in mixes])
        mean = torch.tensor(self.image_mean, dtype=pixels.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.image_std, dtype=pixels.dtype).view(1, -1, 1, 1)
        return {
            "pixel_values": pixels.sub_(mean).div_(std),
            "labels": torch.stack(targets).float(),
            "sample_kind": torch.tensor([int(item["kind"]) for item in items]),
            "curriculum_stage": torch.tensor([int(item["stage"]) for item in items]),
        }
