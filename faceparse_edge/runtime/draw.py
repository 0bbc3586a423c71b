"""Overlay of a parse on a frame: CelebAMask-HQ colours, face boxes, a legend and a small HUD."""

from functools import lru_cache

import cv2
import numpy as np

from ..classes import CLASS_NAMES, PALETTE
from .align import corners

PALETTE_BGR = np.ascontiguousarray(PALETTE[:, ::-1])
PALETTE_LUT = np.zeros((1, 256, 3), np.uint8)  # class id -> BGR colour, for cv2.LUT
PALETTE_LUT[0, : len(PALETTE_BGR)] = PALETTE_BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX
LEGEND_WIDTH = 92  # pixels, at the frame's top right


def overlay(frame_bgr: np.ndarray, labels: np.ndarray, faces, hud: list[str] | None = None, alpha: float = 0.5,
            legend: bool = True) -> np.ndarray:
    """A copy of the frame with face pixels tinted by class, plus boxes, legend and HUD text."""
    out = frame_bgr.copy()
    x, y, w, h = cv2.boundingRect(labels)  # blend only inside the faces' bounding rectangle
    if w and h:
        roi, face_labels = out[y : y + h, x : x + w], labels[y : y + h, x : x + w]
        colours = cv2.LUT(cv2.cvtColor(face_labels, cv2.COLOR_GRAY2BGR), PALETTE_LUT)
        cv2.copyTo(cv2.addWeighted(roi, 1 - alpha, colours, alpha, 0), face_labels, roi)  # face pixels only
    for face in faces:
        if face.box is not None:
            cv2.polylines(out, [corners(face.crop).round().astype(np.int32)], True, (255, 255, 255), 1, cv2.LINE_AA)
    if legend and w and h:
        _legend(out, np.flatnonzero(np.bincount(face_labels.ravel(), minlength=len(CLASS_NAMES))[1:]) + 1)
    for i, line in enumerate(hud or []):
        _hud_text(out, line, (8, 18 + 18 * i))
    return out


def _hud_text(img, text, org, scale=0.45):
    """White text on the frame darkened behind it: one text draw, not two (the HUD changes every frame)."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 1)
    x, y = org
    behind = img[max(0, y - height - 3) : y + baseline + 1, max(0, x - 2) : x + width + 2]
    behind >>= 1
    cv2.putText(img, text, org, FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _text(img, text, org, scale=0.45):
    cv2.putText(img, text, org, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _legend(img, classes):
    """The class legend at the top right, as many rows as fit; drawn once per set of classes, then blended in."""
    h, w = img.shape[:2]
    rows = min(len(classes), max(0, (h - 12 - 8) // 14 + 1))
    if rows == 0:
        return
    paint, keep = _legend_stamp(tuple(int(c) for c in classes[:rows]))
    x0 = max(0, w - LEGEND_WIDTH)
    paint, keep = paint[:, LEGEND_WIDTH - (w - x0):], keep[:, LEGEND_WIDTH - (w - x0):]
    roi = img[: paint.shape[0], x0:]
    roi[:] = (roi * keep + paint + 0.5).astype(np.uint8)



@lru_cache(maxsize=64)
def _legend_stamp(classes: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The legend drawn on black and on white: what it adds (premultiplied colour) and how much of the
    frame shows through (1 - alpha), so that anti-aliased text blends exactly as if drawn on the frame."""
    size = (8 + 14 * len(classes), LEGEND_WIDTH, 3)
    on_black, on_white = np.zeros(size, np.uint8), np.full(size, 255, np.uint8)
    for canvas in (on_black, on_white):
        for i, c in enumerate(classes):
            y = 8 + 14 * i
            cv2.rectangle(canvas, (0, y), (10, y + 10), tuple(int(v) for v in PALETTE_BGR[c]), -1)
            _text(canvas, CLASS_NAMES[c], (14, y + 9), scale=0.35)
    keep = (on_white.astype(np.float32) - on_black) / 255.0
    return on_black.astype(np.float32), keep


def hud_lines(fps: float | None, timings: dict, engine: str, faces: int) -> list[str]:
    """Status line (FPS when given, the pipeline's engine: backend, precision, TTA, detector; faces) and a
    line of milliseconds: the model's, detection's, and everything else's."""
    status = f"{faces} face{'s' if faces != 1 else ''}" if faces else "no face"
    rate = f"{fps:.1f} FPS  " if fps is not None else ""
    model, detect = timings.get("model", 0.0), timings.get("detect", 0.0)
    rest = sum(timings.values()) - model - detect
    return [f"{rate}{engine}  {status}", f"ms: model {model:.1f}  detect {detect:.1f}  rest {rest:.1f}"]
