"""Bad input and faults: nothing a user gave is overwritten, and photos are read as a viewer shows them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceparse_edge.fileio import read_image
from faceparse_edge.models import model_dir, resolve_model

DEFAULT_ONNX = resolve_model(None, "onnxruntime")

from .conftest import SHARED
from .helpers import assert_one_line_error, cli

PHOTO = SHARED / "media" / "obama-720p.jpg"
VIDEO = SHARED / "media" / "short_hamilton_clip.mp4"


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

    for mode, suffix in (("CMYK", "jpg"), ("P", "png"), ("RGBA", "png")):  # colour modes read as the colours shown
        Image.fromarray(upright).convert(mode).save(tmp_path / f"{mode}.{suffix}")
        assert np.abs(read_image(tmp_path / f"{mode}.{suffix}").astype(int) - upright).mean() < 10, mode  # P: 256 colours
    Image.fromarray(upright).convert("LA").save(tmp_path / "la.png")  # grey + alpha: the grey in all three channels
    assert (read_image(tmp_path / "la.png") == np.asarray(Image.fromarray(upright).convert("L"))[..., None]).all()

    result = cli("image", sideways, "--out", tmp_path / "out", "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "r.json").read_text())[0]
    assert record["size"] == [upright.shape[1], upright.shape[0]] and len(record["faces"]) == 1
    assert Image.open(tmp_path / "out" / "phone.png").size == (upright.shape[1], upright.shape[0])


@pytest.mark.parametrize("args, option", [
    (["train", "--data", "d", "--imgsz", "50"], "--imgsz"), (["train", "--data", "d", "--imgsz", "-64"], "--imgsz"),
    (["train", "--data", "d", "--imgsz", "100"], "multiple of 32"), (["export", "--data", "d", "--imgsz", "66"], "multiple of 32"),
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


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Bad inputs of every kind, generated; plus an earlier output that no command may touch."""
    import struct

    import cv2

    from faceparse_edge.fileio import write_label_png

    from .conftest import make_dataset

    root = tmp_path_factory.mktemp("bad")
    make_dataset(root / "data", n=4)
    make_dataset(root / "badmask", n=2)
    Image.fromarray(np.full((64, 64), 30, np.uint8), mode="L").save(root / "badmask" / "masks" / "s1.png")
    make_dataset(root / "badshape", n=2)
    write_label_png(root / "badshape" / "masks" / "s0.png", np.zeros((64, 32), np.uint8))
    (root / "zero.pt").write_bytes(b"")
    (root / "run" / "last.pt").parent.mkdir()
    (root / "run" / "last.pt").write_bytes(b"")
    raw = resolve_model(None).read_bytes()
    (root / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    (root / "trunc.safetensors").write_bytes(raw[:3000])
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    for name, config in (("badjson", "{not json"), ("badtype", json.dumps({"layers": "seven"}))):
        header["__metadata__"]["config"] = config
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        (root / f"{name}.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    (root / "junk.onnx").write_bytes(b"\x08\x07garbage")
    (root / "text.xml").write_text("<net>not a model</net>")
    ir = resolve_model(None, "openvino")
    for name in ("nobin", "truncbin"):  # an IR whose weights file is missing, or cut short
        (root / f"{name}.xml").write_bytes(ir.read_bytes())
    (root / "truncbin.bin").write_bytes(ir.with_suffix(".bin").read_bytes()[:1000])
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "empty.mp4").write_bytes(b"")
    writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for i in range(5):
        writer.write(np.full((64, 96, 3), 40 * i, np.uint8))
    writer.release()
    (root / "adir").mkdir()
    (root / "afile").write_text("an earlier output\n")
    return root


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


BAD_INPUTS = {  # command: [(arguments, what the one-line error names)]
    "info": [(["--weights", "zero.pt"], "zero.pt is empty"), (["--weights", "trunc.pt"], "cannot load checkpoint"),
             (["--weights", "trunc.safetensors"], "cannot read weights"),
             (["--weights", "badjson.safetensors"], "malformed faceparse-edge config"),
             (["--weights", "badtype.safetensors"], "invalid model config"),
             (["--weights", "junk.onnx"], "cannot load ONNX model"), (["--weights", "text.xml"], "cannot load OpenVINO model"),
             (["--weights", "nobin.xml"], "bin file cannot be found"), (["--weights", "truncbin.xml"], "Incorrect weights"),
             (["--json", "adir"], "adir is a folder")],
    "evaluate": [(["--data", "badmask"], "has class id 30"), (["--data", "badshape"], "not the same shape"),
                 (["--data", "nodata"], "data directory not found"),
                 (["--data", "data", "--weights", "text.xml"], "cannot load OpenVINO model"),
                 (["--data", "data", "--confusion", "afile/cm.png"], "afile is a file, not a folder")],
    "train": [(["--data", "data", "--out", "afile"], "afile is a file"), (["--data", "data", "--out", "run", "--resume"], "is empty"),
              (["--data", "nodata", "--out", "new"], "data directory not found"),
              (["--out", "new"], "train needs --data"), (["--init", "nomodel", "--data", "data", "--out", "new"],
                                                          "no model file or shipped model named 'nomodel'"),
              (["--data", "data", "--out", "new", "--distill-scales", "1,x"], "scales are comma-separated numbers"),
              (["--data", "data", "--out", "new", "--distill-scales", "0.1,1"], "between 0.25 and 4")],
    "export": [(["--data", "data", "--weights", "zero.pt", "--out", "new"], "is empty"),
               (["--data", "data", "--out", "afile"], "afile is a file")],
    "check": [(["junk.onnx", "--data", "data"], "cannot load ONNX model"), (["--data", "badmask"], "has class id 30")],
    "calibrate": [(["--video", "empty.mp4", "--out", "new.json"], "cannot open video"),
                  (["--data", "data", "--out", "adir"], "adir is a folder")],
    "video": [(["empty.mp4", "--no-show"], "not a readable video"), (["nothere.mp4", "--no-show"], "video not found"),
              (["clip.mp4", "--no-show", "--out", "adir"], "adir is a folder"),
              (["clip.mp4", "--no-show", "--model", "zero.pt"], "zero.pt is empty"),  # torch weights run where torch is
              (["clip.mp4", "--no-show", "--model", "corrupt.jpg"], "unsupported model format '.jpg'"),
              (["clip.mp4", "--no-show", "--model", "junk.onnx"], "cannot load ONNX model")],
    "webcam": [(["--camera", "7", "--no-show"], "camera 7")],
    "image": [(["corrupt.jpg", "--out", "new"], "could not be read"), (["data/images", "--out", "afile"], "afile is a file"),
              (["data/images", "--model", "text.xml", "--out", "new"], "cannot load OpenVINO model")],
    "data stats": [(["nodata"], "data directory not found"), (["badmask"], "has class id 30")],
    "data crop-rule": [(["data", "--out", "adir"], "adir is a folder")],
}


@pytest.mark.parametrize("command, args, fragment", [(c, a, f) for c, cases in BAD_INPUTS.items() for a, f in cases],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_inputs_to_every_command(workspace, command, args, fragment):
    before = _tree(workspace)
    result = cli(*command.split(), *args, cwd=workspace)
    assert_one_line_error(result, fragment)
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
    assert _tree(workspace) == before  # no input or earlier output changed, nothing half-written left


def test_benchmark_with_a_broken_model_fails_after_saving_its_table(workspace, tmp_path):
    assert_one_line_error(cli("benchmark", "--model", workspace / "zero.pt", "--data", workspace / "data"),
                          "is a file: give --models, the folder of its exported models")
    result = cli("benchmark", "--model", workspace / "zero.pt", "--models", model_dir(), "--data", workspace / "data",
                 "--runs", "1", "--rounds", "1", "--out", tmp_path)
    assert_one_line_error(result, "benchmark rows failed (first: zero PyTorch eager fp32, failed: checkpoint")
    rows = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    assert [r["status"] for r in rows if r["execution"] == "f32"].count("ok") == 4  # the others still measured


def test_a_truncated_video_is_parsed_to_its_end_and_reported(media, tmp_path):
    import cv2

    from .mp4 import faststart

    whole = faststart(VIDEO.read_bytes())  # index first, as streaming encoders write: a cut file still opens
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    result = cli("video", tmp_path / "cut.mp4", "--no-show", "--out", tmp_path / "out.mp4", "--json", tmp_path / "s.json")
    assert_one_line_error(result, "ended early: its last 145 of 275 frames could not be read")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["frames"], summary["bad_frames"], summary["missing_frames"]) == (130, 0, 145)
    assert int(cv2.VideoCapture(str(tmp_path / "out.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 130


def test_an_export_that_fails_its_parity_check_writes_nothing(monkeypatch, tmp_path):
    from faceparse_edge.errors import FaceparseError
    from faceparse_edge.export import exporter

    from .conftest import make_dataset

    data = make_dataset(tmp_path / "data", n=4)
    monkeypatch.setattr(exporter, "FP32_MAX_DIFF", 0.0)  # no export can pass: a broken exporter, as seen by users
    with pytest.raises(FaceparseError, match=f"parity broken for {tmp_path / 'new'}/faceparse-edge.onnx"):
        exporter.export(None, "onnx", False, str(data), tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "faceparse-edge.onnx").write_bytes(b"an earlier export")
    with pytest.raises(FaceparseError, match="parity broken"):
        exporter.export(None, "onnx", False, str(data), tmp_path / "old")
    assert _tree(tmp_path / "old") == {"faceparse-edge.onnx": b"an earlier export"}


def test_openvino_runs_the_shipped_onnx_and_info_describes_it(media, tmp_path):
    result = cli("image", PHOTO, "--backend", "openvino", "--out", tmp_path, "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "r.json").read_text())[0]
    assert (record["backend"], record["precision"], len(record["faces"])) == ("openvino", "f32", 1)
    result = cli("info", "--weights", DEFAULT_ONNX, "--json", tmp_path / "i.json")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "i.json").read_text())
    assert (info["format"], info["model_precision"], info["input_size"]) == ("onnxruntime", "fp32", 320)
