"""`faceparse-edge info`: what a model file holds and how it runs on this machine."""

from pathlib import Path

from ..classes import CLASS_NAMES
from ..models import open_model
from ..runtime.backends import precision_ran
from ..sysinfo import machine_info
from .model import PRESETS, FaceParser, ModelConfig, count_parameters, same_layers


def model_info(weights: Path, precision: str = "f32") -> dict:
    """Format, stored and executed precision, preset, trainable parameters, config and classes of a model file
    (torch weights, ONNX or OpenVINO IR), and the machine it was opened on."""
    backend = open_model(weights, precision=precision)
    config = ModelConfig.from_dict(backend.info.config)
    preset = next((name for name, p in PRESETS.items() if same_layers(p, config, any_width=True)), "custom")
    return {"weights": str(weights), "format": backend.name, "model_precision": backend.info.precision,
            "runs_in": precision_ran(backend), "preset": preset, "config": config.to_dict(),
            "params": count_parameters(FaceParser(config)), "input_size": config.input_size,
            "classes": list(CLASS_NAMES), "machine": machine_info()}
