"""End-to-end runtime speed and flicker on the shared video, and steadiness on the shared photos.

    python benchmarks/bench_runtime.py --video ../shared/media/short_hamilton_clip.mp4

Runs `faceparse-edge video`'s loop (decode, track, detect, parse, draw, encode) with flip
TTA on, at several smoothing weights, several times each; reports median FPS over all
frames and over the frames with one face, per-stage milliseconds, and flicker (raw and
motion-compensated, in an untimed pass). Then the photos held still and moved along a
known path (faceparse_edge/runtime/steadiness.py), and val mIoU through the detect-and-align path on
upright and turned val images, beside the exact crop's and what a given framing error costs.
Writes benchmarks/results/<avx2|vnni|amx>/runtime.{md,json}.
"""

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import cv2
import numpy as np

from common import MACHINE_RESULTS as RESULTS, SHOTS, save
from faceparse_edge.evaluation import evaluate_backend
from faceparse_edge.fileio import read_image
from faceparse_edge.metrics import SegmentationMetrics
from faceparse_edge.runtime import align, steadiness
from faceparse_edge.runtime.crop_rule import CropRule, rule_file
from faceparse_edge.runtime.pipeline import Parser
from faceparse_edge.runtime.steadiness import flicker
from faceparse_edge.runtime.video import STAGES, run_stream
from faceparse_edge.sysinfo import cpu_times, describe, machine_info
from faceparse_edge.tables import markdown_table
from faceparse_edge.toolkit.samples import list_samples, load_pair

REPEAT_LEVELS = 0.5  # mean grey-level change below which a frame repeats the previous one (compression noise)
FLICKERS = ("flicker", "flicker_compensated", "flicker_repeated_frames")


def runtime_vs_evaluate(model, data) -> dict:
    """Val mIoU through the runtime pipeline (--no-detect) and through `evaluate`'s backend path."""
    pipeline = Parser(model, tta=True, detect=False)
    samples = list_samples(data, "val")
    metrics = SegmentationMetrics()
    for image, mask in map(load_pair, samples):
        metrics.update(pipeline(image).labels, mask)
    info = pipeline.info
    expected, _ = evaluate_backend(pipeline.backend, samples, load_pair, info.input_size, info.mean, info.std,
                                   tta=True, context=info.context, show_progress=False)
    return {"runtime_miou": round(metrics.result()["miou"], 3), "evaluate_miou": round(expected["miou"], 3),
            "per_class_iou": metrics.result()["per_class_iou"]}


