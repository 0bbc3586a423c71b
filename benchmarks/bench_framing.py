"""Parsing what the camera sees: val mIoU through detection against the aligned crop, and labels cut at the view's edge.

    python benchmarks/bench_framing.py -m edge -m edge-hq [-m runs/x/best.safetensors ...]

For each model, with flip TTA: val mIoU on the aligned val images (`evaluate`, which the runtime's
--no-detect path equals), and through RetinaFace, its landmark crop and the pasting into the image on the val
images upright and turned by 15 and 30 degrees (labels over the whole image; see bench_runtime.py's
`through_detection`); and the share of the faces' view edges labelled hair, hat, neck or cloth
(runtime/crop_edge.py) on the shared photos and on every frame of the shared video, where the
overlay cuts those labels along a straight line; and how far the face crops lie from the val images' own
frames. Writes benchmarks/results/framing.{md,json}.
"""

import argparse
from pathlib import Path

from bench_runtime import through_detection
from common import RESULTS, save
from faceparse_edge.fileio import read_image
from faceparse_edge.models.evaluate import evaluate_model
from faceparse_edge.runtime.crop_edge import edge_counts
from faceparse_edge.runtime.pipeline import Parser
from faceparse_edge.sysinfo import describe, machine_info
from faceparse_edge.tables import markdown_table
from faceparse_edge.toolkit.samples import list_samples, load_pair

ANGLES = (0, 15, 30)


def cut_share(model, photos, video) -> dict:
    """Share (%) of the view edges labelled hair, hat, neck or cloth: over the photos, and over the video's frames."""
    pipeline = Parser(model, tta=True)
    cut = total = 0
    for path in photos:
        image = read_image(path)
        c, t = edge_counts(pipeline.parse(image).faces, *image.shape[:2])
        cut, total = cut + c, total + t
    shares = {"photos": round(100 * cut / max(total, 1), 2)}
    cut = total = 0
    for frame, result in pipeline.stream(str(video)):
        c, t = edge_counts(result.faces, *frame.shape[:2])
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
        pipeline = Parser(model, tta=True, smoothing=0.0, detector="retinaface")
        aligned, _ = evaluate_model(model, args.data, "val", tta=True)  # = the runtime's --no-detect (test_runtime.py)
        row = {"model": model, "context": pipeline.info.context, "aligned": round(aligned["miou"], 2)}
        for angle in ANGLES:
            detected = through_detection(pipeline, pairs, angle)
            row[f"detected_{angle}"], row[f"corner_error_{angle}"] = detected["miou"], detected["corner_error"]
        row["cut"] = cut_share(model, photos, video)
        rows.append(row)
        print(row, flush=True)
    command = f"python benchmarks/bench_framing.py {' '.join(f'-m {m}' for m in models)}"
    md = ["# Parsing through detection, and labels cut at the view's edge\n",
          f"Machine: {describe(machine_info())}\n",
          "Flip TTA. Aligned: the val images as they are (`--no-detect`). Detected: through RetinaFace, its landmark "
          "crop (widened by the model's context) and the pasting back, on the val images upright and turned (labels "
          "over the whole image, 0 outside every face's view). Crop error: the mean absolute error of the face "
          "crop's corner coordinates (before its widening) against the val image's own frame, as a share of its "
          "side. Cut: the share of the view edges' pixels (within 2 px of the side, inside the frame) labelled "
          "hair, hat, neck or cloth, on the shared photos and on every frame "
          f"of {video.name}. Command: `{command}`.\n",
          markdown_table(("model", "context", "aligned mIoU", *(f"detected, {a} deg" for a in ANGLES),
                          *(f"crop error, {a} deg %" for a in ANGLES), "cut at the edge, photos %",
                          "cut at the edge, video %"),
                         ((r["model"], r["context"], r["aligned"], *(r[f"detected_{a}"] for a in ANGLES),
                           *(round(100 * r[f"corner_error_{a}"], 2) for a in ANGLES), r["cut"]["photos"],
                           r["cut"]["video"]) for r in rows))]
    save(RESULTS / "framing", "\n".join(md), {"machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()
