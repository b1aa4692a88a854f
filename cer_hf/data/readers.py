"""Labelled face datasets as they sit on users' disks → `datasets.Dataset` in the toolkit schema.

Every reader returns rows with

* ``image``: a `datasets.Image()` column; files are stored as paths and decoded lazily on access
  (FER2013 pixel strings and cropped AffectNet faces are stored as encoded bytes);
* ``label``: the canonical expression name from `cer_hf.taxonomy.parse_label`;
* ``sample_id``: the row's position in the source (an int);
* where the source has them: ``valence``/``arousal`` (-5 = missing), ``aus`` (12 floats in the
  ABAW AU order, -1 = missing), ``video_id`` and ``frame`` (0-based; see `cer_hf.data.affwild2`).

Labels are always mapped BY NAME: folder names and CSV cells go through `parse_label`, and a
dataset's integer codes go through that dataset's documented class list (for example RAF-DB
``1`` → ``Surprise``), never through a sort order.  Bad input raises `LabelFileError` (a
`ValueError`) naming the file and line; rows a dataset marks as unusable (AffectNet's
None/Uncertain/Non-Face) or frames without an image are counted in a `ReadReport`, logged, and
returned with ``return_report=True`` — nothing disappears silently.

`load_labelled_source("rafdb-basic:/data/RAF-DB:train")` dispatches a spec string to a reader;
`filter_targets` drops the labels that are not compound-recognition targets and counts them.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import datasets
import numpy as np
from PIL import Image

from cer_hf.data.synthetic import AU_NAMES
from cer_hf.taxonomy import (
    COMPOUND_SETS,
    EMOTION_BASICS,
    accepted_labels,
    compound_set,
    parse_label,
)

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

# Integer codes of the public datasets, in each dataset's own order (index = code).
RAFDB_BASIC_LABELS: tuple[str, ...] = (  # codes 1..7
    "Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral",
)
RAFDB_COMPOUND_LABELS: tuple[str, ...] = tuple(c.name for c in compound_set("rafdb"))  # codes 1..11
AFFECTNET_LABELS: tuple[str, ...] = (  # codes 0..7; 8, 9, 10 are not expressions
    "Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
)
AFFECTNET_NON_EXPRESSIONS: dict[int, str] = {8: "None", 9: "Uncertain", 10: "Non-Face"}
FER2013_LABELS: tuple[str, ...] = (  # codes 0..6
    "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral",
)
FER2013_USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
AFFWILD2_EXPR_LABELS: tuple[str, ...] = (  # codes 0..7 (Aff-Wild2 EXPR files' header order)
    "Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other",
)
CEXPRDB_LABELS: tuple[str, ...] = tuple(c.name for c in compound_set("abaw7"))  # codes 0..6

# Labels kept / dropped by `filter_targets` unless told otherwise.
TARGET_LABELS: tuple[str, ...] = (
    *EMOTION_BASICS,
    *dict.fromkeys(c.name for classes in COMPOUND_SETS.values() for c in classes),
)
NON_TARGET_LABELS: tuple[str, ...] = ("Neutral", "Contempt", "Other")

# Named code tables for `label_names=` (CSV code columns, numbered class folders, ...).
LABEL_CODES: dict[str, dict[int, str]] = {
    "rafdb-basic": {i + 1: name for i, name in enumerate(RAFDB_BASIC_LABELS)},
    "rafdb-compound": {i + 1: name for i, name in enumerate(RAFDB_COMPOUND_LABELS)},
    "affectnet": dict(enumerate(AFFECTNET_LABELS)),
    "fer2013": dict(enumerate(FER2013_LABELS)),
    "affwild2": dict(enumerate(AFFWILD2_EXPR_LABELS)),
    "cexprdb": dict(enumerate(CEXPRDB_LABELS)),
}

MISSING_VALUE = -5.0  # valence/arousal missing (Aff-Wild2 convention)


# ----------------------------------------------------------------------------- errors, reports


class LabelFileError(ValueError):
    """A label file (or table) that cannot be read; the message names the file and the line."""

    def __init__(self, path: str | Path, line: int | str | None, reason: str):
        # line: a 1-based line number, or a text such as "record 3" / "row 7" for JSON and datasets
        where = f"{path}" if line is None else f"{path}, line {line}" if isinstance(line, int) else f"{path}, {line}"
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


@dataclass
class ReadReport:
    """What a reader kept and what it skipped (with reasons, counts and a few examples)."""

    source: str
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, example: str) -> None:
        """Count one skipped row under `reason`; keep the first few examples."""
        self.skipped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < 5:
            shown.append(example)

    def __str__(self) -> str:
        lines = [f"{self.source}: {self.rows} rows"]
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"  skipped {count} ({reason}), e.g. {', '.join(self.examples.get(reason, []))}")
        return "\n".join(lines)

    def log(self) -> None:
        """Log the report: a warning when anything was skipped, else an info line."""
        (logger.warning if self.skipped else logger.info)("%s", self)


def _finish(dataset: datasets.Dataset, report: ReadReport, return_report: bool):
    report.rows = len(dataset)
    report.log()
    return (dataset, report) if return_report else dataset


# ----------------------------------------------------------------------------- building datasets


def row_features(*, aus: bool = False, valence_arousal: bool = False, video: bool = False) -> datasets.Features:
    """The `datasets.Features` of reader rows: image, label, sample_id plus the optional groups."""
    spec: dict[str, Any] = {
        "image": datasets.Image(),
        "label": datasets.Value("string"),
    }
    if aus:
        spec["aus"] = datasets.Sequence(datasets.Value("float32"), length=len(AU_NAMES))
    if valence_arousal:
        spec["valence"] = datasets.Value("float32")
        spec["arousal"] = datasets.Value("float32")
    spec["sample_id"] = datasets.Value("int64")
    if video:
        spec["video_id"] = datasets.Value("string")
        spec["frame"] = datasets.Value("int64")
    return datasets.Features(spec)


def build_dataset(columns: dict[str, list], features: datasets.Features) -> datasets.Dataset:
    """An in-memory `datasets.Dataset` from column lists; `image` values are file paths or encoded bytes.

    The Arrow table is built column-wise (no per-row feature encoding), so a few million
    frames take seconds; image files stay paths and are decoded lazily on access.
    """
    import pyarrow as pa
    from datasets.table import InMemoryTable

    if "sample_id" in features and "sample_id" not in columns:
        columns = {**columns, "sample_id": list(range(len(columns["label"])))}
    schema = features.arrow_schema
    arrays = []
    for name in features:
        values = columns[name]
        if isinstance(features[name], datasets.Image):
            paths = [v if isinstance(v, str) else None for v in values]
            blobs = [v if isinstance(v, (bytes, bytearray)) else None for v in values]
            if any(p is None and b is None for p, b in zip(paths, blobs)):
                raise TypeError(f"column {name!r} must hold file paths or encoded image bytes")
            arrays.append(pa.StructArray.from_arrays(
                [pa.array(blobs, pa.binary()), pa.array(paths, pa.string())], names=["bytes", "path"]))
        else:
            arrays.append(pa.array(values, type=schema.field(name).type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=features))


def _resolve(path: str, root: Path) -> str:
    candidate = Path(os.path.expanduser(path))
    return str(candidate if candidate.is_absolute() else root / candidate)


def _check_on_missing(on_missing: str) -> None:
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', not {on_missing!r}")


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


# ----------------------------------------------------------------------------- label cells


class _LabelParser:
    """Parse label cells by name (memoised); integer codes only through an explicit class list.

    `label_names`: names in code order (code 0 first), a {code: name} mapping, or the name of
    a table in `LABEL_CODES` ("rafdb-basic" = RAF-DB's 1-based codes, "fer2013", ...).
    """

    def __init__(self, label_names: str | Sequence[str] | Mapping[int, str] | None = None):
        if isinstance(label_names, str):
            if label_names not in LABEL_CODES:
                raise ValueError(f"unknown label_names table {label_names!r}; known: {', '.join(LABEL_CODES)}")
            label_names = LABEL_CODES[label_names]
        if label_names is None:
            self.codes: dict[int, str] | None = None
        elif isinstance(label_names, Mapping):
            self.codes = {int(k): parse_label(v) for k, v in label_names.items()}
        else:
            self.codes = {i: parse_label(v) for i, v in enumerate(label_names)}
        self.cache: dict[str, str] = {}

    def code(self, value: int, column: str) -> str:
        if self.codes is None:
            raise ValueError(
                f"column {column!r} holds the integer code {value}; pass label_names=[...] (the "
                f"dataset's class names in code order) or one of {', '.join(map(repr, LABEL_CODES))} "
                "so codes are mapped by name"
            )
        if value not in self.codes:
            raise ValueError(f"code {value} in column {column!r} is not one of {sorted(self.codes)}")
        return self.codes[value]

    def cell(self, value: Any, column: str) -> str | None:
        """The canonical name in one cell; None for an empty cell."""
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, (list, tuple)):
            parts = [self.cell(v, column) for v in value]
            parts = [p for p in parts if p]
            return parse_label("|".join(parts)) if parts else None
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"boolean {value} in column {column!r} is not a label")
        if isinstance(value, (int, np.integer)):
            return self.code(int(value), column)
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return self.code(int(value), column)
        text = str(value).strip()
        if not text:
            return None
        if text.lstrip("-").isdigit():
            return self.code(int(text), column)
        if text not in self.cache:
            self.cache[text] = parse_label(text)
        return self.cache[text]

    def names_expression(self, column: str) -> bool:
        """Whether a column header is itself an expression name (an indicator column)."""
        try:
            self.cache.setdefault(column, parse_label(column))
            return True
        except ValueError:
            return False

    def row(self, values: Sequence[Any], columns: Sequence[str]) -> str:
        """One label from one or more label columns.

        With several columns, a column whose header is an expression name and whose cell is
        1/0 (true/false) is an indicator of that expression; any other cell is parsed as a
        name or code. The named parts are joined into one label (two basics → their compound).
        """
        parts = []
        for value, column in zip(values, columns):
            if len(columns) > 1 and _is_indicator(value) and self.names_expression(column):
                if _truthy(value):
                    parts.append(self.cache[column])
                continue
            part = self.cell(value, column)
            if part:
                parts.append(part)
        if not parts:
            raise ValueError(f"no label in column(s) {', '.join(map(repr, columns))}")
        unique = list(dict.fromkeys(parts))
        return unique[0] if len(unique) == 1 else parse_label("|".join(unique))


def _is_indicator(value: Any) -> bool:
    return str(value).strip().lower() in ("0", "1", "0.0", "1.0", "true", "false")


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "1.0", "true")


# ----------------------------------------------------------------------------- image folder


def read_image_folder(root: str | Path, *, label_names: str | Sequence[str] | Mapping[int, str] | None = None,
                      return_report: bool = False):
    """`root/<label name>/**/*.jpg` → dataset; folder names in any spelling `parse_label` accepts.

    Numbered folders (`root/1/`, `root/2/`, as some RAF-DB copies ship) need `label_names`:
    a `LABEL_CODES` table name such as "rafdb-basic", names in code order, or {code: name}.
    An unknown folder name raises a `ValueError` naming the folder and the accepted labels.
    Images directly under `root` (outside any label folder) and files in label folders
    without an image extension are counted as skipped (hidden files are ignored).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    parser = _LabelParser(label_names)
    report = ReadReport(f"imagefolder {root}")
    paths, labels = [], []
    for folder in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not folder.is_dir():
            if folder.suffix.lower() in IMAGE_EXTENSIONS:
                report.skip("image outside a label folder", folder.name)
            continue
        try:
            label = parser.cell(folder.name, "folder name")
        except ValueError as error:
            if folder.name.isdigit():
                raise ValueError(f"numbered class folder {str(folder)!r}: {error}") from None
            hint = ""
            if folder.name.lower() in ("train", "test", "val", "valid", "validation", "training", "testing"):
                hint = f" (it looks like a split: point the reader at {folder} instead)"
            raise ValueError(
                f"folder {str(folder)!r} is not an expression label{hint}; label folders must be "
                f"named after one of: {', '.join(accepted_labels())} (any case; '_', '-', '|', '+' "
                "as separators; 'happy', 'Happily_Surprised' and the like are accepted)"
            ) from None
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(str(path))
                labels.append(label)
            else:
                report.skip(f"not an image extension ({', '.join(IMAGE_EXTENSIONS)})", str(path.relative_to(root)))
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in label folders under {root}")
    dataset = build_dataset({"image": paths, "label": labels}, row_features())
    return _finish(dataset, report, return_report)


# ----------------------------------------------------------------------------- CSV / JSON / JSONL

IMAGE_COLUMN_CANDIDATES = ("image", "file", "path", "filename", "file_name", "image_path", "img", "subDirectory_filePath")
LABEL_COLUMN_CANDIDATES = ("label", "labels", "expression", "emotion", "class")


def _pick_column(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, source) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise LabelFileError(source, None, f"no {what} column {wanted!r}; columns are {list(columns)}")
        return wanted
    for candidate in candidates:
        if candidate in columns:
            return candidate
    raise LabelFileError(
        source, None,
        f"cannot tell the {what} column (tried {', '.join(candidates)}); columns are {list(columns)}; "
        f"pass {what}_column=...",
    )


def _table_records(path: Path, delimiter: str | None) -> tuple[list[str], Iterable[tuple[int | str, dict]]]:
    """Column names and (line number, record) pairs of a CSV/TSV, JSON or JSONL file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl" or (suffix == ".json" and _is_json_lines(path)):
        records = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise LabelFileError(path, number, f"invalid JSON ({error.msg})") from None
                if not isinstance(record, dict):
                    raise LabelFileError(path, number, "each JSON line must be an object")
                records.append((number, record))
        columns = list(dict.fromkeys(k for _, r in records for k in r))
        return columns, records
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise LabelFileError(path, error.lineno, f"invalid JSON ({error.msg})") from None
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise LabelFileError(path, None, "a JSON object must hold exactly one list of records")
            data = lists[0]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise LabelFileError(path, None, "JSON must be a list of objects (one per image)")
        columns = list(dict.fromkeys(k for r in data for k in r))
        return columns, [(f"record {i}", r) for i, r in enumerate(data)]
    # CSV / TSV
    text = path.read_text(encoding="utf-8-sig")
    if delimiter is None:
        delimiter = "\t" if suffix in (".tsv", ".tab") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise LabelFileError(path, 1, "empty file (expected a header line)") from None
    records = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise LabelFileError(
                path, reader.line_num, f"{len(row)} columns, but the header has {len(header)}: {row!r}"
            )
        records.append((reader.line_num, dict(zip(header, row))))
    return header, records


def _is_json_lines(path: Path) -> bool:
    """A .json file that is really JSON Lines: the whole text fails to parse with 'Extra data'."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return False
    except json.JSONDecodeError as error:
        return error.msg == "Extra data"


def read_table(
    path: str | Path,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    label_names: Sequence[str] | Mapping[int, str] | None = None,
    image_root: str | Path | None = None,
    delimiter: str | None = None,
    on_missing: str = "error",
    return_report: bool = False,
):
    """A CSV/TSV, JSON (list of objects) or JSONL file of image file + label(s) → dataset.

    image_column / label_column: column names (default: the first of
    `IMAGE_COLUMN_CANDIDATES` / `LABEL_COLUMN_CANDIDATES` present). label_columns: several
    label columns whose parts form one label ("Sadness" + "Fear" → "Sadly Fearful"; 0/1
    columns headed by an expression name are indicators). A cell may itself be compound
    ("Sadness|Fear", "happily_surprised") or, in JSON, a list of names. Integer codes need
    `label_names` (the class names in code order, or a {code: name} mapping).
    Image paths are relative to `image_root` (default: the table's folder). A missing image
    raises a `LabelFileError` naming the table and line (on_missing="skip": counted instead).
    """
    _check_on_missing(on_missing)
    path = _require_file(Path(path), "label table")
    root = Path(image_root) if image_root is not None else path.parent
    columns, records = _table_records(path, delimiter)
    image_col = _pick_column(columns, image_column, IMAGE_COLUMN_CANDIDATES, "image", path)
    if label_columns is None:
        label_columns = [_pick_column(columns, label_column, LABEL_COLUMN_CANDIDATES, "label", path)]
    else:
        label_columns = list(label_columns)
        for name in label_columns:
            _pick_column(columns, name, (), "label", path)
    parser = _LabelParser(label_names)
    report = ReadReport(f"table {path}")
    paths, labels, ids = [], [], []
    for index, (line, record) in enumerate(records):
        file_cell = record.get(image_col)
        if file_cell is None or not str(file_cell).strip():
            raise LabelFileError(path, line, f"empty image cell in column {image_col!r}")
        image_path = _resolve(str(file_cell).strip(), root)
        try:
            label = parser.row([record.get(c) for c in label_columns], label_columns)
        except ValueError as error:
            raise LabelFileError(path, line, str(error)) from None
        if not os.path.isfile(image_path):
            if on_missing == "error":
                raise LabelFileError(path, line, f"image {file_cell!r} not found (looked for {image_path})")
            report.skip("image file missing", image_path)
            continue
        paths.append(image_path)
        labels.append(label)
        ids.append(index)
    dataset = build_dataset({"image": paths, "label": labels, "sample_id": ids}, row_features())
    return _finish(dataset, report, return_report)


# ----------------------------------------------------------------------------- existing datasets (parquet, Hub)


def normalise_dataset(
    dataset: datasets.Dataset,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    label_names: Sequence[str] | Mapping[int, str] | None = None,
    image_root: str | Path | None = None,
    source: str = "dataset",
) -> datasets.Dataset:
    """Bring any `datasets.Dataset` with an image and a label column into the toolkit schema.

    The image column may be a `datasets.Image` feature, a struct of {bytes, path}, raw
    bytes, or file paths (relative ones resolved against `image_root`). Labels are names
    (any spelling), or integer codes mapped through a `ClassLabel` feature's names or
    `label_names` — by name, never by position in our own lists. Extra columns are kept
    (valence, arousal, aus, ...); the label column(s) are replaced by `label`.
    """
    features = dataset.features
    columns = list(features)
    if image_column is None:
        image_column = next((c for c in columns if isinstance(features[c], datasets.Image)), None)
    image_column = _pick_column(columns, image_column, IMAGE_COLUMN_CANDIDATES, "image", source)
    if label_columns is None:
        label_columns = [_pick_column(columns, label_column, LABEL_COLUMN_CANDIDATES, "label", source)]
    for name in label_columns:
        _pick_column(columns, name, (), "label", source)
        if isinstance(features[name], datasets.ClassLabel) and label_names is None:
            label_names = features[name].names
    parser = _LabelParser(label_names)
    root = Path(image_root) if image_root is not None else Path.cwd()
    if isinstance(features[image_column], datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    # Everything in one batched map: chains of add_column/cast_column trip a datasets bug
    # ("tables don't have the same number of rows") on parquet-backed tables.
    new_features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.Value("string"),
        **{c: f for c, f in features.items() if c not in (image_column, *label_columns, "image", "label")},
    })
    if "sample_id" not in new_features:
        new_features["sample_id"] = datasets.Value("int64")

    def convert(batch: dict, indices: list[int]) -> dict:
        labels = []
        for offset, values in enumerate(zip(*(batch[c] for c in label_columns))):
            try:
                labels.append(parser.row(values, label_columns))
            except ValueError as error:
                raise LabelFileError(source, f"row {indices[offset]}", str(error)) from None
        out = {"label": labels, "image": [_image_value(v, root, source, i) for v, i in zip(batch[image_column], indices)]}
        if "sample_id" not in batch:
            out["sample_id"] = indices
        return out

    dataset = dataset.map(
        convert, batched=True, with_indices=True, features=new_features,
        remove_columns=list(dict.fromkeys([image_column, *label_columns, *(c for c in ("image", "label") if c in columns)])),
        desc=f"normalising {source}",
    )
    order = ["image", "label", *[c for c in dataset.column_names if c not in ("image", "label")]]
    return dataset.select_columns(order)


