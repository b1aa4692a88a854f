"""Reading images robustly: every mode becomes RGB, and a bad file names itself in the error."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError


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
    """Decode an image from a path or encoded bytes into RGB, fully (truncation is caught here, not later)."""
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError:
        raise BadImageError(label, "file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BadImageError(label, f"{type(error).__name__}: {error}") from None
