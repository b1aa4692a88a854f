"""The bad-input corpus, written at test time (nothing binary is committed; the largest file, the
decompression bomb, is ~48 KB and made in a few MB of memory).

    corpus = write_corpus(tmp_path / "corpus")
    corpus.images["truncated"]          # a path; corpus.cases lists every case by entry point

Images: corrupt (random bytes), truncated JPEG, zero-byte, a text file named .jpg, CMYK, RGBA, 16-bit
greyscale, 1x1 and a PNG decompression bomb (20000 x 20000). Sources: image folders with an unknown
class folder, with only bad images, mixed good and bad; CSV label files that are empty (0 bytes),
header-only, malformed (wrong column count), missing (no such path), naming a missing image or an
unknown label. Videos: zero-byte, a text file named .mp4, a truncated MP4, a frame folder with a
corrupt frame, an empty folder; frame label files that are empty, missing or malformed. Options:
contradictory or out-of-range values, unknown YAML keys, a missing config file.

Used by tests/test_bad_input.py (in-process) and benchmarks/bad_input_corpus.py (the real commands).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

GOOD_SIZE = (40, 48)


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


def write_face(path: Path, seed: int = 0, size: tuple[int, int] = GOOD_SIZE) -> Path:
    """A small readable RGB image (flat colours; no real face)."""
    rng = np.random.default_rng(seed)
    pixels = np.full((size[1], size[0], 3), rng.integers(40, 220, 3), dtype=np.uint8)
    pixels[size[1] // 4: 3 * size[1] // 4, size[0] // 4: 3 * size[0] // 4] = rng.integers(0, 255, 3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _jpeg_bytes(seed: int = 0) -> bytes:
    noisy = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


# Bad images: the ones no reader can decode (skipped) and the odd modes every reader must convert.
UNREADABLE_IMAGES = ("corrupt", "truncated", "zero_byte", "text_named_jpg", "bomb")
CONVERTIBLE_IMAGES = ("cmyk", "rgba", "deep16", "one_pixel")


def write_bad_images(folder: Path) -> dict[str, Path]:
    """One file of each hostile image kind in `folder` (kind → path)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "corrupt": folder / "corrupt.png",
        "truncated": folder / "truncated.jpg",
        "zero_byte": folder / "zero_byte.png",
        "text_named_jpg": folder / "notes.jpg",
        "bomb": folder / "bomb.png",
        "cmyk": folder / "cmyk.jpg",
        "rgba": folder / "rgba.png",
        "deep16": folder / "deep16.png",
        "one_pixel": folder / "one_pixel.png",
    }
    paths["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(1).integers(0, 256, 300, np.uint8).tobytes())
    full = _jpeg_bytes()
    paths["truncated"].write_bytes(full[: len(full) // 2])
    paths["zero_byte"].write_bytes(b"")
    paths["text_named_jpg"].write_text("these are my notes, not a photo\n")
    write_png_bomb(paths["bomb"])
    Image.new("CMYK", GOOD_SIZE, (0, 50, 100, 0)).save(paths["cmyk"])
    Image.new("RGBA", GOOD_SIZE, (10, 20, 30, 128)).save(paths["rgba"])
    Image.fromarray(np.full(GOOD_SIZE[::-1], 40000, dtype=np.uint16)).save(paths["deep16"])
    Image.new("RGB", (1, 1), (200, 10, 10)).save(paths["one_pixel"])
    return paths


def write_tiny_video(path: Path, frames: int = 8, size: int = 32, codec: str = "mpeg4") -> Path:
    """A short, valid MP4 of flat colour frames (PyAV, the `video` extra)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for index in range(frames):
            image = np.full((size, size, 3), (30 * index) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_bad_videos(folder: Path) -> dict[str, Path]:
    """Video inputs that cannot be read (kind → path): zero-byte, fake, truncated, bad frame folders."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "zero_byte_video": folder / "zero_byte.mp4",
        "fake_video": folder / "fake.mp4",
        "truncated_video": folder / "truncated.mp4",
        "frames_with_corrupt": folder / "frames_with_corrupt",
        "empty_frame_folder": folder / "empty_frames",
    }
    paths["zero_byte_video"].write_bytes(b"")
    paths["fake_video"].write_text("not a video, just text with an .mp4 name\n")
    good = write_tiny_video(folder / "whole.mp4", frames=16).read_bytes()
    (folder / "whole.mp4").unlink()
    paths["truncated_video"].write_bytes(good[: len(good) // 3])
    for index in range(3):
        write_face(paths["frames_with_corrupt"] / f"{index + 1:05d}.png", seed=index)
    (paths["frames_with_corrupt"] / "00002.png").write_bytes(b"garbage")
    paths["empty_frame_folder"].mkdir()
    return paths


@dataclass
class Corpus:
    """Every path of a written corpus: good inputs to mix with, bad images, sources, videos, labels, configs."""

    root: Path
    good: list[Path] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)      # case → source spec
    videos: dict[str, Path] = field(default_factory=dict)
    good_video: Path | None = None
    frame_labels: dict[str, Path] = field(default_factory=dict)
    configs: dict[str, Path] = field(default_factory=dict)


def write_sources(root: Path, bad: dict[str, Path]) -> dict[str, str]:
    """Labelled source specs (case → spec) over image folders and CSV files with something wrong."""
    root = Path(root)
    sources = {}

    mixed = root / "mixed"  # readable images in two classes plus every bad image: the bad ones are dropped
    for label in ("happy", "sad"):
        for index in range(3):
            write_face(mixed / label / f"{index}.png", seed=index + (10 if label == "sad" else 0))
    for kind, path in bad.items():
        (mixed / "happy" / path.name).write_bytes(path.read_bytes())
    sources["bad_images_in_folder"] = f"imagefolder:{mixed}"

    only_bad = root / "only_bad" / "happy"  # nothing readable at all
    only_bad.mkdir(parents=True)
    for kind in UNREADABLE_IMAGES:
        (only_bad / bad[kind].name).write_bytes(bad[kind].read_bytes())
    sources["only_unreadable_images"] = f"imagefolder:{only_bad.parent}"

    unknown = root / "unknown_class"
    write_face(unknown / "happy" / "0.png")
    write_face(unknown / "banana" / "0.png", seed=3)
    sources["unknown_class_folder"] = f"imagefolder:{unknown}"
    sources["missing_folder"] = f"imagefolder:{root / 'no_such_folder'}"

    tables = root / "tables"
    tables.mkdir()
    for index in range(2):
        write_face(tables / f"{index}.png", seed=index)
    (tables / "empty.csv").write_bytes(b"")
    (tables / "header_only.csv").write_text("image,label\n")
    (tables / "malformed.csv").write_text("image,label\n0.png,happy\n1.png,sad,extra,cells\n")
    (tables / "missing_image.csv").write_text("image,label\n0.png,happy\ngone.png,sad\n")
    (tables / "unknown_label.csv").write_text("image,label\n0.png,happy\n1.png,banana\n")
    (tables / "no_label_column.csv").write_text("image,mood\n0.png,happy\n")
    (tables / "bad_image_rows.csv").write_text(
        "image,label\n0.png,happy\n1.png,sad\n" + "".join(f"{bad[k]},happy\n" for k in UNREADABLE_IMAGES))
    for name in ("empty", "header_only", "malformed", "missing_image", "unknown_label", "no_label_column",
                 "bad_image_rows"):
        sources[f"csv_{name}"] = f"csv:{tables / name}.csv"
    sources["csv_missing_file"] = f"csv:{tables / 'no_such_labels.csv'}"
    sources["unknown_scheme"] = f"nosuch:{root}"
    return sources


def write_frame_labels(root: Path, frames: int) -> dict[str, Path]:
    """Per-frame label files for `cer-hf evaluate-video` (case → path); `good` fits a `frames`-frame video."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    labels = {name: root / f"{name}.txt" for name in ("good", "empty_labels", "malformed_labels",
                                                       "wrong_count_labels", "missing_labels")}
    labels["good"].write_text("".join(f"{i % 7}\n" for i in range(frames)))
    labels["empty_labels"].write_bytes(b"")
    labels["malformed_labels"].write_text("0\n1\nbanana\n" + "2\n" * (frames - 3))
    labels["wrong_count_labels"].write_text("0\n1\n")
    return labels  # missing_labels is never written


def write_configs(root: Path) -> dict[str, Path]:
    """Recipe YAML configs that are wrong (case → path); `missing_config` is never written."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    configs = {name: root / f"{name}.yaml" for name in ("unknown_yaml_key", "yaml_not_a_mapping", "yaml_syntax",
                                                         "yaml_wrong_type", "missing_config")}
    configs["unknown_yaml_key"].write_text("image_size: 32\nlearning_rat: 0.1\n")
    configs["yaml_not_a_mapping"].write_text("- just\n- a list\n")
    configs["yaml_syntax"].write_text("image_size: [32\n")
    configs["yaml_wrong_type"].write_text("image_size: [32, 32]\n")
    return configs


def write_corpus(root: Path, *, videos: bool = True) -> Corpus:
    """Write the whole corpus under `root` (about 150 KB; the bomb is 48 KB of it)."""
    root = Path(root)
    corpus = Corpus(root)
    corpus.good = [write_face(root / "good" / f"face{i}.png", seed=i) for i in range(2)]
    corpus.images = write_bad_images(root / "images")
    corpus.sources = write_sources(root / "sources", corpus.images)
    if videos:
        corpus.videos = write_bad_videos(root / "videos")
        corpus.good_video = write_tiny_video(root / "videos" / "good.mp4", frames=8)
        corpus.frame_labels = write_frame_labels(root / "frame_labels", 8)
    corpus.configs = write_configs(root / "configs")
    return corpus
