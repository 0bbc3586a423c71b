"""The mIoU a model's logit grid allows: ground-truth masks scored after a round trip through it.

    python benchmarks/stride_ceiling.py --data ../shared/data/celebamask-mini --strides 4 2

Each mask becomes one-hot probabilities, area-averaged down to the grid of a decoder at that
stride, and turned back into labels as the runtime does (`parsing.labels_at`: log-probabilities
upsampled bilinearly, then the argmax). The result bounds any model whose logits are that
coarse: if it is far above the model's mIoU, the grid is not what holds the model back. The
table and JSON go to benchmarks/results/stride_ceiling.{md,json} (or --out).
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from faceparse_edge.classes import CLASS_NAMES
from common import RESULTS, save
from faceparse_edge.metrics import SegmentationMetrics
from faceparse_edge.parsing import labels_at
from faceparse_edge.tables import markdown_table
from faceparse_edge.toolkit.samples import list_samples, load_pair



def round_trip_miou(samples, stride: int) -> dict:
    metrics = SegmentationMetrics()
    eye = np.eye(len(CLASS_NAMES), dtype=np.float32)
    for sample in samples:
        mask = load_pair(sample)[1]
        h, w = mask.shape
        coarse = cv2.resize(eye[mask], (w // stride, h // stride), interpolation=cv2.INTER_AREA)
        metrics.update(labels_at(coarse.transpose(2, 0, 1), h, w), mask)
    return metrics.result()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--strides", type=int, nargs="+", default=[4, 2])
    parser.add_argument("--out", type=Path, default=RESULTS / "stride_ceiling")
    args = parser.parse_args()
    samples = list_samples(args.data, args.split)
    rows = []
    for stride in args.strides:
        result = round_trip_miou(samples, stride)
        rows.append({"stride": stride, "miou": round(result["miou"], 2),
                     "per_class_iou": {k: None if v is None else round(v, 2) for k, v in result["per_class_iou"].items()}})
    classes = [c for c in CLASS_NAMES if any(r["per_class_iou"][c] is not None for r in rows)]
    table = markdown_table(["class"] + [f"stride {r['stride']}" for r in rows],
                           [(c, *(r["per_class_iou"][c] for r in rows)) for c in classes]
                           + [("**mIoU**", *(f"**{r['miou']}**" for r in rows))])
    command = f"`python benchmarks/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}` ({len(samples)} {args.split} masks)"
    save(args.out, f"{command}\n\n{table}", rows)


if __name__ == "__main__":
    main()
