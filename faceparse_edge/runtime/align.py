"""Face crops as similarity transforms, the way CelebA-HQ aligns faces by their landmarks.

A crop is a 2x3 matrix `m` that maps frame coordinates to unit crop coordinates: (0, 0) is
the crop's top-left corner and (1, 1) its bottom-right. Coordinates are continuous (pixel
(i, j) covers [j, j+1) x [i, i+1)), so one matrix serves every resolution: the model's input,
its coarser output, and the small grid the optical flow runs on. Rotation, scale and
translation together: a tilted head is turned upright before it is parsed, and the parse is
turned back when it is pasted into the frame.
"""

import cv2
import numpy as np

from ..parsing import log_probs_hwc


def fit_similarity(src, dst) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking points `src` onto `dst`."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    a = np.zeros((2 * len(src), 4))
    a[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(len(src)), np.zeros(len(src))])
    a[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(len(src)), np.ones(len(src))])
    (c, s, tx, ty), *_ = np.linalg.lstsq(a, dst.ravel(), rcond=None)
    return np.array([[c, -s, tx], [s, c, ty]])


def square(x0: float, y0: float, side: float) -> np.ndarray:
    """The axis-aligned square crop with top-left corner (x0, y0)."""
    return np.array([[1 / side, 0, -x0 / side], [0, 1 / side, -y0 / side]])


