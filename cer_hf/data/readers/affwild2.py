"""Frame-level video datasets of the ABAW challenges: C-EXPR-DB and Aff-Wild2 (EXPR, AU, VA).

Layout (as the organisers distribute it)::

    root/cropped_aligned/<video>/00001.jpg, 00002.jpg, ...     face crops, 1-based names
    root/<annotations>/<video>.txt                              C-EXPR-DB: one file per video
    root/EXPR_Recognition_Challenge/Train_Set/<video>.txt       Aff-Wild2 (also Validation_Set)
    root/AU_Detection_Challenge/Train_Set/<video>.txt
    root/VA_Estimation_Challenge/Train_Set/<video>.txt

Every label file starts with a header line; line k+2 of the file (the k-th value, k from 0)
annotates video frame k, whose image is ``f"{k + 1:05d}.jpg"``. Rows carry ``frame = k``
(0-based, as `cer_hf.data.synthetic.synthetic_video` does) and ``video_id`` = the file stem.

* Expression files: header = the class names (C-EXPR-DB: the 7 ABAW7 compounds;
  Aff-Wild2: ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other``), then one
  class index per line; -1 = unlabelled. Indices are mapped through the header's names when
  the header parses as expression names (so a reordered header still maps by name), else
  through the dataset's documented order (logged).
* AU files: header ``AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26`` (columns
  mapped by name), then 0/1 per AU; -1 = not annotated.
* VA files: header ``valence,arousal``, then two floats in [-1, 1]; -5 = not annotated.

The ABAW multi-task challenge ships one combined file per split instead
(``training_set_annotations.txt`` / ``validation_set_annotations.txt``): a header line, then
``<video>/<00001.jpg>,valence,arousal,expression,AU1,...,AU26`` per frame; `read_affwild2_mtl`
reads either layout.

Unlabelled frames and frames whose image is missing (no face found) are skipped and counted
in the `ReadReport`; unreadable lines raise `LabelFileError` naming the file and the line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from cer_hf.data.readers.base import (
    LabelFileError,
    ReadReport,
    _finish,
    build_dataset,
    row_features,
)
from cer_hf.taxonomy import AFFWILD2_EXPR_LABELS, AU_NAMES, CEXPRDB_LABELS, MISSING_VA, parse_label

logger = logging.getLogger(__name__)


# Task folder names used by the different ABAW editions, and the split folder names.
TASK_FOLDERS: dict[str, tuple[str, ...]] = {
    "EXPR": ("EXPR_Recognition_Challenge", "EXPR_Classification_Challenge", "EXPR_Set"),
    "AU": ("AU_Detection_Challenge", "AU_Set"),
    "VA": ("VA_Estimation_Challenge", "VA_Set"),
}
SPLITS: dict[str, str] = {"train": "Train_Set", "validation": "Validation_Set", "val": "Validation_Set"}
COMBINED_FILES: dict[str, str] = {
    "train": "training_set_annotations.txt",
    "validation": "validation_set_annotations.txt",
    "val": "validation_set_annotations.txt",
}
COMBINED_COLUMNS = ("image", "valence", "arousal", "expression", *AU_NAMES)
IMAGE_FOLDERS = ("cropped_aligned", "cropped_aligned_images", "cropped-aligned")
UNLABELLED = -1


def image_name(frame: int) -> str:
    """The cropped-aligned image file of 0-based video frame `frame` (names are 1-based)."""
    return f"{frame + 1:05d}.jpg"


def find_images_dir(root: Path, images_dir: str | Path | None = None) -> Path:
    """`images_dir` (relative to root) or the first of `IMAGE_FOLDERS` under root or one level down."""
    if images_dir is not None:
        path = root / images_dir
        if not path.is_dir():
            raise FileNotFoundError(f"image folder {path} not found")
        return path
    candidates = [root / name for name in IMAGE_FOLDERS]
    candidates += [sub / name for sub in sorted(root.iterdir()) if sub.is_dir() for name in IMAGE_FOLDERS]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no frame folder ({' or '.join(IMAGE_FOLDERS)}) under {root}; pass images_dir=..."
    )


def find_task_dir(root: Path, task: str) -> Path | None:
    """The annotation folder of `task` (EXPR, AU, VA) at root or up to two levels below, or None."""
    names = TASK_FOLDERS[task]
    levels = [[root]]
    levels.append([p for p in sorted(root.iterdir()) if p.is_dir() and p.name not in IMAGE_FOLDERS])
    levels.append([q for p in levels[1] for q in sorted(p.iterdir()) if q.is_dir()])
    for level in levels:
        for parent in level:
            for name in names:
                if (parent / name).is_dir():
                    return parent / name
    return None


def _split_dirs(task_dir: Path, split: str | None) -> list[Path]:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)} or None (all), not {split!r}")
    names = [SPLITS[split]] if split else list(dict.fromkeys(SPLITS.values()))
    found = [task_dir / name for name in names if (task_dir / name).is_dir()]
    if not found:
        raise FileNotFoundError(f"no {' or '.join(names)} folder in {task_dir}")
    return found


def _lines(path: Path) -> tuple[str, list[tuple[int, str]]]:
    """Header and (line number, text) of the non-empty value lines of a label file."""
    with open(path, encoding="utf-8-sig") as handle:
        lines = handle.read().splitlines()
    if not lines:
        raise LabelFileError(path, 1, "empty file (expected a header line)")
    values = [(number, text.strip()) for number, text in enumerate(lines[1:], 2)]
    while values and not values[-1][1]:  # trailing blank lines are harmless
        values.pop()
    for number, text in values:
        if not text:
            raise LabelFileError(path, number, "empty line inside the annotations (every frame needs a line)")
    return lines[0].strip(), values


def _class_names(path: Path, header: str, default: Sequence[str]) -> list[str]:
    """Index → name from the header when it names expressions, else the dataset's default order."""
    if header.lstrip("-").isdigit():
        raise LabelFileError(path, 1, f"expected a header line of class names, got the value {header!r}")
    try:
        return [parse_label(part) for part in header.split(",")]
    except ValueError:
        logger.warning("%s: header %r does not name expressions; using the order %s", path, header, list(default))
        return list(default)


