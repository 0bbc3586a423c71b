"""Training throughput with 0/1/2 DataLoader workers and 1 vs 2 processes (torchrun, DDP),
and the memory a streamed dataset of 30,000 images takes against a cached one.

    python benchmarks/bench_scaling.py --data ../shared/data/celebamask-mini

Throughput comes from the real trainer (`faceparse-edge train`, 1 epoch on a subset of the
training split: `images_per_s` in its metrics.json, the training pass alone), median of
`--repeats` runs, run after run in one session so that the ratios compare like with like.
Memory: peak resident size of a process that builds the dataset and draws 100 batches, on
generated 64 px images. Writes benchmarks/results/<avx2|vnni|amx>/scaling.{md,json}. Not a test.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import MACHINE_RESULTS as RESULTS, save
from faceparse_edge.sysinfo import cpu_times, describe, machine_info
from faceparse_edge.tables import markdown_table

REPO = Path(__file__).resolve().parents[1]


def subset(data: Path, root: Path, train: int, val: int) -> Path:
    """A dataset of symlinks: the first `train` training and `val` validation pairs."""
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True)
    for split, n in (("train", train), ("val", val)):
        ids = (data / "splits" / f"{split}.txt").read_text().split()[:n]
        for i in ids:
            image = next((data / "images").glob(f"{i}.*"))
            (root / "images" / image.name).symlink_to(image)
            (root / "masks" / f"{i}.png").symlink_to(data / "masks" / f"{i}.png")
        (root / "splits" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def train_rate(data: Path, out: Path, processes: int, workers: int, cache: str, batch: int) -> float:
    args = ["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--batch", str(batch),
            "--workers", str(workers), "--cache", cache, "--warmup", "0"]
    launcher = [sys.executable, "-m", "faceparse_edge"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes), "-m",
        "faceparse_edge"]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(max(1, os.cpu_count() // processes))} if processes > 1 else {})}
    subprocess.run(launcher + args, check=True, capture_output=True, env=env, cwd=REPO)
    return json.loads((out / "metrics.json").read_text())[0]["images_per_s"]


MEMORY_PROBE = """
import resource, sys
from faceparse_edge.toolkit.augment import Augmenter
from faceparse_edge.toolkit.samples import list_samples
from faceparse_edge.toolkit.loader import FaceParsingDataset, make_loader
samples = list_samples(sys.argv[1])
dataset = FaceParsingDataset(samples, 64, (0.5,) * 3, (0.25,) * 3, Augmenter(), cache=sys.argv[2])
loader, sampler = make_loader(dataset, 16, workers=0, seed=0)
sampler.set_epoch(0)
for i, _ in zip(range(100), loader):
    pass
print(len(samples), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def memory(data: Path, cache: str) -> tuple[int, int]:
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(data), cache], check=True, capture_output=True,
                            text=True, cwd=REPO)
    n, peak = result.stdout.split()
    return int(n), int(peak)


def synthetic(root: Path, n: int) -> Path:
    """n generated 64 px image/mask pairs (a face disc, eyes, hair), no splits."""
    from faceparse_edge.toolkit.synthetic import make_dataset

    return make_dataset(root, n=n, size=64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/celebamask-mini"))
    parser.add_argument("--train-images", type=int, default=192)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--synthetic", type=int, default=30000)
    args = parser.parse_args()
    start = cpu_times()  # the run's CPU steal goes into the results
    rows, mem = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = subset(args.data.resolve(), tmp / "subset", args.train_images, 8)
        settings = [(1, 0, "ram"), (1, 0, "none"), (1, 1, "none"), (1, 2, "none"), (1, 2, "ram"), (2, 0, "ram"),
                    (2, 1, "none")]
        rates = {s: [] for s in settings}
        for r in range(args.repeats):  # interleaved: machine noise spreads over every setting alike
            for s in settings:
                rates[s].append(train_rate(data, tmp / f"run_{r}_{'_'.join(map(str, s))}", *s, args.batch))
                print(s, rates[s][-1], flush=True)
        base = statistics.median(rates[settings[0]])
        for (processes, workers, cache), values in rates.items():
            rate = statistics.median(values)
            rows.append({"processes": processes, "workers_per_process": workers, "cache": cache,
                         "images_per_s": round(rate, 2), "runs": values, "vs_first_row": round(rate / base, 2)})
        generated = synthetic(tmp / "synthetic", args.synthetic)
        for cache in ("none", "ram"):
            n, peak = memory(generated, cache)
            mem.append({"images": n, "cache": cache, "peak_rss_mb": round(peak / 1e6, 1)})
            print(mem[-1], flush=True)
    per_image = (mem[1]["peak_rss_mb"] - mem[0]["peak_rss_mb"]) * 1e6 / mem[0]["images"]
    machine = machine_info(since=start)
    md = ["# Training scale-out: data workers, DDP processes, streamed vs cached data\n",
          f"Machine: {describe(machine)}\n",
          f"Command: `python benchmarks/bench_scaling.py --data {args.data}`. Throughput: `faceparse-edge train` "
          f"(edge preset, 256 px, batch {args.batch} in all), 1 epoch on {args.train_images} training images, "
          f"training pass only; median of {args.repeats} interleaved runs. Processes > 1: `torchrun "
          f"--nproc-per-node N` (gloo), OMP threads split between them.\n",
          markdown_table(("processes", "workers per process", "cache", "images/s", "runs", "vs first row"),
                         ((r["processes"], r["workers_per_process"], r["cache"], r["images_per_s"],
                           ", ".join(map(str, r["runs"])), f"{r['vs_first_row']}x") for r in rows))]
    md += ["", f"Memory: peak RSS of a process that builds the dataset of {mem[0]['images']:,} generated 64 px pairs "
           "and draws 100 batches of 16.\n", markdown_table(("cache", "peak RSS MB"), ((m["cache"], m["peak_rss_mb"]) for m in mem))]
    md += ["", f"Cached, the set costs {per_image:,.0f} bytes per 64 px image ({64 * 64 * 4:,} = 4 bytes per pixel: RGB "
           f"and the mask), so 30,000 images at 512 px would take {30000 * 512 * 512 * 4 / 1e9:.1f} GB cached "
           "(`--cache auto` streams any set over 2 GiB); streamed, memory does not grow with the set."]
    save(RESULTS / "scaling", "\n".join(md), {"machine": machine, "throughput": rows, "memory": mem,
                                              "cached_bytes_per_image": round(per_image)})


if __name__ == "__main__":
    main()
