"""INT8 settings per CPU kind, and calibration-set size, measured on the val split.

    python benchmarks/bench_int8.py --data ../shared/data/celebamask-mini [--sizes 8 16 32 64]

1. ONNX Runtime settings on this CPU: U8S8 full range (the `vnni` export target),
   U8S8 with reduce_range (the `avx2` target), U8U8, each with percentile-calibrated
   activation ranges (the default), and the avx2 target with min/max ranges, beside FP32 and
   OpenVINO INT8:
   mIoU delta, argmax agreement with FP32, and batch-1 latency (median of interleaved rounds).
   Results go to benchmarks/results/<avx2|vnni|amx>/int8.{md,json} with the CPU's flags, so
   runs on each kind of CPU sit side by side.
2. With --sizes: INT8 mIoU (ONNX Runtime and OpenVINO/NNCF) for stratified calibration sets
   of growing size, to choose the default size where mIoU stops improving.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from faceparse_edge.export.format_benchmark import latency_ms
from faceparse_edge.export.calibration import calibration_batches, pick_stratified
from faceparse_edge.export.check import check
from faceparse_edge.export.onnx_export import export_onnx
from faceparse_edge.export.quantize import CALIBRATION_PERCENTILE, quantize_onnx, quantize_openvino, to_openvino
from common import MACHINE_RESULTS as RESULTS, save
from faceparse_edge.models import open_model
from faceparse_edge.sysinfo import cpu_class, cpu_times, describe, machine_info
from faceparse_edge.tables import markdown_table
from faceparse_edge.toolkit.checkpoint import load_model
from faceparse_edge.toolkit.samples import list_samples

CPU_KINDS = {"avx2": "without VNNI", "vnni": "with VNNI", "amx": "with VNNI and AMX"}
THREADS = 2
# name -> (export target, signed weights, activation range percentile; 100: min/max)
SETTINGS = {"U8S8 (target vnni)": ("vnni", True, CALIBRATION_PERCENTILE),
            "U8S8 reduce_range (target avx2)": ("avx2", True, CALIBRATION_PERCENTILE),
            "U8U8": ("vnni", False, CALIBRATION_PERCENTILE),
            "U8S8 reduce_range, min/max ranges": ("avx2", True, 100)}


def p50_ms(paths, rounds: int = 3, runs: int = 30) -> list[float]:
    """Median batch-1 latency of each model, in interleaved rounds (noise spreads over all alike)."""
    backends = [open_model(p, threads=THREADS) for p in paths]
    inputs = [np.zeros((1, 3, b.info.input_size, b.info.input_size), np.float32) for b in backends]
    times = [[] for _ in backends]
    for b, x in zip(backends, inputs):
        latency_ms(b, x, 10)  # warm-up
    for _ in range(rounds):
        for t, b, x in zip(times, backends, inputs):
            t += latency_ms(b, x, runs)
    return [round(statistics.median(t), 2) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/celebamask-mini")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="calibration sizes to sweep (slow)")
    args = parser.parse_args()
    start = cpu_times()  # the run's CPU steal goes into the results

    work = Path(tempfile.mkdtemp(prefix="bench_int8_"))
    model = load_model(args.weights)
    c = model.config
    train = list_samples(args.data, "train")
    fp32 = export_onnx(model, work / "fp32.onnx")
    fp32_xml = to_openvino(fp32, work / "fp32.xml")
    calib32 = calibration_batches([s.image for s in pick_stratified(train, 32)], c.input_size, c.mean, c.std)
    paths = [quantize_onnx(fp32, work / f"ort_{i}.onnx", calib32, target, signed, percentile)
             for i, (target, signed, percentile) in enumerate(SETTINGS.values())]
    paths.append(quantize_openvino(fp32_xml, work / "ov_int8.xml", calib32))
    names = [*SETTINGS, "OpenVINO INT8 (NNCF)"]
    reference, *rows = check(fp32, paths, args.data, "val", threads=THREADS)
    ref_ms, *latencies = p50_ms([fp32, *paths])
    settings = [{"setting": name, "miou": round(r["miou"], 2), "delta_miou": round(r["delta_miou"], 2),
                 "agreement": round(r["agreement"], 2), "p50_ms": ms, "speedup_vs_fp32": round(ref_ms / ms, 2)}
                for name, r, ms in zip(names, rows, latencies)]
    print(settings, flush=True)

    sweep = []
    for size in args.sizes:
        calib = calibration_batches([s.image for s in pick_stratified(train, size)], c.input_size, c.mean, c.std)
        _, ort, ov = check(fp32, [quantize_onnx(fp32, work / f"ort_{size}.onnx", calib),
                                  quantize_openvino(fp32_xml, work / f"ov_{size}.xml", calib)], args.data, "val")
        sweep.append({"calibration_images": size, "onnxruntime_int8_miou": round(ort["miou"], 2),
                      "openvino_int8_miou": round(ov["miou"], 2)})
        print(sweep[-1], flush=True)

    machine = machine_info(THREADS, since=start)
    cpu = cpu_class()
    md = [f"# INT8 settings on a CPU {CPU_KINDS[cpu]}\n",
          f"Machine: {describe(machine)}\n",
          f"FP32 ONNX Runtime val mIoU {round(reference['miou'], 2)}, batch-1 latency {ref_ms} ms. 32 stratified "
          f"calibration images; ONNX Runtime activation ranges at the {CALIBRATION_PERCENTILE}th percentile "
          "unless marked min/max. Latency: median of 3 interleaved rounds of 30 runs. "
          "Command: `python benchmarks/bench_int8.py`.\n",
          markdown_table(("setting", "mIoU", "delta mIoU", "argmax agreement with FP32 %", "p50 ms", "speed-up vs FP32"),
                         ((r["setting"], r["miou"], r["delta_miou"], r["agreement"], r["p50_ms"], f"{r['speedup_vs_fp32']}x")
                          for r in settings))]
    if sweep:
        md += ["\n## Calibration set size (stratified picks from the train split)\n",
               markdown_table(("images", "ONNX Runtime INT8 mIoU", "OpenVINO INT8 mIoU"),
                              ((r["calibration_images"], r["onnxruntime_int8_miou"], r["openvino_int8_miou"]) for r in sweep))]
    save(RESULTS / "int8", "\n".join(md), {"machine": machine, "fp32_miou": round(reference["miou"], 2),
                                      "fp32_p50_ms": ref_ms, "settings": settings, "sweep": sweep})


if __name__ == "__main__":
    main()
