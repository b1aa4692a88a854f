"""Training augmentations on `(C, H, W)` float tensors in [0, 1] (no torchvision), each seeded by a generator.

The paper's single-expression stage uses random crop, random flip, colour jittering and cutout;
`TrainAugment` chains them with explicit probabilities and strengths:

    augment = TrainAugment()
    image = augment(image, generator=torch.Generator().manual_seed(seed))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_resized_crop(
    image: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Crop a random region (area fraction in `scale`, aspect ratio in `ratio`) and resize it back to the input size."""
    height, width = image.shape[-2:]
    for _ in range(10):
        area = height * width * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, math.log(ratio[0]), math.log(ratio[1])))
        crop_w, crop_h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(torch.randint(0, height - crop_h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - crop_w + 1, (1,), generator=generator))
            crop = image[..., top : top + crop_h, left : left + crop_w]
            return F.interpolate(crop.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False)[0]
    return image


def horizontal_flip(image: torch.Tensor) -> torch.Tensor:
    """Mirror the image left to right."""
    return image.flip(-1)


def color_jitter(
    image: torch.Tensor,
    generator: torch.Generator,
    brightness: float = 0.3,
    contrast: float = 0.3,
    saturation: float = 0.3,
) -> torch.Tensor:
    """Scale brightness, contrast and saturation by random factors in [1 - s, 1 + s] (in random order)."""
    order = torch.randperm(3, generator=generator).tolist()
    factors = [_uniform(generator, 1 - s, 1 + s) for s in (brightness, contrast, saturation)]
    for which in order:
        factor = factors[which]
        if which == 0:
            image = image * factor
        elif which == 1:
            mean = _grey(image).mean()
            image = (image - mean) * factor + mean
        else:
            grey = _grey(image).unsqueeze(0)
            image = (image - grey) * factor + grey
        image = image.clamp(0.0, 1.0)
    return image


def _grey(image: torch.Tensor) -> torch.Tensor:
    r, g, b = image[0], image[1], image[2]
    return 0.299 * r + 0.587 * g + 0.114 * b


def random_erasing(
    image: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.02, 0.2),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float | None = None,
) -> torch.Tensor:
    """Cutout / random erasing: fill a random rectangle with `value` (None: per-pixel noise)."""
    height, width = image.shape[-2:]
    for _ in range(10):
        area = height * width * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, math.log(ratio[0]), math.log(ratio[1])))
        box_h, box_w = round(math.sqrt(area / aspect)), round(math.sqrt(area * aspect))
        if 0 < box_h < height and 0 < box_w < width:
            top = int(torch.randint(0, height - box_h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - box_w + 1, (1,), generator=generator))
            image = image.clone()
            if value is None:
                fill = torch.rand((image.shape[0], box_h, box_w), generator=generator)
            else:
                fill = torch.full((image.shape[0], box_h, box_w), float(value))
            image[:, top : top + box_h, left : left + box_w] = fill
            return image
    return image


@dataclass
class TrainAugment:
    """Random resized crop, horizontal flip, colour jitter and cutout with explicit probabilities.

    Each probability is of applying that step; `crop_scale` bounds the cropped area fraction,
    `jitter` the colour factors, `erase_scale` the erased area fraction. Setting a probability to
    0 disables the step.
    """

    crop_prob: float = 1.0
    crop_scale: tuple[float, float] = (0.6, 1.0)
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

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment one `(C, H, W)` image in [0, 1]; the same generator state gives the same result."""
        if _uniform(generator) < self.crop_prob:
            image = random_resized_crop(image, generator, scale=self.crop_scale)
        if _uniform(generator) < self.flip_prob:
            image = horizontal_flip(image)
        if _uniform(generator) < self.jitter_prob:
            image = color_jitter(image, generator, self.jitter, self.jitter, self.jitter)
        if _uniform(generator) < self.erase_prob:
            image = random_erasing(image, generator, scale=self.erase_scale)
        return image
