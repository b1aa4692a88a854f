"""The curriculum's stages: epochs per stage and the compound share of each (paper: 5, 5, 3, 3 epochs; 0, 0.2, 0.4, 1).

Two modes:

* `batch` (the paper's description): every batch of B samples holds `share * B` compound samples
  (rounded so that the per-epoch share is exact); share 1.0 means all-compound batches.
* `pool` (what the authors' released code does): stage s trains on all basic data plus a nested
  fraction `share_s` of a fixed compound pool; an epoch draws `samples_per_epoch` samples from that
  union, so the compound share of a batch is `share_s * P / (N_basic + share_s * P)` on average.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODES = ("batch", "pool")


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

