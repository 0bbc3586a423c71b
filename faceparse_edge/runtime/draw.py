"""Overlay of a parse on a frame: CelebAMask-HQ colours, face boxes, a legend and a small HUD."""

import cv2
import numpy as np

from ..classes import CLASS_NAMES, PALETTE
from .align import corners

PALETTE_BGR = np.ascontiguousarray(PALETTE[:, ::-1])
FONT = cv2.FONT_HERSHEY_SIMPLEX


def overlay(frame_bgr: np.ndarray, labels: np.ndarray, faces, hud: list[str] | None = None, alpha: float = 0.5,
            legend: bool = True) -> np.ndarray:
    """A copy of the frame with face pixels tinted by class, plus boxes, legend and HUD text."""
    out = frame_bgr.copy()
    mask = labels > 0
    if mask.any():  # blend only inside the faces' bounding rectangle
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        roi, face_labels = out[y : y + h, x : x + w], labels[y : y + h, x : x + w]
        blended = cv2.addWeighted(roi, 1 - alpha, PALETTE_BGR[face_labels], alpha, 0)
        inside = face_labels > 0
        roi[inside] = blended[inside]
    for face in faces:
        if face.box is not None:
            cv2.polylines(out, [corners(face.crop).round().astype(np.int32)], True, (255, 255, 255), 1, cv2.LINE_AA)
    if legend and mask.any():
        _legend(out, np.unique(labels[mask]))
    for i, line in enumerate(hud or []):
        _text(out, line, (8, 18 + 18 * i))
    return out


def _text(img, text, org, scale=0.45):
    cv2.putText(img, text, org, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _legend(img, classes):
    h, w = img.shape[:2]
    x = w - 92
    for i, c in enumerate(classes):
        y = 8 + 14 * i
        if y + 12 > h:
            break
        cv2.rectangle(img, (x, y), (x + 10, y + 10), tuple(int(v) for v in PALETTE_BGR[c]), -1)
        _text(img, CLASS_NAMES[c], (x + 14, y + 9), scale=0.35)


def hud_lines(fps: float | None, timings: dict, engine: str, faces: int, tta: bool) -> list[str]:
    """Status line (FPS when given, backend and precision, faces) and a line of per-stage milliseconds."""
    stages = "  ".join(f"{k} {v:.1f}" for k, v in timings.items())
    status = f"{faces} face{'s' if faces != 1 else ''}" if faces else "no face"
    rate = f"{fps:.1f} FPS  " if fps is not None else ""
    return [f"{rate}{engine}{' +flipTTA' if tta else ''}  {status}", f"ms: {stages}"]
