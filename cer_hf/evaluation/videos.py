"""Frame-level evaluation of videos: compound macro F1 without and with each temporal smoothing setting.

    report = evaluate_videos(predictor, ["a.mp4"], ["a.txt"], deltas=(5, 10, 20))
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cer_hf.evaluation.metrics import macro_f1
from cer_hf.inference.predictor import CompoundExpressionPredictor
from cer_hf.inference.smoothing import argmax_labels, majority_vote, smooth_scores
from cer_hf.inference.video import predict_video
from cer_hf.taxonomy import parse_label


def read_label_file(path: str | Path, compound_names: Sequence[str]) -> np.ndarray:
    """Per-frame compound labels, one per line: an index into `compound_names` or a compound name
    (`Happily_Surprised`, `happily surprised`, …); -1 = unlabelled. A first line that is not a label
    (a header such as `Fearfully_Surprised,Happily_Surprised,...`) is skipped; blank lines are not allowed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such label file")
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    labels = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        try:
            labels.append(_parse_frame_label(text, compound_names))
        except ValueError as error:
            if number == 1 and ("," in text or not text):
                continue  # a header line
            raise ValueError(f"{path}:{number}: {error}") from None
    return np.asarray(labels, dtype=np.int64)


def _parse_frame_label(text: str, compound_names: Sequence[str]) -> int:
    if not text:
        raise ValueError("empty line (use -1 for an unlabelled frame)")
    try:
        index = int(text)
    except ValueError:
        name = parse_label(text)
        if name not in compound_names:
            raise ValueError(f"{text!r} is not one of the compounds {', '.join(compound_names)}") from None
        return list(compound_names).index(name)
    if not -1 <= index < len(compound_names):
        raise ValueError(f"label index {index} is outside -1..{len(compound_names) - 1}")
    return index


def compound_macro_f1(true_labels: np.ndarray, predicted_labels: np.ndarray, num_classes: int) -> float:
    """Frame-level macro F1 over all compound classes (the ABAW CE metric; `cer_hf.evaluation.metrics.macro_f1`).

    Frames with true label -1 are skipped; a predicted -1 (no face in the whole video) counts as a miss.
    """
    return macro_f1(true_labels, predicted_labels, num_classes)


def evaluate_videos(
    model,
    videos: Sequence[str | Path],
    label_files: Sequence[str | Path],
    deltas: Sequence[int] = (5, 10, 20, 30, 50),
    *,
    methods: Sequence[str] = ("box", "gaussian", "vote"),
    sigma: float | None = None,
    faces_cropped: bool = False,
    progress: bool = False,
    **pipeline_options,
) -> dict:
    """Frame-level compound macro F1 without smoothing and with each method × δ, over all labelled frames.

    `model`: a `CompoundExpressionPredictor` or a checkpoint path / Hub id. Each video is run through the
    pipeline once; smoothing is then recomputed per setting on the stored frame scores. Returns
    Every label file is read before the first video runs, so a bad one fails at once.
    `{"frames": n, "labelled_frames": m, "results": [{"method", "delta", "macro_f1"}, ...], "best": {...}}`
    with the unsmoothed row first (method "none", delta 0); pick δ on a validation set this way.
    """
    if len(videos) != len(label_files):
        raise ValueError(f"got {len(videos)} videos but {len(label_files)} label files; give one label file per video")
    for method in methods:
        if method not in ("box", "gaussian", "vote"):
            raise ValueError(f"unknown smoothing {method!r}; choose from box, gaussian, vote")
    predictor = model if isinstance(model, CompoundExpressionPredictor) else CompoundExpressionPredictor.from_pretrained(model)
    names = list(predictor.model.config.compound_names)
    per_video = []
    label_arrays = [read_label_file(label_file, names) for label_file in label_files]  # every file checked first
    for video, label_file, labels in zip(videos, label_files, label_arrays):
        prediction = predict_video(predictor, video, faces_cropped=faces_cropped, progress=progress, **pipeline_options)
        if len(labels) != prediction.num_frames:
            raise ValueError(
                f"{label_file}: {len(labels)} labels but {video} has {prediction.num_frames} frames"
            )
        per_video.append((prediction.compound_scores, labels))

    def score(method: str, delta: int) -> float:
        predicted, truth = [], []
        for scores, labels in per_video:
            if method == "vote":
                predicted.append(majority_vote(argmax_labels(scores), delta, len(names)))
            else:
                predicted.append(argmax_labels(smooth_scores(scores, method, delta, sigma)))
            truth.append(labels)
        return compound_macro_f1(np.concatenate(truth), np.concatenate(predicted), len(names))

    results = [{"method": "none", "delta": 0, "macro_f1": score("none", 0)}]
    results += [{"method": m, "delta": int(d), "macro_f1": score(m, int(d))} for m in methods for d in deltas]
    all_labels = np.concatenate([labels for _, labels in per_video]) if per_video else np.zeros(0)
    return {
        "frames": int(len(all_labels)),
        "labelled_frames": int(np.sum(all_labels >= 0)),
        "compound_names": names,
        "results": results,
        "best": max(results, key=lambda row: row["macro_f1"]),
    }

