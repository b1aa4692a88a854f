"""Face detection and cropping for video frames: a pluggable `FaceDetector` protocol and offline detectors.

The default detector is OpenCV's Haar cascade (`haarcascade_frontalface_default.xml`, shipped inside
`opencv-python-headless<5`; the `video` extra). It runs on a downscaled, histogram-equalised grayscale
copy of the frame, which is what makes it cheap enough for real-time video on a CPU. Any object with a
`detect(frame) -> list[Face]` method can replace it (a RetinaFace or MediaPipe wrapper, say).

    detector = HaarFaceDetector()
    faces = detector.detect(rgb_frame)              # boxes in the frame's own pixel coordinates
    face = select_face(faces, rgb_frame.shape, "largest")
    crop = crop_face(rgb_frame, face, margin=0.2)   # square RGB crop, ready for the model
    crop, face = face_or_whole_image(rgb_frame, detector)   # a still: the face, else the whole image
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

FACE_SELECTIONS = ("largest", "confidence", "center")


@dataclass(frozen=True)
class Face:
    """A face box in frame pixel coordinates (top-left `x`, `y`, `width`, `height`) and a detector score."""

    x: int
    y: int
    width: int
    height: int
    score: float = 1.0

    @property
    def area(self) -> int:
        return self.width * self.height


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an RGB uint8 frame `(H, W, 3)`; an empty list means no face."""

    def detect(self, frame: np.ndarray) -> list[Face]: ...


def _import_cv2():
    try:
        import cv2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "face detection needs OpenCV: pip install 'cer_hf[video]' (opencv-python-headless<5)"
        ) from error
    return cv2


class HaarFaceDetector:
    """OpenCV Haar-cascade frontal face detector, run on a downscaled grayscale copy of the frame.

    `detect_width`: the frame is shrunk to this width before detection (never enlarged); boxes are
    scaled back. `min_face_fraction`: smallest face side as a fraction of the shorter frame side.
    `scale_factor` and `min_neighbors` are OpenCV's `detectMultiScale` parameters; a face's score is
    its neighbour count (how many overlapping windows voted for it), OpenCV's own confidence proxy.
    """

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        *,
        detect_width: int = 160,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face_fraction: float = 0.1,
    ):
        cv2 = _import_cv2()
        path = cascade if "/" in cascade else cv2.data.haarcascades + cascade
        self.classifier = cv2.CascadeClassifier(path)
        if self.classifier.empty():
            raise FileNotFoundError(f"cannot load the Haar cascade {path}")
        self.detect_width = detect_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_fraction = min_face_fraction

    def detect(self, frame: np.ndarray) -> list[Face]:
        cv2 = _import_cv2()
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        scale = min(1.0, self.detect_width / gray.shape[1])
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(20, int(self.min_face_fraction * min(gray.shape)))
        boxes, neighbours = self.classifier.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        return [
            Face(int(round(x / scale)), int(round(y / scale)), int(round(w / scale)), int(round(h / scale)), float(n))
            for (x, y, w, h), n in zip(boxes, np.ravel(neighbours))
        ]


class WholeFrameDetector:
    """For frames that are already face crops (ABAW's cropped_aligned frames): the whole frame is the face."""

    def detect(self, frame: np.ndarray) -> list[Face]:
        return [Face(0, 0, int(frame.shape[1]), int(frame.shape[0]), 1.0)]


def make_detector(name: str = "haar", **options) -> FaceDetector:
    """A detector by name: `haar` (OpenCV Haar cascade) or `none` (frames are already face crops)."""
    if name == "haar":
        return HaarFaceDetector(**options)
    if name == "none":
        return WholeFrameDetector()
    raise ValueError(f"unknown face detector {name!r}; choose haar or none")


def select_face(faces: list[Face], frame_shape: tuple[int, ...], strategy: str = "largest") -> Face | None:
    """The one face to analyse when several are found (None when there is none).

    `largest` (default): the biggest box, usually the subject. `confidence`: the highest detector score.
    `center`: the box whose centre is nearest the frame centre.
    """
    if not faces:
        return None
    if strategy == "largest":
        return max(faces, key=lambda face: face.area)
    if strategy == "confidence":
        return max(faces, key=lambda face: (face.score, face.area))
    if strategy == "center":
        cy, cx = frame_shape[0] / 2, frame_shape[1] / 2
        return min(faces, key=lambda f: (f.x + f.width / 2 - cx) ** 2 + (f.y + f.height / 2 - cy) ** 2)
    raise ValueError(f"unknown face selection {strategy!r}; choose one of {', '.join(FACE_SELECTIONS)}")


def crop_box(face: Face, frame_shape: tuple[int, ...], margin: float = 0.2) -> tuple[int, int, int, int]:
    """The square crop `(x0, y0, x1, y1)` around a face: its longer side plus `margin` on each side, clipped."""
    height, width = frame_shape[:2]
    side = max(face.width, face.height) * (1 + 2 * margin)
    cx, cy = face.x + face.width / 2, face.y + face.height / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = int(round(cx + side / 2)), int(round(cy + side / 2))
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def crop_face(frame: np.ndarray, face: Face, margin: float = 0.2) -> np.ndarray:
    """The face crop (a view into `frame`) with `margin` around the box; see `crop_box`."""
    x0, y0, x1, y1 = crop_box(face, frame.shape, margin)
    return frame[y0:y1, x0:x1]


def face_or_whole_image(
    image: np.ndarray, detector: FaceDetector, face_selection: str = "largest", margin: float = 0.2
) -> tuple[np.ndarray, Face | None]:
    """For a still image: the crop of the selected face and its box, or the whole image and None when
    the detector finds no face (a still is scored either way; video frames without a face are not)."""
    face = select_face(detector.detect(image), image.shape, face_selection)
    return (np.ascontiguousarray(crop_face(image, face, margin)) if face else image), face
