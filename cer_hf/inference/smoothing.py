"""Temporal smoothing of per-frame scores and labels (pure numpy, vectorised).

Frame-level predictions flicker; facial expressions do not change within a few frames. Two ideas from
the ABAW papers (Savchenko, HSEmotion; Yu et al., ABAW6), both over a window of ±`delta` frames around each frame `i`:

* score filters (HSEmotion, ABAW7): the smoothed score is a weighted mean of the window's scores,
  with uniform weights (`box_filter`) or Gaussian weights `exp(-(j - i)**2 / sigma)` (`gaussian_filter`);
  near the ends of the video the window is cut and the weights renormalised over the frames that exist.
* label vote (Yu et al., ABAW6): each frame takes the most frequent label in its window
  (`majority_vote`); a tie keeps the frame's own label when it is among the most frequent, else the
  lowest class index. The window slides with the frame (centred on it); the paper's wording ("the
  label that predominates ... for all frames encompassed by that window") also fits fixed blocks,
  which would put label jumps at block edges regardless of the video.

`interpolate_missing` fills frames without a face by linear interpolation between the nearest frames
with one (edge frames copy the nearest), as HSEmotion does, before any smoothing.
"""

from __future__ import annotations

import numpy as np

SMOOTHING_METHODS = ("none", "box", "gaussian", "vote")


def default_sigma(delta: int) -> float:
    """σ used when none is given: δ²/4, so the Gaussian weight at the window edge is e⁻⁴ ≈ 0.02."""
    return max(delta, 1) ** 2 / 4


def _check_delta(delta: int) -> int:
    if int(delta) != delta or delta < 0:
        raise ValueError(f"delta must be a non-negative integer number of frames, got {delta!r}")
    return int(delta)


def _weighted_window_mean(scores: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Σ_j w[j-i]·x[j] / Σ_j w[j-i] over the frames j that exist, for a symmetric kernel of length 2δ+1."""
    scores = np.asarray(scores, dtype=np.float64)
    squeeze = scores.ndim == 1
    values = scores[:, None] if squeeze else scores
    frames = values.shape[0]
    if frames == 0:
        return scores.copy()
    delta = (len(kernel) - 1) // 2
    # Zero-padding + a second pass over a column of ones gives the renormalisation at the edges.
    padded = np.zeros((frames + 2 * delta, values.shape[1]))
    padded[delta : delta + frames] = values
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(kernel), axis=0)  # (T, C, 2δ+1), a view
    weighted = windows @ kernel
    ones = np.zeros(frames + 2 * delta)
    ones[delta : delta + frames] = 1.0
    norm = np.lib.stride_tricks.sliding_window_view(ones, len(kernel)) @ kernel
    result = weighted / norm[:, None]
    return result[:, 0] if squeeze else result


def box_filter(scores: np.ndarray, delta: int) -> np.ndarray:
    """Mean of the scores over frames `i-δ … i+δ` (cut at the ends). `scores`: `(T,)` or `(T, C)`."""
    delta = _check_delta(delta)
    return _weighted_window_mean(scores, np.ones(2 * delta + 1))


def gaussian_filter(scores: np.ndarray, delta: int, sigma: float | None = None) -> np.ndarray:
    """Weighted mean over frames `i-δ … i+δ` with weights `exp(-(j-i)²/σ)` (HSEmotion's form), renormalised.

    `sigma` defaults to `default_sigma(delta)`. Note σ here divides the squared distance directly
    (no factor 2), so the weights' standard deviation is `sqrt(σ/2)` frames.
    """
    delta = _check_delta(delta)
    sigma = default_sigma(delta) if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    offsets = np.arange(-delta, delta + 1)
    return _weighted_window_mean(scores, np.exp(-(offsets**2) / sigma))


def majority_vote(labels: np.ndarray, delta: int, num_classes: int | None = None) -> np.ndarray:
    """Each frame's most frequent label over frames `i-δ … i+δ` (cut at the ends).

    Negative labels (no prediction) do not vote; a frame whose window holds no valid label gets -1.
    Ties keep the frame's own label when it is one of the most frequent, else the lowest index.
    """
    delta = _check_delta(delta)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return labels.copy()
    num_classes = int(num_classes if num_classes is not None else max(labels.max() + 1, 1))
    valid = labels >= 0
    one_hot = np.zeros((len(labels), num_classes))
    one_hot[np.flatnonzero(valid), labels[valid]] = 1.0
    # Window sums of the one-hot votes through a cumulative sum: O(T·C) whatever δ is.
    cumulative = np.concatenate([np.zeros((1, num_classes)), np.cumsum(one_hot, axis=0)])
    index = np.arange(len(labels))
    counts = cumulative[np.minimum(index + delta + 1, len(labels))] - cumulative[np.maximum(index - delta, 0)]
    counts += 0.5 * one_hot  # the tie-break: half a vote for the frame's own label
    voted = counts.argmax(axis=1)
    voted[counts.max(axis=1) < 1] = -1
    return voted


def smooth_scores(scores: np.ndarray, method: str, delta: int, sigma: float | None = None) -> np.ndarray:
    """Smoothed `(T, C)` scores for `box` / `gaussian`; `none` and `vote` return the scores unchanged."""
    if method in ("none", "vote"):
        return np.array(scores, dtype=np.float64, copy=True)
    if method == "box":
        return box_filter(scores, delta)
    if method == "gaussian":
        return gaussian_filter(scores, delta, sigma)
    raise ValueError(f"unknown smoothing {method!r}; choose one of {', '.join(SMOOTHING_METHODS)}")


def argmax_labels(scores: np.ndarray) -> np.ndarray:
    """Per-frame argmax of `(T, C)` scores; frames whose scores are all NaN get -1."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    labels = np.nan_to_num(scores, nan=-np.inf).argmax(axis=1)
    labels[np.isnan(scores).all(axis=1)] = -1
    return labels


def smooth_labels(scores: np.ndarray, method: str, delta: int, sigma: float | None = None) -> np.ndarray:
    """Per-frame labels after smoothing: argmax of the filtered scores, or the vote over raw argmax labels.

    Frames whose scores are all NaN (a video without any face) get -1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if method == "vote":
        return majority_vote(argmax_labels(scores), delta, scores.shape[1] if scores.ndim == 2 else None)
    return argmax_labels(smooth_scores(scores, method, delta, sigma))


def interpolate_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Fill rows where `found` is False by linear interpolation between found rows (edges copy the nearest).

    `values`: `(T, C)`; rows of missing frames are ignored. With no found frame at all, every row is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    found = np.asarray(found, dtype=bool)
    if found.all():
        return values.copy()
    result = np.full(values.shape, np.nan)
    if not found.any():
        return result
    frames = np.arange(len(found))
    known = np.flatnonzero(found)
    for column in range(values.shape[1]):  # C is small (≤ 13); np.interp is the vectorised part
        result[:, column] = np.interp(frames, known, values[known, column])
    return result


def count_label_changes(labels: np.ndarray) -> int:
    """How many times consecutive frames differ in label: the flicker that smoothing should reduce."""
    labels = np.asarray(labels)
    return int(np.count_nonzero(labels[1:] != labels[:-1]))
