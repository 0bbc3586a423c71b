"""The shipped models' registry: one folder each beside this file (see MODEL_CARD.md), and the file a name means.

A model folder is laid out like `export --out` (the ONNX and OpenVINO models, FP32 and INT8)
plus the torch weights it was exported from. Every command that takes a model takes a path
or one of these short names; `NAME-int8` names the INT8 version.
"""

from pathlib import Path

from ..errors import FaceparseError, NotFoundError
from ..runtime.backends import auto_backend

MODELS_DIR = Path(__file__).resolve().parent
MODELS = {
    "edge": "fast: 320 px (the face at 301), the runtime default",
    "edge-hq": "accurate: 544 px (the face at 512)",
}
DEFAULT_MODEL = "edge"
TORCH_FILE = "weights.safetensors"  # torch weights, config in the metadata
EXPORT_FILES = {  # (runtime, int8) -> file in a model folder, as `export` names them
    ("onnxruntime", False): "faceparse-edge.onnx",
    ("onnxruntime", True): "faceparse-edge-int8.onnx",
    ("openvino", False): "openvino/faceparse-edge.xml",
    ("openvino", True): "openvino/faceparse-edge-int8.xml",
}
INT8_SUFFIX = "-int8"


def model_dir(name: str = DEFAULT_MODEL) -> Path:
    if name not in MODELS:
        raise FaceparseError(f"unknown model '{name}': the shipped models are {', '.join(MODELS)}")
    folder = MODELS_DIR / name
    if not folder.is_dir():
        raise FaceparseError(f"model '{name}' is not shipped with this installation ({folder} is missing)")
    return folder


def short_names() -> list[str]:
    return [n + s for n in MODELS for s in ("", INT8_SUFFIX)]


def is_short_name(value) -> bool:
    return isinstance(value, str) and value in short_names()


def resolve_model(value: str | Path | None, runtime: str | None = None) -> Path:
    """The model file a command runs: `value` is a path, a short name, or None (the default model).

    runtime None (torch commands): a name gives its torch weights, `NAME-int8` its ONNX Runtime
    INT8 model; "openvino" gives the OpenVINO IR, "auto" the file of `auto_backend()`'s backend (OpenVINO
    on x86-64 where it is installed); any other runtime gives the ONNX model.
    """
    if value is not None and not is_short_name(str(value)):
        path = Path(value)
        if not path.suffix and not path.exists():  # a mistyped name, not a file
            raise NotFoundError(f"no model file or shipped model named '{value}' (shipped: {', '.join(short_names())})")
        return path
    name = str(value or DEFAULT_MODEL)
    int8 = name.endswith(INT8_SUFFIX)
    folder = model_dir(name.removesuffix(INT8_SUFFIX) if int8 else name)
    if runtime is None and not int8:
        return folder / TORCH_FILE
    if runtime == "auto":
        runtime = auto_backend()
    return folder / EXPORT_FILES["openvino" if runtime == "openvino" else "onnxruntime", int8]


def shipped_int8_models(name: str = DEFAULT_MODEL) -> list[Path]:
    folder = model_dir(name)
    return [folder / f for (_, int8), f in EXPORT_FILES.items() if int8 and (folder / f).is_file()]
