"""A built web app in a real browser: served on loopback, opened in headless Chromium through Playwright.

What the web tests and benchmarks/bench_web.py share. Chromium is the system's (Debian's `chromium`
package; FACEPARSE_CHROMIUM names another), since Playwright's own browser download needs the
internet; Playwright (`pip install playwright`, in the [test] extra) only drives it. Every console
error and uncaught page error is kept, so callers can require none.
"""

import base64
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from ..errors import FaceparseError
from .web import site_server

# As the probe of this workplace starts it: no sandbox (root), no GPU process, no background connections
# (the machine's closed network refuses them, many at a time).
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")
WEBGPU_FLAGS = ("--enable-unsafe-webgpu",)  # headless Chromium then offers WebGPU on SwiftShader (the CPU)
MEDIA_ROUTE = "/__media/"  # files handed to the page without copying them into the site

# In the page: one image file fetched, decoded as a photo viewer shows it, parsed; labels as base64.
PARSE_IMAGE_JS = """async (url) => {
  const blob = await (await fetch(url)).blob();
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', imageOrientation: 'from-image' });
  const parser = await window.faceparseEdge.ready;
  const result = await parser.parse(bitmap);
  bitmap.close();
  return { ...window.faceparseEdge.encodeResult(result), timings: result.timings };
}"""
# In the page: a video file decoded frame by frame (seeking to each frame's middle), every frame an ImageBitmap.
DECODE_VIDEO_JS = """async ([url, frames, fps]) => {
  const video = document.createElement('video');
  video.muted = true;
  video.src = URL.createObjectURL(await (await fetch(url)).blob());
  await new Promise((resolve, reject) => { video.onloadeddata = resolve; video.onerror = () => reject(new Error('cannot play ' + url)); });
  const first = await new Promise((r) => { video.requestVideoFrameCallback((now, m) => r(m.mediaTime)); video.currentTime = 0; });
  window.videoFrames = [];
  for (let i = 0; i < frames; i++) {
    video.currentTime = first + (i + 0.5) / fps;
    await new Promise((r) => { video.onseeked = r; });
    window.videoFrames.push(await createImageBitmap(video));
  }
  return window.videoFrames.length;
}"""
# In the page: still images (frames decoded by OpenCV, as PNG) as the frames to parse, in order.
LOAD_FRAMES_JS = """async (urls) => {
  window.videoFrames = [];
  for (const url of urls) {
    const blob = await (await fetch(url)).blob();
    window.videoFrames.push(await createImageBitmap(blob, { colorSpaceConversion: 'none' }));
  }
  return window.videoFrames.length;
}"""
# In the page: the decoded frames through the page's parser as a video (tracking, smoothing), each drawn.
PARSE_FRAMES_JS = """async ([first, count, keep]) => {
  const api = window.faceparseEdge, parser = await api.ready, ctx = document.getElementById('view').getContext('2d');
  parser.reset();
  const out = [];
  for (let i = first; i < Math.min(first + count, window.videoFrames.length); i++) {
    const t0 = performance.now();
    const result = await parser.parseFrame(window.videoFrames[i]);
    const t1 = performance.now();
    api.drawOverlay(ctx, result.image, result, parser.manifest, api.hudLines(parser, result, i ? 1000 / (t1 - t0) : null));
    const ms = performance.now() - t0;
    out.push({ frame: i, ms, draw_ms: performance.now() - t1, faces: result.faces.length, timings: result.timings,
               result: keep.includes(i) ? api.encodeResult(result) : null });
  }
  return out;
}"""


def find_chromium() -> str:
    path = os.environ.get("FACEPARSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise FaceparseError("no Chromium found: install Debian's chromium package (apt-get install chromium) or set "
                             "FACEPARSE_CHROMIUM")
    return path


def start_playwright():
    """A running Playwright (sync API); stop() it when done."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise FaceparseError("driving a browser needs Playwright for Python (pip install playwright)") from None
    return sync_playwright().start()


def inside_faces(reference) -> np.ndarray:
    """The pixels inside the faces' regions of a Python parse (a FrameResult): where parity is measured."""
    mask = np.zeros(reference.labels.shape, bool)
    for x0, y0, x1, y1 in (face.region for face in reference.faces):
        mask[y0:y1, x0:x1] = True
    return mask


