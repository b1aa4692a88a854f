"""Compound expressions over time: frames → faces → frame scores → temporal smoothing → per-frame files.

    from cer_hf import CompoundExpressionPredictor
    from cer_hf.inference.video import predict_video, write_frames_csv

    predictor = CompoundExpressionPredictor.from_pretrained("path/or/repo-id")
    result = predict_video(predictor, "clip.mp4", smoothing="gaussian", delta=10)
    write_frames_csv(result, "clip.csv")
    print(result.summary())

A *sequence* is a video file (decoded with PyAV, the `video` extra) or a folder of frame images read
in name order (ABAW's `cropped_aligned/<video>/00001.jpg` layout). For every frame a face is detected
(`cer_hf.inference.faces`; skipped with `faces_cropped=True`), cropped with a margin and scored by the model in
batches; decoding and detection run in a background thread while the model scores the previous batch.
Frames without a face get scores linearly interpolated from their neighbours and `face_found = 0`;
a sequence with no face at all keeps NaN scores and label -1. Smoothing is `cer_hf.inference.smoothing`.
The result (`VideoPrediction`) and its writers are in `cer_hf.inference.video_outputs` (re-exported here).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from cer_hf.inference.faces import Face, FaceDetector, crop_face, make_detector, select_face
from cer_hf.image_io import IMAGE_EXTENSIONS, BadImageError, load_rgb_image
from cer_hf.inference.smoothing import (
    SMOOTHING_METHODS,
    argmax_labels,
    default_sigma,
    interpolate_missing,
    majority_vote,
    smooth_scores,
)
# The result type and its writers live in video_outputs; re-exported here, where they were first defined.
from cer_hf.inference.video_outputs import (  # noqa: F401
    VideoPrediction,
    merge_abaw_predictions,
    plot_timeline,
    read_abaw_rows,
    write_abaw_predictions,
    write_frames_csv,
    write_summary_json,
)

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"})


class BadVideoError(ValueError):
    """A video (or frame folder) that cannot be read; `source` names the file."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: cannot read video ({reason})")
        self.source = source
        self.reason = reason


@dataclass
class Frame:
    """One decoded frame: its index in the sequence, time in seconds (NaN if unknown), RGB pixels, file name.

    `image` is None for a frame image of a folder that cannot be read: the frame keeps its place (and
    its row in every output, so per-frame labels still line up) and is scored as a frame without a face.
    """

    index: int
    timestamp: float
    image: np.ndarray | None
    name: str


def _import_av():
    try:
        import av
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("reading videos needs PyAV: pip install 'cer_hf[video]'") from error
    return av


def is_video_file(path: str | Path) -> bool:
    """Whether the path has a video file extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_image_file(path: str | Path) -> bool:
    """Whether the path has an image file extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def video_frame_count(path: str | Path) -> int:
    """The number of frames PyAV decodes from the video (exact: it decodes them all)."""
    return sum(1 for _ in read_video(path))


def _declared_frame_count(path: str | Path) -> int | None:
    """The container's frame count (may be approximate or missing); for progress bars only."""
    if not is_video_file(path):
        return sum(1 for p in Path(path).iterdir() if is_image_file(p)) if Path(path).is_dir() else None
    av = _import_av()
    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].frames or None
    except (av.FFmpegError, OSError, IndexError):
        return None


