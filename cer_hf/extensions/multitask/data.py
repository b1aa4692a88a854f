"""Multi-task data: toolkit rows -> AU / expression / valence-arousal targets, synthetic sets, video windows.

Rows follow the toolkit schema (`image`, `label`, optional `aus`, `valence`, `arousal`,
`video_id`, `frame`). Targets use Aff-Wild2's missing markers: AU -1, expression -1, VA -5.

* AUs: Aff-Wild2 gives 0/1 occurrence; the synthetic generator gives intensities in [0, 1],
  which count as active from `AU_ACTIVE_THRESHOLD` on (its noise on inactive AUs stays below 0.15).
* Expressions: the 8 ABAW classes; any label that is not Neutral or a basic (a compound,
  Contempt, Other) is "Other", as in Aff-Wild2 where "Other" is every non-basic expression.
* The synthetic multi-task set draws the 7 basics plus two compounds (the "Other" class,
  2/9 of the samples) and can hide each task's label on a seeded fraction of rows, so the
  masked losses are exercised as on Aff-Wild2.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

import datasets
import numpy as np
import torch
from PIL import Image

from cer_hf.image_io import FACE_MEAN, FACE_STD, image_to_tensor
from cer_hf.taxonomy import AFFWILD2_EXPR_LABELS as EXPRESSION_NAMES, AU_NAMES, MISSING_AU, MISSING_EXPR, MISSING_VA
from cer_hf.taxonomy import BASIC_EXPRESSIONS, parse_label
from cer_hf.data.synthetic import synthetic_sample, synthetic_video
from cer_hf.data.labelled import load_labelled_source
from cer_hf.extensions.temporal import frame_windows

AU_ACTIVE_THRESHOLD = 0.2
SYNTHETIC_LABELS = (*BASIC_EXPRESSIONS, "Happily Surprised", "Sadly Angry")
# Face statistics of the seed authors' code (DESIGN.md), used to normalise pixels.


def expression_index(label) -> int:
    """Index of a label among the 8 ABAW expressions; -1 for a missing label (None, "", -1)."""
    if label is None or label == "" or label == -1:
        return MISSING_EXPR
    if isinstance(label, (int, np.integer)):
        if not 0 <= label < len(EXPRESSION_NAMES):
            raise ValueError(f"expression label index {label} is outside 0..{len(EXPRESSION_NAMES) - 1} (or -1)")
        return int(label)
    name = parse_label(label)
    return EXPRESSION_NAMES.index(name) if name in EXPRESSION_NAMES else EXPRESSION_NAMES.index("Other")


def au_targets(aus) -> list[float]:
    """12 AU targets: 1 active, 0 inactive, -1 missing (None means all missing)."""
    if aus is None:
        return [float(MISSING_AU)] * len(AU_NAMES)
    if len(aus) != len(AU_NAMES):
        raise ValueError(f"field 'aus' needs {len(AU_NAMES)} values ({', '.join(AU_NAMES)}), got {len(aus)}")
    return [float(MISSING_AU) if v < 0 else float(v >= AU_ACTIVE_THRESHOLD) for v in aus]


def va_targets(row: dict) -> list[float]:
    """`[valence, arousal]`, each -5 when missing."""
    values = []
    for key in ("valence", "arousal"):
        value = row.get(key)
        value = MISSING_VA if value is None or value <= MISSING_VA + 1 else float(value)
        if value != MISSING_VA and not -1.0 - 1e-6 <= value <= 1.0 + 1e-6:
            raise ValueError(f"field {key!r} = {value} is outside [-1, 1] (use -5 for missing)")
        values.append(value)
    return values


def pixels_from_images(images: Sequence[Image.Image], image_size: int, mean=FACE_MEAN, std=FACE_STD) -> torch.Tensor:
    """Resize (bilinear) and normalise PIL images into `(N, 3, image_size, image_size)` float pixels."""
    pixels = torch.stack([image_to_tensor(image, image_size) for image in images])
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def encode_rows(rows: Sequence[dict], image_size: int, normalization=(FACE_MEAN, FACE_STD)) -> dict[str, torch.Tensor]:
    """Rows -> `pixel_values`, `au_labels (N, 12)`, `expr_labels (N,)`, `va_labels (N, 2)`."""
    return {
        "pixel_values": pixels_from_images([row["image"] for row in rows], image_size, *normalization),
        "au_labels": torch.tensor([au_targets(row.get("aus")) for row in rows]),
        "expr_labels": torch.tensor([expression_index(row.get("label")) for row in rows]),
        "va_labels": torch.tensor([va_targets(row) for row in rows]),
    }


def hide_labels(rows: list[dict], missing_rate: float, seed: int) -> list[dict]:
    """Mark each task's label missing on a seeded `missing_rate` fraction of rows (independently per task)."""
    if missing_rate <= 0:
        return rows
    rng = np.random.default_rng([seed, 0x4D495353])
    out = []
    for row in rows:
        row = dict(row)
        drop_au, drop_expr, drop_va = rng.random(3) < missing_rate
        if drop_au:
            row["aus"] = [float(MISSING_AU)] * len(AU_NAMES)
        if drop_expr:
            row["label"] = None
        if drop_va:
            row["valence"] = row["arousal"] = MISSING_VA
        out.append(row)
    return out


