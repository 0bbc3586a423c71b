"""End-to-end runtime speed and flicker on the shared video.

    python benchmarks/bench_runtime.py --video ../shared/media/short_hamilton_clip.mp4

Runs `faceparse-edge video`'s loop (decode, track, detect, parse, draw, encode) with flip
TTA on, at several smoothing weights, several times each; reports median FPS over all
frames and over the frames with one face, per-stage milliseconds, and flicker (raw and
motion-compensated, in an untimed pass). Writes benchmarks/results/runtime.{md,json}.
"""

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import cv2
import numpy as np

from faceparse_edge.evaluation import evaluate_backend
from faceparse_edge.fileio import write_text_atomic
from faceparse_edge.metrics import SegmentationMetrics
from faceparse_edge.runtime.pipeline import Pipeline
from faceparse_edge.runtime.video import STAGES, flicker, run_stream
from faceparse_edge.sysinfo import describe, machine_info
from faceparse_edge.toolkit.data import list_samples, load_pair

RESULTS = Path(__file__).resolve().parent / "results"
REPEAT_LEVELS = 0.5  # mean grey-level change below which a frame repeats the previous one (compression noise)
FLICKERS = ("flicker", "flicker_compensated", "flicker_repeated_frames")


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


def quality(model, video, smoothing: float, detect_every: int) -> dict:
    """Flicker, raw and motion-compensated, and agreement with the unsmoothed parse (untimed).

    Raw flicker counts every label change, including those that follow a moving face;
    motion-compensated flicker first moves the previous frame's labels along dense
    Farneback flow over the whole frame (independent of the runtime's own crop flow), so
    only changes that the scene's motion does not explain count. Flicker on repeated frames:
    the shared video is 24 fps film in 29.97 fps, so every fifth frame repeats the one before
    (differs by compression noise only); there no label change is motion. Agreement: share of
    face pixels labelled as a smoothing-off pipeline labels them on the same frames (how far
    smoothing departs from the per-frame parse).
    """
    smoothed = Pipeline(model, tta=True, detect_every=detect_every, smoothing=smoothing)
    plain = Pipeline(model, tta=True, detect_every=detect_every, smoothing=0.0)
    cap = cv2.VideoCapture(str(video))
    raw, compensated, repeated, agreement = [], [], [], []
    previous = previous_gray = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        rgb, gray = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        result, reference = smoothed(rgb), plain(rgb)
        faces = (result.labels > 0) | (reference.labels > 0)
        if faces.any():
            agreement.append(float((result.labels[faces] == reference.labels[faces]).mean()))
        if (value := flicker(previous, result)) is not None:
            raw.append(value)
            compensated.append(flicker(previous, result, _flow_warp(gray, previous_gray)))
            if cv2.absdiff(gray, previous_gray).mean() < REPEAT_LEVELS:
                repeated.append(value)
        previous, previous_gray = result, gray
    return {"flicker": round(float(np.mean(raw)), 4), "flicker_compensated": round(float(np.mean(compensated)), 4),
            "flicker_repeated_frames": round(float(np.mean(repeated)), 4), "repeated_frames": len(repeated),
            "agreement_with_unsmoothed": round(float(np.mean(agreement)), 4)}


