"""Thin wrappers around a compiled ONNX Runtime or OpenVINO model (torch-free).

Every exported model carries the faceparse-edge model config (input size, normalisation,
classes) in its metadata, so a model file alone is enough to run it.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import NUM_CLASSES
from ..errors import FaceparseError

CONFIG_KEY = "faceparse_edge.config"
PRECISION_KEY = "faceparse_edge.precision"
BACKENDS = ("onnxruntime", "openvino")


@dataclass
class ModelInfo:
    """What the pipeline needs to know about a model: its input size and normalisation."""

    input_size: int
    mean: tuple
    std: tuple
    precision: str
    config: dict

    @classmethod
    def from_json(cls, text: str, precision: str, path) -> "ModelInfo":
        try:
            config = json.loads(text)
            return cls(int(config["input_size"]), tuple(config["mean"]), tuple(config["std"]), precision, config)
        except (ValueError, KeyError, TypeError):
            raise FaceparseError(f"{path} has a malformed faceparse-edge config in its metadata") from None


def _check_input(path, input_shape, info: ModelInfo):
    if len(input_shape) != 4 or input_shape[1] != 3:
        raise FaceparseError(f"{path} takes input of shape {input_shape}; expected (batch, 3, size, size)")
    sides = [s for s in input_shape[2:] if isinstance(s, int) and s > 0]
    if sides and any(s != info.input_size for s in sides):
        raise FaceparseError(f"{path} takes {input_shape[2]}x{input_shape[3]} input but its config says {info.input_size}")


def _check_output(path, backend) -> None:
    """Run one blank image: a face parser returns (1, 19, side, side) logits, side = size / 2**k.

    Exported models output coarse (stride 4) logits; `parsing.labels_at` upsamples them.
    """
    size = backend.info.input_size
    try:
        shape = backend(np.zeros((1, 3, size, size), np.float32)).shape
    except Exception as exc:  # backends raise their own types for graphs that cannot run this input
        raise FaceparseError(f"{path} cannot run a 1x3x{size}x{size} input: {str(exc).splitlines()[0][:200]}") from None
    side = shape[-1] if len(shape) == 4 else 0
    if shape[:3] != (1, NUM_CLASSES, side) or not side or size % side or (size // side) & (size // side - 1):
        raise FaceparseError(f"{path} outputs shape {shape}; a face parser outputs (1, {NUM_CLASSES}, S, S) "
                             f"logits, S = {size} / a power of 2")


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise FaceparseError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:200]}") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in metadata:
            raise FaceparseError(f"{path} is not a faceparse-edge model (no {CONFIG_KEY} metadata)")
        self.info = ModelInfo.from_json(metadata[CONFIG_KEY], metadata.get(PRECISION_KEY, "fp32"), path)
        inp = self.session.get_inputs()[0]
        _check_input(path, inp.shape, self.info)
        self.input_name = inp.name
        _check_output(path, self)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, path: str | Path, threads: int = 0):
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # openvino raises RuntimeError subclasses with long messages
            raise FaceparseError(f"cannot load OpenVINO model {path}: {str(exc).splitlines()[0][:200]}") from None
        if not model.has_rt_info(["faceparse_edge", "config"]):
            raise FaceparseError(f"{path} is not a faceparse-edge model (no faceparse_edge config in its rt_info)")
        precision = (model.get_rt_info(["faceparse_edge", "precision"]).astype(str)
                     if model.has_rt_info(["faceparse_edge", "precision"]) else "fp32")
        self.info = ModelInfo.from_json(model.get_rt_info(["faceparse_edge", "config"]).astype(str), precision, path)
        _check_input(path, [d.get_length() if d.is_static else -1 for d in model.input(0).get_partial_shape()],
                     self.info)
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, "CPU", config)
        self.output = self.compiled.output(0)
        _check_output(path, self)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.compiled(batch)[self.output]


def model_size_mb(path: str | Path) -> float:
    """Size on disk; an OpenVINO IR counts its .xml and .bin."""
    path = Path(path)
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def backend_for(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnxruntime"
    if suffix == ".xml":
        return "openvino"
    raise FaceparseError(f"{path}: unsupported model format '{suffix}'; expected .onnx (ONNX Runtime) or .xml (OpenVINO IR)")


def open_backend(path: str | Path, backend: str = "auto", threads: int = 0):
    """Load a model file with the backend its extension (or `backend`) names."""
    path = Path(path)
    if not path.is_file():
        raise FaceparseError(f"model not found: {path}")
    name = backend_for(path) if backend == "auto" else backend
    if name not in BACKENDS:
        raise FaceparseError(f"unknown backend '{backend}'; choose from auto, {', '.join(BACKENDS)}")
    if name == "openvino" and path.suffix.lower() not in (".xml", ".onnx"):
        raise FaceparseError(f"OpenVINO cannot read {path}")
    return (OnnxRuntimeBackend if name == "onnxruntime" else OpenVinoBackend)(path, threads)
