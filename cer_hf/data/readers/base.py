"""The reader core: errors that name file and line, skip reports, the dataset schema, label cells, filtering.

Labelled face datasets as they sit on users' disks → `datasets.Dataset` in the toolkit schema.

Every reader returns rows with

* ``image``: a `datasets.Image()` column; files are stored as paths and decoded lazily on access
  (FER2013 pixel strings and cropped AffectNet faces are stored as encoded bytes);
* ``label``: the canonical expression name from `cer_hf.taxonomy.parse_label`;
* ``sample_id``: the row's position in the source (an int);
* where the source has them: ``valence``/``arousal`` (-5 = missing), ``aus`` (12 floats in the
  ABAW AU order, -1 = missing), ``video_id`` and ``frame`` (0-based; see `cer_hf.data.readers.affwild2`).

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

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import datasets
import numpy as np

from cer_hf.image_io import BadImageError, load_rgb_image
from cer_hf.taxonomy import (
    AU_NAMES,
    LABEL_CODES,
    NON_TARGET_LABELS,
    TARGET_LABELS,
    parse_label,
)

logger = logging.getLogger(__name__)

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
) -> tuple[datasets.Dataset | datasets.IterableDataset, FilterReport]:
    """Keep rows whose label is in `keep` and not in `drop`; count every dropped row by label.

    Defaults keep the six emotion basics and every known compound and drop Neutral,
    Contempt and Other; a label outside `keep` is dropped too, and rows without a label
    (None or "", e.g. Aff-Wild2 frames without an expression) count as "<missing>".
    Labels in `keep`/`drop` may be written in any spelling `parse_label` accepts. For a
    `Dataset` the report is complete on return (and logged). For an
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
    if len(indices) == len(dataset):
        return dataset, report
    return dataset.select(indices), report


def drop_unreadable_images(dataset: datasets.Dataset, *, source: str = "dataset") -> tuple[datasets.Dataset, ReadReport]:
    """Decode every image once and drop the rows whose image cannot be read; report each by file.

    Readers store paths and decode lazily, so a corrupt or truncated file would otherwise stop
    training at the batch that touches it. The skipped rows are counted under "unreadable image"
    with the file names (and PIL's reason) as examples; nothing else is dropped.
    """
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


