"""Images in and out: robust decoding (every mode becomes RGB, a bad file names itself), the image file
extensions the toolkit reads, and the normalisation statistics (one home for each)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

# Every image file extension the readers, streams and the video pipeline accept.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Mean/std of the ABAW7 authors' face crops (their released code).
FACE_MEAN = (0.499, 0.410, 0.366)
FACE_STD = (0.297, 0.270, 0.265)
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "face": (FACE_MEAN, FACE_STD),
}


def normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for a named normalisation ("imagenet" or "face")."""
    if name not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {name!r}; choose one of {', '.join(NORMALIZATIONS)}")
    return NORMALIZATIONS[name]


class BadImageError(ValueError):
    """An image that cannot be decoded; `source` names the file (or the sample) it came from."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: cannot read image ({reason})")
        self.source = source
        self.reason = reason


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P, RGBA, CMYK, I;16, …) to RGB; transparency is composited on black."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size)
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        image = image.point(lambda value: value / 256).convert("L")
    return image.convert("RGB")


def load_rgb_image(source: str | Path | bytes, *, name: str | None = None) -> Image.Image:
    """Decode an image from a path or encoded bytes into RGB, fully (truncation is caught here, not later).

    Decompression bombs are refused before any pixel is decoded: an image over PIL's
    `Image.MAX_IMAGE_PIXELS` (about 89 megapixels, where PIL only warns) or over twice that (where
    PIL raises `DecompressionBombError`, not an `OSError`) is a `BadImageError` naming the file.
    No face crop comes near that size, and decoding one would take gigabytes.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                image.load()
                return to_rgb(image)
    except FileNotFoundError:
        raise BadImageError(label, "file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImageError(label, f"too large, possible decompression bomb: {error}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BadImageError(label, f"{type(error).__name__}: {error}") from None


def image_to_uint8(image, image_size: int) -> torch.Tensor:
    """A PIL image as a `(3, S, S)` uint8 tensor, resized (bilinear) to `image_size`."""
    image = to_rgb(image)
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def image_to_tensor(image, image_size: int) -> torch.Tensor:
    """A PIL image as a `(3, S, S)` float tensor in [0, 1], resized (bilinear) to `image_size`."""
    return image_to_uint8(image, image_size).float().div_(255.0)

