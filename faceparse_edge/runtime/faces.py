"""Face detection (YuNet, or OpenCV's Haar cascade), CelebAMask-HQ-style crops, and tracking.

CelebAMask-HQ faces are aligned by their eye and mouth landmarks and framed with hair, neck
and some shoulders; a detector box covers roughly eyebrows to chin. The crop rule says where
a detector's five landmarks sit in that framing (a template: faces are aligned to it by a
similarity transform, see align.py) and, for detectors without landmarks, which square
crop a box maps to. It is measured, not guessed, for each detector: `derive_rule` runs that
detector on the training images (`faceparse-edge data crop-rule --detector NAME`), and the
shipped crop_rule_<name>.json files came from that command.

Detectors: YuNet (libfacedetection, BSD, its weights compiled into the `yuface` wheel; finds
profile, 3/4 and small faces that Haar misses: benchmarks/results/avx2/detectors.md) where that
wheel exists (CPython <= 3.11 on Linux x86_64 and Windows), else the frontal Haar cascade
that ships with opencv-python and needs nothing extra.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from ..errors import FaceparseError
from . import align

DETECTORS = ("auto", "yunet", "haar")


def rule_file(detector: str) -> Path:
    return Path(__file__).resolve().parent / f"crop_rule_{detector}.json"


class Detection(NamedTuple):
    box: tuple[float, float, float, float]  # (x, y, w, h) in frame pixels
    landmarks: np.ndarray | None = None  # (5, 2): eyes, nose tip, mouth corners, image-left first; None from Haar


@dataclass(frozen=True)
class CropRule:
    """How a detected face is cropped as CelebAMask-HQ crops faces, measured on its aligned images.

    With landmarks: the similarity that puts the eyes, nose and mouth corners where they sit in
    the aligned training images (`template`, unit crop coordinates), as CelebA-HQ aligned them.
    Without (Haar): a square of side scale * box width centred at box centre + (dx, dy) * box width.
    """

    scale: float = 2.0
    dx: float = 0.0
    dy: float = 0.0
    template: tuple | None = None  # five (x, y) landmark positions in unit crop coordinates

    @classmethod
    def load(cls, path: Path) -> "CropRule":
        data = json.loads(Path(path).read_text())
        template = data.get("template")
        return cls(data["scale"], data["dx"], data["dy"], tuple(map(tuple, template)) if template else None)

    def transform(self, box, landmarks=None) -> np.ndarray:
        """The crop (frame -> unit crop coordinates, 2x3) for a detected face."""
        by_box = self._square(box)
        if landmarks is None or self.template is None:
            return by_box
        by_landmarks = align.fit_similarity(landmarks, self.template)
        # Landmarks on a face in profile crowd together and would zoom in on half the face:
        # there the box sets the crop's size and place, and the landmarks only its rotation.
        if not 0.75 < align.side(by_landmarks) / align.side(by_box) < 1.33:
            angle = np.arctan2(by_landmarks[1, 0], by_landmarks[0, 0])
            return align.rotated(by_box, angle)
        return by_landmarks

    def _square(self, box) -> np.ndarray:
        x, y, w, h = box
        side = self.scale * w
        cx, cy = x + w / 2 + self.dx * w, y + h / 2 + self.dy * w
        return align.square(cx - side / 2, cy - side / 2, side)


def _downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image shrunk (never enlarged) so that its longest side is at most max_side, and the scale used."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image, scale


def _in_frame(boxes, landmarks, scale: float) -> list[Detection]:
    """Detections on the downscaled image, in frame pixels, largest first."""
    found = [Detection(tuple(float(v) / scale for v in b),
                       None if points is None else (np.asarray(points, np.float64).reshape(5, 2) + 0.5) / scale)
             for b, points in zip(boxes, landmarks)]
    return sorted(found, key=lambda d: -d.box[2])


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, run on a downscaled grayscale frame for speed."""

    name = "haar"

    def __init__(self, max_side: int = 320, min_face: int = 20, scale_factor: float = 1.15):
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise FaceparseError(f"cannot load the OpenCV face detector from {path}")
        self.max_side, self.min_face, self.scale_factor = max_side, min_face, scale_factor

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces, largest first, in an RGB or grayscale frame."""
        gray, scale = _downscaled(frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY),
                                  self.max_side)
        found = self.cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=self.scale_factor, minNeighbors=5,
                                              minSize=(self.min_face, self.min_face))
        return _in_frame(found, [None] * len(found), scale)


class YuNetDetector:
    """YuNet (libfacedetection) from the `yuface` wheel, on a frame scaled to at most `max_side`."""

    name = "yunet"

    def __init__(self, max_side: int = 320, min_score: float = 0.5):
        try:
            import yuface
        except ImportError:
            raise FaceparseError("the YuNet detector needs the yuface package (wheels for CPython <= 3.11 on Linux "
                                 "x86_64 and Windows); use --detector haar") from None
        self._detect = yuface.detect
        self.max_side, self.min_score = max_side, min_score

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces with their landmarks, largest first, in an RGB or grayscale frame."""
        small, scale = _downscaled(frame, self.max_side)  # shrink first: the colour conversion is then 4x cheaper
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR if small.ndim == 2 else cv2.COLOR_RGB2BGR)
        _, boxes, landmarks = self._detect(bgr, conf=self.min_score)
        return _in_frame(boxes, landmarks, scale)


