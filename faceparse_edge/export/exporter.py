"""`faceparse-edge export`: FP32 ONNX / OpenVINO IR and their INT8 versions, each parity-checked."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..errors import FaceparseError
from ..fileio import read_image, staging_dir
from ..models import EXPORT_FILES, open_model
from ..parsing import preprocess
from ..runtime.backends import model_size_mb
from .calibration import DEFAULT_CALIBRATION_SIZE, calibration_batches, pick_stratified, read_manifest
from .onnx_export import export_onnx
from .quantize import CALIBRATION_PERCENTILE, quantize_onnx, resolve_int8_target, quantize_openvino, to_openvino

FORMATS = ("onnx", "openvino")
# Parity thresholds against torch FP32 (argmax pixel agreement at the model's input size).
FP32_AGREEMENT, INT8_AGREEMENT, FP32_MAX_DIFF = 0.999, 0.90, 1e-2
PARITY_IMAGES = 8


@torch.inference_mode()
def parity(model, path: Path, batch: np.ndarray) -> dict:
    reference = model.coarse_logits(torch.from_numpy(batch)).numpy()
    logits = open_model(path)(batch)
    if logits.shape != reference.shape:
        raise FaceparseError(f"{path} outputs shape {logits.shape}, torch {reference.shape}")
    return {"max_abs_diff": float(np.abs(logits - reference).max()),
            "agreement": float((logits.argmax(1) == reference.argmax(1)).mean())}


def export(weights, fmt: str, int8: bool, data: str, out_dir: Path, imgsz: int | None = None,
           calib_size: int = DEFAULT_CALIBRATION_SIZE, manifest: Path | None = None, max_drop: float | None = None,
           val_split: str | None = None, calib_split: str | None = None, seed: int = 0,
           int8_target: str = "auto", calib_percentile: float = CALIBRATION_PERCENTILE) -> list[dict]:
    """Export and check; returns one row per written model. Models are written to `out_dir` only
    when every one of them passed its parity check.

    Splits follow `resolve_split`: parity (and accuracy control) on val, calibration picked
    from train, or from all pairs in a dataset without splits. `int8_target` (auto: this CPU)
    picks the ONNX Runtime INT8 weight range, `calib_percentile` its activation ranges.
    """
    from ..toolkit.checkpoint import load_model
    from ..toolkit.samples import list_samples, resolve_split

    if fmt not in FORMATS:
        raise FaceparseError(f"unsupported export format '{fmt}'; choose from {', '.join(FORMATS)}")
    if max_drop is not None and (fmt != "openvino" or not int8):
        raise FaceparseError("--max-drop applies to --format openvino --int8")
    if calib_percentile != CALIBRATION_PERCENTILE and (fmt != "onnx" or not int8):
        raise FaceparseError("--calib-percentile applies to --format onnx --int8")
    target = resolve_int8_target(int8_target)  # a bad target fails before any work
    model = load_model(weights)
    if imgsz:
        model.config = replace(model.config, input_size=imgsz)
    c = model.config
    val_samples = list_samples(data, resolve_split(data, val_split))
    parity_batch = preprocess([read_image(s.image) for s in val_samples[:PARITY_IMAGES]], c.input_size, c.mean, c.std,
                              c.context)
    out_dir = Path(out_dir)
    rows = []
    with staging_dir(out_dir) as stage:  # all models pass their checks, or none is written
        def record(path, precision, threshold, **extra):
            check = parity(model, path, parity_batch)
            row = {"format": fmt, "precision": precision, "path": str(out_dir / path.relative_to(stage)),
                   "size_mb": round(model_size_mb(path), 3), **extra, **check}
            rows.append(row)
            if check["agreement"] < threshold or (precision == "fp32" and check["max_abs_diff"] > FP32_MAX_DIFF):
                raise FaceparseError(
                    f"parity broken for {path}: argmax agreement {check['agreement']:.4f} (need {threshold}), "
                    f"max |logit diff| {check['max_abs_diff']:.4g}; nothing written to {out_dir}")

        onnx_path = export_onnx(model, stage / EXPORT_FILES["onnxruntime", False])
        fp32_path = onnx_path if fmt == "onnx" else to_openvino(onnx_path, stage / EXPORT_FILES["openvino", False])
        record(fp32_path, "fp32", FP32_AGREEMENT)
        if int8:
            if manifest:
                calib_images = read_manifest(manifest)
            else:
                train = list_samples(data, resolve_split(data, calib_split, "train"))
                calib_images = [s.image for s in pick_stratified(train, calib_size, seed)]
            calibration = calibration_batches(calib_images, c.input_size, c.mean, c.std, c.context)
            if fmt == "onnx":
                int8_path = quantize_onnx(onnx_path, stage / EXPORT_FILES["onnxruntime", True], calibration, target,
                                         percentile=calib_percentile)
            else:
                ir = stage / EXPORT_FILES["openvino", True]
                if max_drop is not None:  # accuracy-controlled: its own name beside the plain INT8 IR
                    ir = ir.with_name(f"{ir.stem}-acc.xml")
                int8_path = quantize_openvino(fp32_path, ir, calibration, val_samples, max_drop)
            record(int8_path, "int8", INT8_AGREEMENT, **({"int8_target": target} if fmt == "onnx" else {}))
    return rows
