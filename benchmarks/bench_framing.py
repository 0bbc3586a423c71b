"""Parsing what the camera sees: val mIoU through detection against the aligned crop, and labels cut at the view's edge.

    python benchmarks/bench_framing.py -m edge -m edge-hq [-m runs/x/best.safetensors ...]

For each model, with flip TTA: val mIoU on the aligned val images (`evaluate`, which the runtime's
--no-detect path equals), and through RetinaFace, its landmark crop and the pasting into the image on the val
images upright and turned by 15 and 30 degrees (and the other way, -15 and -30, with the defaults; labels over
the whole image; see bench_runtime.py's `through_detection`), without and with `follow_person`, and with it but
without the detector's second look at each face (`refine`, runtime/refine.py); the share of the faces' view
edges where hair, hat, neck or cloth stop along a straight line (runtime/crop_edge.py) on the shared photos
and on every frame of the shared video, without and with it; and how far the face crops lie from the val
images' own frames. Writes benchmarks/results/framing.{md,json}.
"""

import argparse
from pathlib import Path

from bench_runtime import through_detection
from common import RESULTS, save
from faceparse_edge.models.evaluate import evaluate_model
from faceparse_edge.runtime.crop_edge import PROBE_PIXELS, edge_counts
from faceparse_edge.runtime.pipeline import Parser
from faceparse_edge.sysinfo import describe, machine_info
from faceparse_edge.tables import markdown_table
from faceparse_edge.toolkit.samples import list_samples, load_pair

ANGLES = (0, 15, 30)
OTHER_WAY = (-15, -30)  # the runtime's defaults only: how far the score moves with the way the face is turned


def cut_share(model, photos, video, follow_person: bool) -> dict:
    """Share (%) of the view edges where hair, hat, neck or cloth stop: over the photos, and over the video's frames."""
    pipeline = Parser(model, tta=True, follow_person=follow_person)
    cut = total = 0
    for path in photos:
        result = pipeline.parse(path)
        c, t = edge_counts(result.faces, result.labels)
        cut, total = cut + c, total + t
    shares = {"photos": round(100 * cut / max(total, 1), 2)}
    cut = total = 0
    for _, result in pipeline.stream(str(video)):
        c, t = edge_counts(result.faces, result.labels)
        cut, total = cut + c, total + t
    shares["video"] = round(100 * cut / max(total, 1), 2)
    return shares


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", action="append", help="a shipped name or a model file (repeat)")
    parser.add_argument("--data", default="../shared/data/celebamask-mini")
    parser.add_argument("--media", default="../shared/media")
    args = parser.parse_args()
    models = args.model or ["edge", "edge-hq"]
    media = Path(args.media)
    photos = sorted(p for p in media.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    video = next(media.glob("*.mp4"))
    pairs = [load_pair(s) for s in list_samples(args.data, "val")]
    rows = []
    for model in models:
        aligned, _ = evaluate_model(model, args.data, "val", tta=True)  # = the runtime's --no-detect (test_runtime.py)
        row = {"model": model, "aligned": round(aligned["miou"], 2)}
        for follow, refine, key in ((False, True, ""), (True, True, "_following"), (True, False, "_first_look")):
            pipeline = Parser(model, tta=True, smoothing=0.0, detector="retinaface", follow_person=follow,
                              refine=refine)
            row["context"] = pipeline.info.context
            for angle in ANGLES:
                detected = through_detection(pipeline, pairs, angle)
                row[f"detected{key}_{angle}"] = detected["miou"]
                row[f"corner_error{'_first_look' if not refine else ''}_{angle}"] = detected["corner_error"]
            if follow and refine:
                for angle in OTHER_WAY:
                    row[f"detected{key}_{angle}"] = through_detection(pipeline, pairs, angle)["miou"]
            if refine:
                row[f"cut{key}"] = cut_share(model, photos, video, follow)
        rows.append(row)
        print(row, flush=True)
    command = f"python benchmarks/bench_framing.py {' '.join(f'-m {m}' for m in models)}"
    md = ["# Parsing through detection, and labels cut at the view's edge\n",
          f"Machine: {describe(machine_info())}\n",
          "Flip TTA. Aligned: the val images as they are (`--no-detect`). Detected: through RetinaFace, its landmark "
          "crop (widened by the model's context) and the pasting back, on the val images upright and turned (labels "
          "over the whole image, 0 outside every face's view); following the person: the same with `follow_person` "
          "(hair, hat and cloth continued past the views over a person segmenter's mask, runtime/beyond_view.py), "
          "the runtime's defaults; first look: the same without the detector's second look at each face's upright "
          "crop (`refine=False`, runtime/refine.py). "
          "Crop error: the mean absolute error of the face crop's corner coordinates (before its widening) against "
          "the val image's own frame, as a share of its side, with the second look and (first look) without. Cut: "
          "the share of the view edges' pixels (within 2 px of the side, inside the frame) labelled hair, hat, neck "
          f"or cloth where the frame's labels stop there ({PROBE_PIXELS} px further out, inside the frame, they are "
          f"none of those), on the shared photos and on every frame of {video.name}, without and with following the "
          f"person. Command: `{command}`.\n",
          markdown_table(("model", "context", "aligned mIoU", *(f"detected, {a} deg" for a in ANGLES),
                          *(f"following the person, {a} deg" for a in ANGLES + OTHER_WAY),
                          *(f"first look, {a} deg" for a in ANGLES),
                          *(f"crop error, {a} deg %" for a in ANGLES),
                          *(f"crop error, first look, {a} deg %" for a in ANGLES), "cut, photos %", "cut, video %",
                          "cut following the person, photos %", "cut following the person, video %"),
                         ((r["model"], r["context"], r["aligned"], *(r[f"detected_{a}"] for a in ANGLES),
                           *(r[f"detected_following_{a}"] for a in ANGLES + OTHER_WAY),
                           *(r[f"detected_first_look_{a}"] for a in ANGLES),
                           *(round(100 * r[f"corner_error_{a}"], 2) for a in ANGLES),
                           *(round(100 * r[f"corner_error_first_look_{a}"], 2) for a in ANGLES), r["cut"]["photos"],
                           r["cut"]["video"], r["cut_following"]["photos"], r["cut_following"]["video"])
                          for r in rows))]
    save(RESULTS / "framing", "\n".join(md), {"machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()
