"""The web app: built by `export --format web`, served by `serve`, run in headless Chromium (Debian's package,
driven by Playwright), compared with the Python runtime on the shared photos and video.

Screenshots go to runs/web_tests/ (never into the repository: they show the shared media).
"""

import base64
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceparse_edge.classes import CLASS_NAMES, PALETTE
from faceparse_edge.errors import FaceparseError
from faceparse_edge.export.browser import (MEDIA_ROUTE, SiteBrowser, agreement, find_chromium, inside_faces,
                                           start_playwright)
from faceparse_edge.export.onnx_export import export_onnx
from faceparse_edge.fileio import write_label_png
from faceparse_edge.models import resolve_model
from faceparse_edge.runtime import align
from faceparse_edge.runtime.crop_rule import CropRule, rule_file
from faceparse_edge.runtime.refine import REFINE_SIZE
from faceparse_edge.runtime.pipeline import Parser
from faceparse_edge.toolkit.checkpoint import load_model
from tests.conftest import REPO
from tests.helpers import assert_one_line_error, cli

SHOTS_DIR = REPO / "runs" / "web_tests"
PHOTOS = ("obama-720p.jpg", "biden.jpg", "lin-manuel-miranda.png")
VIDEO, VIDEO_FRAMES, VIDEO_FPS = "short_hamilton_clip.mp4", 275, 29.97
SHOT_STARTS = (0, 20, 82, 211)  # frames that start a shot: parsed afresh, no tracking or smoothing behind them


def chromium_or_skip():
    try:
        return find_chromium()
    except FaceparseError as exc:
        if os.environ.get("CI"):
            raise  # .ci/run installs Chromium: its absence there is a failure
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("web") / "site"
    result = cli("export", "-m", "edge", "--format", "web", "--out", out, "--int8")
    assert result.returncode == 0, result.stderr
    assert f"serve it with: faceparse-edge serve {out}" in result.stdout
    return out


@pytest.fixture(scope="module")
def playwright():
    chromium_or_skip()
    running = start_playwright()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(site, media, playwright):
    with SiteBrowser(site, {p.name: p for p in media.iterdir() if p.is_file()}, playwright=playwright) as b:
        yield b


@pytest.fixture(scope="module")
def python_parser():
    return Parser("edge")


def screenshot(page, name):
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS_DIR / name), full_page=True)


