"""Labels past each face's view: hair, hat and cloth go on over the person, not to a straight line.

The parser labels a face only inside its view (a square around the face). Past it, a person segmenter
(MediaPipe's selfie segmenter, landscape 144x256, Apache-2.0; its ONNX graph ships in selfie_segmenter/,
converted by tools/selfie_segmenter_onnx.py, and runs on the parser's backend) says which pixels show a
person. Each such pixel outside every view, in a part of the person mask that touches a view, takes the
class of the nearest hair, hat, neck or cloth pixel of a view, the neck going on as cloth (below the
view it is the body). So long hair goes on beside the face, cloth down to the frame's edge, and the
labels stop where the person does. A view's own pixels are never relabelled, so overlapping faces keep
their order. Hands and arms, which no class names, are labelled as the cloth around them.
"""

import sys
from pathlib import Path

import cv2
import numpy as np

from ..classes import CLASS_NAMES
from ..errors import FaceparseError
from . import align
from .backends import graph_runner, shipped_graph
from .crop_edge import CUT_CLASSES

SEGMENTER_FILE = Path(__file__).with_name("selfie_segmenter") / "selfie-segmenter-landscape.onnx"
SEGMENTER_SHA256 = "fd09ca10607236635d7b3bb412f36f7fca40cc28c8d8cb00665e3f8ab658f126"
SEGMENTER_SIZE = (256, 144)  # (width, height) of its input: the whole frame, squeezed as MediaPipe does
NECK, CLOTH = CLASS_NAMES.index("neck"), CLASS_NAMES.index("cloth")
PERSON_THRESHOLD = 0.5
WORK_SIDE = 320  # the continuation is computed on the frame scaled to this longest side, then enlarged


def segmenter_onnx() -> bytes:
    """The selfie segmenter's ONNX graph shipped in this package, checked."""
    return shipped_graph(SEGMENTER_FILE, SEGMENTER_SHA256, "person segmenter weights")


def decimated(frame: np.ndarray) -> np.ndarray:
    """The frame shrunk by the largest whole factor that keeps it at least the segmenter's input size (its last
    few rows and columns dropped to make it divide): OpenCV's area averaging by a whole factor is several times
    faster than by 7.5 (1080p), and the segmenter's input then needs only a small step more."""
    h, w = frame.shape[:2]
    k = max(1, min(w // SEGMENTER_SIZE[0], h // SEGMENTER_SIZE[1]))
    if k == 1:
        return frame
    return cv2.resize(frame[: h // k * k, : w // k * k], (w // k, h // k), interpolation=cv2.INTER_AREA)


class PersonSegmenter:
    """Which pixels of a frame show a person (MediaPipe's probability above PERSON_THRESHOLD), on the parser's
    backend."""

    def __init__(self, backend: str = "onnxruntime", threads: int = 1, precision: str = "f32"):
        self._run = graph_runner(segmenter_onnx(), SEGMENTER_FILE.name, backend, threads, precision, "image",
                                 ("person",))

    def __call__(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Which pixels of an RGB frame show a person (bool, the frame's size)."""
        h, w = frame_rgb.shape[:2]
        if w >= SEGMENTER_SIZE[0] and h >= SEGMENTER_SIZE[1]:
            small = cv2.resize(decimated(frame_rgb), SEGMENTER_SIZE, interpolation=cv2.INTER_AREA)
        else:  # enlarged along a side: there is nothing to average
            small = cv2.resize(frame_rgb, SEGMENTER_SIZE, interpolation=cv2.INTER_LINEAR)
        blob = (small.astype(np.float32) * np.float32(1 / 255)).transpose(2, 0, 1)[None]
        probability = self._run(np.ascontiguousarray(blob))[0][0, 0]
        return cv2.resize(probability, (w, h), interpolation=cv2.INTER_LINEAR) > PERSON_THRESHOLD


def person_segmenter(backend: str, threads: int, precision: str) -> PersonSegmenter | None:
    """The person segmenter; where its file is missing or broken (a damaged install), None and one warning line:
    the labels then stay inside the faces' views."""
    try:
        return PersonSegmenter(backend, threads, precision)
    except FaceparseError as exc:
        print(f"warning: {exc}; labels stay inside the faces' views", file=sys.stderr)  # one line, never wrapped
        return None


def continued_labels(labels: np.ndarray, faces, person: np.ndarray) -> np.ndarray:
    """`labels` (the frame's, 0 outside every face's view) with hair, hat and cloth continued past the views over
    the person mask `person` (bool, frame size). `faces`: the parsed faces (their `crop`, the view). Returns a new
    array, or `labels` itself when nothing continues."""
    h, w = labels.shape
    in_views = np.zeros((h, w), np.uint8)
    for face in faces:
        region = align.footprint(face.crop, h, w)
        if region is not None:
            x0, y0, x1, y1 = region
            in_views[y0:y1, x0:x1] |= align.inside(face.crop, region)
    scale = min(1.0, WORK_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small_labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    small_views = cv2.resize(in_views, size, interpolation=cv2.INTER_NEAREST) > 0
    small_person = cv2.resize(person.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    seeds = small_views & np.isin(small_labels, CUT_CLASSES)
    if not seeds.any():
        return labels
    # Beyond the view the neck turns into the body: its seeds continue as cloth.
    seed_classes = np.where(small_labels[seeds] == NECK, CLOTH, small_labels[seeds])
    # Every pixel's nearest seed (each seed pixel its own label, numbered in raster order).
    _, nearest = cv2.distanceTransformWithLabels((~seeds).astype(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    grown = seed_classes[nearest - 1]
    # Only the parts of the person mask that reach a view: another person's body is not this face's.
    count, parts = cv2.connectedComponents((small_person | small_views).astype(np.uint8), connectivity=8)
    touching = np.zeros(count, bool)
    touching[parts[small_views]] = True
    touching[0] = False
    grown[~touching[parts]] = 0
    grown = cv2.resize(grown, (w, h), interpolation=cv2.INTER_NEAREST)
    fill = person & (grown > 0) & (in_views == 0) & (labels == 0)  # (a face's labels reach a pixel past its view)
    if not fill.any():
        return labels
    result = labels.copy()
    result[fill] = grown[fill]
    return result

