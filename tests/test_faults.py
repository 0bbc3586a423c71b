"""Bad input and faults: nothing a user gave is overwritten, and photos are read as a viewer shows them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceparse_edge.fileio import read_image
from faceparse_edge.weights import DEFAULT_ONNX

from .conftest import SHARED
from .test_cli import assert_one_line_error, cli

PHOTO = SHARED / "media" / "obama-720p.jpg"
VIDEO = SHARED / "media" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def media():
    if not PHOTO.is_file() or not VIDEO.is_file():
        pytest.skip(f"shared media not found at {PHOTO.parent}")


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("case", ["image into its own folder", "image over itself", "video over itself",
                                  "json over the video", "video over the model"])
def test_an_output_that_would_replace_an_input_is_refused(media, tmp_path, case):
    photo, video = tmp_path / "photo.png", tmp_path / "clip.mp4"
    Image.open(PHOTO).save(photo)  # photo.png: its label map would be photo.png too
    shutil.copy(VIDEO, video)
    model = tmp_path / "model.onnx"
    shutil.copy(DEFAULT_ONNX, model)
    args = {
        "image into its own folder": ["image", tmp_path, "--out", tmp_path],
        "image over itself": ["image", photo, "--out", tmp_path],
        "video over itself": ["video", video, "--out", video, "--no-show"],
        "json over the video": ["video", video, "--json", video, "--no-show"],
        "video over the model": ["video", video, "--out", model, "--model", model, "--no-show"],
    }[case]
    before = _snapshot(tmp_path)
    result = cli(*args)
    assert_one_line_error(result, "would destroy the input")
    assert _snapshot(tmp_path) == before  # nothing changed, nothing added


def test_inputs_that_share_a_name_get_their_own_outputs(media, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(PHOTO, tmp_path / folder / "face.jpg")
    shutil.copy(PHOTO, tmp_path / "a" / "face_overlay.jpg")  # its labels would be face.jpg's overlay
    result = cli("image", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out", "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "r.json").read_text())
    written = [r[k] for r in records for k in ("labels", "overlay")]
    assert len(records) == 3 and len(set(written)) == 6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(Path(w).name for w in written)


def test_photos_are_read_as_a_viewer_shows_them(media, tmp_path):
    upright = read_image(PHOTO)
    sideways = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to display
    Image.fromarray(np.rot90(upright)).save(sideways, exif=exif, quality=95)  # pixels stored turned left
    shown = read_image(sideways)
    assert shown.shape == upright.shape
    assert np.abs(shown.astype(int) - upright).mean() < 3

    ramp = np.linspace(0, 65535, 64 * 256).reshape(64, 256).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")  # 16-bit grayscale
    gray = read_image(tmp_path / "deep.png")
    assert gray.shape == (64, 256, 3) and (gray == 255).mean() < 0.01
    assert np.abs(gray[..., 0].astype(int) - ramp / 257).max() <= 1

    result = cli("image", sideways, "--out", tmp_path / "out", "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "r.json").read_text())[0]
    assert record["size"] == [upright.shape[1], upright.shape[0]] and len(record["faces"]) == 1
    assert Image.open(tmp_path / "out" / "phone.png").size == (upright.shape[1], upright.shape[0])


@pytest.mark.parametrize("args, option", [
    (["train", "--data", "d", "--imgsz", "50"], "--imgsz"), (["train", "--data", "d", "--imgsz", "-64"], "--imgsz"),
    (["train", "--data", "d", "--batch", "0"], "--batch"), (["train", "--data", "d", "--epochs", "0"], "--epochs"),
    (["train", "--data", "d", "--epochs", "-1"], "--epochs"), (["train", "--data", "d", "--lr", "-1"], "--lr"),
    (["train", "--data", "d", "--lovasz-pixels", "-1"], "--lovasz-pixels"),
    (["video", "v.mp4", "--detect-every", "0"], "--detect-every"), (["video", "v.mp4", "--threads", "-1"], "--threads"),
    (["video", "v.mp4", "--threads", "100000"], "--threads"), (["video", "v.mp4", "--smoothing", "1"], "--smoothing"),
    (["webcam", "--camera", "-1"], "--camera"), (["benchmark", "--runs", "0"], "--runs"),
    (["video", "v.mp4", "--precision", "f64"], "--precision"), (["video", "v.mp4", "--detect-every", "x"], "--detect-every"),
])
def test_out_of_range_options_are_one_line_usage_errors(args, option):
    result = cli(*args)
    assert result.returncode == 2
    assert_one_line_error(result, option)
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
