"""CelebAMask-HQ-style crops of detected faces (the crop rule), and tracking (detectors: detectors.py).

CelebAMask-HQ faces are aligned by their eye and mouth landmarks and framed with hair, neck
and some shoulders; a detector box covers roughly eyebrows to chin. The crop rule says where
a detector's five landmarks sit in that framing (a template: faces are aligned to it by a
similarity transform, see align.py) and, for detectors without landmarks, which square
crop a box maps to. It is measured, not guessed, for each detector: `derive_rule` runs that
detector on the training images (`faceparse-edge data crop-rule --detector NAME`), and the
shipped crop_rule_<name>.json files came from that command.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FaceparseError
from . import align
from .detectors import Detection


def rule_file(detector: str) -> Path:
    return Path(__file__).resolve().parent / f"crop_rule_{detector}.json"


@dataclass(frozen=True)
class CropRule:
    """How a detected face is cropped as CelebAMask-HQ crops faces, measured on its aligned images.

    With landmarks: the similarity that puts the eyes, nose and mouth corners where they sit in
    the aligned training images (`template`, unit crop coordinates), as CelebA-HQ aligned them.
    Without (Haar), and for faces in profile: a square of side scale * box height centred at box
    centre + (dx, dy) * box height (the height: a face turned away narrows its box, not its height).
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
        side = self.scale * h
        cx, cy = x + w / 2 + self.dx * h, y + h / 2 + self.dy * h
        return align.square(cx - side / 2, cy - side / 2, side)


def derive_rule(images, detector) -> tuple[CropRule, int]:
    """The median box-to-crop mapping and landmark positions over aligned training images (each image is the crop)."""
    scales, dxs, dys, points = [], [], [], []
    for image in images:
        found = detector.detect(image)
        if not found:
            continue
        (x, y, w, h), landmarks = found[0]
        height, width = image.shape[:2]
        scales.append(width / h)
        dxs.append((width / 2 - (x + w / 2)) / h)
        dys.append((height / 2 - (y + h / 2)) / h)
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
