"""Reading a video file, stream URL or camera frame by frame (below both the pipeline and the video loops)."""

import os
from pathlib import Path

import cv2

from ..errors import FaceparseError, NotFoundError

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our one-line errors, not FFmpeg's log
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

MAX_CONSECUTIVE_BAD = 30


class Frames:
    """A video file, stream URL or camera index, opened (a one-line error if it cannot be), and its decodable
    frames in order (BGR) when iterated. Frames that cannot be decoded are skipped and counted (`bad`) while
    good ones follow; MAX_CONSECUTIVE_BAD of them in a row, or the frame count reached, end the stream. A
    camera that yields no frame at all is a one-line error."""

    def __init__(self, source):
        self.is_camera = isinstance(source, int)
        self.name = f"camera {source}" if self.is_camera else str(source)
        if not self.is_camera and not str(source).startswith(("rtsp://", "http://", "https://")) and not Path(source).is_file():
            raise NotFoundError(f"video not found: {source}")
        self.cap = cv2.VideoCapture(source)
        if not self.cap.isOpened():
            self.cap.release()
            raise FaceparseError(f"cannot open {self.name}"
                                 + ("" if self.is_camera else ": not a readable video (truncated or unsupported?)"))
        self.total = 0 if self.is_camera else max(0, int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)))  # 0: not known
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.read = self.bad = 0

    def __iter__(self):
        failed_run = 0
        while True:
            ok, frame = self.cap.read()
            if not ok:
                if self.read == self.bad == failed_run == 0 and self.is_camera:
                    raise FaceparseError(f"{self.name} yields no frames")
                failed_run += 1
                if self.total and self.read + self.bad + failed_run < self.total and failed_run < MAX_CONSECUTIVE_BAD:
                    continue
                return
            self.bad, failed_run = self.bad + failed_run, 0
            self.read += 1
            yield frame

    def release(self) -> None:
        self.cap.release()
