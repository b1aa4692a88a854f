"""The MAE pretraining augmentation, without torchvision: robust decode, RandomResizedCrop, flip, normalise.

Workers decode and augment into uint8 CHW tensors (4x less inter-process traffic than float32);
the training loop normalises on the device with `normalize_pixels`.

    transform = MAETrainTransform(image_size=224, seed=0)
    pixels, converted_from = transform({"bytes": jpeg_bytes, "path": None}, key="a/1.jpg", epoch=3)
    batch = normalize_pixels(torch.stack([pixels]), *NORMALIZATIONS["imagenet"])
"""

from __future__ import annotations

import io
import math
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cer_hf.image_io import BadImageError, load_rgb_image, to_rgb

class SkipImage(Exception):
    """An image the pipeline drops; `reason` is the counter key ("truncated", "undecodable", "too_small", ...)."""

    def __init__(self, reason: str, source: str, detail: str = ""):
        super().__init__(f"{source}: skipped ({reason}{': ' + detail if detail else ''})")
        self.reason = reason
        self.source = source


def decode_image(image, *, name: str = "<image>", min_size: int = 8) -> tuple[Image.Image, str | None]:
    """Decode a row's image (datasets dict {"bytes", "path"}, bytes, path or PIL) into RGB.

    Returns (rgb_image, original_mode) where original_mode is None for RGB input and the PIL mode
    (L, RGBA, CMYK, P, I;16, ...) of an image that was converted. Raises `SkipImage` for an empty
    row, an undecodable or truncated file, or an image smaller than `min_size` on either side.
    """
    if isinstance(image, dict):
        source = image.get("bytes") or image.get("path")
        name = image.get("path") or name
    else:
        source = image
    if source is None or (isinstance(source, bytes) and not source):
        raise SkipImage("missing", name)
    if isinstance(source, Image.Image):
        mode = source.mode
        rgb = to_rgb(source)
    else:
        try:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as probe:
                mode = probe.mode  # header only: the full decode below catches truncation
        except Exception:  # noqa: BLE001 - any header failure is an undecodable file
            mode = None
        try:
            rgb = load_rgb_image(source if isinstance(source, bytes) else Path(source), name=name)
        except BadImageError as error:
            reason = "truncated" if "truncated" in error.reason.lower() else "undecodable"
            raise SkipImage(reason, name, error.reason) from None
        except Exception as error:  # noqa: BLE001 - e.g. PIL's DecompressionBombError: one file never stops a run
            raise SkipImage("undecodable", name, f"{type(error).__name__}: {error}") from None
    if min(rgb.size) < min_size:
        raise SkipImage("too_small", name, f"{rgb.size[0]}x{rgb.size[1]} < {min_size} px")
    return rgb, (None if mode == "RGB" else mode)


def random_resized_crop_box(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """The crop box (left, top, right, bottom) of torchvision's RandomResizedCrop, drawn from `rng`."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    # Fallback: the largest centred crop whose aspect ratio is within range.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def sample_rng(seed: int, epoch: int, key: str) -> np.random.Generator:
    """The augmentation generator of one sample in one epoch: independent of worker and rank layout."""
    return np.random.default_rng([seed, epoch, zlib.crc32(key.encode())])


class MAETrainTransform:
    """MAE pretraining augmentation: RandomResizedCrop (scale 0.2–1, ratio 3/4–4/3, bicubic) + horizontal flip.

    Call it with a row's image and the sample's `key` and `epoch`: the crop and flip come from
    `sample_rng(seed, epoch, key)`, so a sample is augmented the same way however the stream is
    split over ranks and workers (this makes resumed runs exact). Returns (uint8 tensor (3, S, S),
    original mode or None); bad images raise `SkipImage`.
    """

    def __init__(
        self,
        image_size: int,
        *,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        min_size: int = 8,
        seed: int = 0,
    ):
        self.image_size = image_size
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.hflip = hflip
        self.min_size = min_size
        self.seed = seed

    def __call__(self, image, *, key: str = "", epoch: int = 0) -> tuple[torch.Tensor, str | None]:
        rgb, converted_from = decode_image(image, name=key or "<image>", min_size=self.min_size)
        rng = sample_rng(self.seed, epoch, key)
        box = random_resized_crop_box(rgb.width, rgb.height, rng, self.scale, self.ratio)
        out = rgb.resize((self.image_size, self.image_size), Image.BICUBIC, box=box)
        if rng.random() < self.hflip:
            out = out.transpose(Image.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.asarray(out, dtype=np.uint8).copy()).permute(2, 0, 1)
        return pixels, converted_from


def normalize_pixels(
    pixels: torch.Tensor, mean, std, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """uint8 (B, 3, H, W) → normalised float: (x / 255 - mean) / std, on whatever device `pixels` is."""
    mean = torch.as_tensor(mean, dtype=dtype, device=pixels.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=dtype, device=pixels.device).view(1, -1, 1, 1)
    return (pixels.to(dtype) / 255.0 - mean) / std
