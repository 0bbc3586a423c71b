"""Backend-independent parsing steps shared by evaluation and the runtime (torch-free).

A backend is any callable that maps a float32 NCHW batch to NCHW logits; everything
around it (preprocessing, flip TTA, upsampling to the label resolution) lives here once.
"""

from typing import Callable, Sequence

import cv2
import numpy as np

from .classes import FLIP_PERMUTATION

Backend = Callable[[np.ndarray], np.ndarray]


def context_padding(height: int, width: int, context: float) -> tuple[int, int]:
    """(rows, columns) added on each side of an aligned image so that it fills the middle 1 / `context`
    of the model's view, as the model was trained (`context`: ModelConfig)."""
    return round(height * (context - 1) / 2), round(width * (context - 1) / 2)


def with_context(image: np.ndarray, context: float) -> np.ndarray:
    """An aligned image framed as a model of this `context` sees it: its edge pixels repeated around it,
    as the runtime's crops repeat a frame's edge where they reach beyond it."""
    dy, dx = context_padding(*image.shape[:2], context)
    return cv2.copyMakeBorder(image, dy, dy, dx, dx, cv2.BORDER_REPLICATE) if dy or dx else image


def preprocess(images: Sequence[np.ndarray], size: int, mean, std, context: float = 1.0) -> np.ndarray:
    """Resize RGB uint8 images to size x size and normalise them into one NCHW float32 batch.

    `context` > 1: the images are aligned faces, framed first as the model sees them (`with_context`); the
    runtime's crops come framed already. OpenCV's blob builder subtracts the mean and lays out NCHW in one
    pass (3x faster than numpy here: the runtime's crops already come at the model's size).
    """
    images = [with_context(image, context) for image in images]
    resized = [image if image.shape[:2] == (size, size) else
               cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if max(image.shape[:2]) > size else cv2.INTER_LINEAR)
               for image in images]
    batch = cv2.dnn.blobFromImages(resized, 1.0, (size, size), tuple(float(v) * 255.0 for v in mean), False, False)
    batch *= (1.0 / (np.asarray(std, np.float32) * 255.0))[None, :, None, None]
    return batch


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the channel axis of NCHW logits (cv2.exp: about 2.5x faster than np.exp)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = cv2.exp(shifted.reshape(-1, shifted.shape[-1])).reshape(shifted.shape)
    np.multiply(exp, 1.0 / exp.sum(axis=1, keepdims=True), out=exp)
    return exp


def unflip_probs(probs_of_mirror: np.ndarray) -> np.ndarray:
    """Map NCHW probabilities predicted on mirrored inputs back to the original view.

    Mirroring turns the subject's left into the image's left, so the left/right channels
    swap as well as the width axis flipping.
    """
    return probs_of_mirror[:, FLIP_PERMUTATION, :, ::-1]


def predict_probs(backend: Backend, batch: np.ndarray, tta: bool) -> np.ndarray:
    """Class probabilities for a preprocessed batch, averaged with the mirrored view if `tta`."""
    if not tta:
        return softmax(backend(batch))
    n, c, h, w = batch.shape
    both = np.empty((2 * n, c, h, w), np.float32)
    both[:n] = batch
    # Mirrored: every row of every plane reversed, in one OpenCV call over the planes stacked as one image.
    cv2.flip(np.ascontiguousarray(batch).reshape(-1, w), 1, dst=both[n:].reshape(-1, w))
    probs = softmax(backend(both))
    return 0.5 * (probs[:n] + unflip_probs(probs[n:]))


def log_probs_hwc(probs: np.ndarray) -> np.ndarray:
    """HWC log-probabilities of one CHW probability map: what is resampled before an argmax (see labels_at)."""
    return np.ascontiguousarray(np.log(np.maximum(probs, 1e-7)).transpose(1, 2, 0))


def labels_at(probs: np.ndarray, height: int, width: int, context: float = 1.0) -> np.ndarray:
    """Class ids at height x width from one CHW probability map of any resolution (of an aligned image
    framed with `context`, see `preprocess`: the labels of the image itself, its padding cut off).

    Upsamples log-probabilities bilinearly, then takes the argmax: that is the argmax of the
    upsampled logits (log-softmax differs from the logits by a per-pixel constant), so a
    model's coarse output loses nothing against upsampling inside the model (measured: val
    mIoU within 0.02), while softmax and TTA ran at the coarse resolution.
    """
    dy, dx = context_padding(height, width, context)
    log_probs = log_probs_hwc(probs)
    if log_probs.shape[:2] != (height + 2 * dy, width + 2 * dx):
        # cv2.resize handles at most 512 channels; 19 is fine.
        log_probs = cv2.resize(log_probs, (width + 2 * dx, height + 2 * dy), interpolation=cv2.INTER_LINEAR)
    return log_probs[dy : dy + height, dx : dx + width].argmax(2).astype(np.uint8)


def parse_batch(backend: Backend, images: Sequence[np.ndarray], size: int, mean, std, tta: bool,
                context: float = 1.0) -> list[np.ndarray]:
    """Class ids of aligned RGB face crops, each at its own resolution (dataset evaluation and labelling)."""
    probs = predict_probs(backend, preprocess(images, size, mean, std, context), tta)
    return [labels_at(prob, *image.shape[:2], context) for prob, image in zip(probs, images)]
