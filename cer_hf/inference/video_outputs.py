"""A sequence's per-frame results (`VideoPrediction`) and the files written from them: per-frame CSV, summary JSON,
the ABAW submission file (merged across calls by sequence name) and a timeline plot.

`cer_hf.inference.video` produces `VideoPrediction`s and re-exports these writers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cer_hf.inference.smoothing import count_label_changes


@dataclass
class VideoPrediction:
    """Per-frame results for one sequence. Arrays have one row per frame, in frame order.

    `boxes` are `(x, y, width, height)` of the analysed face in frame pixels (-1 where none was found);
    `probabilities` / `compound_scores` are the model's outputs with face-less frames interpolated
    (all NaN when the sequence has no face at all); `smoothed_scores` after the score filter (equal to
    `compound_scores` for `none` and `vote`); `raw_labels` / `labels` are compound indices before and after
    smoothing (-1 = no prediction). `unreadable_frames` names the frame images of a folder that could not be
    read (kept as frames without a face).
    """

    name: str
    source: str
    basic_labels: list[str]
    compound_names: list[str]
    frame_names: list[str]
    timestamps: np.ndarray
    boxes: np.ndarray
    face_found: np.ndarray
    probabilities: np.ndarray
    compound_scores: np.ndarray
    smoothed_scores: np.ndarray
    raw_labels: np.ndarray
    labels: np.ndarray
    smoothing: dict = field(default_factory=dict)
    seconds: float = math.nan
    unreadable_frames: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    def label_name(self, index: int) -> str:
        return self.compound_names[index] if index >= 0 else ""

    def summary(self) -> dict:
        """Frames, faces found, label distribution (raw and smoothed), label changes and processing speed."""
        found = int(self.face_found.sum())
        return {
            "video": self.name,
            "source": self.source,
            "frames": self.num_frames,
            "faces_found": found,
            "faces_found_percent": round(100.0 * found / max(self.num_frames, 1), 2),
            "smoothing": self.smoothing,
            "label_distribution": _distribution(self.labels, self.compound_names),
            "raw_label_distribution": _distribution(self.raw_labels, self.compound_names),
            "label_changes": count_label_changes(self.labels),
            "raw_label_changes": count_label_changes(self.raw_labels),
            "seconds": round(self.seconds, 3),
            "fps_processed": round(self.num_frames / self.seconds, 2) if self.seconds > 0 else None,
            "unreadable_frames": list(self.unreadable_frames),
        }


def _distribution(labels: np.ndarray, names: Sequence[str]) -> dict[str, int]:
    counts = Counter(int(label) for label in labels)
    distribution = {name: counts.get(i, 0) for i, name in enumerate(names)}
    if counts.get(-1):
        distribution["no_prediction"] = counts[-1]
    return distribution


# ---------------------------------------------------------------------------------------------- writers


def _underscored(name: str) -> str:
    return name.replace(" ", "_")


def _number(value: float, digits: int = 6) -> str:
    return "" if not np.isfinite(value) else f"{value:.{digits}f}"


def write_frames_csv(prediction: VideoPrediction, path: str | Path, *, merge: bool = False) -> Path:
    """One row per frame: index, frame name, timestamp, face box, face_found, basic probabilities,
    compound scores (raw and smoothed), raw and smoothed labels. Missing values are empty cells.

    `merge=True` (for `cer-hf predict`'s images.csv): rows already in the file are kept, a row with the
    same frame name is replaced where it stood, and the `frame` column is renumbered; a file with other
    columns is a `ValueError` naming it, left as it is.
    """
    path = Path(path)
    if merge and path.exists():
        return _merge_frames_csv(prediction, path)
    basics = [f"prob_{name}" for name in prediction.basic_labels]
    compounds = [f"score_{_underscored(name)}" for name in prediction.compound_names]
    smoothed = [f"smoothed_{_underscored(name)}" for name in prediction.compound_names]
    header = ["frame", "frame_name", "timestamp", "face_found", "face_x", "face_y", "face_width", "face_height",
              *basics, *compounds, *smoothed, "raw_label", "label"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(prediction.num_frames):
            writer.writerow([
                i,
                prediction.frame_names[i],
                _number(prediction.timestamps[i], 4),
                int(prediction.face_found[i]),
                *[int(v) if v >= 0 else "" for v in prediction.boxes[i]],
                *[_number(v) for v in prediction.probabilities[i]],
                *[_number(v) for v in prediction.compound_scores[i]],
                *[_number(v) for v in prediction.smoothed_scores[i]],
                prediction.label_name(int(prediction.raw_labels[i])),
                prediction.label_name(int(prediction.labels[i])),
            ])
    return path


def _merge_frames_csv(prediction: VideoPrediction, path: Path) -> Path:
    with path.open(newline="") as handle:
        existing = list(csv.reader(handle))
    new_path = path.with_name(f".{path.name}.new")
    write_frames_csv(prediction, new_path)
    with new_path.open(newline="") as handle:
        header, *new_rows = list(csv.reader(handle))
    new_path.unlink()
    if not existing or existing[0] != header:
        raise ValueError(f"{path}: its columns differ from this model's ({len(existing[0]) if existing else 0} vs "
                         f"{len(header)}); write to another --output")
    rows = {row[1]: row for row in existing[1:] if len(row) > 1}
    rows.update({row[1]: row for row in new_rows})  # by frame name; an existing one keeps its place
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([str(index), *row[1:]] for index, row in enumerate(rows.values()))
    _replace_file(path, buffer.getvalue())
    return path


def _shared_compound_names(predictions: Sequence[VideoPrediction]) -> list[str]:
    """The compound names every prediction shares (an ABAW file holds one compound set)."""
    if not predictions:
        raise ValueError("no predictions to write")
    names = predictions[0].compound_names
    if any(p.compound_names != names for p in predictions):
        raise ValueError("all predictions in one ABAW file must use the same compound set")
    return names


def write_abaw_predictions(predictions: Sequence[VideoPrediction], path: str | Path) -> Path:
    """The ABAW compound-expression submission layout for all sequences in one file.

    Header `image_location,Fearfully_Surprised,...` (the compound names with underscores), then one line
    per frame `<video>/<frame name>,<predicted compound index>` (smoothed label; -1 where the video had
    no face at all, which must be replaced before a submission).
    """
    path, names = Path(path), _shared_compound_names(predictions)
    with path.open("w", newline="") as handle:
        handle.write(",".join(["image_location", *map(_underscored, names)]) + "\n")
        for prediction in predictions:
            for frame_name, label in zip(prediction.frame_names, prediction.labels):
                handle.write(f"{prediction.name}/{frame_name},{int(label)}\n")
    return path


def _abaw_header(compound_names: Sequence[str]) -> str:
    return ",".join(["image_location", *map(_underscored, compound_names)])


def read_abaw_rows(path: str | Path, compound_names: Sequence[str]) -> dict[str, list[str]]:
    """The rows of an existing ABAW file by sequence name, in file order ({} when there is no file).

    The header must name `compound_names`; a header of another compound set or a row that is not
    `<video>/<frame>,<label>` is a `ValueError` naming the file (and line).
    """
    path = Path(path)
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    if not lines or lines[0] != _abaw_header(compound_names):
        raise ValueError(f"{path}: its header names other compounds ({lines[0] if lines else 'empty file'!r}, "
                         f"this model: {_abaw_header(compound_names)!r}); write to another --output")
    groups: dict[str, list[str]] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        location, comma, label = line.rpartition(",")
        sequence, slash, _ = location.partition("/")
        if not (comma and slash and sequence and label.strip().lstrip("-").isdigit()):
            raise ValueError(f"{path}, line {number}: expected <video>/<frame>,<label index>, got {line!r}")
        groups.setdefault(sequence, []).append(line)
    return groups


def merge_abaw_predictions(predictions: Sequence[VideoPrediction], path: str | Path) -> Path:
    """Write `predictions` into the ABAW file at `path`, keeping the rows of the other sequences already there.

    A sequence already in the file (by name) has its rows replaced where they stood; a new one is appended.
    The file is written to a temporary name and renamed into place: it is never left half-written, and a
    file of another compound set is refused (`read_abaw_rows`) and left as it is.
    """
    path, names = Path(path), _shared_compound_names(predictions)
    groups = read_abaw_rows(path, names)
    for prediction in predictions:  # an existing key keeps its place in the dict
        groups[prediction.name] = [f"{prediction.name}/{frame_name},{int(label)}"
                                   for frame_name, label in zip(prediction.frame_names, prediction.labels)]
    text = "\n".join([_abaw_header(names), *(row for rows in groups.values() for row in rows)]) + "\n"
    _replace_file(path, text)
    return path


def _replace_file(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def write_summary_json(prediction: VideoPrediction, path: str | Path) -> Path:
    """The prediction's `summary()` as JSON."""
    path = Path(path)
    path.write_text(json.dumps(prediction.summary(), indent=2) + "\n")
    return path


def plot_timeline(prediction: VideoPrediction, path: str | Path) -> Path:
    """PNG of the compound scores over time (smoothed as lines, raw as faint lines), face-less frames shaded."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("--plot needs matplotlib: pip install 'cer_hf[plots]'") from error
    path = Path(path)
    times = prediction.timestamps
    use_time = np.isfinite(times).all() and len(times) > 0
    x = times if use_time else np.arange(prediction.num_frames)
    figure, axis = plt.subplots(figsize=(12, 4), dpi=100)
    colours = plt.get_cmap("tab10" if len(prediction.compound_names) <= 10 else "tab20")
    for c, name in enumerate(prediction.compound_names):
        axis.plot(x, prediction.compound_scores[:, c], color=colours(c), alpha=0.25, linewidth=0.8)
        axis.plot(x, prediction.smoothed_scores[:, c], color=colours(c), linewidth=1.6, label=name)
    for i in np.flatnonzero(~prediction.face_found):
        axis.axvspan(x[max(i - 1, 0)] if i else x[0], x[i], color="grey", alpha=0.15, linewidth=0)
    axis.set_xlabel("time (s)" if use_time else "frame")
    axis.set_ylabel("compound score")
    axis.set_title(f"{prediction.name}: compound scores ({prediction.smoothing.get('method', 'none')} smoothing; "
                   "faint = raw, grey = no face)")
    axis.legend(loc="upper right", fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
