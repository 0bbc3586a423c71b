"""One parsing pipeline for images, video files, streams and webcams (torch-free).

frame -> on a cut, forget all tracks -> move each tracked face's box with its optical flow -> detect faces (every few
frames) and match them to tracks -> crop as CelebAMask-HQ frames faces -> parse the crops
in one batch (with the mirrored crops when flip TTA is on) -> blend each face's
probabilities with its previous ones, moved along the flow -> paste labels into the frame.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..classes import CLASS_NAMES
from ..parsing import labels_at, predict_probs, preprocess
from ..weights import DEFAULT_ONNX
from .backends import open_backend, precision_ran
from .faces import CropRule, FaceTracker, crop, make_detector, rule_file
from .motion import CropFlow, face_shift, is_cut, warp_probs


@dataclass
class Face:
    square: tuple  # crop (x0, y0, side) in frame pixels
    box: tuple | None  # detector box (x, y, w, h); None with detection off
    track_id: int | None
    labels: np.ndarray  # the face's class ids over the part of its crop inside the frame


@dataclass
class FrameResult:
    labels: np.ndarray  # class ids at frame resolution, 0 where no face is
    faces: list[Face]
    timings: dict = field(default_factory=dict)  # stage -> milliseconds


class Pipeline:
    def __init__(self, model: str | Path | None = None, backend: str = "auto", threads: int = 0, tta: bool = True,
                 detect: bool = True, detect_every: int = 5, smoothing: float = 0.7, rule: CropRule | None = None,
                 precision: str = "f32", detector: str = "auto"):
        self.backend = open_backend(model or DEFAULT_ONNX, backend, threads, precision)
        self.info = self.backend.info
        self.precision = precision_ran(self.backend)
        self.engine = f"{self.backend.name} {self.precision}"  # for the HUD: what runs, and in what precision
        self.tta, self.detect, self.detect_every, self.smoothing = tta, detect, max(1, detect_every), smoothing
        self.detector = make_detector(detector) if detect else None
        self.rule = rule or (CropRule.load(rule_file(self.detector.name)) if detect else None)
        self.reset()

    def reset(self) -> None:
        """Forget tracks and smoothed probabilities (a new video, or an unrelated image)."""
        self.tracker = FaceTracker()
        self.frame_index = 0
        self.flow = CropFlow()
        self.previous_gray = None

    def parse_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, C, S, S) for RGB crops, one batch (doubled by flip TTA)."""
        batch = preprocess(crops, self.info.input_size, self.info.mean, self.info.std)
        return predict_probs(self.backend, batch, self.tta)

    def __call__(self, frame_rgb: np.ndarray) -> FrameResult:
        h, w = frame_rgb.shape[:2]
        timings = {"track": 0.0, "detect": 0.0}
        flows = {}
        if self.detect:
            t0 = time.perf_counter()
            gray = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
            if self.previous_gray is not None and is_cut(self.previous_gray, gray):
                self.tracker.tracks.clear()  # a new shot: its faces are new tracks (new ids), detected now
                self.frame_index = 0
            flows = self._follow_faces(gray)
            t1 = time.perf_counter()
            timings["track"] = (t1 - t0) * 1000
            if self.frame_index % self.detect_every == 0:
                self.tracker.update(self.detector.detect(frame_rgb))
                timings["detect"] = (time.perf_counter() - t1) * 1000
            self.previous_gray = gray
            tracks = list(self.tracker.tracks)  # a copy: false positives are removed from the tracker below
            squares = [self.rule.crop_square(t.box) for t in tracks]
        else:
            tracks, squares = [], []
        self.frame_index += 1
        labels = np.zeros((h, w), np.uint8)
        faces: list[Face] = []
        t1 = time.perf_counter()
        if not self.detect:
            probs = self.parse_crops([frame_rgb])[0]
            labels[:] = labels_at(probs, h, w)
            faces.append(Face((0, 0, max(h, w)), None, None, labels))
        elif tracks:
            probs = self.parse_crops([crop(frame_rgb, s) for s in squares])
            for track, square, p in zip(tracks, squares, probs):
                if self.smoothing and track.id in flows:  # parsed in the previous frame
                    moved = warp_probs(track.probs, track.square, square, flows[track.id])
                    p = self.smoothing * moved + (1 - self.smoothing) * p
                crop_labels = labels_at(p, *(2 * [max(1, int(round(square[2])))]))
                if not looks_like_a_face(crop_labels):  # a detector false positive: drop its track
                    self.tracker.tracks.remove(track)
                    continue
                track.probs, track.square = p, square
                faces.append(Face(tuple(round(v, 1) for v in square), tuple(round(v, 1) for v in track.box),
                                  track.id, _paste(labels, crop_labels, square)))
        timings["infer"] = (time.perf_counter() - t1) * 1000
        return FrameResult(labels, faces, timings)

    def _follow_faces(self, gray: np.ndarray) -> dict:
        """Move each parsed face's box by its motion since the previous frame; track id -> flow."""
        flows = {}
        if self.previous_gray is None or self.previous_gray.shape != gray.shape:
            return flows
        for track in self.tracker.tracks:
            if track.square is not None:
                flows[track.id] = flow = self.flow(self.previous_gray, gray, track.square)
                dx, dy = face_shift(flow)
                x, y, bw, bh = track.box
                track.box = (x + dx, y + dy, bw, bh)
        return flows


def looks_like_a_face(crop_labels: np.ndarray, min_skin: float = 0.05, min_nose: float = 0.002) -> bool:
    """The parser's own check on a detection: enough skin and a nose in the crop."""
    share = np.bincount(crop_labels.ravel(), minlength=len(CLASS_NAMES)) / crop_labels.size
    return share[1] >= min_skin and share[2] >= min_nose


def _paste(frame_labels: np.ndarray, face_labels: np.ndarray, square) -> np.ndarray:
    """Write a face's non-background labels into the frame; returns the part inside the frame."""
    x0, y0 = int(round(square[0])), int(round(square[1]))
    h, w = frame_labels.shape
    side = face_labels.shape[0]
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(w, x0 + side), min(h, y0 + side)
    if fx1 <= fx0 or fy1 <= fy0:
        return face_labels[:0, :0]
    part = face_labels[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    region = frame_labels[fy0:fy1, fx0:fx1]
    region[part > 0] = part[part > 0]
    return part


def class_areas(labels: np.ndarray) -> dict:
    """Class name -> pixel count, background left out."""
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES))
    return {name: int(counts[i]) for i, name in enumerate(CLASS_NAMES) if i and counts[i]}
