"""End-to-end video speed of the shipped models side by side: the live runtime's frame rate
with flip TTA on the shared video, for `edge` (the default) and `edge-hq`.

    python benchmarks/bench_models.py

Each model runs the whole pipeline (decode, detect every 5 frames, track, align, parse with
flip TTA, smooth, draw, write) `--repeats` times, the models interleaved so that machine
noise spreads over both; the table gives the median FPS over all frames and over the frames
with exactly one face (issue 34's goal: the default model at 60 FPS or more there, flip TTA on).
`--backends onnxruntime openvino` runs each model on both backends side by side. Writes
benchmarks/results/<avx2|vnni|amx>/models_video.{md,json}. Not a test.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import MACHINE_RESULTS as RESULTS, save
from faceparse_edge.runtime.pipeline import Parser
from faceparse_edge.runtime.video import run_stream
from faceparse_edge.sysinfo import cpu_times, describe, machine_info
from faceparse_edge.tables import markdown_table
from faceparse_edge.models import MODELS



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="../shared/media/short_hamilton_clip.mp4")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["auto"], choices=["auto", "onnxruntime", "openvino"])
    parser.add_argument("--follow-person", action="store_true",
                        help="also run each model with follow_person (labels continued over the person)")
    args = parser.parse_args()
    start = cpu_times()  # the run's CPU steal goes into the results

    out = Path(tempfile.mkdtemp()) / "out.mp4"
    variants = [(name, backend, follow) for name in args.models for backend in args.backends
                for follow in ((False, True) if args.follow_person else (False,))]
    runs, sizes = {v: [] for v in variants}, {}
    for _ in range(args.repeats):
        for name, backend, follow in variants:
            pipeline = Parser(name, backend=backend, threads=args.threads, tta=True, detect_every=5, smoothing=0.9,
                              follow_person=follow)
            sizes[name] = pipeline.info.input_size
            run = run_stream(pipeline, args.video, out)
            runs[name, backend, follow].append(run)
            print(name, run["backend"], follow, run["fps"], run["fps_by_faces"].get("1"), flush=True)
    rows = [{"model": name, "backend": rs[0]["backend"], "follow_person": follow, "input_size": sizes[name],
             "fps_median": statistics.median(r["fps"] for r in rs),
             "fps_one_face_median": statistics.median(r["fps_by_faces"]["1"] for r in rs),
             "fps_runs": [r["fps"] for r in rs], "model_ms_median": statistics.median(r["ms"]["model"] for r in rs),
             "model_fraction_median": statistics.median(r["model_fraction"] for r in rs), "detector": rs[0]["detector"],
             "person_ms_median": statistics.median(r["ms"]["person"] for r in rs),
             "frames": rs[0]["frames"], "frames_by_faces": rs[0]["frames_by_faces"]} for (name, _, follow), rs in runs.items()]
    machine = machine_info(args.threads, since=start)
    md = [f"# Shipped models on {Path(args.video).name}, end to end\n", f"Machine: {describe(machine)}\n",
          f"Flip TTA on, {args.threads} threads, detector every 5 frames, smoothing 0.9 (the `video` defaults), "
          f"FP32; median of {args.repeats} interleaved runs. Following the person: labels continued past the "
          "faces' views over a person segmenter's mask (`--follow-person`; its ms/frame include the segmenter). "
          f"Command: `{' '.join(['python', 'benchmarks/bench_models.py', *sys.argv[1:]])}`.\n",
          markdown_table(("model", "backend", "following the person", "input", "detector", "FPS, all frames",
                          "FPS, frames with one face", "model ms/frame", "following ms/frame", "model share of the time",
                          "runs (FPS)"),
                         ((r["model"], r["backend"], "yes" if r["follow_person"] else "no", r["input_size"], r["detector"],
                           f"{r['fps_median']:.2f}", f"{r['fps_one_face_median']:.2f}", f"{r['model_ms_median']:.2f}",
                           f"{r['person_ms_median']:.2f}", r["model_fraction_median"],
                           ", ".join(f"{v:.2f}" for v in r["fps_runs"])) for r in rows))]
    save(RESULTS / "models_video", "\n".join(md), {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
