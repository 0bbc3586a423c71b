"""Frame loops for video files, stream URLs and webcams, sharing one pipeline."""

import collections
import contextlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ..errors import FaceparseError
from ..fileio import atomic_path, write_error
from ..progress import console, progress_bar
from .draw import hud_lines, overlay
from .frames import Frames
from .pipeline import PIPELINE_STAGES, Parser
from .steadiness import flicker

STAGES = ("decode", *PIPELINE_STAGES, "draw", "write")  # draw and write run on a thread beside the parsing


class _Writer:
    """An mp4 writer into `tmp` (an `atomic_path`), opened at the first frame's size.

    `close` reads the file back: OpenCV's writer drops frames silently on a full disk and
    leaves an unplayable file, which must never be passed off as the result.
    """

    def __init__(self, path: Path, tmp: Path, fps: float):
        self.path, self.tmp, self.fps, self.writer, self.frames = path, tmp, fps, None, 0

    def write(self, frame):
        if self.writer is None:
            size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
            if not self.writer.isOpened():
                raise FaceparseError(f"cannot write video {self.path}")
        self.writer.write(frame)
        self.frames += 1

    def close(self):
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        cap = cv2.VideoCapture(str(self.tmp))
        readable = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
        if readable != self.frames:
            raise write_error(self.path, f"only {readable} of {self.frames} frames reached the file")


class _Background:
    """One worker thread for the per-frame work that parsing need not wait for: drawing, encoding
    and the flicker measure, run in order beside the parsing of the next frames (OpenCV and numpy
    release the GIL), at most `ahead` frames behind, so that memory stays flat."""

    def __init__(self, ahead: int = 4):
        self.pool, self.pending, self.ahead = ThreadPoolExecutor(1), collections.deque(), ahead

    def submit(self, fn, *args) -> None:
        self.pending.append(self.pool.submit(fn, *args))
        while len(self.pending) > self.ahead:
            self.pending.popleft().result()  # a task's error is raised here, in the frame loop

    def finish(self) -> None:
        """Wait for every task (raising the first one's error) and stop the thread."""
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(cancel_futures=True)


GUI_FIX = "pip uninstall -y opencv-python-headless && pip install opencv-python"


def has_windows() -> bool:
    """Whether this OpenCV build can open windows (opencv-python, not the default opencv-python-headless)."""
    gui = [line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
           if line.strip().startswith("GUI:")]
    return bool(gui) and gui[0] != "NONE"


def check_can_show() -> None:
    """One-line errors, before any work, where a window cannot open: an OpenCV without windows, or no display."""
    if not has_windows():
        raise FaceparseError(f"this OpenCV cannot open windows (the headless build is installed): use --no-show, or "
                             f"install the GUI build: {GUI_FIX}")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FaceparseError("no display available to show the video (DISPLAY is not set); use --no-show")


def run_stream(pipeline: Parser, source, out_path: Path | None = None, show: bool = False,
               max_frames: int | None = None, measure_flicker: bool = False) -> dict:
    """Parse every frame of a capture (a file, a stream URL, or a camera index as an int); returns the run
    summary. `q`, Ctrl-C or SIGTERM stop cleanly.

    `measure_flicker`: also measure the labels' flicker (a metric that costs CPU beside the parsing; None if off).

    The annotated video is finalised and checked, or not written at all. Frames that cannot be
    decoded are skipped and counted; a file whose frames stop before its frame count says
    (truncated) is reported as `missing_frames`.
    """
    if show:
        check_can_show()
    frames_in = Frames(source)
    name, total, fps_in = frames_in.name, frames_in.total, frames_in.fps
    try:
        pipeline.reset()
        with atomic_path(out_path) if out_path is not None else contextlib.nullcontext() as tmp:
            writer = _Writer(out_path, tmp, fps_in) if out_path is not None else None
            try:
                stats = _parse_frames(pipeline, frames_in, writer, show, max_frames, measure_flicker)
            finally:
                if show:
                    cv2.destroyAllWindows()
            if writer is not None:
                writer.close()
    finally:
        frames_in.release()
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
        "follow_person": pipeline.follow_person, "detect_every": pipeline.detect_every, "out": str(out_path) if out_path else None,
    }


def _parse_frames(pipeline, frames_in: Frames, writer, show, max_frames, measure_flicker) -> dict:
    """The frame loop of `run_stream`: counts, per-stage times and flicker."""
    window = "faceparse-edge"
    sums = dict.fromkeys(STAGES, 0.0)
    frames = faces_total = frames_with_face = 0
    flickers, previous, interrupted, stopped = [], None, False, False
    by_faces = {}  # faces in the frame -> [frames, seconds end to end]
    fps_smooth, t_previous, t_start = 0.0, None, time.perf_counter()
    background = _Background()

    def present(frame, result, hud):
        """Draw the frame, and encode it when writing (on the background thread unless showing)."""
        t0 = time.perf_counter()
        drawn = overlay(frame, result.labels, result.faces, hud)
        t1 = time.perf_counter()
        if writer is not None:
            writer.write(drawn)
        sums["draw"] += (t1 - t0) * 1000
        sums["write"] += (time.perf_counter() - t1) * 1000
        return drawn

    def add_flicker(previous, result):
        if (value := flicker(previous, result)) is not None:
            flickers.append(value)

    try:
        with progress_bar() as progress:
            name = frames_in.name if frames_in.is_camera else Path(frames_in.name).name
            task = progress.add_task(name, total=frames_in.total or None, info="")
            reader = iter(frames_in)
            while True:
                if max_frames is not None and frames >= max_frames:
                    stopped = True
                    break
                t0 = time.perf_counter()
                frame = next(reader, None)
                if frame is None:
                    break
                t_decode = (time.perf_counter() - t0) * 1000
                result = pipeline(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                if t_previous is not None:  # end to end: from one frame's start to the next
                    fps_now = 1.0 / max(t0 - t_previous, 1e-6)
                    fps_smooth = fps_now if fps_smooth == 0 else 0.9 * fps_smooth + 0.1 * fps_now
                t_previous = t0
                timings = {"decode": t_decode, **result.timings}
                hud = hud_lines(fps_smooth, timings, pipeline.engine, len(result.faces)) if show or writer is not None else None
                if show:  # HighGUI wants the main thread
                    try:
                        cv2.imshow(window, present(frame, result, hud))
                        key = cv2.waitKey(1) & 0xFF
                    except cv2.error:
                        raise FaceparseError("no display available to show the video; use --no-show") from None
                    if key == ord("q"):
                        stopped = True
                        break
                elif writer is not None:
                    background.submit(present, frame, result, hud)
                if measure_flicker:
                    background.submit(add_flicker, previous, result)
                for k in PIPELINE_STAGES:
                    sums[k] += timings[k]
                sums["decode"] += t_decode
                frames += 1
                faces_total += len(result.faces)
                frames_with_face += bool(result.faces)
                previous = result
                progress.update(task, advance=1, info=f"{fps_smooth:.1f} FPS, {len(result.faces)} faces")
                count = by_faces.setdefault(len(result.faces), [0, 0.0])
                count[0] += 1
                count[1] += time.perf_counter() - t0
    except KeyboardInterrupt:
        interrupted = stopped = True
    finally:
        background.finish()
    if frames == 0:
        raise FaceparseError(f"no readable frames in {frames_in.name}")
    return {"frames": frames, "bad_frames": frames_in.bad, "interrupted": interrupted, "stopped": stopped,
            "wall_s": time.perf_counter() - t_start, "sums": sums, "by_faces": by_faces, "faces": faces_total,
            "frames_with_face": frames_with_face, "flickers": flickers}