def read_expression_file(path: str | Path, default_names: Sequence[str]) -> list[tuple[int, str | None]]:
    """Per-frame labels of one expression file: [(line number, name or None when unlabelled)]."""
    path = Path(path)
    header, values = _lines(path)
    names = _class_names(path, header, default_names)
    frames = []
    for number, text in values:
        if not text.lstrip("-").isdigit():
            raise LabelFileError(path, number, f"expected one class index, got {text!r}")
        code = int(text)
        if code == UNLABELLED:
            frames.append((number, None))
        elif 0 <= code < len(names):
            frames.append((number, names[code]))
        else:
            raise LabelFileError(path, number, f"class index {code} is outside 0..{len(names) - 1} (or -1 = unlabelled)")
    return frames


def _header_columns(path: Path, header: str, expected: Sequence[str]) -> list[int]:
    """Positions of the `expected` columns in a comma header (matched by name, case-insensitive)."""
    columns = [h.strip().lower() for h in header.split(",")]
    missing = [name for name in expected if name.lower() not in columns]
    if missing or len(columns) != len(expected):
        raise LabelFileError(path, 1, f"header {header!r} must name exactly the columns {','.join(expected)}")
    return [columns.index(name.lower()) for name in expected]


def read_au_file(path: str | Path) -> list[tuple[int, list[float]]]:
    """Per-frame AU occurrences of one AU file, in `AU_NAMES` order (-1 = not annotated)."""
    path = Path(path)
    header, values = _lines(path)
    order = _header_columns(path, header, AU_NAMES)
    frames = []
    for number, text in values:
        cells = text.split(",")
        if len(cells) != len(AU_NAMES):
            raise LabelFileError(path, number, f"{len(cells)} values, expected {len(AU_NAMES)} ({','.join(AU_NAMES)})")
        try:
            row = [int(cells[i]) for i in order]
        except ValueError:
            raise LabelFileError(path, number, f"AU values must be 0, 1 or -1, got {text!r}") from None
        if any(v not in (0, 1, -1) for v in row):
            raise LabelFileError(path, number, f"AU values must be 0, 1 or -1, got {text!r}")
        frames.append((number, [float(v) for v in row]))
    return frames


