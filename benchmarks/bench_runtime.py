"""End-to-end runtime speed and flicker on the shared video.

    python benchmarks/bench_runtime.py --video ../shared/media/short_hamilton_clip.mp4

Runs `faceparse-edge video`'s loop (decode, detect, parse, draw, encode) with flip TTA on,
with and without temporal smoothing, several times each; reports median FPS and per-stage
milliseconds, and flicker: the share of face pixels whose label changes between
consecutive frames. Writes benchmarks/results/runtime.{md,json}.
"""

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from faceparse_edge.evaluation import evaluate_backend
from faceparse_edge.fileio import write_text_atomic
from faceparse_edge.metrics import SegmentationMetrics
from faceparse_edge.runtime.pipeline import Pipeline
from faceparse_edge.runtime.video import STAGES, run_stream
from faceparse_edge.toolkit.data import list_samples, load_pair

RESULTS = Path(__file__).resolve().parent / "results"


def runtime_vs_evaluate(model, data) -> dict:
    """Val mIoU through the runtime pipeline (--no-detect) and through `evaluate`'s backend path."""
    pipeline = Pipeline(model, tta=True, detect=False)
    samples = list_samples(data, "val")
    metrics = SegmentationMetrics()
    for image, mask in map(load_pair, samples):
        metrics.update(pipeline(image).labels, mask)
    info = pipeline.info
    expected, _ = evaluate_backend(pipeline.backend, samples, load_pair, info.input_size, info.mean, info.std,
                                   tta=True, show_progress=False)
    return {"runtime_miou": round(metrics.result()["miou"], 3), "evaluate_miou": round(expected["miou"], 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="../shared/media/short_hamilton_clip.mp4")
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--detect-every", type=int, default=3)
    parser.add_argument("--data", default="../shared/data/celebamask-mini")
    args = parser.parse_args()

    parity = runtime_vs_evaluate(args.model, args.data)
    print(parity, flush=True)
    out = Path(tempfile.mkdtemp()) / "out.mp4"
    rows = []
    for label, smoothing in (("smoothing 0.5 (default)", 0.5), ("smoothing 0.8", 0.8), ("smoothing off", 0.0)):
        runs = []
        for _ in range(args.repeats):
            pipeline = Pipeline(args.model, threads=args.threads, tta=True, detect_every=args.detect_every,
                                smoothing=smoothing)
            runs.append(run_stream(pipeline, args.video, out))
        fps = statistics.median(r["fps"] for r in runs)
        rows.append({
            "setting": label, "frames": runs[0]["frames"], "fps_median": fps, "fps_runs": [r["fps"] for r in runs],
            "ms": {k: statistics.median(r["ms"][k] for r in runs) for k in STAGES},
            "faces_per_frame": runs[0]["faces_per_frame"], "flicker": runs[0]["flicker"],
            "backend": runs[0]["backend"],
        })
        print(rows[-1], flush=True)
    off = rows[-1]["flicker"]
    reductions = {r["setting"]: round(off / r["flicker"], 2) for r in rows[:-1] if r["flicker"]}
    md = [f"# Runtime on {Path(args.video).name}\n",
          f"Flip TTA on, {args.threads} threads, detector every {args.detect_every} frames, backend "
          f"{rows[0]['backend']}; median of {args.repeats} runs. Command: `python benchmarks/bench_runtime.py`.\n",
          "| setting | frames | FPS (end to end) | decode | detect | infer | draw | write | faces/frame | flicker |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['setting']} | {r['frames']} | {r['fps_median']} | " + " | ".join(f"{r['ms'][k]:.2f}" for k in STAGES)
           + f" | {r['faces_per_frame']} | {r['flicker']} |" for r in rows]
    md.append("\nFlicker without smoothing / with smoothing: "
              + ", ".join(f"{k}: {v}x" for k, v in reductions.items()))
    md.append(f"\nVal mIoU with flip TTA through the runtime pipeline (--no-detect): {parity['runtime_miou']}; "
              f"through `evaluate` on the same ONNX model: {parity['evaluate_miou']}.")
    md.append("\nFlicker: share of face pixels (inside the crops of faces tracked through both frames) whose "
              "label changes between consecutive frames.")
    write_text_atomic(RESULTS / "runtime.md", "\n".join(md) + "\n")
    write_text_atomic(RESULTS / "runtime.json", json.dumps({"rows": rows, "flicker_reduction": reductions, "accuracy": parity}, indent=2))
    print("\n".join(md))


if __name__ == "__main__":
    main()
