"""Training augmentation in OpenCV/numpy: label-aware flip, geometric and colour jitter."""

from dataclasses import dataclass

import cv2
import numpy as np

from ..classes import FLIP_PERMUTATION, IGNORE
from .settings import DEFAULTS


def hflip(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an image and its mask; the mask's left/right classes swap (l_eye <-> r_eye, ...)."""
    return (
        np.ascontiguousarray(image[:, ::-1]),
        np.ascontiguousarray(FLIP_PERMUTATION.astype(np.uint8)[mask[:, ::-1]]),
    )


@dataclass
class AugmentConfig:
    """The augmentation's ranges; defaults and meanings: the settings of the same names (settings.py)."""

    flip_p: float = DEFAULTS["flip"]
    scale: tuple[float, float] = (1 / DEFAULTS["scale"], DEFAULTS["scale"])
    rotate_deg: float = DEFAULTS["rotate"]
    translate: float = DEFAULTS["translate"]  # fraction of the side
    hue: float = DEFAULTS["hue"]  # OpenCV hue units (0..180)
    saturation: float = DEFAULTS["saturation"]
    value: float = DEFAULTS["value"]
    brightness: float = DEFAULTS["brightness"]  # added, fraction of 255
    contrast: float = DEFAULTS["contrast"]


class Augmenter:
    """Applies the jitter of an AugmentConfig to an (image, mask) pair of the same size.

    The image is framed as the model sees its faces (`context`, ModelConfig): shrunk to the middle 1 / context
    of its side before the jitter. Where the view reaches beyond the image, its edge pixels repeat, as in the
    runtime's crops at a frame's edge, and the mask reads IGNORE: no class is known there.
    """

    def __init__(self, config: AugmentConfig | None = None, context: float = 1.0):
        self.config, self.context = config or AugmentConfig(), context

    def __call__(self, image, mask, rng: np.random.Generator):
        c = self.config
        if rng.random() < c.flip_p:
            image, mask = hflip(image, mask)
        image, mask = self._warp(image, mask, rng)
        return self._colour(image, rng), mask

    def _warp(self, image, mask, rng):
        c = self.config
        h, w = mask.shape
        scale = float(np.exp(rng.uniform(np.log(c.scale[0]), np.log(c.scale[1]))))
        angle = float(rng.uniform(-c.rotate_deg, c.rotate_deg))
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale / self.context)
        matrix[:, 2] += rng.uniform(-c.translate, c.translate, size=2) * (w, h)
        image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask = cv2.warpAffine(mask, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=IGNORE)
        return image, mask

    def _colour(self, image, rng):
        c = self.config
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-c.hue, c.hue)) % 180
        hsv[..., 1] *= rng.uniform(1 - c.saturation, 1 + c.saturation)
        hsv[..., 2] *= rng.uniform(1 - c.value, 1 + c.value)
        image = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        alpha = rng.uniform(1 - c.contrast, 1 + c.contrast)
        beta = rng.uniform(-c.brightness, c.brightness) * 255
        mean = image.mean()
        return np.clip((image - mean) * alpha + mean + beta, 0, 255).astype(np.uint8)
