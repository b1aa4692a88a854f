"""Compound-expression synthesis: CutMix and Mixup of two faces showing different basic expressions.

In the style of timm's `data/mixup.py`, `CompoundMixer` is a small callable with explicit
probabilities: given two aligned face images and their basic labels it returns one mixed image
and its multi-label target.

    mixer = CompoundMixer(mixup_prob=0.5, cutmix_prob=0.5, mixup_weight=0.1)
    image, target = mixer(face_happy, face_surprised, 3, 5, num_labels=6, rng=np.random.default_rng(0))
    # target over the six basics: 1 for Happiness and Surprise ("Happily Surprised")

Mixup weight. The paper (Liu et al., ABAW7, Table 1) sets "the blended weight of the Mixup" to
0.1: a fixed blend coefficient, not a Beta concentration. We read it as the weight of the image
blended in, `x = (1 - w) * x_a + w * x_b`; the pair order is random, so each constituent is the
faint one half of the time. `mixup_weight=None` samples the weight from Beta(alpha, alpha)
instead (the usual Mixup).

CutMix box. `cutmix_mode="random"` is the box of Yun et al. (ICCV 2019, "CutMix"): λ ~ Beta(α, α),
a box of sides W·√(1−λ) and H·√(1−λ) centred at a uniform point and clipped at the border, so
image_b covers about 1−λ of the image (never less than one pixel). "left_right" and "upper_lower"
are the fixed splits of the ABAW7 authors' code.

Pairs. By default only two DIFFERENT basics whose union is a compound of the target set are
paired (`compound_pairs`): the ABAW7 set's 7 pairs, or the authors' 11 RAF-DB pairs with
`compound_set_name="rafdb"`; `any_pair=True` pairs any two different basics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cer_hf.taxonomy import compound_set

CUTMIX_MODES = ("random", "left_right", "upper_lower")
TARGET_MODES = ("union", "proportional")


def compound_pairs(
    label_space: tuple[str, ...] | list[str], compound_set_name: str = "abaw7", any_pair: bool = False
) -> list[tuple[int, int]]:
    """Index pairs `(i, j)`, i < j, of basics in `label_space` that synthesis may mix.

    Only pairs whose union is a compound of `compound_set_name` (both constituents in the label
    space), or, with `any_pair`, every pair of two different basics.
    """
    space = list(label_space)
    if any_pair:
        return [(i, j) for i in range(len(space)) for j in range(i + 1, len(space))]
    pairs = []
    for compound in compound_set(compound_set_name):
        a, b = compound.constituents
        if a in space and b in space:
            i, j = sorted((space.index(a), space.index(b)))
            pairs.append((i, j))
    if not pairs:
        raise ValueError(f"no compound of set {compound_set_name!r} has both constituents in {space}")
    return pairs


def cutmix_box(rng: np.random.Generator, height: int, width: int, alpha: float = 1.0) -> tuple[int, int, int, int]:
    """Yun et al.'s CutMix box `(top, left, box_height, box_width)`: λ ~ Beta(α, α), sides scaled by √(1−λ),
    centre uniform over the image, clipped at the border; at least one pixel."""
    lam = float(rng.beta(alpha, alpha))
    cut = math.sqrt(1.0 - lam)
    cy, cx = float(rng.uniform(0, height)), float(rng.uniform(0, width))
    top, bottom = int(np.clip(round(cy - height * cut / 2), 0, height)), int(np.clip(round(cy + height * cut / 2), 0, height))
    left, right = int(np.clip(round(cx - width * cut / 2), 0, width)), int(np.clip(round(cx + width * cut / 2), 0, width))
    if bottom <= top:  # an empty box would label one face with two expressions
        top, bottom = min(top, height - 1), min(top, height - 1) + 1
    if right <= left:
        left, right = min(left, width - 1), min(left, width - 1) + 1
    return top, left, bottom - top, right - left


@dataclass
class CompoundMixer:
    """Synthesize one compound sample from two basic-expression images.

    Args:
        mixup_prob: probability of Mixup for a synthesized sample.
        cutmix_prob: probability of CutMix. `mixup_prob + cutmix_prob` must be 1.
        mixup_weight: fixed blend weight of the second image (paper: 0.1); None samples it from
            Beta(mixup_alpha, mixup_alpha).
        mixup_alpha: Beta concentration when `mixup_weight` is None.
        cutmix_mode: "random" (Yun et al.'s box: λ ~ Beta(cutmix_alpha, cutmix_alpha), sides √(1−λ), clipped),
            "left_right" (left half of one face, right half of the other) or "upper_lower"
            (upper face of one, lower face of the other, at `cutmix_split`).
        cutmix_alpha: Beta concentration of λ for the random box.
        cutmix_split: where the fixed split falls (fraction of width/height taken from image a).
        target: "union" (multi-hot 1/1 for both constituents, the paper's BCE targets) or
            "proportional" (each constituent weighted by its pixel area / blend weight).
    """

    mixup_prob: float = 0.5
    cutmix_prob: float = 0.5
    mixup_weight: float | None = 0.1
    mixup_alpha: float = 0.4
    cutmix_mode: str = "random"
    cutmix_alpha: float = 1.0
    cutmix_split: float = 0.5
    target: str = "union"

    def __post_init__(self):
        for name in ("mixup_prob", "cutmix_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not math.isclose(self.mixup_prob + self.cutmix_prob, 1.0, abs_tol=1e-6):
            raise ValueError(
                f"mixup_prob + cutmix_prob must be 1 (every synthesized compound is mixed one way), "
                f"got {self.mixup_prob} + {self.cutmix_prob}"
            )
        if self.mixup_weight is not None and not 0.0 < self.mixup_weight < 1.0:
            raise ValueError(f"mixup_weight must be in (0, 1) or None for Beta sampling, got {self.mixup_weight}")
        if self.mixup_alpha <= 0 or self.cutmix_alpha <= 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be positive")
        if self.cutmix_mode not in CUTMIX_MODES:
            raise ValueError(f"cutmix_mode must be one of {CUTMIX_MODES}, got {self.cutmix_mode!r}")
        if not 0.0 < self.cutmix_split < 1.0:
            raise ValueError(f"cutmix_split must be in (0, 1), got {self.cutmix_split}")
        if self.target not in TARGET_MODES:
            raise ValueError(f"mix target must be one of {TARGET_MODES}, got {self.target!r}")

    def __call__(
        self,
        image_a: torch.Tensor,
        image_b: torch.Tensor,
        label_a: int,
        label_b: int,
        num_labels: int,
        rng: np.random.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix `(C, H, W)` images of basics `label_a != label_b`; returns `(image, target (num_labels,))`."""
        if image_a.shape != image_b.shape:
            raise ValueError(f"images to mix differ in shape: {tuple(image_a.shape)} vs {tuple(image_b.shape)}")
        params = self.sample(rng, *image_a.shape[-2:])
        return self.apply(image_a, image_b, params), self.target_for(label_a, label_b, params, image_a.shape[-2:], num_labels)

    def sample(self, rng: np.random.Generator, height: int, width: int) -> tuple[float, int, int, int, int]:
        """One mix: `(weight, top, left, box_height, box_width)`; image_b enters the box with `weight`.

        Mixup blends the whole image with the blend weight; CutMix pastes a box with weight 1.
        """
        if rng.random() < self.mixup_prob:
            weight = self.mixup_weight if self.mixup_weight is not None else float(rng.beta(self.mixup_alpha,
                                                                                              self.mixup_alpha))
            return float(weight), 0, 0, height, width
        if self.cutmix_mode == "left_right":
            cut = round(width * self.cutmix_split)
            return 1.0, 0, cut, height, width - cut
        if self.cutmix_mode == "upper_lower":
            cut = round(height * self.cutmix_split)
            return 1.0, cut, 0, height - cut, width
        return (1.0, *cutmix_box(rng, height, width, self.cutmix_alpha))

    @staticmethod
    def apply(image_a: torch.Tensor, image_b: torch.Tensor, params: tuple) -> torch.Tensor:
        """Mix one pair `(C, H, W)` with `sample`'s parameters (touches only the box's pixels)."""
        weight, top, left, box_h, box_w = params
        image = image_a.clone()
        box = (..., slice(top, top + box_h), slice(left, left + box_w))
        image[box] = image_b[box] if weight == 1.0 else torch.lerp(image_a[box], image_b[box], weight)
        return image

    def target_for(self, label_a: int, label_b: int, params: tuple, size, num_labels: int) -> torch.Tensor:
        """The multi-label target of one mix: union multi-hot, or weighted by image_b's share of the pixels."""
        if label_a == label_b:
            raise ValueError(f"compound synthesis needs two different basics, got label {label_a} twice")
        weight, _, _, box_h, box_w = params
        share_b = weight * box_h * box_w / (size[0] * size[1])
        target = torch.zeros(num_labels, dtype=torch.float32)
        if self.target == "union":
            target[label_a] = 1.0
            target[label_b] = 1.0
        else:
            target[label_a] = 1.0 - share_b
            target[label_b] = share_b
        return target
