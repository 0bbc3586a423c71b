"""One parsing pipeline for images, video files, streams and webcams (torch-free).

frame -> on a cut, forget all tracks -> move each tracked face's box and landmarks with its optical
flow -> detect faces (every few frames) and match them to tracks -> align each face as
CelebA-HQ aligned its faces (a similarity transform from the landmarks) -> parse the crops
in one batch (with the mirrored crops when flip TTA is on) -> blend each face's
probabilities with its previous ones, moved along the flow -> turn the labels back into the frame.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..classes import CLASS_NAMES
from ..errors import FaceparseError
from ..parsing import labels_at, predict_probs, preprocess
from ..weights import resolve_model
from . import align
from .backends import open_backend, precision_ran
from .faces import CropRule, FaceTracker, make_detector, rule_file
from .motion import CHANGE_LEVELS, CropFlow, face_shift, is_cut, warp_probs


@dataclass
class Face:
    crop: np.ndarray  # frame -> unit crop coordinates (2x3, see align)
    box: tuple | None  # detector box (x, y, w, h); None with detection off
    track_id: int | None
    region: tuple  # (x0, y0, x1, y1): the frame rectangle that holds the face's crop, clipped to the frame
    labels: np.ndarray  # the face's class ids over `region` (0 outside its crop)


@dataclass
class FrameResult:
    labels: np.ndarray  # class ids at frame resolution, 0 where no face is
    faces: list[Face]
    timings: dict = field(default_factory=dict)  # stage -> milliseconds


class Pipeline:
    def __init__(self, model: str | Path | None = None, backend: str = "auto", threads: int = 0, tta: bool = True,
                 detect: bool = True, detect_every: int = 5, smoothing: float = 0.9, rule: CropRule | None = None,
                 precision: str = "f32", detector: str = "auto"):
        self.backend = open_backend(resolve_model(model, backend), backend, threads, precision)
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

    def __call__(self, frame: np.ndarray) -> FrameResult:
        frame_rgb = as_rgb(frame)
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
        else:
            tracks = []
        self.frame_index += 1
        labels = np.zeros((h, w), np.uint8)
        faces: list[Face] = []
        t1 = time.perf_counter()
        if not self.detect:
            probs = self.parse_crops([frame_rgb])[0]
            labels[:] = labels_at(probs, h, w)
            faces.append(Face(np.array([[1 / w, 0, 0], [0, 1 / h, 0]]), None, None, (0, 0, w, h), labels))
        elif tracks:
            crops = [self.rule.transform(t.box, t.landmarks) for t in tracks]
            size = self.info.input_size
            probs = self.parse_crops([align.warp_crop(frame_rgb, m, size) for m in crops])
            for track, m, p in zip(tracks, crops, probs):
                if self.smoothing and track.id in flows:  # parsed in the previous frame
                    flow, change = flows[track.id]
                    a = self.smoothing * np.exp(-change / CHANGE_LEVELS)  # a changed face follows its new parse
                    p = a * warp_probs(track.probs, track.crop, m, flow) + (1 - a) * p
                region = align.footprint(m, h, w)
                if region is None or not looks_like_a_face(p.argmax(0)):  # a detector false positive: drop its track
                    self.tracker.tracks.remove(track)
                    continue
                track.probs, track.crop = p, m
                face_labels = align.labels_in_frame(p, m, region)
                x0, y0, x1, y1 = region
                inside = labels[y0:y1, x0:x1]
                inside[face_labels > 0] = face_labels[face_labels > 0]
                faces.append(Face(m, tuple(round(v, 1) for v in track.box), track.id, region,
                                  face_labels))
        timings["infer"] = (time.perf_counter() - t1) * 1000
        return FrameResult(labels, faces, timings)

    def _follow_faces(self, gray: np.ndarray) -> dict:
        """Move each parsed face's box and landmarks by its motion since the previous frame; track id -> (flow, change)."""
        flows = {}
        if self.previous_gray is None or self.previous_gray.shape != gray.shape:
            return flows
        for track in self.tracker.tracks:
            if track.crop is not None:
                flows[track.id] = motion = self.flow(self.previous_gray, gray, track.crop)
                track.move(*align.frame_vector(track.crop, face_shift(motion[0])))
        return flows


def as_rgb(frame: np.ndarray) -> np.ndarray:
    """An 8-bit frame as 3-channel RGB: grayscale is repeated, an alpha channel dropped; anything else is refused."""
    if frame.dtype != np.uint8:
        raise FaceparseError(f"frames must be 8-bit, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_RGBA2RGB)
    raise FaceparseError(f"frames must be H x W grayscale or H x W x 3 RGB, got shape {frame.shape}")


def looks_like_a_face(crop_labels: np.ndarray, min_skin: float = 0.05, min_nose: float = 0.002) -> bool:
    """The parser's own check on a detection: enough skin and a nose in the crop."""
    share = np.bincount(crop_labels.ravel(), minlength=len(CLASS_NAMES)) / crop_labels.size
    return share[1] >= min_skin and share[2] >= min_nose


def class_areas(labels: np.ndarray) -> dict:
    """Class name -> pixel count, background left out."""
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES))
    return {name: int(counts[i]) for i, name in enumerate(CLASS_NAMES) if i and counts[i]}