def _flow_warp(gray, previous_gray):
    """A function that moves previous-frame arrays to the current frame along dense optical flow."""
    flow = cv2.calcOpticalFlowFarneback(gray, previous_gray, None, 0.5, 4, 21, 3, 7, 1.5, 0)
    h, w = gray.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    return lambda a: cv2.remap(a, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="../shared/media/short_hamilton_clip.mp4")
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--detect-every", type=int, default=5)
    parser.add_argument("--data", default="../shared/data/celebamask-mini")
    args = parser.parse_args()

    parity = runtime_vs_evaluate(args.model, args.data)
    print(parity, flush=True)
    out = Path(tempfile.mkdtemp()) / "out.mp4"
    settings = (("smoothing 0.7 (default)", 0.7), ("smoothing 0.5", 0.5), ("smoothing 0.9", 0.9), ("smoothing off", 0.0))
    timed = {label: [] for label, _ in settings}
    for _ in range(args.repeats):  # interleaved, so machine noise spreads over all settings
        for label, smoothing in settings:
            pipeline = Pipeline(args.model, threads=args.threads, tta=True, detect_every=args.detect_every,
                                smoothing=smoothing)
            timed[label].append(run_stream(pipeline, args.video, out))
    rows = []
    for label, smoothing in settings:
        runs = timed[label]
        rows.append({
            "setting": label, "frames": runs[0]["frames"],
            "fps_median": statistics.median(r["fps"] for r in runs), "fps_runs": [r["fps"] for r in runs],
            "fps_one_face_median": statistics.median(r["fps_by_faces"]["1"] for r in runs),
            "frames_by_faces": runs[0]["frames_by_faces"],
            "ms": {k: statistics.median(r["ms"][k] for r in runs) for k in STAGES},
            "faces_per_frame": runs[0]["faces_per_frame"], "backend": runs[0]["backend"],
            "precision": runs[0]["precision"],
            **quality(args.model, args.video, smoothing, args.detect_every),
        })
        print(rows[-1], flush=True)
    off = rows[-1]
    reductions = {r["setting"]: {k: round(off[k] / r[k], 2) for k in FLICKERS}
                  for r in rows[:-1]}
    machine = machine_info(args.threads)
    md = [f"# Runtime on {Path(args.video).name}\n", f"Machine: {describe(machine)}\n",
          f"Flip TTA on, {args.threads} threads, detector every {args.detect_every} frames, backend "
          f"{rows[0]['backend']} ({rows[0]['precision']}); median of {args.repeats} interleaved runs. Command: `python benchmarks/bench_runtime.py`.\n",
          f"Frames by number of faces found: {rows[0]['frames_by_faces']}.\n",
          "| setting | FPS, all frames | FPS, frames with one face | decode | track | detect | infer | draw | write "
          "| flicker | motion-compensated flicker | flicker on repeated frames | agreement with unsmoothed |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['setting']} | {r['fps_median']} | {r['fps_one_face_median']} | "
           + " | ".join(f"{r['ms'][k]:.2f}" for k in STAGES)
           + f" | {r['flicker']} | {r['flicker_compensated']} | {r['flicker_repeated_frames']} "
             f"| {r['agreement_with_unsmoothed']} |" for r in rows]
    md.append("\nMilliseconds are per frame, averaged over all frames. Flicker reduction (smoothing off / on; "
              "below 1x, smoothing raised it): "
              + ", ".join(f"{k}: {v['flicker']}x raw, {v['flicker_compensated']}x motion-compensated, "
                          f"{v['flicker_repeated_frames']}x on repeated frames" for k, v in reductions.items()))
    md.append(f"\nVal mIoU with flip TTA through the runtime pipeline (--no-detect): {parity['runtime_miou']}; "
              f"through `evaluate` on the same ONNX model: {parity['evaluate_miou']}.")
    md.append("\nFlicker: share of face pixels whose label changes between consecutive frames, among the "
              "pixels inside both frames' crops of a face tracked through both. Motion-compensated: the same "
              "after moving the previous frame's labels along dense optical flow (Farneback, whole frame). "
              f"Repeated frames: the video is 24 fps film in 29.97 fps, so one frame in five repeats the one "
              f"before (mean change under {REPEAT_LEVELS} grey levels, {rows[0]['repeated_frames']} such frame pairs "
              "with a tracked face); a label change there is the parser's own instability, not motion.")
    write_text_atomic(RESULTS / "runtime.md", "\n".join(md) + "\n")
    write_text_atomic(RESULTS / "runtime.json", json.dumps({"machine": machine, "rows": rows, "flicker_reduction": reductions, "accuracy": parity}, indent=2))
    print("\n".join(md))


if __name__ == "__main__":
    main()