def make_detector(name: str = "auto"):
    """'auto': YuNet where its wheel is installed, else Haar (which needs nothing beyond OpenCV)."""
    if name not in DETECTORS:
        raise FaceparseError(f"unknown detector '{name}'; choose from {', '.join(DETECTORS)}")
    if name == "auto":
        try:
            return YuNetDetector()
        except FaceparseError:
            return HaarDetector()
    return YuNetDetector() if name == "yunet" else HaarDetector()


def derive_rule(images, detector) -> tuple[CropRule, int]:
    """The median box-to-crop mapping and landmark positions over aligned training images (each image is the crop)."""
    scales, dxs, dys, points = [], [], [], []
    for image in images:
        found = detector.detect(image)
        if not found:
            continue
        (x, y, w, h), landmarks = found[0]
        height, width = image.shape[:2]
        scales.append(width / w)
        dxs.append((width / 2 - (x + w / 2)) / w)
        dys.append((height / 2 - (y + h / 2)) / w)
        if landmarks is not None:
            points.append(landmarks / [width, height])
    if not scales:
        raise FaceparseError("the face detector found no face in any of the images")
    template = tuple(tuple(round(float(v), 4) for v in p) for p in np.median(points, axis=0)) if points else None
    rule = CropRule(*(round(float(np.median(v)), 4) for v in (scales, dxs, dys)), template)
    return rule, len(scales)


def iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter + 1e-9)


@dataclass
class Track:
    id: int
    box: tuple  # smoothed detector box (x, y, w, h), moved with the face between detections
    landmarks: np.ndarray | None = None  # smoothed (5, 2) landmarks, moved with the box
    missed: int = 0
    crop: np.ndarray | None = field(default=None, repr=False)  # the crop (see align) parsed in the previous frame
    probs: np.ndarray | None = field(default=None, repr=False)  # smoothed class probabilities (C, S, S)

    def move(self, dx: float, dy: float) -> None:
        x, y, w, h = self.box
        self.box = (x + dx, y + dy, w, h)
        if self.landmarks is not None:
            self.landmarks = self.landmarks + [dx, dy]


class FaceTracker:
    """Matches detections to tracks by IoU and smooths each track's box, so crops do not jitter.

    Between detections the pipeline moves each box with its face's optical flow (`motion`).
    """

    def __init__(self, box_smoothing: float = 0.6, max_missed: int = 4, min_iou: float = 0.3):
        self.box_smoothing, self.max_missed, self.min_iou = box_smoothing, max_missed, min_iou
        self.tracks: list[Track] = []
        self._next_id = 0

    def update(self, detections: list[Detection]) -> list[Track]:
        unmatched = list(detections)
        for track in self.tracks:
            best = max(unmatched, key=lambda d: iou(track.box, d.box), default=None)
            if best is not None and iou(track.box, best.box) >= self.min_iou:
                a = self.box_smoothing
                track.box = tuple(a * t + (1 - a) * n for t, n in zip(track.box, best.box))
                if best.landmarks is not None:
                    track.landmarks = best.landmarks if track.landmarks is None else \
                        a * track.landmarks + (1 - a) * best.landmarks
                track.missed = 0
                unmatched.remove(best)
            else:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for found in unmatched:
            self.tracks.append(Track(self._next_id, found.box, found.landmarks))
            self._next_id += 1
        return self.tracks


def rule_to_json(rule: CropRule, images: int, source: str, detector: str) -> str:
    data = {"scale": rule.scale, "dx": rule.dx, "dy": rule.dy}
    if rule.template:
        data["template"] = [list(p) for p in rule.template]
    return json.dumps({**data, "images_with_a_face": images, "source": source, "detector": detector}, indent=2) + "\n"
