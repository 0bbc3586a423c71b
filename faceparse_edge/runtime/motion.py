"""Face motion between frames, from dense optical flow over the face's crop.

Two uses: tracks follow their face on the frames between detections (so the crop stays on
the face and the detector can run less often), and a face's smoothed probabilities are
moved along with the face before they are blended with the new frame's. Blending without
moving them leaves the labels trailing a moving face: on the shared video that raised the
motion-compensated flicker instead of lowering it (benchmarks/results/runtime.md).
Cuts to a new shot are found here too: no motion connects the faces across them.
"""

import cv2
import numpy as np

from .faces import crop

FLOW_SIZE = 64  # the crop is resampled to this size for the flow: ample for a face's motion
CUT_SIZE = (64, 36)  # frames are compared at this size to find cuts
CUT_LEVELS = 20.0  # mean absolute grey-level change that marks a cut (shared video: cuts 28-31, motion at most 14)


class CropFlow:
    """Where each pixel of a square crop of the current frame was in the previous frame."""

    def __init__(self, size: int = FLOW_SIZE):
        self.size = size
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)

    def __call__(self, previous_gray: np.ndarray, gray: np.ndarray, square) -> np.ndarray:
        """(size, size, 2) backward flow over `square`, in frame pixels: previous = current + flow."""
        n = self.size
        now = cv2.resize(crop(gray, square), (n, n), interpolation=cv2.INTER_AREA)
        before = cv2.resize(crop(previous_gray, square), (n, n), interpolation=cv2.INTER_AREA)
        return self.dis.calc(now, before, None) * np.float32(square[2] / n)


def face_shift(flow: np.ndarray) -> tuple[float, float]:
    """The face's (dx, dy) since the previous frame: the median motion over the crop's centre.

    The centre half of a CelebAMask-HQ-style crop is the face itself; the median ignores the
    hands, microphones and background that move differently around it.
    """
    n = flow.shape[0]
    centre = flow[n // 4 : n - n // 4, n // 4 : n - n // 4].reshape(-1, 2)
    dx, dy = np.median(centre, axis=0)
    return -float(dx), -float(dy)


def warp_probs(probs: np.ndarray, old_square, new_square, flow: np.ndarray) -> np.ndarray:
    """Move a face's (C, S, S) probabilities from its previous crop into the current one.

    `flow` is the backward flow over `old_square` (CropFlow): each current pixel takes the
    probabilities from where that pixel was in the previous frame.
    """
    s, n = probs.shape[-1], flow.shape[0]
    ox, oy, oside = old_square
    nx, ny, nside = new_square
    centres = (np.arange(s, dtype=np.float32) + 0.5) * np.float32(nside / s)
    x = np.broadcast_to(nx + centres[None, :], (s, s))  # frame coordinates of the current crop's pixels
    y = np.broadcast_to(ny + centres[:, None], (s, s))
    to_flow = np.float32(n / oside)
    along = cv2.remap(flow, (x - ox) * to_flow - 0.5, (y - oy) * to_flow - 0.5, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    to_probs = np.float32(s / oside)
    map_x = (x + along[..., 0] - ox) * to_probs - 0.5
    map_y = (y + along[..., 1] - oy) * to_probs - 0.5
    hwc = np.ascontiguousarray(probs.transpose(1, 2, 0))
    return cv2.remap(hwc, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).transpose(2, 0, 1)



def is_cut(previous_gray: np.ndarray, gray: np.ndarray) -> bool:
    """True when `gray` starts a new shot: tracks and smoothed probabilities must then be dropped.

    Across a cut a track's box may still overlap a new face, and blending the old shot's
    probabilities into it would paint the previous face over the new one for several frames.
    """
    before, now = (cv2.resize(g, CUT_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32) for g in (previous_gray, gray))
    return float(np.abs(now - before).mean()) > CUT_LEVELS