def read_va_file(path: str | Path) -> list[tuple[int, tuple[float, float]]]:
    """Per-frame (valence, arousal) of one VA file; -5 = not annotated."""
    path = Path(path)
    header, values = _lines(path)
    order = _header_columns(path, header, ("valence", "arousal"))
    frames = []
    for number, text in values:
        cells = text.split(",")
        if len(cells) != 2:
            raise LabelFileError(path, number, f"expected 'valence,arousal', got {text!r}")
        try:
            pair = [float(cells[i]) for i in order]
        except ValueError:
            raise LabelFileError(path, number, f"unreadable number in {text!r}") from None
        for name, value in zip(("valence", "arousal"), pair):
            if value != MISSING_VA and not -1 <= value <= 1:
                raise LabelFileError(path, number, f"{name} {value} is outside [-1, 1] (and not -5 = missing)")
        frames.append((number, (pair[0], pair[1])))
    return frames


class _FrameImages:
    """Which frame images exist, one directory listing per video."""

    def __init__(self, images_dir: Path):
        self.images_dir = str(images_dir)
        self.listings: dict[str, set[str]] = {}

    def path(self, video: str, frame: int) -> str | None:
        if video not in self.listings:
            folder = os.path.join(self.images_dir, video)
            self.listings[video] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        name = image_name(frame)
        return os.path.join(self.images_dir, video, name) if name in self.listings[video] else None


def _label_files(folders: Sequence[Path]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.txt")):
            if path.stem in files:
                raise LabelFileError(path, None, f"video {path.stem!r} is also annotated in {files[path.stem]}")
            files[path.stem] = path
    return files


def _read_expression_videos(label_files: dict[str, Path], images: _FrameImages, default_names: Sequence[str],
                            report: ReadReport, return_report: bool):
    columns: dict[str, list] = {k: [] for k in ("image", "label", "video_id", "frame")}
    for video, path in label_files.items():
        for frame, (number, label) in enumerate(read_expression_file(path, default_names)):
            if label is None:
                report.skip("unlabelled (-1)", f"{path.name}:{number}")
                continue
            image = images.path(video, frame)
            if image is None:
                report.skip("frame image missing", f"{video}/{image_name(frame)}")
                continue
            columns["image"].append(image)
            columns["label"].append(label)
            columns["video_id"].append(video)
            columns["frame"].append(frame)
    dataset = build_dataset(columns, row_features(video=True))
    return _finish(dataset, report, return_report)


def read_cexprdb(root: str | Path, *, labels_dir: str | Path | None = None, images_dir: str | Path | None = None,
                 return_report: bool = False):
    """C-EXPR-DB: `cropped_aligned/<video>/<frame:05d>.jpg` + one label file per video.

    `labels_dir` (relative to root) holds `<video>.txt`; by default the first of
    annotations/, labels/, Annotations/, Labels/ or root itself that holds .txt files. Each
    file: a header line, then one compound index per frame in ABAW7 order (Fearfully
    Surprised, Happily Surprised, Sadly Surprised, Disgustedly Surprised, Angrily Surprised,
    Sadly Fearful, Sadly Angry); -1 = unlabelled (skipped and counted).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"C-EXPR-DB root not found: {root}")
    images = _FrameImages(find_images_dir(root, images_dir))
    if labels_dir is not None:
        folders = [root / labels_dir]
        if not folders[0].is_dir():
            raise FileNotFoundError(f"label folder {folders[0]} not found")
    else:
        candidates = [root / n for n in ("annotations", "labels", "Annotations", "Labels")] + [root]
        folders = [next((c for c in candidates if c.is_dir() and any(c.glob("*.txt"))), root)]
    label_files = _label_files(folders)
    if not label_files:
        raise FileNotFoundError(f"no <video>.txt label files in {folders[0]}; pass labels_dir=...")
    report = ReadReport(f"C-EXPR-DB {root}")
    return _read_expression_videos(label_files, images, CEXPRDB_LABELS, report, return_report)


def read_affwild2_expr(root: str | Path, *, split: str | None = None, images_dir: str | Path | None = None,
                       return_report: bool = False):
    """Aff-Wild2 expression annotations (8 classes, incl. Other) → one row per labelled frame.

    Label files in `EXPR_Recognition_Challenge/<Train_Set|Validation_Set>/<video>.txt`
    (the older names EXPR_Classification_Challenge and EXPR_Set work too, at root or up
    to two levels below). split: "train", "validation" or None (both).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Aff-Wild2 root not found: {root}")
    task_dir = find_task_dir(root, "EXPR")
    if task_dir is None:
        raise FileNotFoundError(f"no expression annotation folder ({' or '.join(TASK_FOLDERS['EXPR'])}) under {root}")
    images = _FrameImages(find_images_dir(root, images_dir))
    label_files = _label_files(_split_dirs(task_dir, split))
    report = ReadReport(f"Aff-Wild2 EXPR {task_dir} ({split or 'all splits'})")
    return _read_expression_videos(label_files, images, AFFWILD2_EXPR_LABELS, report, return_report)


def find_combined_files(root: Path, split: str | None) -> list[Path]:
    """The ABAW multi-task challenge's combined annotation file(s) at root or up to two levels below."""
    if split is not None and split not in COMBINED_FILES:
        raise ValueError(f"split must be one of {', '.join(COMBINED_FILES)} or None (all), not {split!r}")
    names = [COMBINED_FILES[split]] if split else list(dict.fromkeys(COMBINED_FILES.values()))
    subdirs = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name not in IMAGE_FOLDERS]
    folders = [root, *subdirs, *(q for p in subdirs for q in sorted(p.iterdir()) if q.is_dir())]
    found = []
    for name in names:
        match = next((folder / name for folder in folders if (folder / name).is_file()), None)
        if match is not None:
            found.append(match)
    return found


