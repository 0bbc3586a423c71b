"""Face motion between frames, from dense optical flow over the face's crop.

Two uses: tracks follow their face on the frames between detections (so the crop stays on
the face and the detector can run less often), and a face's smoothed probabilities are
moved along with the face before they are blended with the new frame's. Blending without
moving them leaves the labels trailing a moving face: on the shared video that raised the
motion-compensated flicker instead of lowering it (`git show 3a8f4e8:benchmarks/results/avx2/runtime.md`).
Cuts to a new shot are found here too: no motion connects the faces across them.
"""

import cv2
import numpy as np

from . import align

# The crop is resampled to this size for the flow: ample for a face's motion. 48 px gave the shared video the
# same steadiness as 64 (bench_runtime's quality() at both sizes: flicker 0.1407 / 0.1415, motion-compensated
# 0.0529 / 0.0539, on repeated frames 0.0042 / 0.0043, 251 frames with a face either way) at 0.3 ms less a frame.
FLOW_SIZE = 48
CUT_SIZE = (64, 36)  # frames are compared at this size to find cuts
# Smoothing trusts a face's previous parse by exp(-change / CHANGE_LEVELS), where change is the mean
# grey-level difference over the centre of the face's crop between frames: small for a still face under
# camera noise, several times that for a moving or turning one. 4 (with the default weight 0.9) was
# picked by the still/moving and repeated-frame measures of bench_runtime.py then (git show
# 3a8f4e8:benchmarks/results/avx2/runtime.md); today's measures: benchmarks/results/<cpu>/runtime.md.
CHANGE_LEVELS = 4.0
CUT_LEVELS = 20.0  # mean absolute grey-level change that marks a cut (shared video: cuts 28-31, motion at most 14)


class CropFlow:
    """Where each point of a face's crop in the current frame was in the previous frame."""

    def __init__(self, size: int = FLOW_SIZE):
        self.size = size
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)

    def __call__(self, previous_gray: np.ndarray, gray: np.ndarray, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """The backward flow over the crop (see align), (size, size, 2) in unit crop coordinates (previous =
        current + flow), and how much the face changed: the mean absolute grey-level difference over the crop's centre.
        """
        now, before = (align.warp_crop(g, crop, self.size) for g in (gray, previous_gray))
        centre = slice(self.size // 4, self.size - self.size // 4)
        change = float(cv2.absdiff(now[centre, centre], before[centre, centre]).mean())
        return self.dis.calc(now, before, None) / np.float32(self.size), change


def face_shift(flow: np.ndarray) -> tuple[float, float]:
    """The face's motion since the previous frame, in unit crop coordinates: the median over the crop's centre.

    The centre half of a CelebAMask-HQ-style crop is the face itself; the median ignores the
    hands, microphones and background that move differently around it.
    """
    n = flow.shape[0]
    centre = flow[n // 4 : n - n // 4, n // 4 : n - n // 4].reshape(-1, 2)
    dx, dy = np.median(centre, axis=0)
    return -float(dx), -float(dy)


def warp_probs(probs: np.ndarray, old_crop: np.ndarray, new_crop: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Move a face's (C, S, S) probabilities from its previous crop into the current one.

    `flow` is the backward flow over `old_crop` (CropFlow): each current pixel takes the
    probabilities from where that point of the face was in the previous frame.
    """
    s, n = probs.shape[-1], flow.shape[0]
    to_old = align.relative(old_crop, new_crop).astype(np.float32)
    centres = (np.arange(s, dtype=np.float32) + 0.5) / s
    u, v = np.meshgrid(centres, centres)
    x = to_old[0, 0] * u + to_old[0, 1] * v + to_old[0, 2]  # the current pixels in the old crop's coordinates
    y = to_old[1, 0] * u + to_old[1, 1] * v + to_old[1, 2]
    along = cv2.remap(flow, x * n - 0.5, y * n - 0.5, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    map_x = (x + along[..., 0]) * s - 0.5
    map_y = (y + along[..., 1]) * s - 0.5
    hwc = np.ascontiguousarray(probs.transpose(1, 2, 0))
    return cv2.remap(hwc, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).transpose(2, 0, 1)


def is_cut(previous_gray: np.ndarray, gray: np.ndarray) -> bool:
    """True when `gray` starts a new shot: tracks and smoothed probabilities must then be dropped.

    Across a cut a track's box may still overlap a new face, and blending the old shot's
    probabilities into it would paint the previous face over the new one for several frames.
    """
    before, now = (cv2.resize(g, CUT_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32) for g in (previous_gray, gray))
    return float(np.abs(now - before).mean()) > CUT_LEVELS
