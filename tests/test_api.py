"""The public Python API as a user calls it: the README's example, Parser and open_model (torch-free)."""

import importlib.util
import json
import platform
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from faceparse_edge import CLASS_NAMES, Parser, open_model
from faceparse_edge.errors import FaceparseError
from faceparse_edge.models import resolve_model

from .conftest import REPO
from .helpers import cli


def test_the_readmes_example_parses_the_photos_and_the_video(media):
    readme = (REPO / "README.md").read_text()
    code = re.search(r"## Python API.*?```python\n(.*?)```", readme, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["obama-720p.jpg", "biden.jpg", "lin-manuel-miranda.png"]
    assert all(int(line.split()[-2]) > 1000 and int(line.split()[-1]) > 0 for line in lines[:3])  # skin, an eye
    found, _, total, *_ = lines[-1].split()
    assert int(total) == 275 and int(found) >= 249


def test_a_path_an_rgb_array_and_a_bgr_array_parse_alike(media):
    parser = Parser(threads=2)
    path = media / "lin-manuel-miranda.png"
    by_path = parser.parse(path)
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    by_rgb, by_bgr = parser.parse(rgb), parser.parse(rgb[..., ::-1].copy(), color="bgr")
    assert len(by_path.faces) == 1 and (by_path.labels == by_rgb.labels).all() and (by_rgb.labels == by_bgr.labels).all()
    face = by_path.faces[0]
    x0, y0, x1, y1 = face.region
    assert (by_path.labels[y0:y1, x0:x1][face.labels > 0] == face.labels[face.labels > 0]).all()
    assert face.landmarks.shape == (5, 2) and face.probs.shape[0] == len(CLASS_NAMES)
    assert np.allclose(face.probs.sum(0), 1, atol=1e-4) and face.areas["skin"] == int((face.labels == 1).sum())
    with pytest.raises(FaceparseError, match="color must be 'rgb' or 'bgr'"):
        parser.parse(rgb, color="hsv")


def test_stream_tracks_faces_across_frames(media):
    results = [r for _, r in Parser(threads=2).stream(str(media / "short_hamilton_clip.mp4"), max_frames=15)]
    ids = [{f.track_id for f in r.faces} for r in results]
    assert len(results) == 15 and ids[0] and all(i == ids[0] for i in ids)  # the first shot: the same faces
    with pytest.raises(FaceparseError, match="video not found"):
        next(Parser().stream("missing.mp4"))


def test_open_model_opens_every_shipped_file_as_the_same_model(media):
    from faceparse_edge.fileio import read_image
    from faceparse_edge.parsing import preprocess

    image = read_image(media / "obama-720p.jpg")[40:560, 380:900]  # roughly the face
    models = [open_model("edge", backend="onnxruntime"), open_model("edge", backend="openvino"),
              open_model(resolve_model("edge-int8", "onnxruntime")), open_model(resolve_model("edge-int8", "openvino"))]
    size = models[0].info.input_size
    batch = preprocess([image], size, models[0].info.mean, models[0].info.std)
    reference = models[0](batch).argmax(1)
    for model in models:
        agreement = (model(batch).argmax(1) == reference).mean()  # INT8 moves some boundary pixels
        assert model.info.input_size == size and agreement > (0.99 if model.info.precision == "fp32" else 0.9), model.name
    assert [m.name for m in models] == ["onnxruntime", "openvino", "onnxruntime", "openvino"]
    assert [m.info.precision for m in models] == ["fp32", "fp32", "int8", "int8"]
    for args, fragment in ((("edge",), {"backend": "tensorrt"}), "unknown backend 'tensorrt'"), \
                          ((("edge.onnx",), {}), "model not found"), \
                          ((("edge",), {"backend": "onnxruntime", "precision": "bf16"}), "onnxruntime runs f32 only"):
        with pytest.raises(FaceparseError, match=fragment):
            open_model(*args[0], **args[1])


def test_auto_runs_a_shipped_model_on_openvino_on_x86_where_installed_else_on_onnx_runtime(monkeypatch):
    """`auto` (every command's and Parser's default) picks the faster backend where it can (runtime/backends.py)."""
    from faceparse_edge.runtime import backends

    x86 = platform.machine().lower() in backends.X86_MACHINES
    has_openvino = importlib.util.find_spec("openvino") is not None
    assert open_model("edge").name == backends.auto_backend() == ("openvino" if x86 and has_openvino else "onnxruntime")
    assert resolve_model("edge-int8", "auto") == resolve_model("edge-int8", backends.auto_backend())
    assert open_model(resolve_model("edge", "onnxruntime")).name == "onnxruntime"  # a file: by its type
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert backends.auto_backend() == "onnxruntime" and open_model("edge").name == "onnxruntime"
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setitem(sys.modules, "openvino", None)  # the base install, where OpenVINO cannot install
    backends.openvino_core.cache_clear()
    try:
        assert backends.auto_backend() == "onnxruntime"
    finally:
        backends.openvino_core.cache_clear()


def test_open_model_runs_torch_weights_where_torch_is_installed(media):
    pytest.importorskip("torch")
    torch_model, onnx_model = open_model("edge", backend="torch"), open_model("edge")
    size = onnx_model.info.input_size
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    assert torch_model.name == "torch" and np.abs(torch_model(x) - onnx_model(x)).max() < 1e-3
    with pytest.raises(FaceparseError, match="holds torch weights; openvino runs exported models"):
        open_model(resolve_model("edge"), backend="openvino")
    with pytest.raises(FaceparseError, match="the torch backend runs torch weights"):
        open_model(resolve_model("edge", "onnxruntime"), backend="torch")


def test_torch_weights_without_torch_are_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails, as in the runtime-only install
    with pytest.raises(FaceparseError, match=r"holds torch weights, which need torch \(pip install 'faceparse-edge\[train\]'\)"):
        open_model("edge", backend="torch")


@pytest.mark.parametrize("model", ["edge", "edge-hq", "edge-int8", "faceparse_edge/models/edge/faceparse-edge.onnx",
                                   "faceparse_edge/models/edge-hq/openvino/faceparse-edge-int8.xml"])
def test_info_describes_every_shipped_name_and_exported_file_with_or_without_torch(model, tmp_path):
    """`info` in the runtime install (no torch; the tests also run in one): a shipped name opens its ONNX model there."""
    result = cli("info", "-m", REPO / model if "/" in model else model, "--json", tmp_path / "info.json")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["params"] == 463_275 and info["preset"] in ("edge", "edge-hq")
    has_torch = importlib.util.find_spec("torch") is not None
    expected = {"edge": "torch" if has_torch else "onnxruntime", "edge-hq": "torch" if has_torch else "onnxruntime",
                "edge-int8": "onnxruntime"}.get(model, "openvino" if model.endswith(".xml") else "onnxruntime")
    assert info["format"] == expected


def test_api_errors_are_the_matching_builtins_too(tmp_path):
    """Library errors derive from FaceparseError and from the built-in a Python user would catch."""
    parser = Parser("edge")
    with pytest.raises(ValueError, match="the image is empty"):
        parser.parse(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="image not found"):
        parser.parse(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="unknown backend"):
        open_model("edge", backend="tpu")
    with pytest.raises(FileNotFoundError):
        open_model(tmp_path / "missing.onnx")
    with pytest.raises(FaceparseError):
        parser.parse(np.zeros((8, 8, 3), np.float32))


def test_a_model_with_a_fixed_batch_of_one_parses_batches_an_image_at_a_time(tmp_path, media):
    """Flip TTA (a batch of 2) and evaluation's batches through a model exported with batch 1."""
    import onnx

    shipped = resolve_model("edge", "onnxruntime")
    model = onnx.load(shipped)
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, fixed)
    photo = media / "biden.jpg"
    assert np.array_equal(Parser(fixed).parse(photo).labels, Parser(shipped).parse(photo).labels)
    size = open_model(shipped).info.input_size
    batch = np.random.default_rng(0).standard_normal((3, 3, size, size)).astype(np.float32)
    assert np.allclose(open_model(fixed)(batch), open_model(shipped)(batch), atol=1e-4)