def _image_value(value: Any, root: Path, source: str, index: int) -> dict:
    """One image cell (path, bytes or {bytes, path}) as the {bytes, path} that datasets.Image stores."""
    path = None
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return {"bytes": value["bytes"], "path": value.get("path")}
        path = value.get("path")
    elif isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value), "path": None}
    elif isinstance(value, str):
        path = value.strip()
    if path:
        if "://" in path or "::" in path:  # remote (hf://, https://) files are fetched on decode
            return {"bytes": None, "path": path}
        resolved = _resolve(path, root)
        if not os.path.isfile(resolved):
            raise LabelFileError(source, f"row {index}", f"image {path!r} not found (looked for {resolved})")
        return {"bytes": None, "path": resolved}
    raise LabelFileError(source, f"row {index}", f"image cell holds neither a path nor image bytes ({type(value).__name__})")


def read_parquet(path: str, *, cache_dir: str | None = None, return_report: bool = False, **options):
    """Parquet file(s) (a path or glob) with an image column (bytes struct, bytes or paths) and labels.

    Relative image paths are resolved against the parquet file's folder. Options as in
    `normalise_dataset` (image_column, label_column, label_columns, label_names, image_root);
    `cache_dir` for the Arrow copy `datasets` makes (default: its usual cache).
    """
    import glob as globbing

    files = sorted(globbing.glob(os.path.expanduser(str(path)), recursive=True))
    if not files:
        raise FileNotFoundError(f"no parquet files match {path}")
    dataset = datasets.Dataset.from_parquet(files, cache_dir=cache_dir)
    options.setdefault("image_root", Path(files[0]).parent)
    dataset = normalise_dataset(dataset, source=str(path), **options)
    return _finish(dataset, ReadReport(f"parquet {path}"), return_report)


