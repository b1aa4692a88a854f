"""The curriculum's training samples: which image (or pair to mix) each sample slot holds.

What each training sample is follows from `(seed, epoch, position in the epoch)` alone, with no
state shared between processes:

* `CurriculumSampler` (main process, `cer_hf.curriculum.trainer`) yields one integer token per
  sample, `epoch * n + position`.
* `CurriculumDataset.plan(token)` decides, from the token only, whether the sample is a basic
  image, a natural compound image or a compound to synthesize from two basics (and which ones);
  `__getitem__` loads the images. DataLoader workers, ranks and a run resumed in the middle of a
  stage therefore all agree on the stage and on every batch's composition.
* `CurriculumCollator` (`cer_hf.curriculum.collate`, in the workers) mixes synthesized pairs,
  augments, normalizes and stacks, each sample seeded by the seed carried in its item.

Natural compound images and synthesized ones split the compound samples by `natural_fraction`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from cer_hf.curriculum.mixing import compound_pairs
from cer_hf.curriculum.schedule import CurriculumSchedule
from cer_hf.data.labelled import BASIC, NATURAL, SYNTHESIZED, ImageStore, _label_index
from cer_hf.taxonomy import EMOTION_BASICS, multi_hot, parse_label

# Salts that keep the independent random streams of one (seed, epoch, position) apart.
_SLOTS, _ITEM, _POOL, _ORDER = 0x5107, 0x17E3, 0x9001, 0x0D3E


@dataclass(frozen=True)
class SamplePlan:
    """What training sample a token stands for.

    kind: BASIC, NATURAL or SYNTHESIZED; index: the row of the basic or natural dataset (for
    SYNTHESIZED the first basic's row); partner: the second basic's row (SYNTHESIZED only);
    stage: 0-based curriculum stage; seed: the seed of this sample's mixing and augmentation.
    """

    kind: int
    index: int
    partner: int
    stage: int
    seed: int


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in keys])


class CurriculumDataset(Dataset):
    """Training samples of the curriculum, addressed by the tokens of `CurriculumSampler`.

    Args:
        basic: rows with `image` and a basic `label` (already filtered to `label_space`).
        schedule: the `CurriculumSchedule`.
        batch_size: per-device batch size (the unit of the `batch` mode's composition).
        natural: optional rows with a compound `label` of `compound_set_name`.
        natural_fraction: share of compound samples taken from `natural` (the rest are
            synthesized); defaults to 0.5 when natural data is given, else 0.
        image_size: side length of the model input.
        label_space: the basic labels of the model's outputs.
        compound_set_name: which compounds synthesis produces (`abaw7`, `rafdb`).
        any_pair: synthesize from any two different basics, not only valid compounds.
        samples_per_epoch: samples per epoch, rounded up to whole batches (default: the basic rows;
            in pool mode the basic rows plus the last stage's compound pool, smaller pools cycle).
        compound_pool_size: size of the `pool` mode's compound pool (default: as many as basic rows).
        seed: the seed of every random choice.
        cache_images: keep the resized images in memory ("auto": when under 1 GiB).
        negative_labels: labels of `basic` rows trained as the all-zero target (e.g. Neutral: none of
            the basics is present); they are never a constituent of a synthesized compound.
    """

    def __init__(
        self,
        basic,
        schedule: CurriculumSchedule,
        *,
        batch_size: int,
        natural=None,
        natural_fraction: float | None = None,
        image_size: int = 224,
        label_space: tuple[str, ...] = EMOTION_BASICS,
        compound_set_name: str = "abaw7",
        any_pair: bool = False,
        samples_per_epoch: int | None = None,
        compound_pool_size: int | None = None,
        seed: int = 0,
        cache_images: str | bool = "auto",
        negative_labels: tuple[str, ...] = (),
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if len(basic) == 0:
            raise ValueError("the basic-expression training data is empty")
        self.schedule, self.batch_size, self.image_size, self.seed = schedule, batch_size, image_size, seed
        self.label_space = tuple(label_space)
        self.basic = basic.select_columns(["image", "label"]) if hasattr(basic, "select_columns") else basic
        self.basic_labels = [parse_label(label) for label in self.basic["label"]]
        negatives = {parse_label(label) for label in negative_labels}
        self.basic_targets = [torch.zeros(len(self.label_space)) if label in negatives
                              else torch.tensor(multi_hot(label, self.label_space)) for label in self.basic_labels]
        self.natural = None
        self.natural_targets: list[torch.Tensor] = []
        if natural is not None and len(natural):
            self.natural = natural.select_columns(["image", "label"]) if hasattr(natural, "select_columns") else natural
            self.natural_targets = _label_index([parse_label(x) for x in self.natural["label"]], self.label_space)
        if natural_fraction is None:
            natural_fraction = 0.5 if self.natural is not None else 0.0
        if not 0.0 <= natural_fraction <= 1.0:
            raise ValueError(f"--natural_fraction must be in [0, 1], got {natural_fraction}")
        if natural_fraction > 0 and self.natural is None:
            raise ValueError(f"--natural_fraction is {natural_fraction} but no natural compound data was given")
        self.natural_fraction = natural_fraction
        # Rows of each basic label, for picking the two constituents of a synthesized compound.
        by_label: dict[int, list[int]] = {}
        for row, label in enumerate(self.basic_labels):
            if label in negatives:
                continue
            by_label.setdefault(self.label_space.index(label), []).append(row)
        self.rows_by_label = {k: np.asarray(v) for k, v in by_label.items()}
        self.pairs = [p for p in compound_pairs(self.label_space, compound_set_name, any_pair)
                      if p[0] in self.rows_by_label and p[1] in self.rows_by_label]
        needs_synthesis = natural_fraction < 1.0 and max(schedule.compound_shares) > 0
        if needs_synthesis and not self.pairs:
            raise ValueError(
                "compound synthesis needs basic images of both constituents of at least one compound; "
                f"the basic data holds only {sorted(self.label_space[k] for k in self.rows_by_label)}"
            )
        self.compound_pool_size = compound_pool_size or len(self.basic)
        if samples_per_epoch is None:  # batch mode: the basic rows; pool mode: the largest stage pool
            samples_per_epoch = len(self.basic)
            if schedule.mode == "pool":
                samples_per_epoch += round(max(schedule.compound_shares) * self.compound_pool_size)
        self.samples_per_epoch = math.ceil(samples_per_epoch / batch_size) * batch_size
        self._permutations: dict[tuple, np.ndarray] = {}
        self.basic_images = ImageStore(self.basic, image_size, cache_images)
        self.natural_images = ImageStore(self.natural, image_size, cache_images) if self.natural is not None else None

    def __len__(self) -> int:
        return self.samples_per_epoch

    # ---- planning: pure functions of the token

    def _permutation(self, key: tuple, size: int) -> np.ndarray:
        """A cached seeded permutation (one per epoch and purpose; tiny compared with the images)."""
        if key not in self._permutations:
            if len(self._permutations) > 8:
                self._permutations.clear()
            self._permutations[key] = _rng(self.seed, *key).permutation(size)
        return self._permutations[key]

    def is_compound_slot(self, epoch: int, position: int) -> bool:
        """Batch mode: whether slot `position` of `epoch` holds a compound sample."""
        share = self.schedule.share_of_epoch(epoch)
        batch, slot = divmod(position, self.batch_size)
        size = self.batch_size
        # Cumulative rounding: the compound count of batch b makes the epoch's share exact.
        count = math.floor((batch + 1) * share * size + 0.5) - math.floor(batch * share * size + 0.5)
        order = self._permutation((_SLOTS, epoch, batch), size)
        return bool(order[slot] < count)

    def _compound_plan(self, rng: np.random.Generator, stage: int, seed: int, natural_pick: int | None) -> SamplePlan:
        if self.natural is not None and rng.random() < self.natural_fraction:
            index = natural_pick if natural_pick is not None else int(rng.integers(len(self.natural)))
            return SamplePlan(NATURAL, index, -1, stage, seed)
        first, second = self.pairs[int(rng.integers(len(self.pairs)))]
        if rng.random() < 0.5:  # which constituent is image a (the stronger one for Mixup)
            first, second = second, first
        index = int(rng.choice(self.rows_by_label[first]))
        partner = int(rng.choice(self.rows_by_label[second]))
        return SamplePlan(SYNTHESIZED, index, partner, stage, seed)

    def plan(self, token: int) -> SamplePlan:
        """What sample `token` (= epoch * len(self) + position) stands for; depends on nothing else."""
        epoch, position = divmod(int(token), self.samples_per_epoch)
        stage = self.schedule.stage_of_epoch(epoch)
        item_rng = _rng(self.seed, _ITEM, epoch, position)
        seed = int(item_rng.integers(2**62))
        n_basic = len(self.basic)
        if self.schedule.mode == "batch":
            if self.is_compound_slot(epoch, position):
                return self._compound_plan(item_rng, stage, seed, None)
            basic_row = int(self._permutation((_ORDER, epoch), n_basic)[position % n_basic])
            return SamplePlan(BASIC, basic_row, -1, stage, seed)
        # pool mode: basic rows + a nested prefix of a fixed compound pool, shuffled per epoch.
        in_pool = round(self.schedule.compound_shares[stage] * self.compound_pool_size)
        order = self._permutation((_ORDER, epoch, in_pool), n_basic + in_pool)
        item = int(order[position % (n_basic + in_pool)])
        if item < n_basic:
            return SamplePlan(BASIC, item, -1, stage, seed)
        pool_item = item - n_basic
        pool_rng = _rng(self.seed, _POOL, pool_item)  # fixed per pool item: the same compound every epoch
        natural_pick = pool_item % len(self.natural) if self.natural is not None else None
        plan = self._compound_plan(pool_rng, stage, seed, natural_pick)
        return plan

    # ---- loading

    def __getitem__(self, token: int) -> dict:
        plan = self.plan(token)
        if plan.kind == BASIC:
            item = {"image": self.basic_images[plan.index], "target": self.basic_targets[plan.index]}
        elif plan.kind == NATURAL:
            item = {"image": self.natural_images[plan.index], "target": self.natural_targets[plan.index]}
        else:
            item = {
                "image": self.basic_images[plan.index],
                "partner": self.basic_images[plan.partner],
                "pair": (int(self.basic_targets[plan.index].argmax()), int(self.basic_targets[plan.partner].argmax())),
            }
        item.update(kind=plan.kind, stage=plan.stage, seed=plan.seed)
        return item