def agreement(labels: np.ndarray, reference) -> float:
    """The share of the pixels inside a Python parse's faces that the page's `labels` label alike."""
    return float((labels == reference.labels)[inside_faces(reference)].mean())


def decode_result(data: dict) -> dict:
    """A parse as the page's encodeResult gave it, with `labels` as a (height, width) uint8 array."""
    labels = np.frombuffer(base64.b64decode(data["labels"]), np.uint8).reshape(data["height"], data["width"])
    return {**data, "labels": labels}


class SiteBrowser:
    """`site` served on loopback and a headless Chromium to open it in; a context manager.

    `media`: name -> a local file or bytes, which the page may fetch at MEDIA_ROUTE + name (the shared photos
    and video are never copied into the site). `errors` lists every console error and uncaught page error seen so far.
    `playwright`: a running Playwright to launch the browser from (its sync API runs one at a time per thread);
    by default its own.
    """

    def __init__(self, site: Path, media: dict | None = None, webgpu: bool = False, args=(), playwright=None):
        self.site, self.media, self.args = Path(site), dict(media or {}), [*CHROMIUM_FLAGS, *(WEBGPU_FLAGS if webgpu else ()), *args]
        self.errors: list[str] = []
        self._playwright, self._own_playwright = playwright, playwright is None
        self.browser = None

    def __enter__(self):
        if self._own_playwright:
            self._playwright = start_playwright()
        self.server = site_server(self.site, port=0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        try:
            self.browser = self._playwright.chromium.launch(executable_path=find_chromium(), args=self.args)
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.browser:
            self.browser.close()
        if self._own_playwright:
            self._playwright.stop()
        self.server.shutdown()
        self.server.server_close()

    def open(self, query: str = "", wait: bool = True, context_options: dict | None = None):
        """A new page of the site (in a fresh browser context); waits until its parser has loaded."""
        context = self.browser.new_context(**(context_options or {}))
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        if self.media:
            page.route(f"**{MEDIA_ROUTE}*", self._serve_media)
        page.goto(self.url + query)
        if wait:
            page.wait_for_function("window.faceparseEdge && window.faceparseEdge.ready")
            page.evaluate("window.faceparseEdge.ready")
        return page

    def _serve_media(self, route):
        item = self.media[route.request.url.rsplit("/", 1)[-1]]
        route.fulfill(body=item) if isinstance(item, bytes) else route.fulfill(path=str(item))

    def parse_image(self, page, name: str) -> dict:
        """One of `media`'s photos parsed by the page's parser (Parser.parse)."""
        return decode_result(page.evaluate(PARSE_IMAGE_JS, MEDIA_ROUTE + name))

    def decode_video(self, page, name: str, frames: int, fps: float) -> int:
        return page.evaluate(DECODE_VIDEO_JS, [MEDIA_ROUTE + name, frames, fps])

    def load_frames(self, page, frames) -> int:
        """BGR frames (as OpenCV decodes them), handed to the page as PNGs, as the frames that parse_frames parses."""
        import cv2

        names = []
        for i, frame in enumerate(frames):
            names.append(f"frame{i}.png")
            self.media[names[-1]] = cv2.imencode(".png", frame)[1].tobytes()
        return page.evaluate(LOAD_FRAMES_JS, [MEDIA_ROUTE + name for name in names])

    def parse_frames(self, page, first: int = 0, count: int = 10**6, keep=()) -> list[dict]:
        """The decoded video's frames parsed in order and drawn: per frame its milliseconds, stage timings and
        number of faces, and for the frame indices in `keep` the parse itself (`result`)."""
        rows = page.evaluate(PARSE_FRAMES_JS, [first, count, list(keep)])
        return [{**r, "result": decode_result(r["result"]) if r["result"] else None} for r in rows]
