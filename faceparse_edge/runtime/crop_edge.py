"""Where labels stop along a straight line: the edge of the view a face was parsed in.

A face is parsed in a square view around it (its crop, widened by the model's context); past that
square it gets no labels. Where hair, neck, cloth or a hat reach the view's edge inside the frame,
the overlay cuts them off along a straight line: the share of the edge labelled so measures it
(benchmarks/bench_framing.py, tests/test_alignment.py).
"""

import numpy as np

from ..classes import CLASS_NAMES
from . import align

CUT_CLASSES = tuple(CLASS_NAMES.index(name) for name in ("hair", "hat", "neck", "cloth"))
EDGE_PIXELS = 2  # the edge: the view's pixels within this many frame pixels of its side


def edge_counts(faces, height: int, width: int) -> tuple[int, int]:
    """(edge pixels labelled hair, hat, neck or cloth; edge pixels) over the parsed faces of one frame.

    The edge: each face's view pixels (inside the frame) within EDGE_PIXELS of the view's side, labelled
    by that face (`Face.labels`; a face parsed later takes the pixels it shares with earlier ones).
    """
    cut = total = 0
    for face in faces:
        u, v = align.unit_coordinates(face.crop, face.region)
        depth = np.minimum(np.minimum(u, 1 - u), np.minimum(v, 1 - v)) * align.side(face.crop)  # pixels in from a side
        edge = (depth >= 0) & (depth < EDGE_PIXELS)
        cut += int(np.isin(face.labels[edge], CUT_CLASSES).sum())
        total += int(edge.sum())
    return cut, total
