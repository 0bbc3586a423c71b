"""Training throughput and evaluation speed of the model presets on this machine.

    python benchmarks/bench_toolkit.py --data ../shared/data/celebamask-mini

Times real training steps (augmentation, forward, loss, backward, update) on cached
training images and single-image inference, reports medians of several runs, and writes
benchmarks/results/<avx2|vnni|amx>/toolkit.{md,csv,json}. Not a test: numbers depend on the machine.
"""

import argparse
import csv
import io
import os
import statistics
import time
from dataclasses import replace

import torch

from common import MACHINE_RESULTS as RESULTS, save
from faceparse_edge.fileio import write_text_atomic
from faceparse_edge.sysinfo import cpu_times, describe, machine_info
from faceparse_edge.tables import markdown_table
from faceparse_edge.toolkit.augment import Augmenter
from faceparse_edge.toolkit.samples import list_samples
from faceparse_edge.toolkit.torch_backend import evaluate_torch
from faceparse_edge.toolkit.losses import CombinedLoss
from faceparse_edge.toolkit.model import build_model, count_parameters
from faceparse_edge.toolkit.model_config import PRESETS
from faceparse_edge.toolkit.loader import FaceParsingDataset, make_loader
from faceparse_edge.toolkit.train import train_step



def bench_training(config, samples, batch_size, steps, repeats):
    """Training images/s on `samples` decoded once into memory (augmentation in the main process)."""
    dataset = FaceParsingDataset(samples, config.input_size, config.mean, config.std, Augmenter(), cache="ram")
    loader, sampler = make_loader(dataset, batch_size, workers=0, seed=0)
    model = build_model(config)
    loss_fn = CombinedLoss("ce:1,lovasz:0.5", dataset.class_pixel_counts(19), lovasz_pixels=16384)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    model.train()
    rates = []
    for r in range(repeats + 1):  # the first round warms up
        sampler.set_epoch(r)
        stream = iter(loader)
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(model, loss_fn, optimizer, scaler, *next(stream))
        if r:
            rates.append(steps * batch_size / (time.perf_counter() - t0))
    return statistics.median(rates), count_parameters(model)


@torch.inference_mode()
def bench_latency(config, repeats):
    model = build_model(config).eval()
    x = torch.randn(1, 3, config.input_size, config.input_size)
    for _ in range(5):
        model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/celebamask-mini")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[256])
    parser.add_argument("--presets", nargs="+", default=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-images", type=int, default=20)
    args = parser.parse_args()
    start = cpu_times()  # the run's CPU steal goes into the results

    train_samples = list_samples(args.data, "train")[: args.batch * args.steps]
    val_samples = list_samples(args.data, "val")[: args.eval_images]
    rows = []
    for size in args.imgsz:
        for name in args.presets:
            config = replace(PRESETS[name], input_size=size)
            train_rate, params = bench_training(config, train_samples, args.batch, args.steps, args.repeats)
            latency = bench_latency(config, repeats=20)
            model = build_model(config)
            t0 = time.perf_counter()
            evaluate_torch(model, args.data, None, tta=False, samples=val_samples, show_progress=False)
            eval_rate = len(val_samples) / (time.perf_counter() - t0)
            rows.append({
                "preset": name, "imgsz": size, "params": params, "train_img_per_s": round(train_rate, 2),
                "infer_ms_batch1": round(latency, 2), "evaluate_img_per_s": round(eval_rate, 2),
            })
            print(rows[-1], flush=True)
    machine = machine_info(torch.get_num_threads(), since=start)
    malloc = "on (as in the Makefile)" if os.environ.get("MALLOC_TOP_PAD_") else "off"
    header = (f"# Toolkit benchmark\n\nMachine: {describe(machine)}; glibc malloc tuning {malloc}.\n"
              f"Command: `make benchmark` (or `python benchmarks/bench_toolkit.py --steps {args.steps}`).\n\n"
              f"Training: batch {args.batch}, CE + Lovasz (16k px), augmentation on; median of {args.repeats} "
              f"rounds of {args.steps} steps. Inference: batch 1, median of 20 runs. Evaluate: {len(val_samples)} "
              "val images at 512x512 ground truth, no TTA (decode, preprocess, infer, upsample, score).\n\n")
    table = markdown_table(("preset", "imgsz", "params", "train img/s", "infer ms (b=1)", "evaluate img/s"),
                           ((r["preset"], r["imgsz"], f"{r['params']:,}", r["train_img_per_s"], r["infer_ms_batch1"],
                             r["evaluate_img_per_s"]) for r in rows)) + "\n"
    save(RESULTS / "toolkit", header + table, {"machine": machine, "rows": rows})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(RESULTS / "toolkit.csv", buf.getvalue())


if __name__ == "__main__":
    main()
