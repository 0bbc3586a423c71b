"""Torch-free helpers shared by the test modules: the CLI in a subprocess, and its one-line errors."""

import os
import subprocess
import sys


def cli(*args, cwd=None, preexec_fn=None, env=None):
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "faceparse_edge", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600, preexec_fn=preexec_fn)


def assert_one_line_error(result, fragment):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:") and fragment in " ".join(lines), result.stderr
