"""AffectNet's training/validation CSVs (codes 0..7; 8-10 are not expressions), optionally cropped to the face box."""

from __future__ import annotations

import csv
import io
import itertools
import logging
import os
from pathlib import Path
from typing import Iterable

import datasets

from cer_hf.image_io import load_rgb_image
from cer_hf.taxonomy import (
    AFFECTNET_LABELS,
    AFFECTNET_NON_EXPRESSIONS,
    MISSING_VA,
)
from cer_hf.data.readers.base import (
    LabelFileError,
    ReadReport,
    _check_on_missing,
    _finish,
    _require_file,
    _resolve,
    build_dataset,
    row_features,
)

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- AffectNet

AFFECTNET_COLUMNS = (
    "subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
    "facial_landmarks", "expression", "valence", "arousal",
)


def _affectnet_image_root(csv_path: Path, first_file: str | None) -> Path:
    candidates = [
        csv_path.parent,
        csv_path.parent / "Manually_Annotated_Images",
        csv_path.parent.parent / "Manually_Annotated_Images",
        csv_path.parent.parent / "Manually_Annotated" / "Manually_Annotated_Images",
    ]
    if first_file is not None:
        for candidate in candidates:
            if (candidate / first_file).is_file():
                return candidate
    return candidates[0]


def _crop_face(row: dict) -> dict:
    x, y, w, h = row["face_box"]
    source = row["image"]["path"] if isinstance(row["image"], dict) else row["image"]
    image = load_rgb_image(source)
    crop = image.crop((max(0, x), max(0, y), min(image.width, x + w), min(image.height, y + h)))
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=95)
    return {"image": {"bytes": buffer.getvalue(), "path": None}}


def read_affectnet(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    crop_faces: bool = False,
    num_proc: int | None = None,
    on_missing: str = "error",
    return_report: bool = False,
):
    """AffectNet `training.csv` / `validation.csv` → dataset with valence, arousal and `face_box`.

    Columns subDirectory_filePath, face_x, face_y, face_width, face_height,
    facial_landmarks, expression, valence, arousal (a file without the header line, as
    some `validation.csv` copies are, is read in that column order). Expression codes 0..7
    = Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt; codes 8/9/10 (None,
    Uncertain, Non-Face) are dropped and counted in the report. AffectNet's -2
    valence/arousal (no value) becomes -5, the toolkit's missing marker. Images are looked
    up under `image_root` (default: the CSV's folder or a `Manually_Annotated_Images`
    folder next to it or one level up). crop_faces=True crops every image to its face box
    now (decodes all images; stored as JPEG bytes; `num_proc` processes).
    """
    _check_on_missing(on_missing)
    path = _require_file(Path(path), "AffectNet CSV")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        numbered = ((reader.line_num, row) for row in reader)  # streamed: landmarks make rows long
        first = next(numbered, None)
        if first is not None and first[1] and first[1][0].strip() == AFFECTNET_COLUMNS[0]:
            header = [h.strip() for h in first[1]]
            missing = [c for c in AFFECTNET_COLUMNS if c not in header]
            if missing:
                raise LabelFileError(path, 1, f"header lacks column(s) {', '.join(missing)}")
            first = next(numbered, None)
        else:
            header = list(AFFECTNET_COLUMNS)
        position = {name: header.index(name) for name in AFFECTNET_COLUMNS}
        if image_root is not None:
            root = Path(image_root)
        else:
            first_file = first[1][position["subDirectory_filePath"]].strip() if first and len(first[1]) == len(header) else None
            root = _affectnet_image_root(path, first_file)
        rows = itertools.chain([first] if first is not None else [], numbered)
        dataset, report = _affectnet_rows(path, rows, header, position, root, on_missing)
    if crop_faces:
        dataset = dataset.cast_column("image", datasets.Image(decode=False))
        dataset = dataset.map(_crop_face, num_proc=num_proc, desc="cropping AffectNet faces")
        dataset = dataset.cast_column("image", datasets.Image())
    return _finish(dataset, report, return_report)


def _affectnet_rows(path: Path, rows: Iterable[tuple[int, list[str]]], header: list[str], position: dict[str, int],
                    root: Path, on_missing: str) -> tuple[datasets.Dataset, ReadReport]:
    report = ReadReport(f"AffectNet {path}")
    columns: dict[str, list] = {k: [] for k in ("image", "label", "valence", "arousal", "sample_id", "face_box")}
    for index, (line, row) in enumerate(rows):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise LabelFileError(path, line, f"{len(row)} columns, expected {len(header)} ({', '.join(header)})")
        cell = {name: row[i].strip() for name, i in position.items() if name != "facial_landmarks"}
        try:
            code = int(cell["expression"])
            box = [int(float(cell[k])) for k in ("face_x", "face_y", "face_width", "face_height")]
            valence, arousal = float(cell["valence"]), float(cell["arousal"])
        except ValueError as error:
            raise LabelFileError(path, line, f"unreadable number ({error})") from None
        if code in AFFECTNET_NON_EXPRESSIONS:
            report.skip(f"expression {code} = {AFFECTNET_NON_EXPRESSIONS[code]}", f"line {line}")
            continue
        if not 0 <= code < len(AFFECTNET_LABELS):
            raise LabelFileError(path, line, f"expression {code} is outside 0..10")
        affect = []
        for name, value in (("valence", valence), ("arousal", arousal)):
            if value == -2:
                value = MISSING_VA
            elif not -1 <= value <= 1:
                raise LabelFileError(path, line, f"{name} {value} is outside [-1, 1] (and not -2 = missing)")
            affect.append(value)
        image_path = _resolve(cell["subDirectory_filePath"], root)
        if not os.path.isfile(image_path):
            if on_missing == "error":
                raise LabelFileError(path, line, f"image {cell['subDirectory_filePath']!r} not found (looked for {image_path})")
            report.skip("image file missing", image_path)
            continue
        columns["valence"].append(affect[0])
        columns["arousal"].append(affect[1])
        columns["image"].append(image_path)
        columns["label"].append(AFFECTNET_LABELS[code])
        columns["sample_id"].append(index)
        columns["face_box"].append(box)
    features = row_features(valence_arousal=True)
    features["face_box"] = datasets.Sequence(datasets.Value("int32"), length=4)
    return build_dataset(columns, features), report