def turned_val(pairs, angle: float):
    """Each val pair turned by `angle` about its centre (reflected border): the image, the truth (255 where it
    came from outside the image: not scored) and the exact crop (the val image's own frame, turned likewise)."""
    for image, mask in pairs:
        h, w = mask.shape
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        turned = cv2.warpAffine(image, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        truth = cv2.warpAffine(mask, turn, (w, h), flags=cv2.INTER_NEAREST, borderValue=255)
        exact = np.diag([1 / w, 1 / h]) @ cv2.invertAffineTransform(turn)  # turned frame -> unit crop
        yield turned, truth, exact


@dataclasses.dataclass
class GivenCrop:
    """A crop rule that ignores the detection: every face is cropped with `m`."""

    m: np.ndarray

    def transform(self, box, landmarks=None) -> np.ndarray:
        return self.m


def through_detection(pipeline: Parser, pairs, angle: float, move: np.ndarray | None = None) -> dict:
    """Val mIoU through detection, cropping and pasting, the faces found and the crops' mean corner error.

    With `move` (3x3, unit crop coordinates), every face is cropped with the exact crop moved by it
    instead of the crop rule's (the pipeline's rule is replaced). Corner error: the mean absolute corner coordinate error as a share of the
    crop's side. Labels outside the face's crop count as background.
    """
    metrics, found, errors = SegmentationMetrics(), 0, []
    for turned, truth, exact in turned_val(pairs, angle):
        if move is not None:
            pipeline.rule = GivenCrop((move @ np.vstack([exact, [0, 0, 1]]))[:2])
        pipeline.reset()
        result = pipeline(turned)
        if result.faces:
            found += 1
            crop = align.widened(result.faces[0].crop, 1 / pipeline.info.context)  # the face's crop, not its view
            errors.append(align.corner_error(crop, exact))
        scored = truth != 255
        metrics.update(result.labels[scored], truth[scored])
    return {"miou": round(metrics.result()["miou"], 2), "found": found, "per_class_iou": metrics.result()["per_class_iou"],
            "corner_error": round(float(np.mean(errors)), 4) if errors else None}


def aligned_accuracy(model, pairs, detectors=("retinaface", "yunet"), angles=(0, 15, 30)) -> list[dict]:
    """Val mIoU through detection and cropping (flip TTA) on upright and turned val images: with the
    landmark alignment, with box-only squares, and with the exact crop (what a perfect detector would give)."""
    rows = []
    for detector in detectors:
        rule = CropRule.load(rule_file(detector))
        for angle in angles:
            row = {"detector": detector, "angle": angle}
            for name, r in (("landmarks", rule), ("box", dataclasses.replace(rule, template=None))):
                pipeline = Parser(model, tta=True, smoothing=0.0, rule=r, detector=detector)
                row[name] = through_detection(pipeline, pairs, angle)
            if detector == detectors[0]:
                row["exact"] = through_detection(pipeline, pairs, angle, move=np.eye(3))
            rows.append(row)
            print({k: {n: v for n, v in r.items() if n != "per_class_iou"} if isinstance(r, dict) else r
                   for k, r in row.items()}, flush=True)
    return rows


def framing_cost(model, pairs, errors=(0.0025, 0.005, 0.01, 0.02)) -> list[dict]:
    """Upright val mIoU with the exact crop moved ten ways by each corner error e: shifted by 2e along
    either axis (four moves), by e along both (four), and scaled by 1 +- 2e about its centre (two).

    How much of the parse's accuracy a detector's framing error costs, whatever detector frames it,
    and how far small moves alone spread the score on 100 images.
    """
    pipeline = Parser(model, tta=True, smoothing=0.0, detector="retinaface")  # finds the face; the crop is given
    rows = []
    for e in errors:
        shifts = [(2 * e * dx, 2 * e * dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        shifts += [(e * dx, e * dy) for dx in (1, -1) for dy in (1, -1)]
        moves = [np.array([[1, 0, -tx], [0, 1, -ty], [0, 0, 1]]) for tx, ty in shifts]
        moves += [np.array([[1 / s, 0, 0.5 - 0.5 / s], [0, 1 / s, 0.5 - 0.5 / s], [0, 0, 1]]) for s in (1 + 2 * e, 1 - 2 * e)]
        scores = [through_detection(pipeline, pairs, 0, move)["miou"] for move in moves]
        rows.append({"corner_error": e, "miou_mean": round(float(np.mean(scores)), 2), "miou_min": min(scores),
                     "miou_max": max(scores), "miou_std": round(float(np.std(scores)), 2), "moves": len(moves)})
        print(rows[-1], flush=True)
    return rows


def steady(model, media, settings) -> list[dict]:
    """Still and moving photo sequences (runtime/steadiness.py) for each smoothing setting."""
    photos = {p.name: read_image(p) for p in sorted(Path(media).iterdir()) if p.suffix.lower() in (".jpg", ".png")}
    plain = Parser(model, tta=True, smoothing=0.0)
    rows = []
    for label, smoothing in settings:
        smoothed = Parser(model, tta=True, smoothing=smoothing)
        for name, photo in photos.items():
            still = steadiness.measure(smoothed, plain, steadiness.still(photo))
            moving = steadiness.measure(smoothed, plain, steadiness.moving(photo))
            rows.append({"setting": label, "photo": name, "still_flicker_off": round(still["flicker_off"], 4),
                         "still_flicker_on": round(still["flicker_on"], 4),
                         "still_reduction": round(still["flicker_off"] / max(still["flicker_on"], 1e-9), 2),
                         "moving_agreement": round(moving["agreement"], 4)})
            print(rows[-1], flush=True)
    return rows


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
    smoothed = Parser(model, tta=True, detect_every=detect_every, smoothing=smoothing)
    plain = Parser(model, tta=True, detect_every=detect_every, smoothing=0.0)
    cap = cv2.VideoCapture(str(video))
    raw, compensated, repeated, agreement, faces_found = [], [], [], [], []
    previous = previous_gray = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        rgb, gray = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        result, reference = smoothed(rgb), plain(rgb)
        faces_found.append(len(result.faces))
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
            "agreement_with_unsmoothed": round(float(np.mean(agreement)), 4),
            "frames_with_face_per_shot": [sum(n > 0 for n in faces_found[a:z]) for a, z in SHOTS],
            "faces_per_frame_per_shot": [round(float(np.mean(faces_found[a:z])), 2) for a, z in SHOTS]}


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
    parser.add_argument("--media", default="../shared/media")
    args = parser.parse_args()
    start = cpu_times()  # the run's CPU steal goes into the results

    parity = runtime_vs_evaluate(args.model, args.data)
    print(parity, flush=True)
    out = Path(tempfile.mkdtemp()) / "out.mp4"
    settings = (("smoothing 0.9 (default)", 0.9), ("smoothing 0.7", 0.7), ("smoothing 0.5", 0.5), ("smoothing off", 0.0))
    timed = {label: [] for label, _ in settings}
    for _ in range(args.repeats):  # interleaved, so machine noise spreads over all settings
        for label, smoothing in settings:
            pipeline = Parser(args.model, threads=args.threads, tta=True, detect_every=args.detect_every,
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
            "model_fraction": statistics.median(r["model_fraction"] for r in runs),
            "frames_with_face": runs[0]["frames_with_face"], "detector": runs[0]["detector"],
            "faces_per_frame": runs[0]["faces_per_frame"], "backend": runs[0]["backend"],
            "precision": runs[0]["precision"],
            **quality(args.model, args.video, smoothing, args.detect_every),
        })
        print(rows[-1], flush=True)
    steady_rows = steady(args.model, args.media, settings[:-1])
    val_pairs = [load_pair(s) for s in list_samples(args.data, "val")]
    turned = aligned_accuracy(args.model, val_pairs)
    framing = framing_cost(args.model, val_pairs)
    off = rows[-1]
    reductions = {r["setting"]: {k: round(off[k] / r[k], 2) for k in FLICKERS}
                  for r in rows[:-1]}
    machine = machine_info(args.threads, since=start)
    md = [f"# Runtime on {Path(args.video).name}\n", f"Machine: {describe(machine)}\n",
          f"Flip TTA on, {args.threads} threads, detector {rows[0]['detector']} every {args.detect_every} frames, backend "
          f"{rows[0]['backend']} ({rows[0]['precision']}); median of {args.repeats} interleaved runs. Command: `python benchmarks/bench_runtime.py`.\n",
          f"Frames by number of faces found: {rows[0]['frames_by_faces']}; frames with a parsed face: "
          f"{rows[0]['frames_with_face']} of {rows[0]['frames']}.\n",
          markdown_table(("setting", "FPS, all frames", "FPS, frames with one face", "model share of the time", *STAGES,
                          "flicker", "motion-compensated flicker", "flicker on repeated frames", "agreement with unsmoothed"),
                         ((r["setting"], r["fps_median"], r["fps_one_face_median"], r["model_fraction"],
                           *(f"{r['ms'][k]:.2f}" for k in STAGES),
                           r["flicker"], r["flicker_compensated"], r["flicker_repeated_frames"],
                           r["agreement_with_unsmoothed"]) for r in rows))]
    md.append("\nMilliseconds are per frame, averaged over all frames (draw and write run on a background thread beside the parsing of the next frames, so they are not on the frame's path). Model share: the model calls' time over the wall time. Flicker reduction (smoothing off / on; "
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
    shots = " / ".join(f"{a}-{z - 1}" for a, z in SHOTS)
    md.append(f"\nFaces parsed per shot (frames {shots}), default setting: frames with a face "
              f"{rows[0]['frames_with_face_per_shot']} of {[z - a for a, z in SHOTS]}, faces per frame "
              f"{rows[0]['faces_per_frame_per_shot']}.")
    md += ["\n## Steadiness on the shared photos\n",
           f"Each photo scaled to {steadiness.FRAME_SIDE} px, 60 frames, each with Gaussian noise (sigma "
           f"{steadiness.NOISE_SIGMA:g}) and JPEG re-encoding (quality {steadiness.JPEG_QUALITY}). Still: the photo held still; "
           "flicker off / on and the reduction (goal: at least 2x). Moving: panned, zoomed and turned along a smooth "
           "path; agreement of the smoothed labels with the per-frame parse (goal: at least 0.95).\n",
           markdown_table(("setting", "photo", "still flicker, off", "still flicker, on", "reduction", "moving agreement"),
                          ((r["setting"], r["photo"], r["still_flicker_off"], r["still_flicker_on"], f"{r['still_reduction']}x",
                            r["moving_agreement"]) for r in steady_rows))]
    exact = {r["angle"]: r["exact"]["miou"] for r in turned if "exact" in r}
    md += ["\n## Alignment: val mIoU through detection and cropping\n",
           "Flip TTA; each val image turned about its centre. Landmarks: the similarity crop from the five "
           "landmarks (the runtime's). Box: an upright square from the detector box alone (as before alignment). "
           "Exact crop: the val image's own frame, turned likewise, through the same cropping and pasting (what a "
           "detector that framed every face exactly would give). Corner error: the crop corners' mean absolute "
           f"coordinate error, as a share of the crop's side. For reference, --no-detect (the aligned image itself): "
           f"{parity['runtime_miou']}.\n",
           markdown_table(("detector", "turned by", "exact crop: mIoU", "landmarks: mIoU", "corner error", "faces found",
                           "box: mIoU", "corner error", "faces found"),
                          ((r["detector"], f"{r['angle']} deg", exact[r["angle"]], r["landmarks"]["miou"],
                            f"{r['landmarks']['corner_error']:.2%}", f"{r['landmarks']['found']}/100", r["box"]["miou"],
                            f"{r['box']['corner_error']:.2%}", f"{r['box']['found']}/100") for r in turned))]
    md += ["\nWhat framing error costs: upright val mIoU with the exact crop moved ten ways by the same corner "
           "error (shifted along either axis, along both, and scaled about its centre):\n",
           markdown_table(("corner error", "mean mIoU", "std", "lowest", "highest"),
                          ((f"{r['corner_error']:.2%}", r["miou_mean"], r["miou_std"], r["miou_min"], r["miou_max"])
                           for r in framing))]
    upright = turned[0]["landmarks"]["per_class_iou"]  # the default detector, not turned: where its loss lies
    classes = [c for c, v in parity["per_class_iou"].items() if v is not None and upright[c] is not None]
    md += [f"\nPer class, {turned[0]['detector']} landmarks upright against --no-detect (IoU %; most lost first):\n",
           markdown_table(("class", "--no-detect", turned[0]["detector"], "change"),
                          ((c, f"{parity['per_class_iou'][c]:.2f}", f"{upright[c]:.2f}",
                            f"{upright[c] - parity['per_class_iou'][c]:+.2f}")
                           for c in sorted(classes, key=lambda c: upright[c] - parity["per_class_iou"][c])))]
    save(RESULTS / "runtime", "\n".join(md), {"machine": machine, "rows": rows, "flicker_reduction": reductions,
                                         "accuracy": parity, "steadiness": steady_rows, "aligned_accuracy": turned, "framing_cost": framing})


if __name__ == "__main__":
    main()
