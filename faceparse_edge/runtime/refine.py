"""A second look at each detected face: its landmarks found again on its own upright crop.

The crop rule's landmark template was measured by running the detector on the aligned training faces
(crop_rule.py): upright faces that fill the image. On a frame the detector meets faces of any tilt and
size, and its landmarks slip with the tilt: on the val faces turned by 30 degrees, RetinaFace's crop lay
3.8% of its side from where CelebA-HQ cut it, against 2.5% upright. Run again on the face's upright crop
(REFINE_SIZE pixels, about 1.3 ms on a 2-core EPYC), where the face is upright and fills the image as the training
faces did, its crop comes within 2.4% at every tilt (`python benchmarks/bench_framing.py`, docs/runtime.md).
"""

import cv2
import numpy as np

from . import align
from .crop_rule import CropRule
from .detectors import Detection

REFINE_SIZE = 160  # the crop's side for the second look, in pixels: the face fills it, so a small input will do


def refined(detections: list[Detection], frame: np.ndarray, detector, rule: CropRule) -> list[Detection]:
    """`detections` with each face's landmarks replaced by those the detector finds on its upright crop.

    The face nearest the crop's centre is taken; a face the second look misses, or one without landmarks
    (Haar), keeps what the first look found. Boxes stay as found (the tracker matches faces by them).
    """
    out = []
    for found in detections:
        if found.landmarks is None:
            out.append(found)
            continue
        m = rule.transform(found.box, found.landmarks)
        again = [d for d in detector.detect(align.warp_crop(frame, m, REFINE_SIZE)) if d.landmarks is not None]
        if not again:
            out.append(found)
            continue
        centres = np.array([[x + w / 2, y + h / 2] for (x, y, w, h), _ in again])
        nearest = again[int(np.argmin(np.hypot(*(centres - REFINE_SIZE / 2).T)))]
        back = cv2.invertAffineTransform(m)  # unit crop coordinates -> frame pixels
        out.append(found._replace(landmarks=nearest.landmarks / REFINE_SIZE @ back[:, :2].T + back[:, 2]))
    return out
