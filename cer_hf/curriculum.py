"""Curriculum fine-tuning from basic to compound expressions: schedule, dataset, sampler, collator, callback.

The schedule splits training into stages (paper: 5, 5, 3, 3 epochs) with a growing compound share
(0, 0.2, 0.4, 1). What each training sample is follows from `(seed, epoch, position in the epoch)`
alone, with no state shared between processes:

* `CurriculumSampler` (main process) yields one integer token per sample, `epoch * n + position`.
* `CurriculumDataset.plan(token)` decides, from the token only, whether the sample is a basic
  image, a natural compound image or a compound to synthesize from two basics (and which ones);
  `__getitem__` loads the images. DataLoader workers, ranks and a run resumed in the middle of a
  stage therefore all agree on the stage and on every batch's composition.
* `CurriculumCollator` (in the workers) mixes synthesized pairs (`CompoundMixer`), augments,
  normalizes and stacks, each sample seeded by the seed carried in its item.
* `CurriculumCallback` sets the sampler's epoch, announces stage changes and asks for an
  evaluation at the end of every stage.

Two modes:

* `batch` (the paper's description): every batch of B samples holds `share * B` compound samples
  (rounded so that the per-epoch share is exact); share 1.0 means all-compound batches.
* `pool` (what the authors' released code does): stage s trains on all basic data plus a nested
  fraction `share_s` of a fixed compound pool; an epoch draws `samples_per_epoch` samples from that
  union, so the compound share of a batch is `share_s * P / (N_basic + share_s * P)` on average.

Natural compound images and synthesized ones split the compound samples by `natural_fraction`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from transformers import TrainerCallback

from .mixing import CompoundMixer, compound_pairs
from .image_io import to_rgb
from .taxonomy import EMOTION_BASICS, multi_hot, parse_label

MODES = ("batch", "pool")
BASIC, NATURAL, SYNTHESIZED = 0, 1, 2
# Salts that keep the independent random streams of one (seed, epoch, position) apart.
_SLOTS, _ITEM, _POOL, _ORDER = 0x5107, 0x17E3, 0x9001, 0x0D3E


@dataclass
class CurriculumSchedule:
    """Stages of the curriculum: epochs per stage and the compound share of each stage.

    Raises `ValueError` naming the option (`--stage_epochs`, `--compound_shares`,
    `--curriculum_mode`) before any training starts when the schedule is not valid.
    """

    stage_epochs: list[int] = field(default_factory=lambda: [5, 5, 3, 3])
    compound_shares: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 1.0])
    mode: str = "batch"

    def __post_init__(self):
        epochs, shares = list(self.stage_epochs or []), list(self.compound_shares or [])
        if not epochs:
            raise ValueError("--stage_epochs is empty: give the number of epochs of each curriculum stage")
        if len(epochs) != len(shares):
            raise ValueError(
                f"--stage_epochs has {len(epochs)} stages {epochs} but --compound_shares has "
                f"{len(shares)} {shares}; give one compound share per stage"
            )
        for epoch in epochs:
            if isinstance(epoch, bool) or not float(epoch).is_integer() or epoch <= 0:
                raise ValueError(f"--stage_epochs must be positive whole numbers, got {epochs}")
        for share in shares:
            if not (isinstance(share, (int, float)) and 0.0 <= share <= 1.0):
                raise ValueError(f"--compound_shares must lie in [0, 1], got {shares}")
        if self.mode not in MODES:
            raise ValueError(f"--curriculum_mode must be one of {MODES}, got {self.mode!r}")
        self.stage_epochs = [int(e) for e in epochs]
        self.compound_shares = [float(s) for s in shares]

    @property
    def num_epochs(self) -> int:
        """Total epochs over all stages."""
        return sum(self.stage_epochs)

    @property
    def num_stages(self) -> int:
        return len(self.stage_epochs)

    def stage_of_epoch(self, epoch: int) -> int:
        """0-based stage of a 0-based epoch (epochs past the end stay in the last stage)."""
        boundary = 0
        for stage, epochs in enumerate(self.stage_epochs):
            boundary += epochs
            if epoch < boundary:
                return stage
        return self.num_stages - 1

    def share_of_epoch(self, epoch: int) -> float:
        """The compound share of the stage that `epoch` belongs to."""
        return self.compound_shares[self.stage_of_epoch(epoch)]

    def is_last_epoch_of_stage(self, epoch: int) -> bool:
        return epoch + 1 in np.cumsum(self.stage_epochs).tolist()

    def scaled(self, factor: float) -> "CurriculumSchedule":
        """The same stages with epochs multiplied by `factor` (at least one epoch each)."""
        epochs = [max(1, round(e * factor)) for e in self.stage_epochs]
        return CurriculumSchedule(epochs, list(self.compound_shares), self.mode)


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


def _label_index(labels: list[str], label_space: tuple[str, ...]) -> list[torch.Tensor]:
    return [torch.tensor(multi_hot(label, label_space)) for label in labels]


def image_to_uint8(image, image_size: int) -> torch.Tensor:
    """A PIL image as a `(3, S, S)` uint8 tensor, resized (bilinear) to `image_size`."""
    from PIL import Image

    image = to_rgb(image)
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def image_to_tensor(image, image_size: int) -> torch.Tensor:
    """A PIL image as a `(3, S, S)` float tensor in [0, 1], resized (bilinear) to `image_size`."""
    return image_to_uint8(image, image_size).float().div_(255.0)


class ImageStore:
    """Random access to the resized images of a rows dataset, decoded once into memory when small.

    `cache="auto"` keeps a uint8 copy when it needs less than `max_cache_bytes` (forked
    DataLoader workers share it copy-on-write); otherwise each access decodes the row.
    """

    def __init__(self, rows, image_size: int, cache: str | bool = "auto", max_cache_bytes: int = 1 << 30):
        self.rows, self.image_size = rows, image_size
        if cache == "auto":
            cache = len(rows) * 3 * image_size * image_size <= max_cache_bytes
        self.cache = None
        if cache and len(rows):
            self.cache = torch.stack([image_to_uint8(image, image_size) for image in rows["image"]])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[index].float().div_(255.0)
        return image_to_tensor(self.rows[index]["image"], self.image_size)


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
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if len(basic) == 0:
            raise ValueError("the basic-expression training data is empty")
        self.schedule, self.batch_size, self.image_size, self.seed = schedule, batch_size, image_size, seed
        self.label_space = tuple(label_space)
        self.basic = basic.select_columns(["image", "label"]) if hasattr(basic, "select_columns") else basic
        self.basic_labels = [parse_label(label) for label in self.basic["label"]]
        self.basic_targets = _label_index(self.basic_labels, self.label_space)
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


class LabelledImageDataset(Dataset):
    """Evaluation samples: rows with `image` and `label` as collator items (multi-hot targets, no mixing)."""

    def __init__(self, rows, *, image_size: int, label_space: tuple[str, ...] = EMOTION_BASICS,
                 cache_images: str | bool = "auto"):
        self.rows = rows.select_columns(["image", "label"]) if hasattr(rows, "select_columns") else rows
        self.images = ImageStore(self.rows, image_size, cache_images)
        self.labels = [parse_label(label) for label in self.rows["label"]]
        self.targets = _label_index(self.labels, tuple(label_space))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        kind = NATURAL if self.targets[index].sum() > 1 else BASIC
        return {"image": image, "target": self.targets[index], "kind": kind, "stage": -1, "seed": index}


class CurriculumSampler(Sampler[int]):
    """Yields the tokens `epoch * n + position` of one epoch, in order; `set_epoch` picks the epoch.

    All randomness lives in `CurriculumDataset.plan`, so this sampler carries only the epoch.
    The Trainer (and `CurriculumCallback`) call `set_epoch` before each epoch's iterator is built.
    """

    def __init__(self, samples_per_epoch: int):
        self.samples_per_epoch = samples_per_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __iter__(self):
        start = self.epoch * self.samples_per_epoch
        return iter(range(start, start + self.samples_per_epoch))


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


class CurriculumCallback(TrainerCallback):
    """Moves the curriculum: sets the sampler's epoch, reports stage changes, evaluates at stage ends.

    The stage itself is derived from the epoch inside every worker (see `CurriculumDataset.plan`);
    this callback only keeps the main process's sampler and the logs in step with it.
    """

    def __init__(self, schedule: CurriculumSchedule, sampler: CurriculumSampler | None = None,
                 evaluate_each_stage: bool = True):
        self.schedule, self.sampler, self.evaluate_each_stage = schedule, sampler, evaluate_each_stage
        self.current_stage: int | None = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = int(math.floor((state.epoch or 0.0) + 1e-6))
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        stage = self.schedule.stage_of_epoch(epoch)
        if stage != self.current_stage:
            self.current_stage = stage
            if state.is_world_process_zero:
                print(
                    f"[curriculum] epoch {epoch}: stage {stage + 1}/{self.schedule.num_stages}, "
                    f"compound share {self.schedule.compound_shares[stage]:g} ({self.schedule.mode} mode)",
                    flush=True,
                )
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch = int(round(state.epoch or 0.0)) - 1
        if self.evaluate_each_stage and self.schedule.is_last_epoch_of_stage(epoch):
            control.should_evaluate = True
        return control
