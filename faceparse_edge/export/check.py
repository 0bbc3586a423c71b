"""`faceparse-edge check`: quantised models against their FP32 reference, with `evaluate`'s metrics."""

from pathlib import Path

import numpy as np

from ..errors import FaceparseError
from ..evaluation import evaluate_backend
from ..models import open_model
from ..runtime.backends import model_size_mb, precision_ran


def check_quantised(models: list[str] | None, reference: str | None, model_name: str, data, split: str | None,
                    max_drop: float, threads: int = 0, precision: str = "f32", protect=()) -> tuple[list[dict], list[dict]]:
    """The `check` command: the named quantised models (default: those shipped with `model_name`) against an FP32
    reference (default: `model_name`'s ONNX); the rows, and those that lose more than `max_drop` mIoU points.
    `protect`: outputs the caller will write, which must not be any of the models."""
    from ..fileio import check_outputs
    from ..models import resolve_model, shipped_int8_models
    from ..toolkit.samples import resolve_split

    split = resolve_split(data, split)
    reference = resolve_model(reference or model_name, "onnxruntime")
    models = [resolve_model(m, "onnxruntime") for m in models or []] or shipped_int8_models(model_name)
    check_outputs([reference, *models], protect)
    if not models:
        raise FaceparseError("no quantised models to check: name them or ship INT8 models")
    rows = check(reference, models, str(data), split, threads=threads, precision=precision)
    return rows, [r for r in rows if -r["delta_miou"] > max_drop]


def check(reference: Path, models: list[Path], data: str, split: str | None, tta: bool = False,
          threads: int = 0, precision: str = "f32") -> list[dict]:
    """One row per model: size, mIoU, delta to the reference, worst per-class delta, pixel agreement.

    The reference runs in f32; the other models in `precision` (their floating-point parts).
    """
    from ..toolkit.samples import list_samples, load_pair

    samples = list_samples(data, split)
    rows, reference_labels, reference_result = [], [], None
    for path in [reference, *models]:
        backend = open_model(path, threads=threads, precision="f32" if reference_result is None else precision)
        info = backend.info
        labels: list = []
        result, _ = evaluate_backend(backend, samples, load_pair, info.input_size, info.mean, info.std, tta=tta,
                                     context=info.context, description=Path(path).name, predictions=labels)
        if reference_result is None:
            if info.precision != "fp32":
                raise FaceparseError(f"the reference {path} is {info.precision}; it must be an FP32 model")
            reference_result, reference_labels = result, labels
        deltas = {name: (v - reference_result["per_class_iou"][name])
                  for name, v in result["per_class_iou"].items()
                  if v is not None and reference_result["per_class_iou"][name] is not None}
        worst = min(deltas, key=deltas.get)
        agreement = np.mean([(a == b).mean() for a, b in zip(labels, reference_labels)]) * 100
        rows.append({
            "model": str(path), "format": backend.name, "precision": info.precision, "ran": precision_ran(backend),
            "size_mb": round(model_size_mb(path), 3), "miou": round(result["miou"], 3),
            "delta_miou": round(result["miou"] - reference_result["miou"], 3),
            "worst_class": worst, "worst_class_delta": round(deltas[worst], 3),
            "f_measure": round(result["f_measure"], 3), "agreement": round(float(agreement), 3),
        })
    return rows