def read_hub(name: str, *, split: str = "train", revision: str | None = None, return_report: bool = False,
             load_options: Mapping[str, Any] | None = None, **options):
    """A Hub (or local script/folder) dataset via `datasets.load_dataset`, normalised to the schema.

    Needs the network (or the local cache); never called in the test-suite. `options` as in
    `normalise_dataset`; `load_options` go to `load_dataset` (e.g. {"name": "config"}).
    """
    dataset = datasets.load_dataset(name, split=split, revision=revision, **dict(load_options or {}))
    dataset = normalise_dataset(dataset, source=f"{name} ({split})", **options)
    return _finish(dataset, ReadReport(f"hub {name} {split}"), return_report)


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
    from cer_hf.image_io import load_rgb_image

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
                value = MISSING_VALUE
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


# ----------------------------------------------------------------------------- FER2013


def _fer_png(pixels: str, path: Path, line: int) -> bytes:
    try:
        values = np.fromstring(pixels, dtype=np.float64, sep=" ")  # ~4x faster than split() + array
    except ValueError:
        raise LabelFileError(path, line, "pixels must be space-separated integers") from None
    if values.size != 48 * 48:
        raise LabelFileError(path, line, f"{values.size} pixel values, expected 48x48 = 2304 space-separated integers")
    if values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values)):
        raise LabelFileError(path, line, "pixel values must be integers in 0..255")
    gray = values.astype(np.uint8).reshape(48, 48)
    buffer = io.BytesIO()
    # compress_level 1: several times faster than the default on face-like images, a few % larger.
    Image.fromarray(np.stack([gray] * 3, axis=-1), mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def read_fer2013(path: str | Path, *, usage: str | Sequence[str] | None = None, return_report: bool = False):
    """FER2013 `fer2013.csv` (emotion, pixels, Usage) → dataset of 48x48 RGB PNG images.

    Codes 0..6 = Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral. `usage`:
    "Training", "PublicTest", "PrivateTest", a list of them, or None (all rows).
    Header names are matched after stripping spaces (icml_face_data.csv writes " Usage").
    """
    path = _require_file(Path(path), "FER2013 CSV")
    usages = None if usage is None else ({usage} if isinstance(usage, str) else set(usage))
    if usages is not None and not usages <= set(FER2013_USAGES):
        raise ValueError(f"usage must be among {', '.join(FER2013_USAGES)}, not {sorted(usages)}")
    report = ReadReport(f"FER2013 {path} ({'+'.join(sorted(usages)) if usages else 'all'})")
    images, labels, ids = [], [], []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        for needed in ("emotion", "pixels"):
            if needed not in header:
                raise LabelFileError(path, 1, f"no {needed!r} column; header is {header}")
        has_usage = "Usage" in header
        if usages is not None and not has_usage:
            raise LabelFileError(path, 1, "no 'Usage' column to select a split from")
        at = {name: header.index(name) for name in header}
        for index, row in enumerate(reader):
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise LabelFileError(path, line, f"{len(row)} columns, expected {len(header)} ({', '.join(header)})")
            if usages is not None and row[at["Usage"]].strip() not in usages:
                continue
            code_text = row[at["emotion"]].strip()
            if not code_text.isdigit() or int(code_text) >= len(FER2013_LABELS):
                raise LabelFileError(path, line, f"emotion {code_text!r} is not a code 0..6")
            images.append(_fer_png(row[at["pixels"]], path, line))
            labels.append(FER2013_LABELS[int(code_text)])
            ids.append(index)
    dataset = build_dataset({"image": images, "label": labels, "sample_id": ids}, row_features())
    return _finish(dataset, report, return_report)


# ----------------------------------------------------------------------------- filtering


@dataclass
class FilterReport:
    """Counts per label of the rows `filter_targets` kept and dropped."""

    kept: Counter
    dropped: Counter

    def __str__(self) -> str:
        lines = [f"kept {sum(self.kept.values())} rows, dropped {sum(self.dropped.values())}"]
        lines += [f"  kept    {label}: {count}" for label, count in sorted(self.kept.items())]
        lines += [f"  dropped {label}: {count}" for label, count in sorted(self.dropped.items())]
        return "\n".join(lines)


def filter_targets(
    dataset: datasets.Dataset | datasets.IterableDataset,
    keep: Sequence[str] = TARGET_LABELS,
    drop: Sequence[str] = NON_TARGET_LABELS,
    *,
    verbose: bool = True,
) -> tuple[datasets.Dataset | datasets.IterableDataset, FilterReport]:
    """Keep rows whose label is in `keep` and not in `drop`; count every dropped row by label.

    Defaults keep the six emotion basics and every known compound and drop Neutral,
    Contempt and Other; a label outside `keep` is dropped too, and rows without a label
    (None or "", e.g. Aff-Wild2 frames without an expression) count as "<missing>".
    Labels in `keep`/`drop` may be written in any spelling `parse_label` accepts. For a
    `Dataset` the report is complete on return (logged, and printed when `verbose`). For an
    `IterableDataset` the filter is lazy and the report's counters fill up as the stream is
    iterated in this process (DataLoader worker processes count in their own copies).
    """
    keep_set = {parse_label(k) for k in keep}
    drop_set = {parse_label(d) for d in drop}
    report = FilterReport(Counter(), Counter())

    def wanted(label: str | None) -> bool:
        if label and label in keep_set and label not in drop_set:
            report.kept[label] += 1
            return True
        report.dropped[label or "<missing>"] += 1
        return False

    if isinstance(dataset, datasets.IterableDataset):
        return dataset.filter(wanted, input_columns="label"), report
    indices = [index for index, label in enumerate(dataset["label"]) if wanted(label)]
    logger.info("filter_targets: %s", report)
    if verbose:
        print(report)
    if len(indices) == len(dataset):
        return dataset, report
    return dataset.select(indices), report


def drop_unreadable_images(dataset: datasets.Dataset, *, source: str = "dataset") -> tuple[datasets.Dataset, ReadReport]:
    """Decode every image once and drop the rows whose image cannot be read; report each by file.

    Readers store paths and decode lazily, so a corrupt or truncated file would otherwise stop
    training at the batch that touches it. The skipped rows are counted under "unreadable image"
    with the file names (and PIL's reason) as examples; nothing else is dropped.
    """
    from cer_hf.image_io import BadImageError, load_rgb_image

    report = ReadReport(source)
    raw = dataset.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    keep, index = [], 0
    for batch in raw.iter(batch_size=256):
        for image in batch["image"]:
            name = image.get("path") or f"row {index}"
            try:
                load_rgb_image(image["bytes"] if image.get("bytes") else image["path"], name=name)
                keep.append(index)
            except BadImageError as error:
                report.skip("unreadable image", f"{name} ({error.reason})")
            index += 1
    report.rows = len(keep)
    if report.skipped:
        report.log()
        dataset = dataset.select(keep)
    return dataset, report


# ----------------------------------------------------------------------------- dispatcher


def _synthetic(rest: str, **options):
    parts = rest.split(":")
    if len(parts) != 2 or parts[0] not in ("basic", "compound", "all") or not parts[1].isdigit():
        raise ValueError(f"synthetic spec must be 'synthetic:basic|compound|all:<count>', not 'synthetic:{rest}'")
    from cer_hf.data.synthetic import synthetic_dataset

    return_report = options.pop("return_report", False)
    dataset = synthetic_dataset(int(parts[1]), kind=parts[0], **options)
    report = ReadReport(f"synthetic:{rest}", rows=len(dataset))
    return (dataset, report) if return_report else dataset


def _split_suffix(rest: str, splits: Sequence[str]) -> tuple[str, str | None]:
    """Split '/path:train' into ('/path', 'train') when the suffix is a known split name."""
    head, sep, tail = rest.rpartition(":")
    if sep and tail in splits:
        return head, tail
    return rest, None


def _with_split(reader: Callable, splits: Sequence[str], option: str) -> Callable:
    def load(rest: str, **options):
        target, split = _split_suffix(rest, splits)
        if split is not None:
            options[option] = split
        return reader(target, **options)

    return load


def _hub(rest: str, **options):
    name, sep, split = rest.partition(":")
    if sep:
        options["split"] = split
    return read_hub(name, **options)


def _affwild2(kind: str) -> Callable:
    def load(rest: str, **options):
        from cer_hf.data import affwild2

        reader = {
            "cexprdb": affwild2.read_cexprdb,
            "affwild2-expr": affwild2.read_affwild2_expr,
            "affwild2-mtl": affwild2.read_affwild2_mtl,
        }[kind]
        if kind == "cexprdb":
            return reader(rest, **options)
        target, split = _split_suffix(rest, affwild2.SPLITS)
        if split is not None:
            options["split"] = split
        return reader(target, **options)

    return load


SOURCE_SCHEMES: dict[str, tuple[Callable, str]] = {
    "synthetic": (_synthetic, "synthetic:basic|compound|all:<count>"),
    "imagefolder": (lambda rest, **o: read_image_folder(rest, **o), "imagefolder:/root (root/<label>/*.jpg)"),
    "csv": (lambda rest, **o: read_table(rest, **o), "csv:/file.csv"),
    "json": (lambda rest, **o: read_table(rest, **o), "json:/file.json or .jsonl"),
    "jsonl": (lambda rest, **o: read_table(rest, **o), "jsonl:/file.jsonl"),
    "parquet": (lambda rest, **o: read_parquet(rest, **o), "parquet:/glob/*.parquet"),
    "hub": (_hub, "hub:org/name[:split]"),
    "rafdb-basic": (_with_split(read_rafdb_basic, ("train", "test"), "split"), "rafdb-basic:/root[:train|test]"),
    "rafdb-compound": (_with_split(read_rafdb_compound, ("train", "test"), "split"), "rafdb-compound:/root[:train|test]"),
    "affectnet": (lambda rest, **o: read_affectnet(rest, **o), "affectnet:/training.csv"),
    "fer2013": (_with_split(read_fer2013, FER2013_USAGES, "usage"), "fer2013:/fer2013.csv[:Training|PublicTest|PrivateTest]"),
    "cexprdb": (_affwild2("cexprdb"), "cexprdb:/root"),
    "affwild2-expr": (_affwild2("affwild2-expr"), "affwild2-expr:/root[:train|validation]"),
    "affwild2-mtl": (_affwild2("affwild2-mtl"), "affwild2-mtl:/root[:train|validation]"),
}


def load_labelled_source(spec: str, **options):
    """Load a labelled source from a spec string `scheme:argument` (see `SOURCE_SCHEMES`).

    Examples: "synthetic:compound:500", "imagefolder:/data/faces", "csv:/data/labels.csv",
    "rafdb-basic:/data/RAF-DB:train", "fer2013:/data/fer2013.csv:PublicTest",
    "affwild2-mtl:/data/Aff-Wild2:validation". `options` go to the reader (for example
    `label_column=` for csv, `crop_faces=True` for affectnet, `return_report=True`).
    """
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SOURCE_SCHEMES or not rest:
        known = "\n  ".join(usage for _, usage in SOURCE_SCHEMES.values())
        problem = "has no argument" if scheme in SOURCE_SCHEMES else f"has unknown scheme {scheme!r}"
        raise ValueError(f"source spec {spec!r} {problem}; known schemes:\n  {known}")
    loader, _ = SOURCE_SCHEMES[scheme]
    return loader(rest, **options)


# ----------------------------------------------------------------------------- command line


def _parse_option(text: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--option takes key=value (a YAML value), not {text!r}")
    return key.replace("-", "_"), yaml.safe_load(value)


def register_cli(subparsers) -> None:
    """Add `cer-hf data SPEC`: load a labelled source and print its label counts and skip report."""
    parser = subparsers.add_parser(
        "data", help="check a labelled dataset: rows per label and what was skipped",
        description="Load a labelled source spec (e.g. rafdb-basic:/data/RAF-DB/basic:train) and "
                    "print the rows per label, the columns and every skipped-row count.",
    )
    parser.add_argument("spec", help="source spec, e.g. imagefolder:/faces, csv:/labels.csv, affectnet:/training.csv")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="reader option (YAML value), e.g. -o label_column=emotion -o on_missing=skip")
    parser.add_argument("--filter-targets", action="store_true",
                        help="also apply filter_targets (drop Neutral, Contempt, Other) and print its report")
    parser.add_argument("--decode", type=int, default=0, metavar="N",
                        help="decode the first N images to check they open (default 0)")
    parser.set_defaults(func=_run_cli)


def _run_cli(args) -> None:
    options = dict(_parse_option(text) for text in args.option)
    options["return_report"] = True
    dataset, report = load_labelled_source(args.spec, **options)
    print(report)
    print(f"columns: {', '.join(dataset.column_names)}")
    counts = Counter(dataset["label"])
    for label, count in sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))):
        print(f"  {label if label is not None else '<missing>'}\t{count}")
    if args.filter_targets:
        filter_targets(dataset, verbose=True)
    if args.decode:
        sizes = Counter(dataset[index]["image"].size for index in range(min(args.decode, len(dataset))))
        print(f"decoded {sum(sizes.values())} images; sizes: {dict(sizes)}")
