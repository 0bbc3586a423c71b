"""`faceparse-edge info`: what a model file holds and how it runs on this machine (torch only for torch weights)."""

import json
import math
import struct
from pathlib import Path

from ..classes import CLASS_NAMES
from ..errors import FaceparseError
from ..runtime.backends import precision_ran
from ..sysinfo import machine_info
from ..toolkit.model_config import PRESETS, ModelConfig, same_layers
from .loader import open_model
from .registry import TORCH_FILE

BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # stored in torch weights, not trained


def model_info(weights: Path, precision: str = "f32") -> dict:
    """Format, stored and executed precision, preset, trainable parameters, config and classes of a model file
    (torch weights, ONNX or OpenVINO IR), and the machine it was opened on.

    Trainable parameters: counted on the torch model for torch weights; for an exported model, from the header of
    the torch weights it was exported from where they lie beside it (a shipped model's folder), else None.
    """
    backend = open_model(weights, precision=precision)
    config = ModelConfig.from_dict(backend.info.config)
    preset = next((name for name, p in PRESETS.items() if same_layers(p, config, any_width=True)), "custom")
    if backend.name == "torch":
        from ..toolkit.model import count_parameters

        params = count_parameters(backend.model)  # the model the backend built: info builds it once
    else:
        params = exported_from_parameters(Path(weights), config)
    return {"weights": str(weights), "format": backend.name, "model_precision": backend.info.precision,
            "runs_in": precision_ran(backend), "preset": preset, "config": config.to_dict(), "params": params,
            "input_size": config.input_size, "classes": list(CLASS_NAMES), "machine": machine_info()}


def exported_from_parameters(model: Path, config: ModelConfig) -> int | None:
    """Trainable parameters of the torch weights beside an exported model (its folder, or the one above an
    openvino/ folder) when they hold the same layers, read from the safetensors header alone (no torch)."""
    for folder in (model.parent, model.parent.parent):
        header = safetensors_header(folder / TORCH_FILE)
        try:
            stored = ModelConfig.from_dict(json.loads((header or {}).get("__metadata__", {}).get("config", "null")))
        except (ValueError, FaceparseError):  # no config, or not ours
            continue
        if same_layers(stored, config):
            return sum(math.prod(t["shape"]) for name, t in header.items()
                       if name != "__metadata__" and not name.endswith(BUFFERS))
    return None


def safetensors_header(path: Path) -> dict | None:
    """A safetensors file's JSON header (tensor names, shapes, metadata), or None where there is none to read."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            return json.loads(f.read(length))
    except (OSError, struct.error, ValueError):
        return None
