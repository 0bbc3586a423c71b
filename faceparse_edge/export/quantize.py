"""INT8 quantisation: ONNX Runtime static QDQ, and OpenVINO via NNCF (optionally accuracy-controlled)."""

import contextlib
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import FaceparseError
from ..evaluation import evaluate_backend
from ..fileio import atomic_path, read_image
from ..parsing import preprocess
from ..progress import progress_bar


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed single-image batches; `advance()` is
    called as each is handed out (a progress bar)."""

    def __init__(self, batches: Sequence[np.ndarray], input_name: str, advance=lambda: None):
        self._items = iter([{input_name: b} for b in batches])
        self._advance = advance

    def get_next(self):
        item = next(self._items, None)
        if item is not None:
            self._advance()
        return item


INT8_TARGETS = ("avx2", "vnni")
# Activation ranges are calibrated to this percentile of the calibration values rather than to
# their min/max: a few outlying activations otherwise stretch the 8-bit step of a whole tensor.
# At 512 px min/max lost 1.15 val mIoU (eyeglasses -6.9) and the 99.995th percentile 0.33;
# 99.9 clips too much (-1.33). benchmarks/bench_int8.py measures both calibrations.
CALIBRATION_PERCENTILE = 99.995


def resolve_int8_target(target: str) -> str:
    """Check an INT8 target; 'auto' becomes this CPU's (vnni where it has VNNI, else avx2)."""
    from ..sysinfo import has_vnni

    if target == "auto":
        return "vnni" if has_vnni() else "avx2"
    if target not in INT8_TARGETS:
        raise FaceparseError(f"unknown INT8 target '{target}'; choose from auto, {', '.join(INT8_TARGETS)}")
    return target


def quantize_onnx(fp32_path: Path, out_path: Path, calibration: Sequence[np.ndarray], target: str = "auto",
                  signed_weights: bool = True, percentile: float = CALIBRATION_PERCENTILE) -> Path:
    """Static INT8 (QDQ, per-channel weights) with the weight range right for the target CPU.

    Without VNNI (target avx2), U8S8 arithmetic can saturate its 16-bit intermediate sums, so
    weights are kept to 7 bits (reduce_range); with VNNI the sums are 32-bit and full 8-bit
    weights are exact and faster (benchmarks/bench_int8.py measures the choices). The target
    is stored in the model's metadata (faceparse_edge.int8_target). Activation ranges come from
    the `percentile` of the calibration values (100: their min/max).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .onnx_export import config_metadata, set_metadata

    target = resolve_int8_target(target)
    config = config_metadata(fp32_path)
    input_name = onnx.load(str(fp32_path)).graph.input[0].name
    min_max = percentile >= 100
    with atomic_path(out_path) as tmp, progress_bar(transient=True) as progress, \
            contextlib.redirect_stdout(io.StringIO()):  # the calibrators print their steps; a bar shows them
        task = progress.add_task("calibrate INT8 (ONNX Runtime)", total=len(calibration), info="")
        # shape inference and graph fusions (conv+bn etc.) first, as ONNX Runtime recommends
        quant_pre_process(str(fp32_path), str(tmp))
        quantize_static(
            str(tmp), str(tmp), _Reader(calibration, input_name, lambda: progress.advance(task)),
            quant_format=QuantFormat.QDQ,
            per_channel=True, reduce_range=target == "avx2", activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8 if signed_weights else QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax if min_max else CalibrationMethod.Percentile,
            extra_options={} if min_max else {"CalibPercentile": percentile},
        )
        quantized = onnx.load(str(tmp))
        set_metadata(quantized, config, "int8", int8_target=target)
        onnx.save(quantized, str(tmp))
    return out_path


def to_openvino(onnx_path: Path, xml_path: Path) -> Path:
    """Convert FP32 ONNX to OpenVINO IR (FP32 weights), carrying the config in rt_info."""
    import openvino as ov

    from .onnx_export import config_metadata

    model = ov.convert_model(str(onnx_path))
    _save_ir(model, xml_path, config_metadata(onnx_path), "fp32")
    return xml_path


def _save_ir(model, xml_path: Path, config: str, precision: str) -> None:
    """Save an IR pair (.xml + .bin) with config and precision in rt_info, never half-written."""
    import openvino as ov

    model.set_rt_info(config, ["faceparse_edge", "config"])
    model.set_rt_info(precision, ["faceparse_edge", "precision"])
    with atomic_path(xml_path) as tmp_xml:
        tmp_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
            tmp_bin.replace(xml_path.with_suffix(".bin"))  # the weights first: an .xml always has its .bin
        finally:
            tmp_bin.unlink(missing_ok=True)


def quantize_openvino(fp32_xml: Path, out_xml: Path, calibration: Sequence[np.ndarray],
                      validation: Sequence | None = None, max_drop: float | None = None) -> Path:
    """NNCF post-training INT8; with `max_drop`, accuracy control keeps the mIoU on the
    labelled `validation` samples within max_drop points of FP32, scored as `evaluate` scores."""
    import nncf

    from ..runtime.backends import openvino_model

    model = openvino_model(str(fp32_xml), fp32_xml)
    config = model.get_rt_info(["faceparse_edge", "config"]).astype(str)
    calib = nncf.Dataset(list(calibration))
    if max_drop is None:
        quantized = nncf.quantize(model, calib, subset_size=len(calibration), preset=nncf.QuantizationPreset.MIXED)
    else:
        from ..toolkit.samples import load_pair

        info = json.loads(config)
        size, mean, std, context = info["input_size"], info["mean"], info["std"], info.get("context", 1.0)

        def miou(compiled_model, samples) -> float:
            output = compiled_model.output(0)
            result, _ = evaluate_backend(lambda batch: compiled_model(batch)[output], list(samples), load_pair,
                                         size, mean, std, show_progress=False, context=context)
            return result["miou"]

        val = nncf.Dataset(list(validation), lambda s: preprocess([read_image(s.image)], size, mean, std, context))
        quantized = nncf.quantize_with_accuracy_control(
            model, calib, val, validation_fn=miou, max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calibration),
            preset=nncf.QuantizationPreset.MIXED,
        )
    _save_ir(quantized, out_xml, config, "int8")
    return out_xml
