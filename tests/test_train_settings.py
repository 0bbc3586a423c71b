"""Training settings that cannot train: one line naming the option, before any image is read, on one
process and under torchrun (issue 28: --batch 2 over 2 processes crashed both ranks in BatchNorm)."""

import os
import subprocess
import sys

import pytest

from faceparse_edge.errors import FaceparseError
from faceparse_edge.toolkit.train import TrainConfig, check_trainable

from .conftest import make_dataset
from .helpers import assert_one_line_error, cli

SMALL = ["--imgsz", "64", "--aspp-channels", "16", "--decoder-channels", "16", "--epochs", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("settings") / "data", n=12,
                        splits={"train": range(10), "val": range(10, 12)})
    (root / "splits" / "empty.txt").write_text("\n")
    return root


# (options, world size) -> the fragment of the one-line error
CASES = [
    (["--batch", "1"], 1, "--batch 1 gives 1 image per process and step, and BatchNorm needs 2: use --batch 2 or more"),
    (["--batch", "2"], 2, "--batch 2 over 2 processes gives 1 image per process and step"),
    (["--batch", "5"], 2, "--batch 5 does not split over 2 processes; use a multiple of 2"),
    (["--batch", "16"], 1, "has 10 images, fewer than one batch of --batch 16: use --batch 10 or less"),
    (["--batch", "12"], 2, "has 10 images, fewer than one batch of --batch 12 over 2 processes: use --batch 10 or less"),
    (["--batch", "4", "--val-split", "nope"], 1, "split 'nope' not found"),
    (["--batch", "4", "--val-split", "empty"], 2, "for split 'empty'"),
    (["--batch", "4", "--workers", "11"], 1, "--workers 11 is more than the 10 training images each process reads"),
    (["--batch", "4", "--workers", "6"], 2, "--workers 6 is more than the 5 training images each process reads over 2"),
]


@pytest.mark.parametrize("options, world, fragment", CASES)
def test_settings_that_cannot_train_are_refused_before_any_work(data, tmp_path, options, world, fragment):
    out = tmp_path / "run"
    if world == 1:
        result = cli("train", "--data", data, *SMALL, *options, "--out", out)
    else:
        env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
        result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                                 "-m", "faceparse_edge", "train", "--data", str(data), *SMALL, *options, "--out", str(out)],
                                capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr  # rank 0 alone says it, once
    if world == 1:
        assert_one_line_error(result, fragment)
    else:
        # No traceback from the ranks (their code, the model, BatchNorm); what follows the error line is
        # torchrun's own report that a worker exited with code 1, which it prints for any failed worker.
        ranks = result.stderr.split("torch/distributed/elastic")[0]  # before torchrun's own log lines
        assert "Traceback" not in ranks and "faceparse_edge/" not in result.stderr, result.stderr
        assert "exitcode  : 1" in result.stderr
    assert not out.exists()  # refused before any work: nothing written


def test_the_checks_refuse_what_cannot_train_and_pass_what_can(data):
    ok = TrainConfig(data=str(data), out="unused", batch_size=4, workers=2)
    check_trainable(ok, 64, world=1)
    check_trainable(ok, 64, world=2)
    with pytest.raises(FaceparseError, match="--imgsz 100 is not a multiple of 32 .*: use 96 or 128"):
        check_trainable(ok, 100)
    with pytest.raises(FaceparseError, match="it needs at least 16 images"):  # 10 images over 8 processes: 1 each
        check_trainable(TrainConfig(data=str(data), out="unused", batch_size=16), 64, world=8)


def test_a_tune_trial_whose_batch_cannot_train_is_rejected_like_an_over_budget_one(data, tmp_path):
    import json

    (tmp_path / "space.yaml").write_text("batch:\n  choices: [1]\n")
    result = cli("tune", "--data", data, "--space", tmp_path / "space.yaml", "--n-trials", "1", "--epochs", "1",
                 "--imgsz", "64", "--out", tmp_path / "tune")
    assert "rejected before training: --batch 1 gives 1 image per process" in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    rows = json.loads((tmp_path / "tune" / "tune.json").read_text())["rows"]
    assert [r["state"] for r in rows] == ["fail"] and "BatchNorm needs 2" in rows[0]["note"]


def test_one_settings_schema_makes_train_options_and_library_defaults():
    """`train`'s options (names, defaults, ranges, help, as `train --help` shows them) and the library's
    TrainConfig/AugmentConfig defaults all come from settings.TRAIN_SETTINGS."""
    import typer.main

    from faceparse_edge.cli import app
    from faceparse_edge.toolkit.run_config import train_config
    from faceparse_edge.toolkit.settings import TRAIN_SETTINGS, with_defaults

    params = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    assert set(params) - {s.name for s in TRAIN_SETTINGS} == {"config", "resume", "json_file"}
    shown = " ".join(cli("train", "--help").stdout.replace("│", " ").split())
    for s in TRAIN_SETTINGS:
        option = params[s.name]
        assert (option.default, option.help, getattr(option, "min", None), getattr(option, "max", None)) == \
            (s.default, s.help, s.min, s.max), s.name
        assert (s.flag or f"--{s.name.replace('_', '-')}") in shown, s.name
        if s.default is not None and s.type is not bool:
            assert f"[default: {s.default}]" in shown, s.name
    # The library's defaults: a settings dict at its defaults is exactly TrainConfig's own defaults.
    assert train_config(with_defaults({"data": "d"})) == TrainConfig(data="d", out="runs/train")
    with pytest.raises(FaceparseError, match="unknown training settings: epoch "):
        with_defaults({"epoch": 3})


def test_a_context_keeps_the_faces_resolution_and_aligned_images_are_framed_alike():
    import numpy as np

    from faceparse_edge.parsing import labels_at, preprocess, with_context
    from faceparse_edge.toolkit.run_config import architecture
    from faceparse_edge.toolkit.settings import with_defaults

    config, _ = architecture(with_defaults({"preset": "edge", "context": 1.125}))
    assert (config.context, config.input_size) == (1.125, 288)  # 256 px of face, as edge's
    assert architecture(with_defaults({"preset": "edge", "context": 1.125, "imgsz": 256}))[0].input_size == 256
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    framed = with_context(image, 1.25)  # the image in the middle, its edge pixels repeated around it
    assert framed.shape == (80, 80, 3) and (framed[8:72, 8:72] == image).all() and (framed[:8, 8] == image[0, 0]).all()
    assert preprocess([image], 40, (0.5,) * 3, (0.25,) * 3, 1.25).shape == (1, 3, 40, 40)
    # labels of the framed view come back for the image alone
    probs = np.zeros((19, 20, 20), np.float32)
    probs[0], probs[1, 2:18, 2:18] = 1.0, 1.0  # the middle 16 of 20, the image's own pixels, read skin
    probs[0, 2:18, 2:18] = 0.0
    assert (labels_at(probs, 64, 64, 1.25)[1:-1, 1:-1] == 1).all()  # (the corner pixels mix with the ring)
    assert (labels_at(probs, 64, 64)[:4] == 0).all()  # read as the image itself, the ring would cover its edge
