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
from pathlib import Path

import numpy as np

from faceparse_edge.export.benchmark import latency_ms
from faceparse_edge.export.calibration import calibration_batches, pick_stratified
from faceparse_edge.export.check import check
from faceparse_edge.export.onnx_export import export_onnx
from faceparse_edge.export.quantize import quantize_onnx, quantize_openvino, to_openvino
from faceparse_edge.fileio import write_text_atomic
from faceparse_edge.runtime.backends import open_backend
from faceparse_edge.toolkit.checkpoint import load_model
from faceparse_edge.toolkit.data import list_samples

RESULTS = Path(__file__).resolve().parent / "results"


def p50_ms(path) -> float:
    backend = open_backend(path, threads=2)
    x = np.zeros((1, 3, backend.info.input_size, backend.info.input_size), np.float32)
    latency_ms(backend, x, 5)  # warm-up
    return round(statistics.median(latency_ms(backend, x, 30)), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/celebamask-mini")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_int8_"))
    model = load_model(args.weights)
    c = model.config
    train = list_samples(args.data, "train")
    fp32 = export_onnx(model, work / "fp32.onnx")
    fp32_xml = to_openvino(fp32, work / "fp32.xml")
    ref_ms = p50_ms(fp32)

    calib64 = calibration_batches([s.image for s in pick_stratified(train, 64)], c.input_size, c.mean, c.std)
    names = {"U8S8": (True, False), "U8S8 reduce_range": (True, True), "U8U8": (False, False)}
    paths = [quantize_onnx(fp32, work / f"{name.replace(' ', '_')}.onnx", calib64, signed, reduce)
             for name, (signed, reduce) in names.items()]
    reference, *rows = check(fp32, paths, args.data, "val")
    ref_miou = round(reference["miou"], 2)
    settings = [{"setting": name, "miou": round(r["miou"], 2), "delta_miou": round(r["delta_miou"], 2),
                 "agreement": round(r["agreement"], 2), "p50_ms": p50_ms(path)}
                for name, r, path in zip(names, rows, paths)]
    print(settings, flush=True)

    sweep = []
    for size in args.sizes:
        calib = calibration_batches([s.image for s in pick_stratified(train, size)], c.input_size, c.mean, c.std)
        _, ort, ov = check(fp32, [quantize_onnx(fp32, work / f"ort_{size}.onnx", calib),
                                  quantize_openvino(fp32_xml, work / f"ov_{size}.xml", calib)], args.data, "val")
        sweep.append({"calibration_images": size, "onnxruntime_int8_miou": round(ort["miou"], 2),
                      "openvino_int8_miou": round(ov["miou"], 2)})
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
