"""Checkpoints (weights-only torch files) and shipped weights (safetensors), both self-describing."""

import json
from pathlib import Path

import torch

from ..errors import FaceparseError, NotFoundError, first_line
from ..fileio import atomic_path
from ..models.registry import resolve_model
from .model import FaceParser, build_model
from .model_config import ModelConfig

FORMAT_TAG = "faceparse-edge"


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Atomically write a training checkpoint; `state` holds only tensors and plain Python data."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise FaceparseError(f"checkpoint {path} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise FaceparseError(f"cannot load checkpoint {path}: {first_line(exc)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_TAG or "config" not in state:
        raise FaceparseError(f"{path} is not a faceparse-edge checkpoint")
    return state


def save_weights(path: str | Path, model: FaceParser) -> None:
    """Write inference weights as safetensors with the model config in the metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT_TAG, "config": json.dumps(model.config.to_dict())}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise FaceparseError(f"cannot read weights {path}: {exc}") from None
    if metadata.get("format") != FORMAT_TAG or "config" not in metadata:
        raise FaceparseError(f"{path} is not a faceparse-edge model (no faceparse-edge config in its metadata)")
    try:
        return json.loads(metadata["config"]), tensors
    except ValueError:
        raise FaceparseError(f"{path} has a malformed faceparse-edge config in its metadata") from None


def load_model(path: str | Path | None = None) -> FaceParser:
    """Rebuild a model from a .safetensors export or a training checkpoint (.pt); a shipped
    model's short name or None (the default model) load its torch weights."""
    path = resolve_model(path)
    if path.suffix.lower() in (".onnx", ".xml"):
        raise FaceparseError(f"{path} is an exported model; this needs torch weights (.safetensors or a .pt checkpoint)")
    if not path.is_file():
        raise NotFoundError(f"weights not found: {path}")
    if path.suffix == ".safetensors":
        config, tensors = _read_safetensors(path)
    else:
        state = load_checkpoint(path)
        config, tensors = state["config"], state["model"]
    try:
        model = build_model(ModelConfig.from_dict(config))
    except (FaceparseError, TypeError, ValueError, RuntimeError) as exc:  # unknown keys, wrong types or ranges
        raise FaceparseError(f"{path} has an invalid model config: {first_line(exc)}") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise FaceparseError(f"weights in {path} do not match their model config: {first}") from None
    return model.eval()