def read_combined_annotations(path: str | Path):
    """Rows of a combined multi-task file: (line, video, frame, aus, label or None, valence, arousal)."""
    path = Path(path)
    header, values = _lines(path)
    names = [h.strip() for h in header.split(",")]
    if names[:4] != list(COMBINED_COLUMNS[:4]):
        raise LabelFileError(path, 1, f"header must start with {','.join(COMBINED_COLUMNS[:4])}, got {header!r}")
    rows = []
    for number, text in values:
        cells = [c.strip() for c in text.split(",")]
        if len(cells) != len(COMBINED_COLUMNS):
            raise LabelFileError(path, number, f"{len(cells)} values, expected {len(COMBINED_COLUMNS)} ({','.join(COMBINED_COLUMNS)})")
        video, _, name = cells[0].rpartition("/")
        stem = os.path.splitext(name)[0]
        if not video or not stem.isdigit() or int(stem) < 1:
            raise LabelFileError(path, number, f"image {cells[0]!r} is not '<video>/<frame number>.jpg'")
        try:
            valence, arousal = float(cells[1]), float(cells[2])
            code = int(cells[3])
            aus = [int(c) for c in cells[4:]]
        except ValueError:
            raise LabelFileError(path, number, f"unreadable number in {text!r}") from None
        for label, value in (("valence", valence), ("arousal", arousal)):
            if value != MISSING_VA and not -1 <= value <= 1:
                raise LabelFileError(path, number, f"{label} {value} is outside [-1, 1] (and not -5 = missing)")
        if not -1 <= code < len(AFFWILD2_EXPR_LABELS):
            raise LabelFileError(path, number, f"expression {code} is outside 0..7 (or -1 = unlabelled)")
        if any(a not in (0, 1, -1) for a in aus):
            raise LabelFileError(path, number, f"AU values must be 0, 1 or -1, got {','.join(cells[4:])}")
        label = AFFWILD2_EXPR_LABELS[code] if code >= 0 else None
        rows.append((number, video, int(stem) - 1, [float(a) for a in aus], label, valence, arousal))
    return rows


