"""Frame loops for video files, stream URLs and webcams, sharing one pipeline."""

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import FaceparseError
from ..progress import console, progress_bar
from . import align
from .draw import hud_lines, overlay
from .pipeline import Pipeline

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our one-line errors, not FFmpeg's log
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

MAX_CONSECUTIVE_BAD = 30
STAGES = ("decode", "track", "detect", "infer", "draw", "write")


class _Writer:
    """An mp4 writer that writes to a temporary file and renames it when finalised."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix or '.mp4'}")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise FaceparseError(f"cannot write video {path}")

    def write(self, frame):
        self.writer.write(frame)

    def finalise(self):
        self.writer.release()
        os.replace(self.tmp, self.path)


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
    before_labels, before_parsed = previous.labels, _parsed(previous, kept)
    if warp is not None:
        before_labels, before_parsed = warp(before_labels), warp(before_parsed)
    region = (before_parsed > 0) & (_parsed(current, kept) > 0) & ((before_labels > 0) | (current.labels > 0))
    n = int(region.sum())
    return float((before_labels[region] != current.labels[region]).sum() / n) if n else None


def _parsed(result, track_ids) -> np.ndarray:
    """Pixels inside the crops of the given tracks' faces (uint8 0/1, so that it can be warped)."""
    mask = np.zeros(result.labels.shape, np.uint8)
    for face in result.faces:
        if face.track_id in track_ids:
            x0, y0, x1, y1 = face.region
            mask[y0:y1, x0:x1] |= align.inside(face.crop, face.region)
    return mask


def run_stream(pipeline: Pipeline, source, out_path: Path | None = None, show: bool = False,
               is_camera: bool = False, max_frames: int | None = None) -> dict:
    """Parse every frame of a capture; returns the run summary. `q` or Ctrl-C stops cleanly."""
    name = f"camera {source}" if is_camera else str(source)
    if show and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FaceparseError("no display available to show the video (DISPLAY is not set); use --no-show")
    if not is_camera and not str(source).startswith(("rtsp://", "http://", "https://")) and not Path(source).is_file():
        raise FaceparseError(f"video not found: {source}")
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise FaceparseError(f"cannot open {name}" + ("" if is_camera else ": not a readable video (truncated or unsupported?)"))
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not is_camera else 0
    pipeline.reset()
    writer, window = None, "faceparse-edge"
    sums = dict.fromkeys(STAGES, 0.0)
    frames = bad = consecutive_bad = faces_total = frames_with_face = 0
    flickers, previous, interrupted = [], None, False
    by_faces = {}  # faces in the frame -> [frames, seconds end to end]
    fps_smooth, t_previous, t_start = 0.0, None, time.perf_counter()
    try:
        with progress_bar() as progress:
            task = progress.add_task(Path(str(source)).name if not is_camera else name, total=total or None, info="")
            while max_frames is None or frames < max_frames:
                t0 = time.perf_counter()
                ok, frame = cap.read()
                if not ok:
                    if frames == 0 and bad == 0 and is_camera:
                        raise FaceparseError(f"{name} yields no frames")
                    if total and frames + bad < total and consecutive_bad < MAX_CONSECUTIVE_BAD:
                        bad += 1
                        consecutive_bad += 1
                        continue
                    break
                consecutive_bad = 0
                t_decode = (time.perf_counter() - t0) * 1000
                result = pipeline(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                t1 = time.perf_counter()
                if t_previous is not None:  # end to end: from one frame's start to the next
                    fps_now = 1.0 / max(t0 - t_previous, 1e-6)
                    fps_smooth = fps_now if fps_smooth == 0 else 0.9 * fps_smooth + 0.1 * fps_now
                t_previous = t0
                timings = {"decode": t_decode, **result.timings}
                drawn = overlay(frame, result.labels, result.faces,
                                hud_lines(fps_smooth, timings, pipeline.engine, len(result.faces), pipeline.tta))
                timings["draw"] = (time.perf_counter() - t1) * 1000
                t2 = time.perf_counter()
                if out_path is not None:
                    if writer is None:
                        writer = _Writer(out_path, fps_in, (frame.shape[1], frame.shape[0]))
                    writer.write(drawn)
                timings["write"] = (time.perf_counter() - t2) * 1000
                if show:
                    try:
                        cv2.imshow(window, drawn)
                        if cv2.waitKey(1) & 0xFF == ord("q"):
                            break
                    except cv2.error:
                        raise FaceparseError("no display available to show the video; use --no-show") from None
                for k in STAGES:
                    sums[k] += timings.get(k, 0.0)
                frames += 1
                faces_total += len(result.faces)
                frames_with_face += bool(result.faces)
                f = flicker(previous, result)
                if f is not None:
                    flickers.append(f)
                previous = result
                progress.update(task, advance=1, info=f"{fps_smooth:.1f} FPS, {len(result.faces)} faces")
                count = by_faces.setdefault(len(result.faces), [0, 0.0])
                count[0] += 1
                count[1] += time.perf_counter() - t0
    except KeyboardInterrupt:
        interrupted = True
    finally:
        wall = time.perf_counter() - t_start
        cap.release()
        if writer is not None:
            writer.finalise()
        if show:
            cv2.destroyAllWindows()
    if frames == 0:
        raise FaceparseError(f"no readable frames in {name}")
    if bad:
        console.print(f"skipped {bad} unreadable frame(s) in {name}")
    return {
        "source": name, "frames": frames, "bad_frames": bad, "interrupted": interrupted,
        "fps_in": round(fps_in, 3), "fps": round(frames / wall, 2),
        "fps_by_faces": {str(n): round(c / s, 2) for n, (c, s) in sorted(by_faces.items())},
        "frames_by_faces": {str(n): c for n, (c, _) in sorted(by_faces.items())},
        "ms": {k: round(v / frames, 2) for k, v in sums.items()},
        "faces_per_frame": round(faces_total / frames, 3), "frames_with_face": frames_with_face,
        "flicker": round(float(np.mean(flickers)), 4) if flickers else None,
        "backend": pipeline.backend.name, "precision": pipeline.precision, "tta": pipeline.tta, "smoothing": pipeline.smoothing,
        "detect_every": pipeline.detect_every, "out": str(out_path) if out_path else None,
    }
