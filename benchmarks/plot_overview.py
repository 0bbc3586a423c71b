"""The README's picture: val mIoU against latency for every shipped model, format and precision, from a saved
`faceparse-edge benchmark` run (no new measurement).

    python benchmarks/plot_overview.py [--results benchmarks/results/amx]

Reads RESULTS/benchmark.json (`faceparse-edge benchmark -m edge -m edge-hq --data ...`) and writes
benchmarks/results/overview.png.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from common import RESULTS  # noqa: E402
from faceparse_edge.fileio import atomic_path  # noqa: E402

COLOURS = {"edge": "#1f77b4", "edge-hq": "#d95f02"}
MARKERS = {("PyTorch eager", "fp32"): "X", ("ONNX Runtime", "fp32"): "o", ("ONNX Runtime", "int8"): "s",
           ("OpenVINO", "fp32"): "^", ("OpenVINO", "int8"): "D"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS / "amx")
    args = parser.parse_args()
    run = json.loads((args.results / "benchmark.json").read_text())
    rows = [r for r in run["rows"] if r["status"] == "ok" and r["execution"] in ("f32", "bf16")]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for r in rows:
        bf16 = r["execution"] == "bf16"
        ax.scatter(r["p50_ms"], r["miou"], s=70, color=COLOURS[r["model"]], marker=MARKERS[r["format"], r["precision"]],
                   facecolors="none" if bf16 else COLOURS[r["model"]], linewidths=1.5, zorder=3)
    for model, colour in COLOURS.items():
        ax.scatter([], [], color=colour, marker="o", label=f"{model}")
    for (fmt, precision), marker in MARKERS.items():
        ax.scatter([], [], color="grey", marker=marker, label=f"{fmt} {precision.upper()}")
    ax.scatter([], [], color="grey", marker="^", facecolors="none", label="OpenVINO, bf16 execution")
    ax.set_xscale("log")
    ax.set_xticks([2, 3, 5, 10, 20, 50], labels=["2", "3", "5", "10", "20", "50"])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("latency per image, batch 1, 2 threads (ms, median)")
    ax.set_ylabel("val mIoU (celebamask-mini, no TTA)")
    ax.set_title(f"faceparse-edge: accuracy against speed ({run['machine']['cpu']}, {args.results.name} CPU kind)",
                 fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="center right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    out = RESULTS / "overview.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(f"wrote {out} from {args.results / 'benchmark.json'}")


if __name__ == "__main__":
    main()
