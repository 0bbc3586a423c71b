"""Faults while writing: a full disk, a read-only folder, and a process stopped or killed mid-job.

Each leaves a one-line error and a non-zero exit, and never a half-written file under a final
name: checkpoints stay loadable and resumable, videos are finalised or absent, exports whole or
absent.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from faceparse_edge.toolkit.checkpoint import load_checkpoint

from .conftest import SHARED, make_dataset
from .helpers import assert_one_line_error, cli

VIDEO = SHARED / "media" / "short_hamilton_clip.mp4"
DISK_BYTES = 64 * 1024


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode == 0


@pytest.fixture(params=["tmpfs", "file size limit"])
def full_disk(request, tmp_path):
    """(folder, preexec_fn) where writes fail past 64 KiB: a real 64 KiB tmpfs (needs root), or a
    file-size limit on the process (RLIMIT_FSIZE: the kernel refuses the write, as a full disk does)."""
    folder = tmp_path / "disk"
    if request.param == "tmpfs":
        if not _mount_tmpfs(folder, f"size={DISK_BYTES}"):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        yield folder, None
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.mkdir()
        yield folder, lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (DISK_BYTES, DISK_BYTES))


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    if _mount_tmpfs(folder, "ro,size=64k"):
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    elif os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
    else:
        pytest.skip("root without mount rights: no folder is read-only to this process")


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """Inputs whose outputs cannot compress below 64 KiB: a noise photo and a noise clip."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(root / "noise.png")
    writer = cv2.VideoWriter(str(root / "noise.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(20):
        writer.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    writer.release()
    make_dataset(root / "data", n=10, splits={"train": range(8), "val": range(8, 10)})
    return root


def _jobs(noise, folder):
    return {
        "video": (["video", noise / "noise.avi", "--no-show", "--out", folder / "out.mp4"], [folder / "out.mp4"]),
        "image": (["image", noise / "noise.png", "--out", folder / "img"], [folder / "img" / "noise_overlay.png"]),
        "export": (["export", "--data", noise / "data", "--out", folder / "exp"], [folder / "exp" / "faceparse-edge.onnx"]),
    }


@pytest.mark.parametrize("job", ["video", "image", "export"])
def test_a_full_disk_is_a_one_line_error_and_leaves_no_half_written_file(noise, full_disk, job):
    folder, limit = full_disk
    args, finals = _jobs(noise, folder)[job]
    result = cli(*args, preexec_fn=limit)
    assert_one_line_error(result, "cannot write")
    assert not any(p.exists() for p in finals)
    assert not [p for p in folder.rglob(".*")]  # no temporary files left behind


@pytest.mark.parametrize("job", ["video", "image", "export"])
def test_a_read_only_folder_is_a_one_line_error(noise, read_only, job):
    args, _ = _jobs(noise, read_only)[job]
    assert_one_line_error(cli(*args), "cannot write")
    assert not list(read_only.iterdir())


def _start(*args, cwd=None):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "faceparse_edge", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)


def _wait_for(condition, process, timeout=300.0):
    end = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_training_killed_mid_run_resumes_from_its_last_checkpoint(noise, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", noise / "data", "--imgsz", "64", "--batch", "4", "--epochs", "6", "--out", run]
    process = _start(*args)
    _wait_for(lambda: (run / "last.pt").exists(), process)
    process.kill()  # SIGKILL: no clean-up of any kind
    process.wait()
    epoch = load_checkpoint(run / "last.pt")["epoch"]
    assert 1 <= epoch < 6
    result = cli("train", "--out", run, "--resume")  # the run knows its data
    assert result.returncode == 0, result.stderr
    assert [h["epoch"] for h in json.loads((run / "metrics.json").read_text())] == list(range(1, 7))


def test_export_killed_mid_way_leaves_no_model_under_a_final_name(noise, tmp_path):
    out = tmp_path / "exp"
    process = _start("export", "--format", "openvino", "--int8", "--data", noise / "data", "--calib-size", "8", "--out", out)
    _wait_for(lambda: out.is_dir() and any(out.glob(".staging-*")), process)
    process.kill()
    process.wait()
    assert not [p for p in out.rglob("*") if p.is_file() and not p.relative_to(out).parts[0].startswith(".")]
    result = cli("export", "--data", noise / "data", "--out", out)  # a leftover staging folder is no obstacle
    assert result.returncode == 0, result.stderr
    assert (out / "faceparse-edge.onnx").is_file()
    assert not list(out.glob(".staging-*"))  # and the successful export removed it


def test_a_later_write_removes_what_a_killed_writer_left_beside_it(tmp_path):
    from faceparse_edge.fileio import write_text_atomic

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs: a killed writer's
    left = [tmp_path / f".metrics.json.{gone.pid}.x1y2.json", tmp_path / f".last.pt.{gone.pid}.abc.pt"]
    live = tmp_path / f".metrics.json.{os.getpid()}.zz.json"  # a writer still at work: kept
    other = tmp_path / ".notes.txt.123.txt"  # another file's
    for path in [*left, live, other]:
        path.write_text("partial")
    write_text_atomic(tmp_path / "metrics.json", "[]")
    assert not left[0].exists() and left[1].exists() and live.exists() and other.exists()
    write_text_atomic(tmp_path / "last.pt", "x")
    assert not left[1].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "last.pt", "metrics.json"])


@pytest.fixture(scope="module")
def clip():
    if not VIDEO.is_file():
        pytest.skip(f"shared video not found at {VIDEO}")
    return VIDEO


def test_video_stopped_with_sigterm_is_finalised_and_reported(clip, tmp_path):
    out = tmp_path / "out.mp4"
    process = _start("video", clip, "--no-show", "--out", out, "--json", tmp_path / "s.json")
    _wait_for(lambda: any(p.stat().st_size > 100_000 for p in tmp_path.glob(".out.mp4.*")), process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted after")
    frames = json.loads((tmp_path / "s.json").read_text())["frames"]
    assert 0 < frames < 275
    assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == frames  # a playable file


def test_video_killed_leaves_no_file_under_its_name(clip, tmp_path):
    out = tmp_path / "out.mp4"
    process = _start("video", clip, "--no-show", "--out", out)
    _wait_for(lambda: any(p.stat().st_size > 100_000 for p in tmp_path.glob(".out.mp4.*")), process)
    process.kill()
    process.wait()
    assert not out.exists()