@pytest.mark.parametrize("model", ["edge", "edge-int8"])
def test_openvino_compiles_one_model_per_batch_size_and_each_image_gets_its_own_outputs(model):
    """OpenVINO runs a fixed shape per batch size (faster than a dynamic batch, and the only way its ARM plugin
    compiles the ASPP): an image's logits do not depend on the batch it came in; FP32 gives ONNX Runtime's."""
    backend = open_model(model, "openvino")
    size = backend.info.input_size
    batch = np.random.default_rng(3).standard_normal((3, 3, size, size)).astype(np.float32)
    whole = backend(batch)
    for part, same in ((backend(batch[:2]), whole[:2]), (np.concatenate([backend(x[None]) for x in batch]), whole)):
        if model.endswith("int8"):  # kernels compiled for another batch size may round differently
            assert (part.argmax(1) == same.argmax(1)).mean() > 0.98 and np.abs(part - same).max() < 1
        else:
            assert np.allclose(part, same, atol=1e-4)
    assert sorted(backend._by_batch) == [1, 2, 3]  # (1: the load check's blank image)
    if model == "edge":
        assert np.allclose(whole, open_model(model, "onnxruntime")(batch), atol=1e-4)


def test_without_openvino_its_backend_is_a_one_line_error_and_onnx_runtime_runs(media):
    """The base install where OpenVINO cannot install (glibc < 2.35): simulated by hiding the package."""
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from faceparse_edge import Parser\n"
            "from faceparse_edge.errors import FaceparseError\n"
            f"print(len(Parser('edge').parse({str(media / 'biden.jpg')!r}).faces))\n"
            "try:\n    Parser('edge', backend='openvino')\nexcept FaceparseError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    faces, message = result.stdout.strip().splitlines()
    assert faces == "1" and "pip install 'faceparse-edge[openvino]'" in message
