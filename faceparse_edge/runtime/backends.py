"""Thin wrappers around a compiled ONNX Runtime or OpenVINO model (torch-free).

Every exported model carries the faceparse-edge model config (input size, normalisation,
classes) in its metadata, so a model file alone is enough to run it.
"""

import hashlib
import json
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..classes import NUM_CLASSES
from ..errors import FaceparseError, InvalidValueError, first_line

CONFIG_KEY = "faceparse_edge.config"
PRECISION_KEY = "faceparse_edge.precision"
READS = {"onnxruntime": (".onnx",), "openvino": (".xml", ".onnx")}  # each backend: the model files it opens
# Floating-point execution precision. f32 is the default on every CPU: OpenVINO would otherwise
# pick bf16 by itself on CPUs that have it (issue 9 reports a max logit diff of 0.27 against ONNX
# Runtime on the shipped model there).
EXECUTION_PRECISIONS = ("f32", "bf16", "f16")
_CAPABILITY = {"bf16": "BF16", "f16": "FP16"}  # OpenVINO CPU OPTIMIZATION_CAPABILITIES names
X86_MACHINES = ("x86_64", "amd64")  # platform.machine() on 64-bit x86 (Linux and macOS; Windows)


@lru_cache(maxsize=1)
def openvino_core():
    """The process's one OpenVINO Core (reading, compiling and querying the CPU all go through it)."""
    try:
        import openvino as ov
    except ImportError:
        raise FaceparseError("the OpenVINO backend needs the openvino package: pip install 'faceparse-edge[openvino]' "
                             "(its wheels need glibc 2.35 or newer); --backend onnxruntime runs without it") from None
    return ov.Core()


def auto_backend() -> str:
    """The backend `auto` runs a shipped model on: OpenVINO on x86-64 where it is installed, else ONNX Runtime.

    On x86-64 OpenVINO's model call, compiled for its batch size, is the faster one: on the 2-core AVX-512 EPYC the
    320 px `edge` under flip TTA (a batch of 2) takes 0.78 of ONNX Runtime's time (benchmarks/bench_model_call.py),
    and the shared video runs at 61.4 against 57.9 FPS on one-face frames (benchmarks/bench_models.py; 66.9
    against 63.7 in the run before).
    ONNX Runtime is the base install's backend, and ARM's: under emulated SVE OpenVINO disagreed with it
    (docs/install.md)."""
    if platform.machine().lower() not in X86_MACHINES:
        return "onnxruntime"
    try:
        openvino_core()
    except FaceparseError:
        return "onnxruntime"
    return "openvino"


