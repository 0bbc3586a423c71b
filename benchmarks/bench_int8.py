"""INT8 settings and calibration-set size, measured on the val split.

    python benchmarks/bench_int8.py --data ../shared/data/celebamask-mini

1. ONNX Runtime weight settings on this CPU: U8S8 (the default), U8S8 with reduce_range,
   U8U8 -- argmax agreement with FP32, mIoU and latency.
2. Calibration size: INT8 mIoU (ONNX Runtime and OpenVINO/NNCF) for stratified calibration
   sets of growing size, to choose the default size where mIoU stops improving.
Writes benchmarks/results/int8.{md,json}.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from faceparse_edge.evaluation import evaluate_backend
from faceparse_edge.export.calibration import calibration_batches, pick_stratified
from faceparse_edge.export.onnx_export import export_onnx
from faceparse_edge.export.quantize import quantize_onnx, quantize_openvino, to_openvino
from faceparse_edge.fileio import write_text_atomic
from faceparse_edge.runtime.backends import open_backend
from faceparse_edge.toolkit.checkpoint import load_model
from faceparse_edge.toolkit.data import list_samples, load_pair

RESULTS = Path(__file__).resolve().parent / "results"


def score(path, samples, reference_labels=None):
    backend = open_backend(path, threads=2)
    info = backend.info
    labels = []
    result, _ = evaluate_backend(backend, samples, load_pair, info.input_size, info.mean, info.std,
                                 show_progress=False, predictions=labels)
    x = np.zeros((1, 3, info.input_size, info.input_size), np.float32)
    for _ in range(5):
        backend(x)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        backend(x)
        times.append((time.perf_counter() - t0) * 1000)
    agreement = None
    if reference_labels is not None:
        agreement = float(np.mean([(a == b).mean() for a, b in zip(labels, reference_labels)]) * 100)
    return round(result["miou"], 2), agreement, round(statistics.median(times), 2), labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/celebamask-mini")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_int8_"))
    model = load_model(args.weights)
    c = model.config
    val = list_samples(args.data, "val")
    train = list_samples(args.data, "train")
    fp32 = export_onnx(model, work / "fp32.onnx")
    fp32_xml = to_openvino(fp32, work / "fp32.xml")
    ref_miou, _, ref_ms, ref_labels = score(fp32, val)
    print(f"FP32 ONNX: mIoU {ref_miou}, {ref_ms} ms", flush=True)

    calib64 = calibration_batches([s.image for s in pick_stratified(train, 64)], c.input_size, c.mean, c.std)
    settings = []
    for name, signed, reduce in (("U8S8", True, False), ("U8S8 reduce_range", True, True), ("U8U8", False, False)):
        path = quantize_onnx(fp32, work / f"{name.replace(' ', '_')}.onnx", calib64, signed, reduce)
        miou, agreement, ms, _ = score(path, val, ref_labels)
        settings.append({"setting": name, "miou": miou, "delta_miou": round(miou - ref_miou, 2),
                         "agreement": round(agreement, 2), "p50_ms": ms})
        print(settings[-1], flush=True)

    sweep = []
    for size in args.sizes:
        calib = calibration_batches([s.image for s in pick_stratified(train, size)], c.input_size, c.mean, c.std)
        ort_miou, _, _, _ = score(quantize_onnx(fp32, work / f"ort_{size}.onnx", calib), val, ref_labels)
        ov_miou, _, _, _ = score(quantize_openvino(fp32_xml, work / f"ov_{size}.xml", calib), val, ref_labels)
        sweep.append({"calibration_images": size, "onnxruntime_int8_miou": ort_miou, "openvino_int8_miou": ov_miou})
        print(sweep[-1], flush=True)

    md = [f"# INT8 settings and calibration size\n\nFP32 ONNX val mIoU {ref_miou}, batch-1 latency {ref_ms} ms "
          "(2 threads). Command: `python benchmarks/bench_int8.py`.\n",
          "## ONNX Runtime weight settings (64 stratified calibration images)\n",
          "| setting | mIoU | delta mIoU | argmax agreement with FP32 % | p50 ms |", "|---|---|---|---|---|"]
    md += [f"| {r['setting']} | {r['miou']} | {r['delta_miou']} | {r['agreement']} | {r['p50_ms']} |" for r in settings]
    md += ["\n## Calibration set size (stratified picks from the train split)\n",
           "| images | ONNX Runtime INT8 mIoU | OpenVINO INT8 mIoU |", "|---|---|---|"]
    md += [f"| {r['calibration_images']} | {r['onnxruntime_int8_miou']} | {r['openvino_int8_miou']} |" for r in sweep]
    write_text_atomic(RESULTS / "int8.md", "\n".join(md) + "\n")
    write_text_atomic(RESULTS / "int8.json", json.dumps({"fp32_miou": ref_miou, "settings": settings, "sweep": sweep}, indent=2))
    print("\n".join(md))


if __name__ == "__main__":
    main()