def synthetic_multitask_rows(
    num_samples: int, *, seed: int = 0, image_size: int = 32, missing_rate: float = 0.0, labels=SYNTHETIC_LABELS
) -> list[dict]:
    """`num_samples` synthetic faces with AU, expression and VA labels (balanced over `labels`)."""
    rows = [synthetic_sample(i, seed=seed, image_size=image_size, labels=labels) for i in range(num_samples)]
    return hide_labels(rows, missing_rate, seed)


def synthetic_videos(
    num_videos: int, num_frames: int, *, seed: int = 0, image_size: int = 32, missing_rate: float = 0.0,
    segment_frames: tuple[int, int] = (10, 30),
) -> list[dict]:
    """Rows of `num_videos` synthetic videos (`video_id` "synthetic-{seed}-{k}", `frame` 0..num_frames-1).

    Each video is one identity going through expression segments of `segment_frames` frames (shorter
    than the generator's default, so a small set of videos still holds many expression instances).
    """
    rows = []
    for k in range(num_videos):
        video = synthetic_video(num_frames, seed=seed * 1000 + k, image_size=image_size, segment_frames=segment_frames)
        for row in video:
            rows.append({**row, "video_id": f"synthetic-{seed}-{k}"})
    return hide_labels(rows, missing_rate, seed)


class LazyRows(Sequence):
    """Rows `indices` of a `datasets.Dataset`, decoded only when accessed (a video of a large dataset)."""

    def __init__(self, dataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, position):
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        return self.dataset[self.indices[position]]


def without_images(rows: Sequence[dict]) -> Iterable[dict]:
    """The rows' label fields, without decoding images when `rows` is a `datasets.Dataset`."""
    if isinstance(rows, LazyRows):
        rows = rows.dataset.select(rows.indices)
    if isinstance(rows, datasets.Dataset):
        return rows.select_columns([c for c in rows.column_names if c != "image"])
    return rows


def group_videos(rows: Sequence[dict]) -> dict[str, Sequence[dict]]:
    """Rows grouped by `video_id`, each video sorted by `frame`; raises if a row lacks either field.

    A `datasets.Dataset` is grouped from its `video_id`/`frame` columns and its videos stay lazy.
    """
    videos = defaultdict(list)
    for position, row in enumerate(without_images(rows)):
        if row.get("video_id") is None or row.get("frame") is None:
            raise ValueError(f"row {position} has no 'video_id'/'frame': temporal training needs video rows")
        videos[str(row["video_id"])].append((int(row["frame"]), position))
    ordered = {vid: [position for _, position in sorted(frames)] for vid, frames in videos.items()}
    if isinstance(rows, datasets.Dataset):
        return {vid: LazyRows(rows, positions) for vid, positions in ordered.items()}
    return {vid: [rows[p] for p in positions] for vid, positions in ordered.items()}


def load_rows(spec: str, *, num_samples: int, seed: int, image_size: int, missing_rate: float, videos: bool,
              num_frames: int = 120) -> Sequence[dict]:
    """Rows for a `--data` spec: "synthetic" (the embedded generator) or a readers spec such as "affwild2-mtl:/root".

    For "synthetic" with `videos`, `num_samples` frames are drawn as videos of `num_frames` frames.
    Other specs go to `cer_hf.data.readers.base.load_labelled_source` (imported only then).
    """
    if spec == "synthetic":
        if videos:
            count = max(1, -(-num_samples // num_frames))
            return synthetic_videos(count, num_frames, seed=seed, image_size=image_size, missing_rate=missing_rate)
        return synthetic_multitask_rows(num_samples, seed=seed, image_size=image_size, missing_rate=missing_rate)
    source = load_labelled_source(spec)
    if num_samples > 0:
        source = source.select(range(min(num_samples, len(source))))
    if len(source) == 0:
        raise ValueError(f"--data {spec!r} gave no rows")
    return source  # a datasets.Dataset: rows are decoded lazily by the datasets below


class FrameDataset(torch.utils.data.Dataset):
    """Single frames with their multi-task targets (decoded and resized on access)."""

    def __init__(self, rows: Sequence[dict], image_size: int, normalization=(FACE_MEAN, FACE_STD)):
        self.normalization = normalization
        self.rows, self.image_size = rows, image_size

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        encoded = encode_rows([self.rows[index]], self.image_size, self.normalization)
        return {key: value[0] for key, value in encoded.items()}


class WindowDataset(torch.utils.data.Dataset):
    """Windows of `sequence_length` consecutive frames every `stride` frames of each video (for temporal training).

    Uses `cer_hf.extensions.temporal.frame_windows`, so the last window ends on the last frame and a short
    video is padded by repeating its last frame; padded positions get missing labels.
    """

    def __init__(self, videos: dict[str, list[dict]], image_size: int, sequence_length: int, stride: int,
                 normalization=(FACE_MEAN, FACE_STD)):
        self.normalization = normalization

        self.videos, self.image_size = videos, image_size
        self.windows = []
        for vid, frames in videos.items():
            index, valid = frame_windows(len(frames), sequence_length, stride)
            self.windows += [(vid, i.tolist(), v.tolist()) for i, v in zip(index, valid)]

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, index):
        vid, frame_index, valid = self.windows[index]
        encoded = encode_rows([self.videos[vid][i] for i in frame_index], self.image_size, self.normalization)
        invalid = ~torch.tensor(valid)
        encoded["au_labels"][invalid] = MISSING_AU
        encoded["expr_labels"][invalid] = MISSING_EXPR
        encoded["va_labels"][invalid] = MISSING_VA
        return encoded
