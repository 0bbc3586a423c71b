"""Training at scale: settings files, streamed data with worker processes, and torchrun (DDP)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from faceparse_edge.toolkit.checkpoint import load_checkpoint

from .conftest import make_dataset
from .helpers import assert_one_line_error, cli

SMALL = ["--imgsz", "64", "--batch", "4", "--aspp-channels", "16", "--decoder-channels", "16"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("scale") / "data", n=12, splits={"train": range(10), "val": range(10, 12)})


BATCHES = """
import sys
import numpy as np
from faceparse_edge.toolkit.augment import Augmenter
from faceparse_edge.toolkit.samples import list_samples
from faceparse_edge.toolkit.loader import FaceParsingDataset, make_loader

def batches(data, cache, workers, world=1, rank=0, epoch=0):
    dataset = FaceParsingDataset(list_samples(data, "train"), 64, (0.5,) * 3, (0.25,) * 3, Augmenter(), seed=3,
                                 cache=cache)
    assert (dataset.cached is None) == (cache == "none")
    loader, sampler = make_loader(dataset, 2, workers, seed=3, rank=rank, world=world)
    sampler.set_epoch(epoch)
    return [(x.numpy(), y.numpy()) for x, y in loader]

if __name__ == "__main__":
    import cv2

    cv2.resize(np.zeros((2000, 2000, 3), np.uint8), (999, 999))  # OpenCV's thread pool runs, as in training
    data, out = sys.argv[1:]
    runs = {"none-0": batches(data, "none", 0), "none-2": batches(data, "none", 2), "ram-0": batches(data, "ram", 0),
            "ram-1": batches(data, "ram", 1), "epoch-1": batches(data, "none", 0, epoch=1),
            "rank-0": batches(data, "none", 0, world=2, rank=0), "rank-1": batches(data, "none", 0, world=2, rank=1)}
    np.savez(out, **{f"{name}/{i}/{k}": a for name, run in runs.items() for i, pair in enumerate(run)
                     for k, a in zip("xy", pair)})
"""


def test_streamed_and_cached_data_give_the_same_batches_with_any_number_of_workers(data, tmp_path):
    # In a fresh process: DataLoader workers are processes, kept out of the test runner's own.
    script = tmp_path / "batches.py"
    script.write_text(BATCHES)
    subprocess.run([sys.executable, str(script), str(data), str(tmp_path / "b.npz")], check=True, timeout=300)
    saved = np.load(tmp_path / "b.npz")
    runs = {}
    for key in saved.files:
        name, i, k = key.split("/")
        runs.setdefault(name, {})[(int(i), k)] = saved[key]
    reference = runs["none-0"]
    assert len(reference) == 10 and reference[0, "x"].shape == (2, 3, 64, 64) and reference[0, "y"].dtype == np.int64
    for name in ("none-2", "ram-0", "ram-1"):  # streamed or cached, any number of workers: the same batches
        assert runs[name].keys() == reference.keys()
        assert all(np.array_equal(runs[name][key], reference[key]) for key in reference), name
    assert not np.array_equal(runs["epoch-1"][0, "x"], reference[0, "x"])  # a new epoch, new draws
    halves = [runs["rank-0"], runs["rank-1"]]  # DDP: each process its own share
    assert len(halves[0]) == len(halves[1]) == 4
    assert not any(np.array_equal(a, b) for a in halves[0].values() for b in halves[1].values())


def test_a_run_is_reproduced_by_its_settings_file(data, tmp_path):
    first = cli("train", "--data", data, *SMALL, "--epochs", "2", "--hue", "10", "--layers", "7", "--out", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    settings = (tmp_path / "a" / "config.yaml").read_text()
    assert "hue: 10.0" in settings and "layers: 7" in settings and "aspp_rate: 2" in settings  # resolved values
    again = cli("train", "--config", tmp_path / "a" / "config.yaml", "--out", tmp_path / "b")
    assert again.returncode == 0, again.stderr
    a, b = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("a", "b"))
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]
    assert [h["val_miou"] for h in a] == [h["val_miou"] for h in b]
    json_settings = tmp_path / "s.json"
    json_settings.write_text(json.dumps({"data": str(data), "imgsz": 64, "batch": 4, "aspp_channels": 16,
                                         "decoder_channels": 16, "epochs": 1}))
    override = cli("train", "--config", json_settings, "--epochs", "2", "--out", tmp_path / "c")  # the command line wins
    assert override.returncode == 0, override.stderr
    assert len(json.loads((tmp_path / "c" / "metrics.json").read_text())) == 2


@pytest.mark.parametrize("text, fragment", [
    ("data: {data}\nnope: 1\n", "unknown settings in"), ("data: {data}\n{{\n", "cannot read config"),
    ("- {data}\n", "must map option names"), ("data: {data}\naspp_channels: -3\n", "--aspp-channels"),
])
def test_bad_settings_files_are_one_line_errors(data, tmp_path, text, fragment):
    (tmp_path / "s.yaml").write_text(text.format(data=data))
    assert_one_line_error(cli("train", "--config", tmp_path / "s.yaml", "--out", tmp_path / "r"), fragment)
    assert not (tmp_path / "r").exists()


def _torchrun(*args):
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                           "-m", "faceparse_edge", *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def test_torchrun_trains_on_two_processes_writes_once_and_resumes(data, tmp_path):
    run = tmp_path / "ddp"
    result = _torchrun("train", "--data", data, *SMALL, "--epochs", "2", "--workers", "0", "--out", run)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("done: best val mIoU") == 1  # rank 0 alone reports and writes
    assert "x 2 processes" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == ["best.safetensors", "config.yaml", "curves.png", "last.pt",
                                                     "metrics.csv", "metrics.json"]
    history = load_checkpoint(run / "last.pt")["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    resumed = _torchrun("train", "--data", data, "--out", run, "--resume", "--epochs", "3", "--workers", "0")
    assert resumed.returncode == 0, resumed.stderr
    assert [h["epoch"] for h in load_checkpoint(run / "last.pt")["history"]] == [1, 2, 3]
    assert torch.isfinite(torch.tensor([h["train_loss"] for h in json.loads((run / "metrics.json").read_text())])).all()


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun's worker process of the given rank (from /proc: its parent and RANK)."""
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and f"RANK={rank}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                return int(proc.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def test_a_rank_that_dies_fails_the_run_and_leaves_rank_0s_checkpoint_whole(data, tmp_path):
    import signal
    import time

    run = tmp_path / "ddp"
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                                "-m", "faceparse_edge", "train", "--data", str(data), *SMALL, "--epochs", "200",
                                "--workers", "0", "--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    deadline = time.monotonic() + 300
    while not (run / "last.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    os.kill(_rank_pid(process.pid, 1), signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode != 0 and "FAILED" in stderr  # torchrun's own failure report
    epoch = load_checkpoint(run / "last.pt")["epoch"]  # whole and loadable
    assert 1 <= epoch < 200
