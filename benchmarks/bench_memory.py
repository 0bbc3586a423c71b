"""Peak resident memory of the runtime: `faceparse-edge video` on the shared clip and one photo through the API,
per model and backend, each in a fresh process (its own peak, read by wait4), several times: the allocators'
arenas make the peak of identical runs differ, and the highest is what a board must hold.

    python benchmarks/bench_memory.py --media ../shared/media [--repeats 3]

A small board shares its memory with its OS and camera (a Raspberry Pi 4/5 with 2 GB, a Pi Zero 2 W with
512 MB). Writes benchmarks/results/<avx2|vnni|amx>/memory.{md,json}.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import MACHINE_RESULTS as RESULTS, save
from faceparse_edge.sysinfo import describe, machine_info
from faceparse_edge.tables import markdown_table

VIDEO, PHOTO = "short_hamilton_clip.mp4", "obama-720p.jpg"
IMPORTS = "import faceparse_edge.runtime.pipeline"  # the runtime's imports alone: numpy, OpenCV, the backends' modules
PHOTO_CODE = "from faceparse_edge import Parser; import sys; Parser(sys.argv[1], backend=sys.argv[2]).parse(sys.argv[3])"


def peak_mb(command: list[str]) -> float:
    """The peak resident memory of a command's process (MB), which must succeed."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}: {process.stderr.read().decode()[-300:]}")
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--out", type=Path, default=RESULTS / "memory")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per row; the highest peak is reported")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "faceparse_edge"]

    def row(what, model, backend, command):
        runs = [round(peak_mb(command)) for _ in range(args.repeats)]
        return {"what": what, "model": model, "backend": backend, "peak_mb": max(runs), "runs_mb": runs}

    rows = [row("imports of the runtime", "", "", [sys.executable, "-c", IMPORTS])]
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("edge", "edge-hq"):
            for backend in ("onnxruntime", "openvino"):
                rows += [row(f"one photo ({PHOTO}) through Parser.parse", model, backend,
                             [sys.executable, "-c", PHOTO_CODE, model, backend, str(args.media / PHOTO)]),
                         row(f"faceparse-edge video {VIDEO} --out", model, backend,
                             [*cli, "video", str(args.media / VIDEO), "--no-show", "-m", model, "--backend", backend,
                              "--out", str(Path(tmp) / "out.mp4")])]
                print(rows[-2:], flush=True)
    machine = machine_info()
    md = ["# Peak resident memory of the runtime\n", f"Machine: {describe(machine)}\n",
          f"Command: `python benchmarks/bench_memory.py --media {args.media} --repeats {args.repeats}`; each run a fresh "
          "process (flip TTA, RetinaFace, the defaults); peak: the highest of the runs.\n",
          markdown_table(("run", "model", "backend", "peak MB", "runs MB"),
                         [(r["what"], r["model"], r["backend"], r["peak_mb"], ", ".join(map(str, r["runs_mb"])))
                          for r in rows])]
    save(args.out, "\n".join(md), {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
