"""RAF-DB basic and compound subsets (official folder layout and label lists)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence


from cer_hf.taxonomy import (
    RAFDB_BASIC_LABELS,
    RAFDB_COMPOUND_LABELS,
)
from cer_hf.data.readers.base import (
    LabelFileError,
    ReadReport,
    _check_on_missing,
    _finish,
    build_dataset,
    row_features,
)

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- RAF-DB


def _rafdb_root(root: Path, subset: str) -> Path:
    """The folder holding EmoLabel/ and Image/: `root` itself or `root/<subset>` (basic, compound)."""
    for candidate in (root, root / subset, root / subset.capitalize()):
        if (candidate / "EmoLabel" / "list_patition_label.txt").is_file():
            return candidate
    raise FileNotFoundError(
        f"RAF-DB {subset}: no EmoLabel/list_patition_label.txt under {root} (also looked in {root / subset})"
    )


def _read_rafdb(root: str | Path, subset: str, names: Sequence[str], split: str | None, images: str,
                on_missing: str, return_report: bool):
    _check_on_missing(on_missing)
    if split not in (None, "train", "test"):
        raise ValueError(f"RAF-DB split must be 'train', 'test' or None (both), not {split!r}")
    if images not in ("auto", "aligned", "original"):
        raise ValueError(f"images must be 'auto', 'aligned' or 'original', not {images!r}")
    base = _rafdb_root(Path(root), subset)
    label_file = base / "EmoLabel" / "list_patition_label.txt"
    if images == "auto":
        images = "aligned" if (base / "Image" / "aligned").is_dir() else "original"
    image_dir = base / "Image" / images
    if not image_dir.is_dir():
        raise FileNotFoundError(f"RAF-DB {subset}: image folder {image_dir} not found")
    report = ReadReport(f"RAF-DB {subset} {label_file} ({split or 'train+test'}, {images})")
    paths, labels, ids = [], [], []
    with open(label_file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise LabelFileError(label_file, number, f"expected '<file name> <label 1..{len(names)}>', got {line.strip()!r}")
            file_name, code = parts[0], int(parts[1])
            if not 1 <= code <= len(names):
                raise LabelFileError(label_file, number, f"label {code} is outside 1..{len(names)}")
            prefix = file_name.split("_", 1)[0]
            if prefix not in ("train", "test"):
                raise LabelFileError(label_file, number, f"file name {file_name!r} starts neither with train_ nor test_")
            if split is not None and prefix != split:
                continue
            stem, suffix = os.path.splitext(file_name)
            image_path = image_dir / (f"{stem}_aligned{suffix}" if images == "aligned" else file_name)
            if not image_path.is_file():
                if on_missing == "error":
                    raise LabelFileError(label_file, number, f"image for {file_name!r} not found (looked for {image_path})")
                report.skip("image file missing", str(image_path))
                continue
            paths.append(str(image_path))
            labels.append(names[code - 1])
            ids.append(number - 1)
    dataset = build_dataset({"image": paths, "label": labels, "sample_id": ids}, row_features())
    return _finish(dataset, report, return_report)


def read_rafdb_basic(root: str | Path, *, split: str | None = None, images: str = "auto",
                     on_missing: str = "error", return_report: bool = False):
    """RAF-DB basic: `EmoLabel/list_patition_label.txt` ("train_00001.jpg 5") + `Image/aligned|original/`.

    Codes 1..7 = Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral. `split`:
    "train", "test" (from the file-name prefix) or None for both. `images`: "aligned"
    (`train_00001_aligned.jpg`), "original" (`train_00001.jpg`) or "auto" (aligned when present).
    `root` may be the basic folder itself or its parent (holding `basic/`).
    """
    return _read_rafdb(root, "basic", RAFDB_BASIC_LABELS, split, images, on_missing, return_report)


def read_rafdb_compound(root: str | Path, *, split: str | None = None, images: str = "auto",
                        on_missing: str = "error", return_report: bool = False):
    """RAF-DB compound: same layout as basic, codes 1..11 in RAF-DB compound order.

    1 Happily Surprised, 2 Happily Disgusted, 3 Sadly Fearful, 4 Sadly Angry, 5 Sadly
    Surprised, 6 Sadly Disgusted, 7 Fearfully Angry, 8 Fearfully Surprised, 9 Angrily
    Surprised, 10 Angrily Disgusted, 11 Disgustedly Surprised (= `COMPOUND_SETS["rafdb"]`).
    `root` may be the compound folder itself or its parent (holding `compound/`).
    """
    return _read_rafdb(root, "compound", RAFDB_COMPOUND_LABELS, split, images, on_missing, return_report)


