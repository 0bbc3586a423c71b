"""Frame loops for video files, stream URLs and webcams, sharing one pipeline."""

import contextlib
import os
import queue
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import FaceparseError
from ..fileio import atomic_path, write_error
from ..progress import console, progress_bar
from . import align
from .draw import hud_lines, overlay
from .pipeline import PIPELINE_STAGES, Pipeline

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our one-line errors, not FFmpeg's log
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

MAX_CONSECUTIVE_BAD = 30
STAGES = ("decode", *PIPELINE_STAGES, "draw", "write")  # "write": handing the frame to the encoder thread


class _Writer:
    """An mp4 writer into `tmp` (an `atomic_path`), opened at the first frame's size, encoding on its own thread.

    The encoder runs beside the parsing of the next frames (OpenCV releases the GIL while it encodes).
    `close` waits for it, then reads the file back: OpenCV's writer drops frames silently on a full disk
    and leaves an unplayable file, which must never be passed off as the result.
    """

    def __init__(self, path: Path, tmp: Path, fps: float):
        self.path, self.tmp, self.fps, self.writer, self.frames = path, tmp, fps, None, 0
        self.queue: queue.Queue = queue.Queue(maxsize=4)  # a few frames ahead at most: memory stays flat
        self.thread = threading.Thread(target=self._encode, daemon=True)

    def write(self, frame):
        if self.writer is None:
            size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
            if not self.writer.isOpened():
                raise FaceparseError(f"cannot write video {self.path}")
            self.thread.start()
        self.queue.put(frame)
        self.frames += 1

    def _encode(self):
        while (frame := self.queue.get()) is not None:
            self.writer.write(frame)

    def close(self):
        if self.writer is None:
            return
        self.queue.put(None)
        self.thread.join()
        self.writer.release()
        self.writer = None
        cap = cv2.VideoCapture(str(self.tmp))
        readable = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
        if readable != self.frames:
            raise write_error(self.path, f"only {readable} of {self.frames} frames reached the file")


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
    """Parse every frame of a capture; returns the run summary. `q`, Ctrl-C or SIGTERM stop cleanly.

    The annotated video is finalised and checked, or not written at all. Frames that cannot be
    decoded are skipped and counted; a file whose frames stop before its frame count says
    (truncated) is reported as `missing_frames`.
    """
    name = f"camera {source}" if is_camera else str(source)
    if show and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FaceparseError("no display available to show the video (DISPLAY is not set); use --no-show")
    if not is_camera and not str(source).startswith(("rtsp://", "http://", "https://")) and not Path(source).is_file():
        raise FaceparseError(f"video not found: {source}")
    cap = cv2.VideoCapture(source)
    try:
        if not cap.isOpened():
            raise FaceparseError(f"cannot open {name}" + ("" if is_camera else ": not a readable video (truncated or unsupported?)"))
        fps_in = cap.get(cv2.CAP_PROP_FPS) or 30.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not is_camera else 0
        pipeline.reset()
        with atomic_path(out_path) if out_path is not None else contextlib.nullcontext() as tmp:
            writer = _Writer(out_path, tmp, fps_in) if out_path is not None else None
            try:
                stats = _parse_frames(pipeline, cap, name, total, writer, show, is_camera, max_frames)
            finally:
                if show:
                    cv2.destroyAllWindows()
            if writer is not None:
                writer.close()
    finally:
        cap.release()
    frames = stats["frames"]
    missing = max(total - frames - stats["bad_frames"], 0) if total and not stats["stopped"] else 0
    if stats["bad_frames"]:
        console.print(f"skipped {stats['bad_frames']} unreadable frame(s) in {name}")
    sums, by_faces = stats["sums"], stats["by_faces"]
    return {
        "source": name, "frames": frames, "bad_frames": stats["bad_frames"], "frames_expected": total or None,
        "missing_frames": missing, "interrupted": stats["interrupted"],
        "fps_in": round(fps_in, 3), "fps": round(frames / stats["wall_s"], 2),
        "fps_by_faces": {str(n): round(c / t, 2) for n, (c, t) in sorted(by_faces.items())},
        "frames_by_faces": {str(n): c for n, (c, _) in sorted(by_faces.items())},
        "ms": {k: round(v / frames, 2) for k, v in sums.items()},
        # The model's share of the wall time: the rest is what the pipeline adds around it.
        "model_fraction": round(sums["model"] / 1000 / stats["wall_s"], 3),
        "faces_per_frame": round(stats["faces"] / frames, 3), "frames_with_face": stats["frames_with_face"],
        "flicker": round(float(np.mean(stats["flickers"])), 4) if stats["flickers"] else None,
        "backend": pipeline.backend.name, "precision": pipeline.precision, "detector": pipeline.detector_name, "tta": pipeline.tta, "smoothing": pipeline.smoothing,
        "detect_every": pipeline.detect_every, "out": str(out_path) if out_path else None,
    }


def _parse_frames(pipeline, cap, name, total, writer, show, is_camera, max_frames) -> dict:
    """The frame loop of `run_stream`: counts, per-stage times and flicker."""
    window = "faceparse-edge"
    sums = dict.fromkeys(STAGES, 0.0)
    frames = bad = failed_run = faces_total = frames_with_face = 0
    flickers, previous, interrupted, stopped = [], None, False, False
    by_faces = {}  # faces in the frame -> [frames, seconds end to end]
    fps_smooth, t_previous, t_start = 0.0, None, time.perf_counter()
    try:
        with progress_bar() as progress:
            task = progress.add_task(name if is_camera else Path(name).name, total=total or None, info="")
            while True:
                if max_frames is not None and frames >= max_frames:
                    stopped = True
                    break
                t0 = time.perf_counter()
                ok, frame = cap.read()
                if not ok:
                    if frames == bad == failed_run == 0 and is_camera:
                        raise FaceparseError(f"{name} yields no frames")
                    failed_run += 1  # unreadable frames; skipped if good ones follow, else the stream ended
                    if total and frames + bad + failed_run < total and failed_run < MAX_CONSECUTIVE_BAD:
                        continue
                    break
                bad, failed_run = bad + failed_run, 0
                t_decode = (time.perf_counter() - t0) * 1000
                result = pipeline(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                t1 = time.perf_counter()
                if t_previous is not None:  # end to end: from one frame's start to the next
                    fps_now = 1.0 / max(t0 - t_previous, 1e-6)
                    fps_smooth = fps_now if fps_smooth == 0 else 0.9 * fps_smooth + 0.1 * fps_now
                t_previous = t0
                timings = {"decode": t_decode, **result.timings}
                drawn = overlay(frame, result.labels, result.faces,
                                hud_lines(fps_smooth, timings, pipeline.engine, len(result.faces)))
                timings["draw"] = (time.perf_counter() - t1) * 1000
                t2 = time.perf_counter()
                if writer is not None:
                    writer.write(drawn)
                timings["write"] = (time.perf_counter() - t2) * 1000
                if show:
                    try:
                        cv2.imshow(window, drawn)
                        key = cv2.waitKey(1) & 0xFF
                    except cv2.error:
                        raise FaceparseError("no display available to show the video; use --no-show") from None
                    if key == ord("q"):
                        stopped = True
                        break
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
        interrupted = stopped = True
    if frames == 0:
        raise FaceparseError(f"no readable frames in {name}")
    return {"frames": frames, "bad_frames": bad, "interrupted": interrupted, "stopped": stopped,
            "wall_s": time.perf_counter() - t_start, "sums": sums, "by_faces": by_faces, "faces": faces_total,
            "frames_with_face": frames_with_face, "flickers": flickers}
