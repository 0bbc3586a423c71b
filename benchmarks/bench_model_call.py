"""The runtime's model call on each backend: one face under flip TTA, a batch of 2, as the pipeline makes it.

    python benchmarks/bench_model_call.py

ONNX Runtime with its threads sleeping between calls (as the pipeline runs it, runtime/backends.py), OpenVINO
compiled for the batch of 2 (as the runtime compiles it since 2026-12-05) and for a dynamic batch (as it compiled
it on x86 before). Each shipped model, `--rounds` interleaved rounds of `--runs` timed calls after 10 warm-up calls;
the table gives the median of the rounds' medians. Writes benchmarks/results/<avx2|vnni|amx>/model_call.{md,json}.
Not a test.
"""

import argparse
import statistics
import sys

import numpy as np

from common import MACHINE_RESULTS as RESULTS, save
from faceparse_edge.export.format_benchmark import latency_ms
from faceparse_edge.models import MODELS, open_model, resolve_model
from faceparse_edge.runtime.backends import openvino_compiled, openvino_model
from faceparse_edge.sysinfo import cpu_times, describe, machine_info
from faceparse_edge.tables import markdown_table


def openvino_dynamic(path, threads: int):
    """The OpenVINO model compiled once for any batch size (the runtime's x86 path before 2026-12-05)."""
    compiled = openvino_compiled(openvino_model(str(path), path), threads, "f32", path)
    output = compiled.output(0)
    return lambda batch: compiled(batch)[output]


def median_ms(call, x: np.ndarray, runs: int) -> float:
    latency_ms(call, x, 10)  # warm-up
    return statistics.median(latency_ms(call, x, runs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    start = cpu_times()
    rows = []
    for name in MODELS:
        calls = {"ONNX Runtime, threads sleeping between calls": open_model(name, "onnxruntime", threads=args.threads,
                                                                           spin=False),
                 "OpenVINO, compiled for the batch of 2": open_model(name, "openvino", threads=args.threads),
                 "OpenVINO, compiled for a dynamic batch": openvino_dynamic(resolve_model(name, "openvino"),
                                                                            args.threads)}
        size = calls["OpenVINO, compiled for the batch of 2"].info.input_size
        x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
        rounds = {how: [] for how in calls}
        for _ in range(args.rounds):
            for how, call in calls.items():
                rounds[how].append(median_ms(call, x, args.runs))
        reference = statistics.median(rounds["ONNX Runtime, threads sleeping between calls"])
        rows += [{"model": name, "input_size": size, "call": how, "ms_median": round(statistics.median(ms), 2),
                  "vs_onnxruntime": round(statistics.median(ms) / reference, 3), "rounds_ms": [round(v, 2) for v in ms]}
                 for how, ms in rounds.items()]
    machine = machine_info(args.threads, since=start)
    md = ["# The model call under flip TTA (a batch of 2), per backend\n", f"Machine: {describe(machine)}\n",
          f"FP32 in f32, {args.threads} threads; median of {args.rounds} interleaved rounds of {args.runs} calls. "
          f"Command: `{' '.join(['python', 'benchmarks/bench_model_call.py', *sys.argv[1:]])}`.\n",
          markdown_table(("model", "input", "call", "ms (median)", "time vs ONNX Runtime", "rounds (ms)"),
                         ((r["model"], r["input_size"], r["call"], f"{r['ms_median']:.2f}", f"{r['vs_onnxruntime']:.3f}",
                           ", ".join(f"{v:.2f}" for v in r["rounds_ms"])) for r in rows))]
    save(RESULTS / "model_call", "\n".join(md), {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
