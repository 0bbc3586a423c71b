"""Export, INT8 and the quantised accuracy check on the shipped model and real images."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from faceparse_edge.errors import FaceparseError
from faceparse_edge.models import open_model
from faceparse_edge.export.calibration import pick_stratified
from faceparse_edge.export.check import check
from faceparse_edge.export.exporter import export
from faceparse_edge.runtime.backends import CONFIG_KEY
from faceparse_edge.toolkit.samples import list_samples

from .conftest import SHARED, link_pairs
from .helpers import assert_one_line_error, cli


@pytest.fixture(scope="module")
def subset(celeba_mini, tmp_path_factory):
    """A small real dataset (symlinks into ../shared): 16 train and 8 val pairs, rare classes included."""
    root = tmp_path_factory.mktemp("subset")
    (root / "splits").mkdir()
    train = pick_stratified(list_samples(celeba_mini, "train"), 16)
    val = list_samples(celeba_mini, "val")[:8]
    for name, samples in (("train", train), ("val", val)):
        link_pairs(root, samples)
        (root / "splits" / f"{name}.txt").write_text("\n".join(s.id for s in samples) + "\n")
    return root


@pytest.fixture(scope="module")
def exported(subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    rows = export(None, "onnx", True, str(subset), out, calib_size=16)
    rows += export(None, "openvino", True, str(subset), out, calib_size=16)
    return out, rows


def test_export_writes_parity_checked_fp32_and_int8_models(exported):
    out, rows = exported
    assert [(r["format"], r["precision"]) for r in rows] == [
        ("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")]
    for r in rows:
        assert Path(r["path"]).is_file() and r["size_mb"] > 0.1
        assert r["agreement"] >= (0.999 if r["precision"] == "fp32" else 0.9)
    assert rows[0]["max_abs_diff"] < 1e-3
    assert rows[1]["size_mb"] < rows[0]["size_mb"] * 0.6  # INT8 weights
    proto = onnx.load(str(out / "faceparse-edge.onnx"))
    assert proto.opset_import[0].version >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    backend = open_model(out / "faceparse-edge.onnx")
    batch = np.zeros((3, 3, backend.info.input_size, backend.info.input_size), np.float32)
    side = backend.info.input_size // 4  # coarse logits: the decoder's stride
    assert backend(batch).shape == (3, 19, side, side)
    assert open_model(out / "openvino" / "faceparse-edge-int8.xml").info.precision == "int8"


def test_check_compares_quantised_models_with_fp32(exported, subset):
    out, _ = exported
    rows = check(out / "faceparse-edge.onnx", [out / "faceparse-edge-int8.onnx", out / "openvino" / "faceparse-edge-int8.xml"],
                 str(subset), "val")
    assert [r["precision"] for r in rows] == ["fp32", "int8", "int8"]
    assert rows[0]["delta_miou"] == 0 and rows[0]["agreement"] == 100
    for r in rows[1:]:
        assert abs(r["delta_miou"]) < 5 and r["agreement"] > 90 and r["worst_class_delta"] <= r["delta_miou"] + 1e-9


def test_check_cli_exits_non_zero_past_max_drop(exported, subset, tmp_path):
    out, _ = exported
    args = ["check", out / "faceparse-edge-int8.onnx", "--reference", out / "faceparse-edge.onnx", "--data", subset,
            "--json", tmp_path / "c.json"]
    ok = cli(*args, "--max-drop", "100")
    assert ok.returncode == 0, ok.stderr
    rows = json.loads((tmp_path / "c.json").read_text())
    assert {"format", "precision", "miou", "delta_miou"} <= set(rows[1])
    # a model that surely loses accuracy: the reference with one class (skin) never predicted
    proto = onnx.load(str(out / "faceparse-edge.onnx"))
    bias_name = [n for n in proto.graph.node if n.op_type == "Conv"][-1].input[2]
    bias = next(t for t in proto.graph.initializer if t.name == bias_name)
    values = numpy_helper.to_array(bias).copy()
    values[1] = -1e4
    bias.CopyFrom(numpy_helper.from_array(values, bias_name))
    onnx.save(proto, str(tmp_path / "no_skin.onnx"))
    worse = cli("check", tmp_path / "no_skin.onnx", "--reference", out / "faceparse-edge.onnx", "--data", subset)
    assert_one_line_error(worse, "lose more than 1.0 mIoU")


def test_accuracy_controlled_openvino_int8_stays_within_max_drop(subset, tmp_path):
    rows = export(None, "openvino", True, str(subset), tmp_path, calib_size=16, max_drop=0.5)
    xml = Path(rows[-1]["path"])
    assert xml.name == "faceparse-edge-int8-acc.xml"
    result = check(tmp_path / "openvino" / "faceparse-edge.xml", [xml], str(subset), "val")
    assert result[1]["delta_miou"] >= -0.5


def _foreign_onnx(path: Path, channels: int = 19, metadata: dict | None = None, size: int = 64):
    node = helper.make_node("Conv", ["image", "w"], ["logits"])
    w = helper.make_tensor("w", TensorProto.FLOAT, [channels, 3, 1, 1], np.ones(channels * 3, np.float32))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def test_backends_reject_models_of_the_wrong_kind(tmp_path):
    config = json.dumps({"input_size": 64, "mean": [0.5] * 3, "std": [0.25] * 3})
    with pytest.raises(FaceparseError, match="not a faceparse-edge model"):
        open_model(_foreign_onnx(tmp_path / "plain.onnx"))
    with pytest.raises(FaceparseError, match=r"outputs shape \(1, 5, 64, 64\)"):
        open_model(_foreign_onnx(tmp_path / "five.onnx", channels=5, metadata={CONFIG_KEY: config}))
    with pytest.raises(FaceparseError, match="config says 128"):
        open_model(_foreign_onnx(tmp_path / "size.onnx", metadata={CONFIG_KEY: config.replace("64", "128")}))
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(FaceparseError, match="cannot load ONNX model"):
        open_model(tmp_path / "corrupt.onnx")
    (tmp_path / "m.tflite").write_bytes(b"")
    with pytest.raises(FaceparseError, match="unsupported model format"):
        open_model(tmp_path / "m.tflite")


def test_export_bad_inputs_are_one_line_errors(subset, tmp_path):
    assert_one_line_error(cli("export", "--format", "tflite", "--data", subset, "--out", tmp_path), "unsupported export format")
    assert_one_line_error(cli("export", "--int8", "--int8-target", "arm", "--data", subset, "--out", tmp_path / "t"),
                          "unknown INT8 target 'arm'")
    assert not (tmp_path / "t").exists()  # refused before any work
    assert_one_line_error(cli("export", "--int8", "--calib-size", "4", "--data", subset, "--out", tmp_path),
                          "at least 8 images")
    assert_one_line_error(cli("export", "--int8", "--manifest", tmp_path / "none.json", "--data", subset,
                              "--out", tmp_path), "cannot read calibration manifest")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert_one_line_error(cli("export", "--weights", junk, "--data", subset, "--out", tmp_path), "cannot load checkpoint")
    assert_one_line_error(cli("export", "--format", "onnx", "--int8", "--max-drop", "1", "--data", subset,
                              "--out", tmp_path), "--max-drop applies to --format openvino")
    assert_one_line_error(cli("export", "--format", "openvino", "--int8", "--calib-percentile", "100", "--data", subset,
                              "--out", tmp_path), "--calib-percentile applies to --format onnx --int8")


def test_percentile_int8_export_keeps_the_calibrators_prints_out_of_its_output(subset, tmp_path):
    """ONNX Runtime's histogram calibrators print their steps to stdout; export shows a progress bar instead."""
    result = cli("export", "--int8", "--calib-percentile", "99.99", "--calib-size", "8", "--data", subset,
                 "--out", tmp_path / "m", "--json", tmp_path / "rows.json")
    assert result.returncode == 0, result.stderr
    assert "histogram" not in (result.stdout + result.stderr).lower() and "int8" in result.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["precision"] for r in rows] == ["fp32", "int8"] and (tmp_path / "m" / "faceparse-edge-int8.onnx").is_file()


def test_stratified_calibration_pick_includes_rare_classes(celeba_mini, tmp_path):
    result = cli("calibrate", "--data", celeba_mini, "--size", "32", "--out", tmp_path / "m.json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["size"] == len(manifest["images"]) == len(manifest["ids"]) == 32
    assert all(count >= 4 for count in manifest["rare_class_images"].values()), manifest["rare_class_images"]


def test_calibration_from_video_crops_feeds_export(subset, tmp_path):

    result = cli("calibrate", "--video", SHARED / "media" / "short_hamilton_clip.mp4", "--size", "12",
                 "--out", tmp_path / "v.json", "--crops-dir", tmp_path / "crops")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "v.json").read_text())
    assert manifest["size"] == 12 and all((tmp_path / p).is_file() for p in manifest["images"])  # relative paths
    rows = export(None, "onnx", True, str(subset), tmp_path / "out", manifest=tmp_path / "v.json")
    assert rows[-1]["precision"] == "int8"
