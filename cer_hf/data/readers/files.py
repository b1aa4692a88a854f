"""Generic labelled sources: an image folder (root/<label>/*.jpg), CSV / JSON / JSONL tables, parquet, a Hub dataset."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import datasets

from cer_hf.image_io import IMAGE_EXTENSIONS
from cer_hf.taxonomy import (
    accepted_labels,
)
from cer_hf.data.readers.base import (
    LabelFileError,
    ReadReport,
    _check_on_missing,
    _finish,
    _LabelParser,
    _require_file,
    _resolve,
    build_dataset,
    row_features,
)

logger = logging.getLogger(__name__)

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


