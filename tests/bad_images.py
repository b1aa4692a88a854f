"""Hostile image files made at test time (no binary blobs in the repository)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A valid all-black 1-bit greyscale PNG of `width` x `height` pixels that is tiny on disk.

    20000 x 20000 is ~48 KB. Rows are compressed a block at a time, so making it needs a few MB of
    memory, unlike `Image.new(...).save(...)` (which would hold the whole 400-megapixel image).
    """
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0 + the row's bits, all zero
    block = 256
    parts = [compressor.compress(row * min(block, height - start)) for start in range(0, height, block)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale, no interlace
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))
    return path
