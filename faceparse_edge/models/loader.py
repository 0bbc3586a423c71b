"""The one model loader: any shipped model or model file, opened as one backend interface (torch-free
unless the model is torch weights).

A backend maps a float32 NCHW batch to coarse NCHW logits and carries `name` (onnxruntime,
openvino or torch), `info` (input size, normalisation, stored precision, model config) and
`execution_precision`; see runtime/backends.py and, for torch weights, toolkit/torch_backend.py.
"""

from pathlib import Path

from ..errors import FaceparseError, InvalidValueError, NotFoundError
from ..runtime.backends import check_execution_precision, open_backend
from .registry import resolve_model

BACKENDS = ("auto", "onnxruntime", "openvino", "torch")
# A model file's type -> the backend that runs it by default (the one place that reads a model's suffix).
RUNS_BY_DEFAULT = {".onnx": "onnxruntime", ".xml": "openvino", ".safetensors": "torch", ".pt": "torch"}


def open_model(model: str | Path | None = None, backend: str = "auto", precision: str = "f32", threads: int = 0,
               device: str = "cpu", spin: bool = True):
    """Open a model to run.

    model: a shipped model's name (`edge`, the default, `edge-hq`, `NAME-int8`) or a file: `.onnx`,
    OpenVINO `.xml`, or torch weights (`.safetensors`, `.pt`; these need torch, the `[train]` extra).
    backend: `auto` (by file type; a shipped name gives its OpenVINO IR on x86-64 where OpenVINO is installed,
    else its ONNX model: `runtime.backends.auto_backend`), `onnxruntime`, `openvino`
    (a shipped name gives its OpenVINO IR) or `torch` (a shipped name gives its torch weights).
    precision: floating-point execution precision, f32 unless OpenVINO is asked for bf16/f16.
    threads: inference threads (0 = the backend's default). device: cpu or cuda (torch only).
    spin: let ONNX Runtime's threads busy-wait between calls (fastest back to back; see
    `runtime.backends.onnxruntime_session`).
    """
    if backend not in BACKENDS:
        raise InvalidValueError(f"unknown backend '{backend}'; choose from {', '.join(BACKENDS)}")
    path = resolve_model(model, None if backend == "torch" else backend)
    if not path.is_file():
        raise NotFoundError(f"model not found: {path}")
    default = RUNS_BY_DEFAULT.get(path.suffix.lower())
    if default is None:
        raise FaceparseError(f"{path}: unsupported model format '{path.suffix}'; expected .onnx (ONNX Runtime), .xml "
                             "(OpenVINO IR), or torch weights (.safetensors, .pt)")
    runs = default if backend == "auto" else backend
    if (runs == "torch") != (default == "torch"):
        raise FaceparseError(f"{path} holds torch weights; {backend} runs exported models (.onnx, .xml): export it first"
                             if default == "torch" else
                             f"the torch backend runs torch weights (.safetensors, .pt), not {path.name}")
    if runs != "torch":
        return open_backend(path, runs, threads, precision, spin)
    check_execution_precision(precision, "torch", [])
    try:
        import torch

        from ..toolkit.checkpoint import load_model
        from ..toolkit.torch_backend import TorchBackend
        from ..toolkit.train import resolve_device
    except ImportError:
        raise FaceparseError(f"{path} holds torch weights, which need torch (pip install 'faceparse-edge[train]'); "
                             "the runtime runs exported models (.onnx, .xml)") from None
    if threads:
        torch.set_num_threads(threads)
    return TorchBackend(load_model(path), resolve_device(device))
