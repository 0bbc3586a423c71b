"""The aarch64 check's report: the arm64 side's runtime tests, faces and label maps against x86_64's.

    python tools/aarch64_report.py X86_DIR ARM_RUN_DIR OUT_DIR   (tools/check_aarch64.sh runs it)

X86_DIR and ARM_RUN_DIR/arm64 hold tools/aarch64_runs.sh's outputs; ARM_RUN_DIR also the emulated
install's test log, pip freeze and timing. Writes OUT_DIR/check.{md,json}.
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from faceparse_edge.fileio import write_text_atomic  # noqa: E402
from faceparse_edge.sysinfo import describe, machine_info  # noqa: E402
from faceparse_edge.tables import markdown_table  # noqa: E402


def read(path: Path, default: str = "") -> str:
    return path.read_text().strip() if path.is_file() else default


def label_rows(x86: Path, arm: Path) -> list[dict]:
    """One row per run (model, backend): faces found on each side and the share of equal label pixels per photo."""
    rows = []
    for summary in sorted(x86.glob("*.json")):
        if summary.name == "video.json":
            continue
        run = summary.stem
        row = {"run": run, "photos": {}}
        arm_summary = arm / summary.name
        if not arm_summary.is_file():
            row["error"] = "no arm64 output"
            rows.append(row)
            continue
        faces = [json.loads(p.read_text()) for p in (summary, arm_summary)]
        row["faces_x86_64"], row["faces_arm64"] = (_faces(f) for f in faces)
        for png in sorted((x86 / run).glob("*.png")):
            if png.stem.endswith("_overlay"):
                continue
            other = arm / run / png.name
            if not other.is_file():
                row["photos"][png.stem] = None
                continue
            a, b = np.asarray(Image.open(png)), np.asarray(Image.open(other))
            row["photos"][png.stem] = round(100 * float((a == b).mean()), 4) if a.shape == b.shape else 0.0
        rows.append(row)
    return rows


def _faces(records) -> int:
    """Faces found over the photos in an `image --json` summary (one record per photo)."""
    return sum(len(record["faces"]) for record in records)


def main():
    x86, run, out = map(Path, sys.argv[1:4])
    arm = run / "arm64"
    tests = read(run / "tests.txt")
    summary_line = next((line for line in reversed(tests.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "")
    failed = [line.split(" ", 1)[1] for line in tests.splitlines() if line.startswith("FAILED ")]
    video = {side: json.loads(p.read_text()) if p.is_file() else {} for side, p in
             (("x86_64", x86 / "video.json"), ("arm64", arm / "video.json"))}
    rows = label_rows(x86, arm)
    result = {
        "x86_64_machine": machine_info(),
        "arm64": {"uname": read(run / "uname.txt"), "python": read(run / "python.txt"),
                  "emulated_seconds": int(read(run / "emulated_seconds.txt", "0") or 0),
                  "tests_status": read(run / "tests_status.txt"), "tests_summary": summary_line, "tests_failed": failed,
                  "packages": read(run / "freeze.txt").splitlines()},
        "photos": rows,
        "video": {side: {k: v.get(k) for k in ("frames", "frames_with_face", "detector", "backend")}
                  for side, v in video.items()},
    }
    md = ["# aarch64 check: a Debian 13 arm64 root under qemu-user against x86_64\n",
          "Command: `make check-aarch64` (tools/check_aarch64.sh). The arm64 side installs the runtime with "
          "`pip install -c constraints.txt -e \".[openvino]\"` in a debootstrapped Debian 13 (trixie) arm64 root "
          "and runs the runtime tests and tools/aarch64_runs.sh's commands there, emulated; the x86_64 side runs "
          "the same commands natively. Emulated speed says nothing about a real board's.\n",
          f"x86_64: {describe(result['x86_64_machine'])}\n",
          f"arm64: {result['arm64']['uname']}, {result['arm64']['python']}; emulated part "
          f"{result['arm64']['emulated_seconds']} s; runtime tests: {summary_line or 'no summary'} "
          f"(exit status {result['arm64']['tests_status']}).\n",
          *(["Failed under emulation:\n", *(f"- {name}" for name in failed), ""] if failed else []),
          markdown_table(("run (model, backend)", "faces x86_64", "faces arm64",
                          *sorted({p for r in rows for p in r["photos"]})),
                         ((r["run"], r.get("faces_x86_64", "-"), r.get("faces_arm64", r.get("error", "-")),
                           *(f"{v:.4f}%" if v is not None else "missing" for _, v in sorted(r["photos"].items())))
                          for r in rows)),
          "\nPhoto columns: the share of label pixels equal on both sides.\n",
          f"Video ({video['x86_64'].get('frames', '?')} frames): frames with a parsed face, x86_64 "
          f"{video['x86_64'].get('frames_with_face')}, arm64 {video['arm64'].get('frames_with_face')}."]
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "check.md", "\n".join(md) + "\n")
    write_text_atomic(out / "check.json", json.dumps(result, indent=2) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
