"""Steady labels: the flicker measure, and where it is meaningful, a real photo held still and moved along a known path.

flicker: the share of a tracked face's pixels whose label changes between consecutive frames
        (`video --json` and the runtime benchmark report it).

still:  the photo repeated, each frame with its own sensor noise (Gaussian, sigma 3 grey
        levels) and JPEG re-encoding, as a camera delivers a face that does not move. Every
        label change is the parser's own instability: smoothing should remove it.
moving: the same photo panned, zoomed and rotated along a smooth known path (same noise and
        JPEG). Smoothing must not lag: its labels should agree with the per-frame parse.
Used by benchmarks/bench_runtime.py and by tests/test_alignment.py.
"""

import cv2
import numpy as np

from . import align

FRAME_SIDE = 640  # photos are scaled to a webcam-like frame first
NOISE_SIGMA = 3.0
JPEG_QUALITY = 85


def flicker(previous, current, warp=None) -> float | None:
    """Share of face pixels whose label changed since the previous frame.

    Face pixels: those labelled as face in either frame, among the pixels parsed in both
    frames, i.e. inside both frames' crops of a face tracked through both (faces appearing
    or leaving, and pixels entering or leaving a moving crop, are not flicker). `warp`, if
    given, moves the previous frame's arrays to the current frame first (motion-compensated
    flicker: label changes that follow the motion of the scene then do not count).
    """
    if previous is None or previous.labels.shape != current.labels.shape:
        return None
    kept = {f.track_id for f in previous.faces} & {f.track_id for f in current.faces}
    if not kept:
        return None
    h, w = current.labels.shape
    window = (0, 0, w, h)
    if warp is None:  # only pixels inside the current crops count: look at their bounding rectangle alone
        regions = np.array([f.region for f in current.faces if f.track_id in kept])
        window = (*regions[:, :2].min(axis=0), *regions[:, 2:].max(axis=0))
    x0, y0, x1, y1 = window
    before_labels, current_labels = previous.labels, current.labels[y0:y1, x0:x1]
    if warp is None:
        before_labels, before_parsed = before_labels[y0:y1, x0:x1], _parsed(previous, kept, window)
    else:
        before_labels, before_parsed = warp(before_labels), warp(_parsed(previous, kept, window))
    region = (before_parsed > 0) & (_parsed(current, kept, window) > 0) & ((before_labels > 0) | (current_labels > 0))
    n = int(region.sum())
    return float((before_labels[region] != current_labels[region]).sum() / n) if n else None


def _parsed(result, track_ids, window) -> np.ndarray:
    """Pixels of the frame rectangle `window` inside the crops of the given tracks' faces (uint8 0/1, so that it can
    be warped)."""
    wx0, wy0, wx1, wy1 = window
    mask = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
    for face in result.faces:
        if face.track_id in track_ids:
            x0, y0, x1, y1 = face.region
            x0, y0, x1, y1 = max(x0, wx0), max(y0, wy0), min(x1, wx1), min(y1, wy1)
            if x1 > x0 and y1 > y0:
                mask[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] |= align.inside(face.crop, (x0, y0, x1, y1))
    return mask


def as_frame(photo: np.ndarray) -> np.ndarray:
    h, w = photo.shape[:2]
    scale = FRAME_SIDE / max(h, w)
    return cv2.resize(photo, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def _camera(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise, then JPEG re-encoding, as a camera would deliver the frame."""
    noisy = np.clip(frame + rng.normal(0, NOISE_SIGMA, frame.shape), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def still(photo: np.ndarray, frames: int = 60, seed: int = 0):
    rng, frame = np.random.default_rng(seed), as_frame(photo)
    for _ in range(frames):
        yield _camera(frame, rng)


def moving(photo: np.ndarray, frames: int = 60, seed: int = 0):
    """Pan by up to 8% of the width and 5% of the height, zoom up to 1.15x, turn up to 12 degrees, smoothly."""
    rng, frame = np.random.default_rng(seed), as_frame(photo)
    h, w = frame.shape[:2]
    for k in range(frames):
        t = k / max(1, frames - 1)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 12 * np.sin(2 * np.pi * t), 1 + 0.15 * np.sin(np.pi * t))
        m[:, 2] += (0.08 * w * np.sin(2 * np.pi * t), 0.05 * h * np.sin(np.pi * t))
        yield _camera(cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), rng)


def measure(smoothed, plain, frames) -> dict:
    """Flicker with and without smoothing, and agreement of the smoothed labels with the per-frame parse.

    `smoothed` and `plain` are pipelines that differ only in smoothing; both see the same frames.
    Agreement: share of face pixels (labelled face by either) that both label alike.
    """
    smoothed.reset()
    plain.reset()
    flicker_on, flicker_off, agreement = [], [], []
    previous_on = previous_off = None
    for frame in frames:
        on, off = smoothed(frame), plain(frame)
        for values, previous, current in ((flicker_on, previous_on, on), (flicker_off, previous_off, off)):
            if (value := flicker(previous, current)) is not None:
                values.append(value)
        faces = (on.labels > 0) | (off.labels > 0)
        if faces.any():
            agreement.append(float((on.labels[faces] == off.labels[faces]).mean()))
        previous_on, previous_off = on, off
    return {"flicker_on": float(np.mean(flicker_on)) if flicker_on else None,
            "flicker_off": float(np.mean(flicker_off)) if flicker_off else None,
            "agreement": float(np.mean(agreement)) if agreement else None, "frames_measured": len(flicker_on)}