def read_affwild2_mtl(root: str | Path, *, split: str | None = None, tasks: Sequence[str] = ("AU", "EXPR", "VA"),
                      layout: str = "auto", images_dir: str | Path | None = None, return_report: bool = False):
    """Aff-Wild2 AU, expression and valence/arousal annotations merged per frame.

    Each row: `aus` (12 floats in `AU_NAMES` order; all -1 when the frame has no AU
    annotation), `label` (the expression name, or None when the frame has no expression
    annotation: -1 or no EXPR file), `valence`, `arousal` (-5 when missing), `video_id`,
    `frame`. Frames with no annotation in any of `tasks`, and frames whose image is
    missing, are skipped and counted. Use `filter_targets` or the -1/-5/None markers to
    select one task's valid frames. split: "train", "validation" or None (both).

    layout: "per-task" (the `*_Challenge/<Split>/<video>.txt` folders), "combined" (the
    challenge's `training_set_annotations.txt` / `validation_set_annotations.txt`; duplicate
    entries of one image are counted and the first is kept) or "auto" (combined files when
    present, else the per-task folders).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Aff-Wild2 root not found: {root}")
    unknown = [t for t in tasks if t not in TASK_FOLDERS]
    if unknown or not tasks:
        raise ValueError(f"tasks must be among {', '.join(TASK_FOLDERS)}, not {list(tasks)}")
    if layout not in ("auto", "per-task", "combined"):
        raise ValueError(f"layout must be 'auto', 'per-task' or 'combined', not {layout!r}")
    images = _FrameImages(find_images_dir(root, images_dir))
    combined = find_combined_files(root, split) if layout != "per-task" else []
    if layout == "combined" and not combined:
        wanted = COMBINED_FILES[split] if split else " / ".join(dict.fromkeys(COMBINED_FILES.values()))
        raise FileNotFoundError(f"no {wanted} under {root}")
    if combined:
        frames = _combined_frames(combined)
        source = ", ".join(str(p) for p in combined)
    else:
        frames = _per_task_frames(root, split, tasks)
        source = f"{root} ({split or 'all splits'}; per-task folders)"
    report = ReadReport(f"Aff-Wild2 multi-task {source} [{'+'.join(tasks)}]")
    columns: dict[str, list] = {k: [] for k in ("image", "label", "aus", "valence", "arousal", "video_id", "frame")}
    no_aus = [-1.0] * len(AU_NAMES)
    seen: set[tuple[str, int]] = set()
    for where, video, frame, aus, label, valence, arousal in frames:
        if (video, frame) in seen:
            report.skip("duplicate entry", where)
            continue
        seen.add((video, frame))
        aus = aus if "AU" in tasks and aus is not None else no_aus
        label = label if "EXPR" in tasks else None
        if "VA" not in tasks or valence is None:
            valence = arousal = MISSING_VA
        if label is None and max(aus) < 0 and valence == MISSING_VA and arousal == MISSING_VA:
            report.skip("no annotation in any task", f"{video} frame {frame}")
            continue
        image = images.path(video, frame)
        if image is None:
            report.skip("frame image missing", f"{video}/{image_name(frame)}")
            continue
        columns["image"].append(image)
        columns["label"].append(label)
        columns["aus"].append(aus)
        columns["valence"].append(valence)
        columns["arousal"].append(arousal)
        columns["video_id"].append(video)
        columns["frame"].append(frame)
    dataset = build_dataset(columns, row_features(aus=True, valence_arousal=True, video=True))
    return _finish(dataset, report, return_report)


def _combined_frames(files: Sequence[Path]):
    for path in files:
        for number, video, frame, aus, label, valence, arousal in read_combined_annotations(path):
            yield f"{path.name}:{number}", video, frame, aus, label, valence, arousal


def _per_task_frames(root: Path, split: str | None, tasks: Sequence[str]):
    readers = {"AU": read_au_file, "VA": read_va_file,
               "EXPR": lambda path: read_expression_file(path, AFFWILD2_EXPR_LABELS)}
    files: dict[str, dict[str, Path]] = {}
    for task in tasks:
        task_dir = find_task_dir(root, task)
        if task_dir is None:
            raise FileNotFoundError(f"no {task} annotation folder ({' or '.join(TASK_FOLDERS[task])}) under {root}")
        files[task] = _label_files(_split_dirs(task_dir, split))
    for video in sorted(set().union(*(set(f) for f in files.values()))):
        per_task = {task: [value for _, value in readers[task](files[task][video])]
                    for task in tasks if video in files[task]}
        for frame in range(max(len(values) for values in per_task.values())):
            va = _at(per_task.get("VA"), frame)
            yield (f"{video} frame {frame}", video, frame, _at(per_task.get("AU"), frame), _at(per_task.get("EXPR"), frame),
                   *(va if va is not None else (None, None)))


def _at(values: list | None, index: int):
    return values[index] if values is not None and index < len(values) else None
