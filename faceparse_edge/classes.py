"""The CelebAMask-HQ label set, shared by the toolkit and the torch-free runtime."""

import numpy as np

CLASS_NAMES = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow",
    "l_ear", "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l",
    "neck", "cloth",
)
NUM_CLASSES = len(CLASS_NAMES)
IGNORE = 255  # a training label: no class known here (beyond the labelled image); the losses skip it

# "l_" is the subject's left, on the image's right: a horizontal flip swaps these pairs.
LEFT_RIGHT_PAIRS = ((4, 5), (6, 7), (8, 9))


def _flip_permutation() -> np.ndarray:
    perm = np.arange(NUM_CLASSES)
    for left, right in LEFT_RIGHT_PAIRS:
        perm[left], perm[right] = right, left
    return perm


# FLIP_PERMUTATION[c] is the label that class c becomes in the mirrored image. It is its
# own inverse, so it also reorders probability channels: probs_mirrored[:, FLIP_PERMUTATION].
FLIP_PERMUTATION = _flip_permutation()

# The CelebAMask-HQ colour palette (RGB), one row per class.
PALETTE = np.array(
    [
        [0, 0, 0], [204, 0, 0], [76, 153, 0], [204, 204, 0], [51, 51, 255],
        [204, 0, 204], [0, 255, 255], [255, 204, 204], [102, 51, 0], [255, 0, 0],
        [102, 204, 0], [255, 255, 0], [0, 0, 153], [0, 0, 204], [255, 51, 153],
        [0, 204, 204], [0, 51, 0], [255, 153, 51], [0, 204, 0],
    ],
    dtype=np.uint8,
)
