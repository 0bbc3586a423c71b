"""One parsing pipeline for images, video files, streams and webcams (torch-free).

frame -> on a cut, forget all tracks -> move each tracked face's box and landmarks with its optical
flow -> detect faces (every few frames), each looked at again on its upright crop (refine.py), and match
them to tracks -> align each face as CelebA-HQ aligned its faces (a similarity transform from the
landmarks) -> parse the crops in one batch (with the mirrored crops when flip TTA is on) -> blend each
face's probabilities with its previous ones, moved along the flow -> turn the labels back into the frame
-> with follow_person, continue hair, hat and cloth past the views over the person (beyond_view.py).
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..classes import CLASS_NAMES
from ..errors import InvalidValueError
from ..fileio import read_image
from ..models import open_model
from ..parsing import labels_at, predict_probs, preprocess, with_context
from . import align
from .backends import precision_ran
from .beyond_view import continued_labels, person_segmenter
from .detectors import make_detector
from .frames import Frames
from .crop_rule import CropRule, rule_file
from .refine import refined
from .tracker import FaceTracker
from .motion import CHANGE_LEVELS, CropFlow, face_shift, is_cut, warp_probs


# Where a frame's time goes: following tracked faces, detection, cutting and resampling the crops, the
# model call itself, flip TTA and softmax around it, temporal smoothing, pasting the labels into the frame, and
# continuing them over the person past the faces' views (follow_person).
PIPELINE_STAGES = ("track", "detect", "crop", "preprocess", "model", "tta", "smooth", "paste", "person")
MAX_CALL_PIXELS = 2 * 256 * 256  # input pixels per model call, at least one face with flip TTA (bench_memory.py)


@dataclass
class Face:
    crop: np.ndarray  # frame -> unit crop coordinates (2x3, see align)
    box: tuple | None  # detector box (x, y, w, h); None with detection off
    track_id: int | None
    region: tuple  # (x0, y0, x1, y1): the frame rectangle that holds the face's crop, clipped to the frame
    labels: np.ndarray  # the face's class ids over `region` (0 outside its crop)
    landmarks: np.ndarray | None = None  # (5, 2) frame pixels: eyes, nose tip, mouth corners (image-left first)
    probs: np.ndarray | None = field(default=None, repr=False)  # (C, S, S) class probabilities over the crop

    @property
    def areas(self) -> dict:
        """Class name -> pixels of this face in the frame, background left out."""
        return class_areas(self.labels)


@dataclass
class FrameResult:
    labels: np.ndarray  # class ids at frame resolution, 0 where no face (or, following the person, no person) is
    faces: list[Face]
    timings: dict = field(default_factory=dict)  # stage -> milliseconds


class Parser:
    """Face parsing of images and video frames: the CLI's `image`, `video` and `webcam`, as a Python object.

    `model`, `backend`, `threads`, `precision`: as `open_model`. `detect=False` parses each input as an
    aligned crop. `detector`: auto, retinaface, yunet or haar, run every `detect_every` frames;
    `smoothing`: weight of a still face's previous probabilities (0 = off); `tta`: flip TTA.
    `follow_person`: continue hair, hat and cloth past each face's view over the person (a person
    segmenter's mask), so they do not stop along the view's straight sides (about 2.5 ms a 640x360 frame
    with faces on a 2-core CPU; off: labels only inside the views). `refine`: find each detected face's
    landmarks again on its upright crop (refine.py; about 1.3 ms a face each time the detector runs).
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto", threads: int = 0, tta: bool = True,
                 detect: bool = True, detect_every: int = 5, smoothing: float = 0.9, rule: CropRule | None = None,
                 precision: str = "f32", detector: str = "auto", follow_person: bool = True, refine: bool = True):
        self.backend = open_model(model, backend, precision, threads, spin=False)  # spinning would slow the rest
        self.info = self.backend.info
        self.precision = precision_ran(self.backend)
        self.tta, self.detect, self.detect_every, self.smoothing = tta, detect, max(1, detect_every), smoothing
        self.detector = make_detector(detector, self.backend.name, threads, precision) if detect else None
        self.detector_name = self.detector.name if detect else "none"  # the one that runs, after any fallback
        self.rule = rule or (CropRule.load(rule_file(self.detector.name)) if detect else None)
        self.refine = refine
        # One thread: the segmenter is small enough that a second costs more than it gives (its mask 1.2 against 1.6 ms
        # a frame on the 2-core EPYC). An aligned crop is all view: nothing lies past it.
        self.person = person_segmenter(self.backend.name, 1, precision) if follow_person and detect else None
        self.follow_person = self.person is not None
        # For the HUD: what runs, in what precision, which detector finds the faces, whether labels follow the person.
        self.engine = (f"{self.backend.name} {self.precision}{' +flipTTA' if tta else ''}  "
                       f"detector {self.detector_name}{'  +person' if self.follow_person else ''}")
        self.reset()

    def reset(self) -> None:
        """Forget tracks and smoothed probabilities (a new video, or an unrelated image)."""
        self.tracker = FaceTracker()
        self.frame_index = 0
        self.flow = CropFlow()
        self.previous_gray = None

    def parse_crops(self, crops: list[np.ndarray], timings: dict | None = None) -> np.ndarray:
        """Class probabilities (N, C, S, S) for RGB crops, one batch (doubled by flip TTA).

        `timings` (stage -> ms), if given, gets the preprocessing, the model call itself, and the softmax
        and flip averaging around it ("tta").
        """
        t0 = time.perf_counter()
        batch = preprocess(crops, self.info.input_size, self.info.mean, self.info.std)
        t1 = time.perf_counter()
        model_s = []

        def run(x):
            t = time.perf_counter()
            out = self.backend(x)
            model_s.append(time.perf_counter() - t)
            return out

        # At most MAX_CALL_PIXELS per model call (or one face): the runtime's memory is the largest call's activations,
        # held by the inference engine (video on the shared clip: five faces of edge-hq in one call peaked at 1.1 GB,
        # one a call at 0.38; the 256 px edge up to four faces a call 0.31, one 0.24; bench_memory.py, docs/runtime.md).
        per_call = max(1, MAX_CALL_PIXELS // ((2 if self.tta else 1) * batch.shape[2] * batch.shape[3]))
        chunks = [predict_probs(run, batch[i : i + per_call], self.tta) for i in range(0, len(batch), per_call)]
        probs = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)  # (one call: no copy on the frame's path)
        if timings is not None:
            timings["preprocess"] = (t1 - t0) * 1000
            timings["model"] = sum(model_s) * 1000
            timings["tta"] = (time.perf_counter() - t1 - sum(model_s)) * 1000
        return probs

    def parse(self, image, color: str = "rgb") -> FrameResult:
        """Parse one image: a file path (read as a viewer shows it), or an array in `color` order
        ("rgb", or "bgr" as OpenCV reads frames). Tracks and smoothing start afresh: use `stream`,
        or call the parser on consecutive frames, for video."""
        if isinstance(image, (str, Path)):
            image, color = read_image(image), "rgb"
        elif color not in ("rgb", "bgr"):
            raise InvalidValueError(f"color must be 'rgb' or 'bgr', got '{color}'")
        elif color == "bgr" and image.ndim == 3 and image.shape[2] in (3, 4):
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGB)
        self.reset()
        return self(image)

    def stream(self, source, max_frames: int | None = None):
        """Parse a video file, stream URL or camera index frame by frame: yields (BGR frame, FrameResult),
        with tracking and smoothing across frames. Unreadable frames are skipped."""
        frames = Frames(source)
        try:
            self.reset()
            for i, frame in enumerate(frames):
                if max_frames is not None and i >= max_frames:
                    break
                yield frame, self(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        finally:
            frames.release()

    def __call__(self, frame: np.ndarray) -> FrameResult:
        """One RGB frame's faces and labels, tracked from the previous frame's; `timings` holds each stage's
        milliseconds (PIPELINE_STAGES)."""
        frame_rgb = as_rgb(frame)
        h, w = frame_rgb.shape[:2]
        timings = dict.fromkeys(PIPELINE_STAGES, 0.0)
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
            detecting = self.frame_index % self.detect_every == 0
            if detecting:
                found = self.detector.detect(frame_rgb)
                self.tracker.update(refined(found, frame_rgb, self.detector, self.rule) if self.refine else found)
                timings["detect"] = (time.perf_counter() - t1) * 1000
            self.previous_gray = gray
            # A copy (false positives are removed from the tracker below); hidden faces (see below) are
            # parsed again only when the detector has just found them.
            tracks = [t for t in self.tracker.tracks if detecting or t.crop is not None]
        else:
            tracks = []
        self.frame_index += 1
        labels = np.zeros((h, w), np.uint8)
        faces: list[Face] = []
        if not self.detect:
            probs = self.parse_crops([with_context(frame_rgb, self.info.context)], timings)[0]
            t0 = time.perf_counter()
            labels[:] = labels_at(probs, h, w, self.info.context)
            timings["paste"] = (time.perf_counter() - t0) * 1000
            view = align.widened(np.array([[1 / w, 0, 0], [0, 1 / h, 0]]), self.info.context)
            faces.append(Face(view, None, None, (0, 0, w, h), labels, probs=probs))
        elif tracks:
            t0 = time.perf_counter()
            # Each face's view: its crop, widened as the model was trained to see it (hair, neck and cloth around it).
            crops = [align.widened(self.rule.transform(t.box, t.landmarks), self.info.context) for t in tracks]
            size = self.info.input_size
            images = [align.warp_crop(frame_rgb, m, size) for m in crops]
            timings["crop"] = (time.perf_counter() - t0) * 1000
            probs = self.parse_crops(images, timings)
            for track, m, p in zip(tracks, crops, probs):
                t0 = time.perf_counter()
                if self.smoothing and track.id in flows:  # parsed in the previous frame
                    flow, change = flows[track.id]
                    a = self.smoothing * np.exp(-change / CHANGE_LEVELS)  # a changed face follows its new parse
                    p = a * warp_probs(track.probs, track.crop, m, flow) + (1 - a) * p
                region = align.footprint(m, h, w)
                t1 = time.perf_counter()
                timings["smooth"] += (t1 - t0) * 1000
                # The parse must confirm the face: skin and a nose. One it confirmed in the previous frame needs skin
                # only (turned into profile, the parse labels its nose skin), and when even that fails it is hidden,
                # its track kept while the detector still finds it, until a parse confirms it in full again. A
                # detection never confirmed is a false positive: dropped.
                crop_labels = p.argmax(0).astype(np.uint8)
                if region is None or not looks_like_a_face(crop_labels, need_nose=track.crop is None):
                    if track.probs is not None and region is not None:  # confirmed before: hide it
                        track.crop = None  # not shown, not moved by the flow, not smoothed into the next parse
                    else:
                        self.tracker.tracks.remove(track)
                    continue
                track.probs, track.crop = p, m
                face_labels = align.labels_in_frame(p, m, region, crop_labels)
                x0, y0, x1, y1 = region
                cv2.copyTo(face_labels, face_labels, labels[y0:y1, x0:x1])  # the face's pixels over earlier faces'
                faces.append(Face(m, tuple(round(v, 1) for v in track.box), track.id, region, face_labels,
                                  track.landmarks, p))
                timings["paste"] += (time.perf_counter() - t1) * 1000
            if self.person is not None and faces:
                t0 = time.perf_counter()
                labels = continued_labels(labels, faces, self.person(frame_rgb))
                timings["person"] = (time.perf_counter() - t0) * 1000
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
        raise InvalidValueError(f"frames must be 8-bit, got {frame.dtype}")
    if frame.ndim in (2, 3) and 0 in frame.shape[:2]:
        raise InvalidValueError(f"the image is empty (shape {frame.shape})")
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_RGBA2RGB)
    raise InvalidValueError(f"frames must be H x W grayscale or H x W x 3 RGB, got shape {frame.shape}")


def looks_like_a_face(crop_labels: np.ndarray, min_skin: float = 0.05, min_nose: float = 0.002,
                      need_nose: bool = True) -> bool:
    """The parser's own check on a detection: enough skin and (unless `need_nose` is off) a nose in the crop."""
    share = np.bincount(crop_labels.ravel(), minlength=len(CLASS_NAMES)) / crop_labels.size
    return share[1] >= min_skin and (share[2] >= min_nose or not need_nose)


def class_areas(labels: np.ndarray) -> dict:
    """Class name -> pixel count, background left out."""
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES))
    return {name: int(counts[i]) for i, name in enumerate(CLASS_NAMES) if i and counts[i]}
