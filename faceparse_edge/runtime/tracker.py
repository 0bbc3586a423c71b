"""Face tracks across video frames: detections matched by overlap, boxes and landmarks smoothed."""

from dataclasses import dataclass, field

import numpy as np

from .detectors import Detection


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
