"""How good a distillation teacher is: val mIoU of the soft targets `train --distill` learns from.

    python benchmarks/teacher_strength.py --data ../shared/data/celebamask-mini --model edge-hq --scales 1 0.8125,1,1.1875

Each scale set is scored as the student sees it: `TTATeacher` (flip TTA averaged over the
input scales, on the grid of scale 1), upsampled to the masks' resolution. The table and JSON
go to benchmarks/results/teacher_strength.{md,json} (or --out).
"""

import argparse
import sys
from pathlib import Path

import torch

from faceparse_edge.evaluation import evaluate_backend
from common import RESULTS, save
from faceparse_edge.tables import markdown_table
from faceparse_edge.toolkit.checkpoint import load_model
from faceparse_edge.toolkit.samples import list_samples, load_pair
from faceparse_edge.toolkit.distill import TTATeacher, parse_scales



def teacher_miou(model, samples, scales) -> float:
    """The teacher as a backend whose 'logits' are its log soft targets: evaluation's softmax
    gives the targets back, and everything else (batching, upsampling, scoring) is evaluation's."""
    c = model.config
    teacher = TTATeacher(model, c.mean, c.std, scales)

    def backend(batch):
        return teacher(torch.from_numpy(batch)).clamp_min(1e-7).log().numpy()

    result, _ = evaluate_backend(backend, samples, load_pair, c.input_size, c.mean, c.std, context=c.context,
                                 description=f"scales {','.join(map(str, scales))}", show_progress=False)
    return result["miou"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="edge-hq", help="a weights file or a shipped model's name")
    parser.add_argument("--scales", nargs="+", default=["1", "0.8125,1,1.1875"], help="scale sets, each comma-separated")
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", type=Path, default=RESULTS / "teacher_strength")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    samples = list_samples(args.data, args.split)
    rows = [{"model": args.model, "scales": s, "val_miou": round(teacher_miou(model, samples, parse_scales(s)), 2)}
            for s in args.scales]
    table = markdown_table(["model", "teacher scales (flip TTA at each)", "val mIoU"],
                           [(r["model"], r["scales"], r["val_miou"]) for r in rows])
    save(args.out, f"`python benchmarks/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}`\n\n{table}", rows)


if __name__ == "__main__":
    main()
