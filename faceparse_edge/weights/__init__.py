"""The shipped models, beside this file (see MODEL_CARD.md)."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.safetensors"  # torch weights, config in the metadata
DEFAULT_ONNX = WEIGHTS_DIR / "faceparse-edge.onnx"  # FP32, the runtime's default (the most accurate)


def shipped_int8_models() -> list[Path]:
    return sorted(p for p in WEIGHTS_DIR.rglob("*int8*") if p.suffix in (".onnx", ".xml"))
