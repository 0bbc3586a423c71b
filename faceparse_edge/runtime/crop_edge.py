"""Where labels stop along a straight line: the edge of the view a face was parsed in.

A face is parsed in a square view around it (its crop, widened by the model's context); past that
square the model gives no labels. Where hair, neck, cloth or a hat reach the view's edge inside the
frame, the overlay cuts them off along a straight line unless the labels go on past the view (following
the person, beyond_view.py): the share of the edge cut so measures it (benchmarks/bench_framing.py,
tests/test_alignment.py).
"""

import cv2
import numpy as np

from ..classes import CLASS_NAMES
from . import align

CUT_CLASSES = tuple(CLASS_NAMES.index(name) for name in ("hair", "hat", "neck", "cloth"))
EDGE_PIXELS = 2  # the edge: the view's pixels within this many frame pixels of its side
PROBE_PIXELS = 6  # where the labels should go on: this far out from an edge pixel, past the view's own labels' spill


def edge_counts(faces, frame_labels: np.ndarray) -> tuple[int, int]:
    """(edge pixels where hair, hat, neck or cloth stop; edge pixels) over the parsed faces of one frame.

    The edge: each face's view pixels (inside the frame) within EDGE_PIXELS of the view's side, labelled
    by that face (`Face.labels`; a face parsed later takes the pixels it shares with earlier ones). Such a
    pixel labelled hair, hat, neck or cloth is cut where the frame's labels (`frame_labels`, after any
    continuation past the views) do not go on with one of those classes PROBE_PIXELS further out, across the
    nearest side, inside the frame (a face's labels reach about a pixel past its view: resampled, not cut).
    """
    h, w = frame_labels.shape
    cut = total = 0
    for face in faces:
        u, v = align.unit_coordinates(face.crop, face.region)
        sides = np.stack([u, 1 - u, v, 1 - v])  # distance to the left, right, top and bottom side, in view units
        depth = sides.min(axis=0) * align.side(face.crop)  # pixels in from the nearest side
        edge = (depth >= 0) & (depth < EDGE_PIXELS)
        total += int(edge.sum())
        ys, xs = np.nonzero(edge & np.isin(face.labels, CUT_CLASSES))
        if not len(ys):
            continue
        # Each side's outward direction in the frame (the view is a rotated, scaled square).
        inverse = cv2.invertAffineTransform(face.crop)[:, :2]
        outward = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], np.float64) @ inverse.T
        outward /= np.linalg.norm(outward, axis=1, keepdims=True)
        step = outward[sides.argmin(axis=0)[ys, xs]] * PROBE_PIXELS
        x0, y0 = face.region[:2]
        ox, oy = np.floor(xs + x0 + 0.5 + step[:, 0]).astype(int), np.floor(ys + y0 + 0.5 + step[:, 1]).astype(int)
        inside = (ox >= 0) & (ox < w) & (oy >= 0) & (oy < h)
        beyond = frame_labels[oy[inside], ox[inside]]
        cut += int((~np.isin(beyond, CUT_CLASSES)).sum())
    return cut, total
