"""The CLI end to end, in subprocesses: results, JSON output, and one-line errors for bad input."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

from faceparse_edge.toolkit.samples import list_samples
from faceparse_edge.models import resolve_model

from .conftest import link_pairs, make_dataset
from .helpers import assert_one_line_error, cli

DEFAULT_WEIGHTS = resolve_model(None)  # the default model's torch weights


def _command_paths(command, path=()):
    """Every command and command group registered in the CLI, as argument lists."""
    yield list(path)
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


def test_help_on_every_command():
    import typer.main

    from faceparse_edge.cli import app

    paths = list(_command_paths(typer.main.get_command(app)))
    assert len(paths) >= 16 and ["video"] in paths and ["data", "crop-rule"] in paths
    for args in paths:
        result = cli(*args, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout and "Traceback" not in result.stderr, args


def test_info_describes_the_shipped_default_model(tmp_path):
    result = cli("info", "--json", tmp_path / "info.json")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "info.json").read_text())
    assert 0 < info["params"] < 2_000_000
    assert info["classes"][4] == "l_eye" and info["input_size"] == info["config"]["input_size"]
    assert info["weights"] == str(DEFAULT_WEIGHTS)


def test_evaluate_default_model_on_real_val_images(celeba_mini, tmp_path):
    subset = link_pairs(tmp_path / "subset", list_samples(celeba_mini, "val")[:12])
    scores = {}
    for tta in ("none", "flip"):
        out = tmp_path / f"eval_{tta}.json"
        result = cli("evaluate", "--data", subset, "--tta", tta, "--json", out, "--confusion", tmp_path / f"cm_{tta}.png")
        assert result.returncode == 0, result.stderr
        scores[tta] = json.loads(out.read_text())
        assert (tmp_path / f"cm_{tta}.png").stat().st_size > 10_000
    for r in scores.values():
        assert set(r) >= {"miou", "per_class_iou", "f_measure", "pixel_acc"} and r["images"] == 12
        assert r["miou"] > 40 and r["per_class_iou"]["skin"] > 70  # a trained model, not chance
    assert scores["flip"]["miou"] > scores["none"]["miou"] - 3


def test_evaluate_at_another_input_size(celeba_mini, tmp_path):
    """--imgsz runs torch weights at another size; an exported model's size is fixed, so it is refused."""
    subset = link_pairs(tmp_path / "subset", list_samples(celeba_mini, "val")[:4])
    out = tmp_path / "eval.json"
    result = cli("evaluate", "--data", subset, "--imgsz", "288", "--json", out, "--confusion", tmp_path / "cm.png")
    assert result.returncode == 0, result.stderr
    r = json.loads(out.read_text())
    assert r["input_size"] == 288 and r["miou"] > 40 and "at 288 px" in result.stdout
    onnx = resolve_model(None, runtime="onnxruntime")
    assert_one_line_error(cli("evaluate", "--data", subset, "-m", onnx, "--imgsz", "288"), "applies to torch weights")


def test_data_stats_json(tiny_dataset, tmp_path):
    result = cli("data", "stats", tiny_dataset, "--split", "train", "--json", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    assert "skin" in result.stdout and json.loads((tmp_path / "s.json").read_text())["images"] == 6


def test_bad_inputs_give_one_line_errors(tmp_path, tiny_dataset):
    assert_one_line_error(cli("evaluate", "--data", tmp_path / "missing"), "data directory not found")
    assert_one_line_error(cli("info", "--weights", tmp_path / "nope.pt"), "model not found")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 10)
    assert_one_line_error(cli("info", "--weights", junk), "cannot load checkpoint")
    foreign = tmp_path / "foreign.safetensors"
    import torch

    save_file({"w": torch.zeros(2)}, str(foreign))
    assert_one_line_error(cli("info", "--weights", foreign), "not a faceparse-edge model")
    assert_one_line_error(cli("train", "--data", tiny_dataset, "--width", "4", "--out", tmp_path / "r"), "over the budget")
    assert_one_line_error(cli("train", "--data", tiny_dataset, "--width", "auto", "--budget", "1000",
                              "--out", tmp_path / "r"), "cannot fit")
    assert_one_line_error(cli("train", "--data", tiny_dataset, "--preset", "huge", "--out", tmp_path / "r"), "unknown preset")
    for width in ("0", "-1", "nan"):
        assert_one_line_error(cli("train", "--data", tiny_dataset, "--width", width, "--out", tmp_path / "w"),
                              "--width must be a positive number")
        assert not (tmp_path / "w").exists()  # refused before config.yaml is written
    assert_one_line_error(cli("train", "--data", tiny_dataset, "--device", "tpu", "--epochs", "1", "--out",
                              tmp_path / "d"), "unknown device 'tpu'")
    assert_one_line_error(cli("evaluate", "--data", tiny_dataset, "--device", "tpu"), "unknown device 'tpu'")
    bad = make_dataset(tmp_path / "bad", n=2)
    from PIL import Image

    Image.fromarray(np.full((64, 64), 30, np.uint8), mode="L").save(bad / "masks" / "s1.png")
    assert_one_line_error(cli("data", "stats", bad), "s1.png has class id 30")