def _h(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def side(m: np.ndarray) -> float:
    """The crop's side in frame pixels."""
    return float(1 / np.sqrt(abs(np.linalg.det(m[:, :2]))))


def corners(m: np.ndarray) -> np.ndarray:
    """The crop's four corners in the frame (clockwise from top-left), (4, 2)."""
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    inverse = cv2.invertAffineTransform(m)
    return unit @ inverse[:, :2].T + inverse[:, 2]


def corner_error(m: np.ndarray, exact: np.ndarray) -> float:
    """How far crop `m` lies from the crop `exact`: its corners' mean absolute error, as a share of `exact`'s side."""
    return float(np.abs(corners(m) - corners(exact)).mean() / side(exact))


def frame_vector(m: np.ndarray, unit_vector) -> tuple[float, float]:
    """A displacement in unit crop coordinates, in frame pixels."""
    dx, dy = np.linalg.solve(m[:, :2], np.asarray(unit_vector, np.float64))
    return float(dx), float(dy)


def rotated(m: np.ndarray, angle: float) -> np.ndarray:
    """The crop `m` turned by `angle` (radians, the sense of a similarity's rotation) about its centre."""
    c, s = np.cos(angle), np.sin(angle)
    turn = np.array([[c, -s, 0.5 - 0.5 * c + 0.5 * s], [s, c, 0.5 - 0.5 * s - 0.5 * c], [0, 0, 1]])
    return (turn @ _h(m))[:2]


def widened(m: np.ndarray, context: float) -> np.ndarray:
    """The crop `m` widened `context` times about its centre: a model's view of the face (ModelConfig.context)."""
    if context == 1:
        return m
    shrink = np.array([[1 / context, 0, 0.5 - 0.5 / context], [0, 1 / context, 0.5 - 0.5 / context], [0, 0, 1]])
    return (shrink @ _h(m))[:2]


def relative(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The map from `new`'s unit coordinates to `old`'s (the same frame point)."""
    return (_h(old) @ np.linalg.inv(_h(new)))[:2]


def _pixels(m: np.ndarray, size: int) -> np.ndarray:
    """`m` as OpenCV wants it: from frame pixel centres to the pixel centres of a size x size crop."""
    out = m * size
    out[:, 2] += 0.5 * out[:, :2].sum(axis=1) - 0.5
    return out


def warp_crop(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop that `m` describes; beyond the image's border its edge pixels repeat.

    A crop that shrinks the frame by 1.25 or more is sampled at twice its size and then halved by
    area averaging: the bilinear step's sub-pixel blur falls below the crop's pixel, and the crop
    parses as an area resize of the image does (`--no-detect`'s input). Where that sampling still
    shrinks the frame, it is taken from an area-averaged copy of just the face's region, because
    bilinear sampling alone would alias it.
    """
    if side(m) / size >= 1.25:
        return cv2.resize(_sampled(image, m, 2 * size), (size, size), interpolation=cv2.INTER_AREA)
    return _sampled(image, m, size)


def _sampled(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop `m` bilinearly sampled (from an area-averaged copy of the face's region when it shrinks)."""
    shrink = size / side(m)
    region = footprint(m, *image.shape[:2], margin=1) if shrink < 0.8 else None
    if region is not None:
        x0, y0, x1, y1 = region
        rw, rh = max(1, round((x1 - x0) * shrink)), max(1, round((y1 - y0) * shrink))
        image = cv2.resize(image[y0:y1, x0:x1], (rw, rh), interpolation=cv2.INTER_AREA)
        m = (_h(m) @ np.array([[(x1 - x0) / rw, 0, x0], [0, (y1 - y0) / rh, y0], [0, 0, 1]]))[:2]
    return cv2.warpAffine(image, _pixels(m, size), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def footprint(m: np.ndarray, height: int, width: int, margin: int = 0) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the frame pixels the crop covers (plus `margin`), clipped to the frame; None if it lies outside."""
    c = corners(m)
    x0, y0 = np.maximum(np.floor(c.min(axis=0)).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(c.max(axis=0)).astype(int) + margin, [width, height])
    return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None


def unit_coordinates(m: np.ndarray, region: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(u, v): the unit crop coordinates of the centres of the frame rectangle `region`'s pixels (float32)."""
    x0, y0, x1, y1 = region
    x = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5  # broadcast: no meshgrid copies
    y = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    m = m.astype(np.float32)
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def inside(m: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """Which pixels of the frame rectangle `region` have their centre inside the crop (bool)."""
    u, v = unit_coordinates(m, region)
    return (u >= 0) & (u < 1) & (v >= 0) & (v < 1)


def labels_in_frame(probs: np.ndarray, m: np.ndarray, box: tuple[int, int, int, int],
                    crop_labels: np.ndarray | None = None) -> np.ndarray:
    """Class ids over the frame rectangle `box` from a face's (C, S, S) crop probabilities; 0 outside the crop.

    The argmax of the log-probabilities resampled bilinearly, as `parsing.labels_at` does for
    axis-aligned crops; outside the crop every channel reads 0, so the argmax is background. Computed
    in full only where it can differ from the nearest coarse pixel's class: a bilinear sample mixes the
    four coarse pixels around it, and where all four have the same argmax, so does any mix of them
    (each inequality between two channels holds at the corners, so it holds for their weighted mean).
    So pixels whose nearest coarse pixel has a 3x3 neighbourhood of one class take its class; only those
    near a class boundary (a fifth to a third of a face) are resampled in all channels. `crop_labels`:
    the crop's own class ids (probs.argmax(0), uint8), where the caller has them already.
    """
    x0, y0, x1, y1 = box
    s = probs.shape[-1]
    log_probs = np.zeros((s + 2, s + 2, probs.shape[0]), np.float32)  # a ring of zeros: what lies outside the crop
    log_probs[1:-1, 1:-1] = log_probs_hwc(probs)
    coarse = np.zeros((s + 2, s + 2), np.uint8)
    coarse[1:-1, 1:-1] = probs.argmax(0) if crop_labels is None else crop_labels
    kernel = np.ones((3, 3), np.uint8)
    boundary = (cv2.dilate(coarse, kernel) != cv2.erode(coarse, kernel)).view(np.uint8)
    to_coarse = _pixels((_h(m) @ np.array([[1.0, 0, x0], [0, 1, y0], [0, 0, 1]]))[:2], s)  # box pixel -> coarse pixel
    to_coarse[:, 2] += 1  # the ring
    size, flags = (x1 - x0, y1 - y0), cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    labels = cv2.warpAffine(coarse, to_coarse, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ys, xs = np.nonzero(cv2.warpAffine(boundary, to_coarse, size, flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                       borderValue=0))
    if len(xs):
        n, width = len(xs), 1024  # remap takes maps of under 32767 rows: lay the pixels out in rows of 1024
        uv = np.zeros((2, -(-n // width) * width), np.float32)
        uv[:, :n] = to_coarse[:, :2] @ np.vstack([xs, ys]) + to_coarse[:, 2:]
        u, v = uv.reshape(2, -1, width)
        mixed = cv2.remap(log_probs, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        labels[ys, xs] = mixed.reshape(-1, log_probs.shape[2])[:n].argmax(1)
    return labels
