"""Training augmentations on float image tensors in [0, 1] (no torchvision), seeded per sample.

The paper's single-expression stage uses random crop, random flip, colour jittering and cutout.
`TrainAugment` draws each sample's parameters from that sample's own `numpy.random.Generator`
(so a sample's augmentation depends only on its seed) and applies them to a whole batch at once
(one `grid_sample` for crop + flip, broadcast arithmetic for jitter and cutout), which keeps the
collator's cost small next to a model step:

    augment = TrainAugment()
    params = [augment.sample_params(np.random.default_rng(seed)) for seed in seeds]
    images = augment.apply(images, params)          # (B, C, H, W)
    image = augment(image, np.random.default_rng(0))  # one (C, H, W) image
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def crop_box(rng: np.random.Generator, scale: tuple[float, float], ratio: tuple[float, float]) -> tuple[float, ...]:
    """A random crop as fractions `(left, top, width, height)` of the image (area in `scale`, aspect in `ratio`)."""
    for _ in range(10):
        area = rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        width, height = math.sqrt(area * aspect), math.sqrt(area / aspect)
        if width <= 1.0 and height <= 1.0:
            return rng.uniform(0, 1 - width), rng.uniform(0, 1 - height), width, height
    return 0.0, 0.0, 1.0, 1.0


def resized_crop_and_flip(images: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Crop box `(left, top, width, height)` (fractions) of each image, resize back, mirror where `flips`.

    One bilinear `grid_sample` for the batch; `images` `(B, C, H, W)`, `boxes` `(B, 4)`, `flips` `(B,)` bool.
    """
    left, top, width, height = boxes.unbind(1)
    sign = 1.0 - 2.0 * flips.to(images.dtype)
    theta = torch.zeros(images.shape[0], 2, 3, dtype=images.dtype)
    theta[:, 0, 0] = width * sign
    theta[:, 0, 2] = 2 * left + width - 1
    theta[:, 1, 1] = height
    theta[:, 1, 2] = 2 * top + height - 1
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Scale brightness, contrast and saturation by per-sample `factors` `(B, 3)`; clamps to [0, 1]."""
    brightness, contrast, saturation = (f.view(-1, 1, 1, 1) for f in factors.unbind(1))
    images = (images * brightness).clamp(0, 1)
    mean = _grey(images).mean(dim=(-2, -1), keepdim=True)
    images = ((images - mean) * contrast + mean).clamp(0, 1)
    grey = _grey(images)
    return ((images - grey) * saturation + grey).clamp(0, 1)


def _grey(images: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def erase(images: torch.Tensor, boxes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Cutout: fill box `(left, top, width, height)` (fractions; zero size = none) of each image with `values` `(B,)`."""
    height, width = images.shape[-2:]
    ys = (torch.arange(height, dtype=images.dtype) + 0.5) / height
    xs = (torch.arange(width, dtype=images.dtype) + 0.5) / width
    left, top, box_w, box_h = (b.view(-1, 1, 1, 1) for b in boxes.unbind(1))
    inside = ((xs.view(1, 1, 1, -1) >= left) & (xs.view(1, 1, 1, -1) < left + box_w)
              & (ys.view(1, 1, -1, 1) >= top) & (ys.view(1, 1, -1, 1) < top + box_h))
    return torch.where(inside, values.view(-1, 1, 1, 1).to(images.dtype), images)


@dataclass
class TrainAugment:
    """Random resized crop, horizontal flip, colour jitter and cutout with explicit probabilities.

    Each `*_prob` is the probability of applying that step; `crop_scale` bounds the cropped area
    fraction, `jitter` the colour factors (in [1 - jitter, 1 + jitter]), `erase_scale` the erased
    area fraction (filled with a random grey level). A probability of 0 disables the step.
    """

    crop_prob: float = 1.0
    crop_scale: tuple[float, float] = (0.6, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    jitter: float = 0.3
    erase_prob: float = 0.25
    erase_scale: tuple[float, float] = (0.02, 0.2)

    def __post_init__(self):
        for name in ("crop_prob", "flip_prob", "jitter_prob", "erase_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation {name} must be in [0, 1], got {value}")
        if not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")

    def sample_params(self, rng: np.random.Generator) -> tuple[float, ...]:
        """One sample's parameters: crop box (4), flip, jitter factors (3), erase box (4), erase value."""
        uniforms = rng.random(4)
        box = crop_box(rng, self.crop_scale, self.crop_ratio) if uniforms[0] < self.crop_prob else (0.0, 0.0, 1.0, 1.0)
        flip = float(uniforms[1] < self.flip_prob)
        jitter = tuple(rng.uniform(1 - self.jitter, 1 + self.jitter, 3)) if uniforms[2] < self.jitter_prob else (1.0,) * 3
        erased = (0.0, 0.0, 0.0, 0.0, 0.0)
        if uniforms[3] < self.erase_prob:
            left, top, width, height = crop_box(rng, self.erase_scale, (0.3, 3.3))
            if width * height < 1.0:  # crop_box falls back to the whole image: erase nothing then
                erased = (left, top, width, height, rng.random())
        return (*box, flip, *jitter, *erased)

    def apply(self, images: torch.Tensor, params: list[tuple[float, ...]]) -> torch.Tensor:
        """Augment a batch `(B, C, H, W)` with one parameter tuple per sample (from `sample_params`)."""
        table = torch.tensor(params, dtype=images.dtype)
        images = resized_crop_and_flip(images, table[:, 0:4], table[:, 4] > 0.5)
        images = color_jitter(images, table[:, 5:8])
        return erase(images, table[:, 8:12], table[:, 12])

    def __call__(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment one `(C, H, W)` image; the same generator state gives the same result."""
        return self.apply(image.unsqueeze(0), [self.sample_params(rng)])[0]