def test_checkpoint_of_another_configuration_is_rejected(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(DEFAULT_WEIGHTS), framework="pt") as f:
        metadata = f.metadata()
    config = json.loads(metadata["config"])
    config["aspp_channels"] += 8
    other = tmp_path / "other.safetensors"
    save_file(load_file(str(DEFAULT_WEIGHTS)), str(other), metadata={**metadata, "config": json.dumps(config)})
    assert_one_line_error(cli("info", "--weights", other), "do not match their model config")


def test_shipped_models_are_chosen_by_short_name_on_every_command(tmp_path):
    from faceparse_edge.models import model_dir, resolve_model

    edge = model_dir("edge")
    assert resolve_model(None) == resolve_model("edge") == edge / "weights.safetensors"
    assert resolve_model("edge", "onnxruntime") == edge / "faceparse-edge.onnx"  # ("auto": tests/test_api.py)
    assert resolve_model("edge-int8") == edge / "faceparse-edge-int8.onnx"  # INT8: no torch weights
    assert resolve_model("edge-int8", "openvino") == edge / "openvino" / "faceparse-edge-int8.xml"
    assert resolve_model("runs/x.onnx") == Path("runs/x.onnx")  # a path stays a path
    result = cli("info", "-m", "edge-int8", "--json", tmp_path / "i.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "i.json").read_text())["format"] == "onnxruntime"
    assert_one_line_error(cli("info", "-m", "edgy"), "no model file or shipped model named 'edgy' (shipped: edge, edge-int8")
    assert_one_line_error(cli("export", "-m", "edge-int8", "--data", tmp_path), "is an exported model; this needs torch weights")
    assert_one_line_error(cli("check", "-m", "edge-int8", "--data", tmp_path), "unknown model 'edge-int8': the shipped models are edge")


@pytest.mark.parametrize("name", ["edge", "edge-hq"])
def test_every_file_of_a_shipped_model_is_the_same_model(name, celeba_mini):
    """A shipped folder's ONNX and OpenVINO files, FP32 and INT8, carry the config of its torch
    weights and compute its function (on a real face), and the preset of the same name trains
    its network (both were then fine-tuned for a wider view at a larger input: MODEL_CARD.md)."""
    import torch

    from faceparse_edge.fileio import read_image
    from faceparse_edge.models import EXPORT_FILES, model_dir, open_model
    from faceparse_edge.parsing import preprocess
    from faceparse_edge.toolkit.checkpoint import load_model
    from faceparse_edge.toolkit.model_config import PRESETS, ModelConfig

    model = load_model(name).eval()
    c = model.config
    network = {f.name for f in dataclasses.fields(c)} - {"input_size", "mean", "std", "context"}
    assert {k: getattr(c, k) for k in network} == {k: getattr(PRESETS[name], k) for k in network}
    batch = preprocess([read_image(list_samples(celeba_mini, "val")[0].image)], c.input_size, c.mean, c.std)
    with torch.no_grad():
        reference = model.coarse_logits(torch.from_numpy(batch)).numpy().argmax(1)
    for (backend, int8), file in EXPORT_FILES.items():
        exported = open_model(model_dir(name) / file, backend)
        assert ModelConfig.from_dict(exported.info.config) == c and exported.info.precision == ("int8" if int8 else "fp32"), file
        agreement = (exported(batch).argmax(1) == reference).mean()
        assert agreement > (0.95 if int8 else 0.999), (file, agreement)


def test_output_to_a_log_never_wraps_file_names_or_tables(media, tmp_path):
    """Stdout that is not a terminal (a log, CI) and no COLUMNS: lines are not cut at 80 columns."""
    out = tmp_path / ("a_long_folder_name_" * 4) / "labels"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run([sys.executable, "-m", "faceparse_edge", "image", str(media / "biden.jpg"), "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"-> {out / 'biden.png'}, {out / 'biden_overlay.png'}" in result.stdout
    result = subprocess.run([sys.executable, "-m", "faceparse_edge", "info"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert any("trainable parameters" in row and "463,275" in row for row in rows)
    assert any("logical cores" in row and "onnxruntime" in row for row in rows)  # the machine's row not folded