def test_site_holds_the_page_models_detector_and_runtime(site):
    manifest = json.loads((site / "manifest.json").read_text())
    assert set(manifest["model"]["files"]) == {"fp32", "int8"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((site / name).read_bytes()).hexdigest() == digest, name
    assert manifest["model"]["input_size"] == 320 and manifest["classes"] == list(CLASS_NAMES)
    assert (manifest["pipeline"]["refine"], manifest["pipeline"]["refine_size"]) == (True, REFINE_SIZE)
    assert manifest["palette"] == PALETTE.tolist()
    rule = CropRule.load(rule_file("retinaface"))
    assert manifest["crop_rule"]["template"] == [list(p) for p in rule.template]
    assert manifest["flip_permutation"][4:10] == [5, 4, 7, 6, 9, 8]
    assert manifest["onnxruntime_web"]["version"] == "1.31.1"
    assert "MIT License" in (site / "ort" / "LICENSE.txt").read_text()
    for page_file in ("index.html", "app.js", "faceparse-edge.js"):  # no CDN: everything is in the folder
        assert not re.search(r"https?://", (site / page_file).read_text()), page_file


def test_export_web_errors_are_one_line(tmp_path):
    assert_one_line_error(cli("export", "-m", "edge-int8", "--format", "web", "--out", tmp_path / "a"), "edge --int8")
    weights = REPO / "faceparse_edge" / "models" / "edge" / "weights.safetensors"
    assert_one_line_error(cli("export", "-m", weights, "--format", "web", "--out", tmp_path / "b"), "give --data")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert_one_line_error(cli("export", "-m", bad, "--format", "web", "--out", tmp_path / "c"), "bad.onnx")
    assert not (tmp_path / "c").exists()
    assert_one_line_error(cli("export", "-m", "edge", "--format", "onnx", "--out", tmp_path / "d"), "--data")


def test_export_web_exports_torch_weights_to_onnx_first(celeba_mini, tmp_path):
    weights = REPO / "faceparse_edge" / "models" / "edge" / "weights.safetensors"
    result = cli("export", "-m", weights, "--format", "web", "--data", celeba_mini, "--out", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert manifest["model"]["files"] == {"fp32": "model.onnx"} and manifest["model"]["input_size"] == 320
    exported = Parser(tmp_path / "site" / "model.onnx", detect=False, tta=False)
    shipped = Parser("edge", detect=False, tta=False)
    crop = np.random.default_rng(0).integers(0, 256, (256, 256, 3), np.uint8)
    assert (exported(crop).labels == shipped(crop).labels).mean() > 0.999


def test_serve_isolates_the_site_and_refuses_bad_folders(site, tmp_path):
    # Ctrl-C's default action in the server, even where the suite runs in the background (a shell's `&` starts
    # it with SIGINT ignored, which its children inherit).
    process = subprocess.Popen([sys.executable, "-m", "faceparse_edge", "serve", str(site), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url) as response:
            assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert b"faceparse-edge" in response.read()
        with urllib.request.urlopen(url + "ort/ort-wasm-simd-threaded.wasm") as response:
            assert response.headers["Content-Type"] == "application/wasm"
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert_one_line_error(cli("serve", site, "--port", port), f"cannot serve on 127.0.0.1:{port}")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert_one_line_error(cli("serve", tmp_path), "not a faceparse-edge web app")


def test_photos_parse_as_in_python(browser, media, python_parser):
    """The faces as in Python, and past them the labels follow the person as in Python (its own run of the person
    segmenter): the two agree on the labelled pixels of the whole photo."""
    page = browser.open()
    for name in PHOTOS:
        web = browser.parse_image(page, name)
        py = python_parser.parse(media / name)
        assert len(web["faces"]) == len(py.faces) == 1, name
        assert np.allclose(web["faces"][0]["box"], py.faces[0].box, atol=1.0)
        assert tuple(web["faces"][0]["region"]) == py.faces[0].region
        assert agreement(web["labels"], py) >= 0.98, name
        assert set(web["faces"][0]["areas"]) >= {"skin", "nose", "l_eye", "r_eye", "hair"}
        assert (py.labels[~inside_faces(py)] > 0).mean() > 0.05, name  # the labels went on past the face
        labelled = (web["labels"] > 0) | (py.labels > 0)
        assert (web["labels"] == py.labels)[labelled].mean() >= 0.97, name
    assert browser.errors == []


def test_a_photo_smaller_than_the_person_segmenters_input_parses_as_in_python(browser, media, python_parser):
    """The segmenter's input is enlarged along a side shorter than its own (144 x 256): no area averaging there."""
    small = Image.open(media / "lin-manuel-miranda.png").convert("RGB").resize((220, 253), Image.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "PNG")
    browser.media["small.png"] = buffer.getvalue()
    web, py = browser.parse_image(browser.open(), "small.png"), python_parser.parse(np.asarray(small))
    assert len(web["faces"]) == len(py.faces) == 1 and (py.labels[~inside_faces(py)] > 0).mean() > 0.05
    labelled = (web["labels"] > 0) | (py.labels > 0)
    assert (web["labels"] == py.labels)[labelled].mean() >= 0.99  # (99.96%; 96.8% with the input area-averaged up)
    assert browser.errors == []


def test_a_tilted_face_gets_the_second_look_and_parses_as_in_python(browser, media, python_parser):
    """A face turned by 30 degrees: the page runs the detector again on its upright crop as Python does
    (runtime/refine.py), so both crop it alike."""
    photo = Image.open(media / PHOTOS[0]).convert("RGB")
    turned = photo.rotate(30, resample=Image.BILINEAR, expand=False, fillcolor=(128, 128, 128))
    buffer = io.BytesIO()
    turned.save(buffer, "PNG")
    browser.media["turned.png"] = buffer.getvalue()
    web, py = browser.parse_image(browser.open(), "turned.png"), python_parser.parse(np.asarray(turned))
    first_look = Parser("edge", refine=False).parse(np.asarray(turned))
    assert len(web["faces"]) == len(py.faces) == 1
    # the second look moved Python's crop (by 14% of its side); the page's crop sits where Python's does, to 0.01%
    # (its landmarks come from a crop that OpenCV's fixed-point bilinear and the page's sample a level apart in 1% of
    # the pixels: the crops' rounded footprints can differ by a pixel)
    crop = py.faces[0].crop
    moved = align.corner_error(first_look.faces[0].crop, crop)
    apart = np.abs(np.reshape(web["faces"][0]["crop"], (4, 2)) - align.corners(crop)).mean() / align.side(crop)
    assert moved > 0.05 and apart < 0.001, (moved, apart)
    assert agreement(web["labels"], py) >= 0.98
    assert browser.errors == []


def test_without_following_the_person_labels_stop_at_the_faces_as_in_python(browser, media):
    python = Parser("edge", follow_person=False)
    page = browser.open("?follow=0")
    for name in PHOTOS:
        web, py = browser.parse_image(page, name), python.parse(media / name)
        assert agreement(web["labels"], py) >= 0.98, name
        assert not web["labels"][~inside_faces(py)].any()  # 0 where no face is, as in `image --no-follow-person`
    assert browser.errors == []


def test_a_model_with_a_wider_view_parses_as_in_python(media, playwright, python_parser, tmp_path):
    """A model trained with --context sees each face's crop widened: the page widens it as the Python runtime does."""
    model = load_model(resolve_model("edge"))
    model.config = dataclasses.replace(model.config, context=1.25, input_size=320)
    wide = export_onnx(model, tmp_path / "wide.onnx")
    site = tmp_path / "site"
    result = cli("export", "-m", wide, "--format", "web", "--out", site)
    assert result.returncode == 0, result.stderr
    name = PHOTOS[0]
    with SiteBrowser(site, {name: media / name}, playwright=playwright) as browser:
        web = browser.parse_image(browser.open(), name)
        assert browser.errors == []
    py, narrow = Parser(wide).parse(media / name), python_parser.parse(media / name)
    widening = 1.25 / python_parser.info.context  # against the shipped model's own view
    assert align.side(py.faces[0].crop) == pytest.approx(widening * align.side(narrow.faces[0].crop), rel=0.01)
    assert tuple(web["faces"][0]["region"]) == py.faces[0].region
    assert agreement(web["labels"], py) >= 0.98


def test_video_played_in_the_page_has_a_parsed_face_in_249_of_275_frames(browser):
    page = browser.open()
    assert browser.decode_video(page, VIDEO, VIDEO_FRAMES, VIDEO_FPS) == VIDEO_FRAMES  # Chromium's own decoder
    rows = browser.parse_frames(page)
    assert len(rows) == VIDEO_FRAMES
    assert sum(r["faces"] > 0 for r in rows) >= 249
    screenshot(page, "video_last_frame.png")
    assert browser.errors == []


def test_video_frames_parse_as_in_python(browser, media, python_parser):
    """The frames OpenCV decodes, through both pipelines as a video: where a shot starts (a fresh parse) the labels
    agree on >= 98% of the faces' pixels; on tracked frames the optical flow differs (OpenCV's DIS in Python, a
    Lucas-Kanade flow in the page), and they agree on >= 96% (the median over frames where both show a face)."""
    frames, python_rows = zip(*python_parser.stream(media / VIDEO))
    page = browser.open()
    assert browser.load_frames(page, frames) == VIDEO_FRAMES
    rows = browser.parse_frames(page, keep=range(VIDEO_FRAMES))
    agreements = []
    for i, (web, py) in enumerate(zip((r["result"] for r in rows), python_rows)):
        if web["faces"] and py.faces:
            agreements.append(agreement(web["labels"], py))
        if i in SHOT_STARTS:
            assert len(web["faces"]) == len(py.faces), i
            assert agreements[-1] >= 0.98, (i, agreements[-1])
    assert np.median(agreements) >= 0.96, np.median(agreements)
    assert browser.errors == []


def test_page_parses_chosen_and_dropped_photos_and_downloads_the_palette_png(browser, media, python_parser, tmp_path):
    page = browser.open()
    page.set_input_files("#photo-files", str(media / "lin-manuel-miranda.png"))
    page.wait_for_function("document.getElementById('status').textContent.includes('face(s) in')")
    assert page.inner_text("#status").startswith("1 face(s) in lin-manuel-miranda.png")
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "lin-manuel-miranda.png"
    png = tmp_path / "labels.png"
    download.value.save_as(png)
    image = Image.open(png)
    py = python_parser.parse(media / "lin-manuel-miranda.png")
    write_label_png(tmp_path / "python.png", py.labels)
    python_png = Image.open(tmp_path / "python.png")
    assert image.mode == python_png.mode == "P" and image.getpalette() == python_png.getpalette()
    labels = np.asarray(image)
    assert labels.shape == py.labels.shape
    assert agreement(labels, py) >= 0.98
    # the overlay tints the labels that follow the person past the face's region, not only the face's
    drawn = page.evaluate("document.getElementById('view').toDataURL('image/png')")
    canvas = np.asarray(Image.open(io.BytesIO(base64.b64decode(drawn.split(",", 1)[1]))).convert("RGB"), np.int16)
    photo = np.asarray(Image.open(media / "lin-manuel-miranda.png").convert("RGB"), np.int16)
    continued = (labels > 0) & ~inside_faces(py)
    assert continued.sum() > 1000 and (np.abs(canvas - photo).max(axis=2) > 20)[continued].mean() > 0.9
    screenshot(page, "photo.png")
    page.evaluate("""async (url) => {  // a photo dragged onto the page
      const blob = await (await fetch(url)).blob(), data = new DataTransfer();
      data.items.add(new File([blob], 'dropped.jpg', { type: 'image/jpeg' }));
      document.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    }""", MEDIA_ROUTE + "biden.jpg")
    page.wait_for_function("document.getElementById('status').textContent.includes('dropped.jpg')")
    assert page.inner_text("#status") == "1 face(s) in dropped.jpg."
    assert browser.errors == []


def test_bad_inputs_give_a_message_on_the_page_and_the_rest_still_works(browser, media, tmp_path):
    page = browser.open()
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    page.set_input_files("#photo-files", str(not_an_image))
    page.wait_for_function("document.getElementById('status').className === 'error'")
    assert page.inner_text("#status") == "notes.png is not an image this browser can read"
    not_a_video = tmp_path / "clip.mp4"
    not_a_video.write_text("not a video")
    page.set_input_files("#video-file", str(not_a_video))
    page.wait_for_function("document.getElementById('status').textContent.includes('clip.mp4')")
    assert page.inner_text("#status") == "clip.mp4 is not a video this browser can play"
    page.click("#camera")  # headless Chromium without a fake camera: none is found (or permission is refused)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Cannot start the camera')")
    assert "Photos and video files still work" in page.inner_text("#status")
    page.set_input_files("#photo-files", str(media / "biden.jpg"))  # the other inputs still work
    page.wait_for_function("document.getElementById('status').textContent.includes('face(s) in')")
    assert browser.errors == []


def test_camera_runs_the_live_loop_with_the_hud(site, playwright):
    fake_camera = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    with SiteBrowser(site, args=fake_camera, playwright=playwright) as b:
        page = b.open()
        page.click("#camera")
        page.wait_for_function("document.getElementById('status').textContent === 'Parsing the camera…'")
        page.wait_for_timeout(1500)
        assert page.inner_text("#camera") == "Stop camera"
        page.click("#camera")
        assert page.inner_text("#status") == "Camera stopped."
        assert b.errors == []


def test_unusable_model_or_browser_says_why_on_the_page(site, tmp_path, media, playwright):
    broken = tmp_path / "broken"
    shutil.copytree(site, broken)
    (broken / "model.onnx").write_bytes(b"truncated")
    with SiteBrowser(broken, playwright=playwright) as b:
        page = b.open()
        assert page.inner_text("#status").startswith("cannot load the fp32 face parsing model")
        assert page.is_visible("#photo-files")
        page.set_input_files("#photo-files", str(media / "biden.jpg"))  # tries again, says why again
        page.wait_for_function("document.getElementById('status').textContent.startsWith('cannot load')")
        page = b.open(wait=False)
        page.add_init_script("WebAssembly.validate = () => false")  # a browser without WebAssembly SIMD
        page.reload()
        page.wait_for_function("document.getElementById('status').className === 'error'")
        assert "lacks WebAssembly SIMD" in page.inner_text("#status")
        page = b.open("?ep=webgpu", wait=False)  # no GPU and no --enable-unsafe-webgpu: no adapter
        page.wait_for_function("document.getElementById('status').className === 'error'")
        assert "no WebGPU adapter" in page.inner_text("#status")
        assert b.errors == []
    page_file = (site / "index.html").as_uri()
    with SiteBrowser(site, playwright=playwright) as b:
        page = b.browser.new_page()
        page.goto(page_file)
        assert "faceparse-edge serve" in page.inner_text("#status")


def test_webgpu_and_int8_parse_a_photo_as_python_does(site, media, python_parser, playwright):
    """WebGPU (headless Chromium offers it on SwiftShader) with the FP32 model, and WebAssembly with the INT8
    model, each against the Python runtime with the same model."""
    with SiteBrowser(site, {"biden.jpg": media / "biden.jpg"}, webgpu=True, playwright=playwright) as b:
        for query, reference, provider in (("?ep=webgpu", python_parser, "webgpu"), ("?precision=int8", Parser("edge-int8"), "wasm")):
            py = reference.parse(media / "biden.jpg")
            page = b.open(query)
            assert page.evaluate("window.faceparseEdge.page.parser.executionProvider") == provider
            web = b.parse_image(page, "biden.jpg")
            assert len(web["faces"]) == 1
            assert agreement(web["labels"], py) >= 0.98, query
        assert b.errors == []
