"""Peak resident memory of the runtime: `faceparse-edge video` on the shared clip and one photo through the API,
per model and backend, each in a fresh process (its own peak, read by wait4).

    python benchmarks/bench_memory.py --media ../shared/media

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
    args = parser.parse_args()
    cli = [sys.executable, "-m", "faceparse_edge"]
    rows = [{"what": "imports of the runtime", "model": "", "backend": "", "peak_mb": peak_mb([sys.executable, "-c", IMPORTS])}]
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("edge", "edge-hq"):
            for backend in ("onnxruntime", "openvino"):
                photo = peak_mb([sys.executable, "-c", PHOTO_CODE, model, backend, str(args.media / PHOTO)])
                video = peak_mb([*cli, "video", str(args.media / VIDEO), "--no-show", "-m", model, "--backend", backend,
                                 "--out", str(Path(tmp) / "out.mp4")])
                rows += [{"what": f"one photo ({PHOTO}) through Parser.parse", "model": model, "backend": backend,
                          "peak_mb": photo},
                         {"what": f"faceparse-edge video {VIDEO} --out", "model": model, "backend": backend,
                          "peak_mb": video}]
                print(rows[-2:], flush=True)
    machine = machine_info()
    md = ["# Peak resident memory of the runtime\n", f"Machine: {describe(machine)}\n",
          f"Command: `python benchmarks/bench_memory.py --media {args.media}`; each row one fresh process "
          "(flip TTA, RetinaFace, the defaults).\n",
          markdown_table(("run", "model", "backend", "peak MB"),
                         [(r["what"], r["model"], r["backend"], f"{r['peak_mb']:.0f}") for r in rows])]
    save(args.out, "\n".join(md), {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