def read_video(path: str | Path) -> Iterator[Frame]:
    """Decode every frame of a video as RGB with its timestamp; errors become `BadVideoError` naming the file.

    Frames are turned upright when the stream carries a display rotation (as players do).

    Frame names follow ABAW's convention: 1-based, five digits (`00001.jpg`).
    """
    av = _import_av()
    path = Path(path)
    if not path.is_file():
        raise BadVideoError(str(path), "file not found")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise BadVideoError(str(path), f"{type(error).__name__}: {error}") from None
    with container:
        if not container.streams.video:
            raise BadVideoError(str(path), "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame-threaded decoding
        rate = float(stream.average_rate) if stream.average_rate else math.nan
        index = 0
        try:
            for decoded in container.decode(stream):
                timestamp = float(decoded.time) if decoded.time is not None else index / rate
                yield Frame(index, timestamp, _upright(decoded), f"{index + 1:05d}.jpg")
                index += 1
        except (av.FFmpegError, OSError) as error:
            raise BadVideoError(str(path), f"decoding failed after {index} frames: {type(error).__name__}: {error}") from None
        if index == 0:
            raise BadVideoError(str(path), "no decodable video frames")


def _upright(decoded) -> np.ndarray:
    """RGB pixels of a decoded frame turned as the display matrix says (phone videos are often stored
    sideways with a rotation tag); Haar cascades only find upright faces."""
    image = decoded.to_ndarray(format="rgb24")
    turns = round((decoded.rotation or 0) / 90) % 4  # the matrix rotates counter-clockwise, as np.rot90 does
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def read_frame_folder(path: str | Path, frame_rate: float | None = None) -> Iterator[Frame]:
    """The images of a folder as one frame sequence, in name order; timestamps are index / frame_rate (or NaN).

    A frame image that cannot be read is logged (a warning naming the file) and yields a `Frame` whose
    `image` is None.
    """
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise BadVideoError(str(path), "folder holds no image files")
    for index, file in enumerate(files):
        timestamp = index / frame_rate if frame_rate else math.nan
        try:
            image = np.asarray(load_rgb_image(file))
        except BadImageError as error:
            logger.warning("%s; the frame is kept and scored as a frame without a face", error)
            image = None
        yield Frame(index, timestamp, image, file.name)


def read_frames(source: str | Path, frame_rate: float | None = None) -> Iterator[Frame]:
    """Frames of a video file, a folder of frame images, or a single image (one frame)."""
    source = Path(source)
    if source.is_dir():
        return read_frame_folder(source, frame_rate)
    if is_video_file(source):
        return read_video(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    return iter([Frame(0, math.nan, np.asarray(load_rgb_image(source)), source.name)])


def _in_background(items: Iterable, max_ahead: int) -> Iterator:
    """Iterate `items` in a worker thread, `max_ahead` items ahead; its exceptions re-raise here.

    PyAV decoding, OpenCV detection and torch all release the GIL, so decode+detect of the next frames
    overlaps with the model scoring the current batch.
    """
    buffer: queue.Queue = queue.Queue(maxsize=max_ahead)
    done, stop = object(), threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        error = None
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as caught:  # handed to the consumer, which re-raises it
            error = caught
        finally:
            if hasattr(items, "close"):
                items.close()  # closes the video container when the consumer stops early
        put((done, error))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def _faces_and_crops(
    frames: Iterable[Frame], detector: FaceDetector, face_selection: str, margin: float, detect_every: int
) -> Iterator[tuple[Frame, Face | None, Image.Image | None]]:
    """Detect (every `detect_every`-th frame; the frames between reuse its box) and crop the chosen face."""
    face = None
    for position, frame in enumerate(frames):
        if frame.image is None:  # unreadable: no pixels to detect in or crop
            yield frame, None, None
            continue
        if position % detect_every == 0:
            face = select_face(detector.detect(frame.image), frame.image.shape, face_selection)
        crop = Image.fromarray(np.ascontiguousarray(crop_face(frame.image, face, margin))) if face else None
        yield frame, face, crop


def predict_frames(
    predictor,
    frames: Iterable[Frame],
    *,
    name: str = "video",
    source: str = "",
    detector: FaceDetector | None = None,
    face_selection: str = "largest",
    margin: float = 0.2,
    detect_every: int = 1,
    smoothing: str = "none",
    delta: int = 10,
    sigma: float | None = None,
    progress: bool = False,
    total: int | None = None,
) -> VideoPrediction:
    """Run the whole per-frame pipeline over `frames` with a `CompoundExpressionPredictor`.

    `detector`: a `FaceDetector` (default: Haar cascade). `face_selection`: largest | confidence | center.
    `margin`: extra fraction of the face box on each side. `detect_every`: run the detector on every
    k-th frame only and reuse its box in between. `smoothing`: none | box | gaussian | vote over ±`delta`
    frames (`sigma` for gaussian, default δ²/4).
    """
    if smoothing not in SMOOTHING_METHODS:
        raise ValueError(f"unknown smoothing {smoothing!r}; choose one of {', '.join(SMOOTHING_METHODS)}")
    if detect_every < 1:
        raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    detector = detector if detector is not None else make_detector("haar")
    config = predictor.model.config
    num_basics, num_compounds = len(config.basic_labels), len(config.compound_names)
    frame_names, timestamps, boxes = [], [], []
    score_rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    batch: list[Image.Image] = []
    batch_rows: list[int] = []
    unreadable: list[str] = []

    def score_batch():
        probabilities, compound_scores = predictor.scores(batch)
        score_rows.extend(zip(batch_rows, probabilities, compound_scores))
        batch.clear()
        batch_rows.clear()

    started = time.perf_counter()
    bar = _progress_bar(total, name, progress)
    try:
        analysed = _faces_and_crops(frames, detector, face_selection, margin, detect_every)
        for frame, face, crop in _in_background(analysed, max_ahead=2 * predictor.batch_size):
            if frame.image is None:
                unreadable.append(frame.name)
            frame_names.append(frame.name)
            timestamps.append(frame.timestamp)
            boxes.append((face.x, face.y, face.width, face.height) if face else (-1, -1, -1, -1))
            if crop is not None:
                batch.append(crop)
                batch_rows.append(len(frame_names) - 1)
                if len(batch) >= predictor.batch_size:
                    score_batch()
            bar.update(1)
        if batch:
            score_batch()
    finally:
        bar.close()

    frames_seen = len(frame_names)
    if frames_seen and len(unreadable) == frames_seen:
        raise BadVideoError(source or name, f"none of its {frames_seen} frame images could be read, e.g. "
                                            f"{', '.join(unreadable[:3])}")
    found = np.zeros(frames_seen, dtype=bool)
    probabilities = np.full((frames_seen, num_basics), np.nan)
    compound_scores = np.full((frames_seen, num_compounds), np.nan)
    for row, probs, scores in score_rows:
        found[row] = True
        probabilities[row] = probs
        compound_scores[row] = scores
    probabilities = interpolate_missing(probabilities, found)
    compound_scores = interpolate_missing(compound_scores, found)
    smoothed = smooth_scores(compound_scores, smoothing, delta, sigma)
    raw_labels = argmax_labels(compound_scores)
    labels = majority_vote(raw_labels, delta, num_compounds) if smoothing == "vote" else argmax_labels(smoothed)
    settings = {"method": smoothing}
    if smoothing != "none":
        settings["delta"] = int(delta)
    if smoothing == "gaussian":
        settings["sigma"] = float(sigma if sigma is not None else default_sigma(delta))
    return VideoPrediction(
        name=name,
        source=source,
        basic_labels=list(config.basic_labels),
        compound_names=list(config.compound_names),
        frame_names=frame_names,
        timestamps=np.asarray(timestamps, dtype=np.float64),
        boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        face_found=found,
        probabilities=probabilities,
        compound_scores=compound_scores,
        smoothed_scores=smoothed,
        raw_labels=raw_labels,
        labels=labels,
        smoothing=settings,
        seconds=time.perf_counter() - started,
        unreadable_frames=unreadable,
    )


def _progress_bar(total: int | None, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="frame", disable=not enabled, leave=False)


def predict_video(
    predictor,
    source: str | Path,
    *,
    faces_cropped: bool = False,
    detector: FaceDetector | None = None,
    frame_rate: float | None = None,
    name: str | None = None,
    **options,
) -> VideoPrediction:
    """`predict_frames` over a video file or a folder of frames; `faces_cropped=True` skips face detection.

    `options` are `predict_frames`'s keyword arguments (face_selection, margin, detect_every, smoothing,
    delta, sigma, progress). `frame_rate` gives timestamps to frame folders.
    """
    source = Path(source)
    if detector is None:
        detector = make_detector("none" if faces_cropped else "haar")
    total = _declared_frame_count(source) if options.get("progress") else None
    return predict_frames(
        predictor,
        read_frames(source, frame_rate),
        name=name or source.stem,
        source=str(source),
        detector=detector,
        total=total,
        **options,
    )