def openvino_capabilities() -> list[str]:
    """OpenVINO's CPU OPTIMIZATION_CAPABILITIES: 'BF16' / 'FP16' where the CPU runs them natively."""
    return list(openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def check_execution_precision(requested: str, backend: str, capabilities) -> None:
    """Refuse a precision the backend or CPU cannot run, rather than let it fall back silently.

    (OpenVINO compiles a bf16 hint on an AVX2 CPU without complaint and runs f32.)
    """
    if requested not in EXECUTION_PRECISIONS:
        raise InvalidValueError(f"unknown precision '{requested}'; choose from {', '.join(EXECUTION_PRECISIONS)}")
    if requested == "f32":
        return
    if backend != "openvino":
        raise FaceparseError(f"{backend} runs f32 only; {requested} needs OpenVINO (an .xml model or --backend openvino)")
    if _CAPABILITY[requested] not in capabilities:
        raise FaceparseError(f"this CPU cannot run {requested} (OpenVINO CPU capabilities: {', '.join(capabilities)})")


@dataclass
class ModelInfo:
    """What the pipeline needs to know about a model: its input size, normalisation and framing."""

    input_size: int
    mean: tuple
    std: tuple
    precision: str
    config: dict

    @property
    def context(self) -> float:
        """How much wider than its face crop the model's view is (ModelConfig.context; 1 in older models)."""
        return float(self.config.get("context", 1.0))

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
        raise FaceparseError(f"{path} cannot run a 1x3x{size}x{size} input: {first_line(exc)}") from None
    side = shape[-1] if len(shape) == 4 else 0
    if shape[:3] != (1, NUM_CLASSES, side) or not side or size % side or (size // side) & (size // side - 1):
        raise FaceparseError(f"{path} outputs shape {shape}; a face parser outputs (1, {NUM_CLASSES}, S, S) "
                             f"logits, S = {size} / a power of 2")


def onnxruntime_session(model: str | bytes, threads: int, name, spin: bool = True):
    """An ONNX Runtime CPU session for a model file or the bytes of one (`name` names it in errors).

    `spin`: ONNX Runtime's worker threads busy-wait between calls by default, which is fastest for
    back-to-back calls (the latency benchmark) but takes the CPU from everything a video pipeline
    does between model calls. Without it they still busy-wait inside a call, between its operators, and
    stop at its end (`session.force_spinning_stop`). On the 2-core AVX-512 EPYC, one-face frames of the
    shared video: 73.4 FPS so, 67.6 with the threads sleeping even inside a call, 50.5 spinning between
    calls (one interleaved run of 5 each; benchmarks/bench_model_call.py times the call alone).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if not spin:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise FaceparseError(f"cannot load ONNX model {name}: {first_line(exc)}") from None


def openvino_model(model: str | bytes, name):
    """OpenVINO's reading of a model file (IR or ONNX) or of ONNX bytes."""
    try:
        return openvino_core().read_model(model, b"") if isinstance(model, bytes) else openvino_core().read_model(model)
    except Exception as exc:  # openvino raises RuntimeError subclasses with long messages
        raise FaceparseError(f"cannot load OpenVINO model {name}: {first_line(exc)}") from None


def openvino_compiled(model, threads: int, precision: str, name):
    """`model` compiled for the CPU in the execution precision asked for, or a one-line error."""
    check_execution_precision(precision, "openvino", openvino_capabilities())
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = openvino_core().compile_model(model, "CPU", config)
    ran = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    if ran != precision:
        raise FaceparseError(f"OpenVINO compiled {name} for {ran}, not the {precision} asked for")
    return compiled


def shipped_graph(path: Path, sha256: str, what: str) -> bytes:
    """The bytes of an ONNX graph this package ships (`what` names it in errors), checked against its sha256."""
    try:
        graph = path.read_bytes()
    except OSError as exc:
        raise FaceparseError(f"cannot read the {what} {path}: {first_line(exc)} (reinstall faceparse-edge)") from None
    if hashlib.sha256(graph).hexdigest() != sha256:
        raise FaceparseError(f"the {what} {path} are not the ones shipped (sha256 mismatch; reinstall faceparse-edge)")
    return graph


def graph_runner(graph: bytes, name: str, backend: str, threads: int, precision: str, input_name: str,
                 outputs: tuple[str, ...]):
    """`run(blob) -> [outputs]` for a helper network (detector, segmenter) on the parser's backend. Its threads
    sleep between calls: it runs between the parser's."""
    if backend == "openvino":
        compiled = openvino_compiled(openvino_model(graph, name), threads, precision, name)
        ports = [compiled.output(o) for o in outputs]
        return lambda blob: (lambda result: [result[p] for p in ports])(compiled(blob))
    session = onnxruntime_session(graph, threads, name, spin=False)
    return lambda blob: session.run(list(outputs), {input_name: blob})


class OnnxRuntimeBackend:
    name = "onnxruntime"
    execution_precision = "f32"

    def __init__(self, path: str | Path, threads: int = 0, precision: str = "f32", spin: bool = True):
        check_execution_precision(precision, self.name, [])
        self.session = onnxruntime_session(str(path), threads, path, spin)
        metadata = self.session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in metadata:
            raise FaceparseError(f"{path} is not a faceparse-edge model (no {CONFIG_KEY} metadata)")
        self.info = ModelInfo.from_json(metadata[CONFIG_KEY], metadata.get(PRECISION_KEY, "fp32"), path)
        inp = self.session.get_inputs()[0]
        _check_input(path, inp.shape, self.info)
        self.input_name = inp.name
        # A model exported with a fixed batch of 1 runs a larger batch an image at a time.
        self.one_at_a_time = inp.shape[0] == 1
        if isinstance(inp.shape[0], int) and inp.shape[0] > 1:
            raise FaceparseError(f"{path} takes a fixed batch of {inp.shape[0]}; export it with a dynamic batch "
                                 "(faceparse-edge export does) or a batch of 1")
        _check_output(path, self)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.one_at_a_time and len(batch) != 1:
            return np.concatenate([self.session.run(None, {self.input_name: x[None]})[0] for x in batch])
        return self.session.run(None, {self.input_name: batch})[0]


class OpenVinoBackend:
    """An OpenVINO model on the CPU, compiled once per batch size in use (reshaped to it first). A fixed shape
    runs faster than the dynamic batch (the 320 px `edge`, batch 2 as flip TTA runs it: 6% to 27% less time on the
    2-core AVX-512 EPYC, benchmarks/bench_model_call.py), and OpenVINO's ARM CPU plugin cannot compile the ASPP's
    image-pooling branch under a dynamic batch at all (`Check 'any_of(scale.size(), OC, 1U)' failed`)."""

    name = "openvino"

    def __init__(self, path: str | Path, threads: int = 0, precision: str = "f32"):
        self.model = openvino_model(str(path), path)
        self.info = _openvino_model_info(self.model, path)
        _check_input(path, [d.get_length() if d.is_static else -1 for d in self.model.input(0).get_partial_shape()],
                     self.info)
        self._compile = lambda model: openvino_compiled(model, threads, precision, path)
        self._by_batch = {}  # batch size -> (compiled model, its output)
        self.execution_precision = precision
        _check_output(path, self)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) not in self._by_batch:
            model = self.model.clone()
            model.reshape({model.input(0): list(batch.shape)})
            compiled = self._compile(model)
            self._by_batch[len(batch)] = compiled, compiled.output(0)
        compiled, output = self._by_batch[len(batch)]
        return compiled(batch)[output]


def _openvino_model_info(model, path) -> ModelInfo:
    """The faceparse-edge config of a model OpenVINO read: from an IR's rt_info, or from an ONNX
    file's metadata (OpenVINO reads ONNX but drops its metadata_props)."""
    if Path(path).suffix.lower() == ".onnx":
        import onnxruntime as ort

        metadata = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in metadata:
            raise FaceparseError(f"{path} is not a faceparse-edge model (no {CONFIG_KEY} metadata)")
        return ModelInfo.from_json(metadata[CONFIG_KEY], metadata.get(PRECISION_KEY, "fp32"), path)
    if not model.has_rt_info(["faceparse_edge", "config"]):
        raise FaceparseError(f"{path} is not a faceparse-edge model (no faceparse_edge config in its rt_info)")
    stored = (model.get_rt_info(["faceparse_edge", "precision"]).astype(str)
              if model.has_rt_info(["faceparse_edge", "precision"]) else "fp32")
    return ModelInfo.from_json(model.get_rt_info(["faceparse_edge", "config"]).astype(str), stored, path)


def precision_ran(backend) -> str:
    """What actually runs: 'f32' or 'bf16' for an FP32 model, 'int8+f32' for an INT8 one, ..."""
    stored, executed = backend.info.precision, backend.execution_precision
    return executed if stored == "fp32" else f"{stored}+{executed}"


def model_size_mb(path: str | Path) -> float:
    """Size on disk; an OpenVINO IR counts its .xml and .bin."""
    path = Path(path)
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def open_backend(path: str | Path, backend: str, threads: int = 0, precision: str = "f32", spin: bool = True):
    """Load a model file with the named backend (onnxruntime or openvino); open_model, the one caller, picks it
    and checks that the file exists.

    `precision` is the floating-point execution precision (the parts of an INT8 model that
    stay in floating point follow it too); f32 unless a reduced one is asked for. `spin=False`
    lets ONNX Runtime's threads sleep between calls (see `onnxruntime_session`; ONNX Runtime only).
    """
    path = Path(path)
    if path.suffix.lower() not in READS[backend]:
        raise FaceparseError(f"{backend} cannot read {path}: it reads {' and '.join(READS[backend])} files")
    if backend == "onnxruntime":
        return OnnxRuntimeBackend(path, threads, precision, spin)
    return OpenVinoBackend(path, threads, precision)
