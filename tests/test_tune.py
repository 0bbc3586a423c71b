"""`tune`: worker processes sharing one Optuna study in SQLite and in a real PostgreSQL server."""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from faceparse_edge.toolkit.tune import open_study

from .conftest import make_dataset
from .helpers import assert_one_line_error, cli

SPACE = "aspp_channels: {choices: [16, 1024]}\nlr: {choices: [0.03, 1.0e-9]}\n"
# Queued before the workers start, so that each outcome happens whatever the workers' timing:
# over the budget (rejected), two that learn (complete), then two that cannot learn, taken only
# after a learning trial has finished (pruned at epoch 2 below its median).
QUEUE = [{"aspp_channels": 1024, "lr": 0.03}, {"aspp_channels": 16, "lr": 0.03}, {"aspp_channels": 16, "lr": 0.03},
         {"aspp_channels": 16, "lr": 1e-9}, {"aspp_channels": 16, "lr": 1e-9}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    make_dataset(root / "data", n=24, splits={"train": range(20), "val": range(20, 24)})
    (root / "base.yaml").write_text("batch: 4\nlovasz_pixels: 1024\nwarmup: 0\n")
    (root / "space.yaml").write_text(SPACE)
    return root


def _tune_args(setup, out, storage, study="s"):
    return ["tune", "--data", setup / "data", "--config", setup / "base.yaml", "--space", setup / "space.yaml",
            "--imgsz", "64", "--epochs", "3", "--budget", "1000000", "--n-trials", str(len(QUEUE)),
            "--startup-trials", "1", "--workers", "0", "--study", study, "--storage", storage, "--out", out]


def _two_workers(setup, out, storage):
    study = open_study(storage, "s", {"aspp_channels": {"choices": [16, 1024]}, "lr": {"choices": [0.03, 1e-9]}},
                       "median", 1, None)
    for params in QUEUE:
        study.enqueue_trial(params)
    env = {**os.environ, "COLUMNS": "200"}
    start = lambda i: subprocess.Popen([sys.executable, "-m", "faceparse_edge", *map(str, _tune_args(setup, out, storage)),
                                        "--json", out / f"w{i}.json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, env=env)
    workers = [start(0)]
    # The second worker starts once the first has taken its first queued trials: Optuna's SQLite storage can
    # hand one queued trial to two workers that ask at the same instant (optuna/optuna#4621; PostgreSQL locks the row).
    deadline = time.monotonic() + 300
    while study.trials[1].state.name == "WAITING":
        assert workers[0].poll() is None and time.monotonic() < deadline, workers[0].communicate()
        time.sleep(0.2)
    workers.append(start(1))
    for w in workers:
        _, stderr = w.communicate(timeout=600)
        assert w.returncode == 0, stderr
    rows = json.loads((out / "tune.json").read_text())["rows"]
    states = {r["trial"]: r["state"] for r in rows}
    assert len(rows) == len(QUEUE)
    assert states[0] == "fail" and "over the budget" in rows[0]["note"] and rows[0]["epochs"] == 0  # no epoch spent
    assert sorted(states.values()) == ["complete", "complete", "fail", "pruned", "pruned"]
    assert len({r["worker"] for r in rows}) == 2  # both workers' trials landed in the one study
    assert not (out / "trials" / "0000").exists()  # the rejected trial never started training
    best = (out / "best.yaml").read_text()
    assert "aspp_channels: 16" in best and "lr: 0.03" in best  # the best trial's settings,
    assert "epochs: 60" in best and "imgsz: 256" in best  # for a full run, not the proxy
    again = cli(*_tune_args(setup, out, storage))  # a worker that joins a finished study only writes the results
    assert again.returncode == 0, again.stderr
    assert len(json.loads((out / "tune.json").read_text())["rows"]) == len(QUEUE)
    assert all((out / f"{name}.png").stat().st_size > 10_000 for name in ("history", "importances", "parallel"))


def test_two_workers_share_an_sqlite_study(setup, tmp_path):
    _two_workers(setup, tmp_path, f"sqlite:///{tmp_path / 'tune.db'}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on loopback for this module: Debian's package (.ci/run installs it)."""
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if not found:
        pytest.skip("PostgreSQL is not installed (`apt-get install postgresql`; .ci/run does it)")
    bin_dir = Path(found).resolve().parent  # (PATH may hold links to a few of its programs only)
    root = Path(tempfile.mkdtemp(prefix="faceparse-pg-"))
    as_postgres = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    run = lambda *args: subprocess.run([*as_postgres, *map(str, args)], check=True, capture_output=True, timeout=120)
    port = _free_port()
    run(bin_dir / "initdb", "-D", root / "data", "-U", "tune", "--auth=trust")
    run(bin_dir / "pg_ctl", "-D", root / "data", "-l", root / "log", "-w", "start",
        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1")
    try:
        run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "tune", "tune")
        yield f"postgresql://tune@127.0.0.1:{port}/tune"
    finally:
        run(bin_dir / "pg_ctl", "-D", root / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(setup, postgres, tmp_path):
    _two_workers(setup, tmp_path, postgres)


@pytest.mark.parametrize("space, fragment", [
    ("colour: {low: 0, high: 1}\n", "unknown parameter 'colour'"), ("lr: {low: 0.1, high: 0.01}\n", "inverted range"),
    ("lr: {low: 0.01, high: 0.01}\n", "empty or inverted range"), ("lr: {choices: []}\n", "empty or malformed choices"),
    ("lr: {low: 0, high: 0.1, log: true}\n", "log-scaled"), ("{}\n", "is empty"),
])
def test_bad_search_spaces_are_one_line_errors(setup, tmp_path, space, fragment):
    (tmp_path / "space.yaml").write_text(space)
    args = _tune_args(setup, tmp_path / "out", f"sqlite:///{tmp_path / 'db'}")
    args[args.index("--space") + 1] = tmp_path / "space.yaml"
    assert_one_line_error(cli(*args), fragment)
    assert not (tmp_path / "db").exists()


def test_unreachable_storage_and_a_study_with_another_space_are_one_line_errors(setup, tmp_path):
    assert_one_line_error(cli(*_tune_args(setup, tmp_path, f"postgresql://tune@127.0.0.1:{_free_port()}/none")),
                          "cannot open study storage")
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    open_study(storage, "s", {"lr": {"low": 0.001, "high": 0.1}}, "median", 1, None)
    assert_one_line_error(cli(*_tune_args(setup, tmp_path, storage)), "was created with another search space")


def test_a_study_whose_only_trial_failed_is_a_one_line_error_with_its_reason(setup, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("aspp_channels: {choices: [1024]}\n")
    out = tmp_path / "out"
    result = cli("tune", "--data", setup / "data", "--config", setup / "base.yaml", "--space", space, "--imgsz", "64",
                 "--epochs", "1", "--budget", "100000", "--n-trials", "1", "--workers", "0", "--out", out)
    assert_one_line_error(result, "no trial of study")
    assert "(1 fail) (trial 0: " in result.stderr and "over the budget" in result.stderr
    assert "of 100,000" in result.stdout  # the reason in the table whole, not cut at 60 characters
    assert not (out / "best.yaml").exists() and (out / "tune.json").is_file()
    assert not list(out.glob(".*"))  # no lock or temporary file left behind
