"""FP32 ONNX export with the model config embedded as metadata."""

import json
from pathlib import Path

import onnx
import torch

from ..fileio import atomic_path
from ..runtime.backends import CONFIG_KEY, PRECISION_KEY
from ..toolkit.model import CoarseLogits

OPSET = 17


def set_metadata(proto: onnx.ModelProto, config: str, precision: str, **extra: str) -> None:
    """Store the model config (JSON), precision and any `extra` faceparse_edge.* keys in metadata_props."""
    del proto.metadata_props[:]
    for key, value in ((CONFIG_KEY, config), (PRECISION_KEY, precision),
                       *((f"faceparse_edge.{k}", v) for k, v in extra.items())):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def config_metadata(path) -> str:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}[CONFIG_KEY]


def export_onnx(model, path: str | Path, opset: int = OPSET) -> Path:
    """Export a FaceParser (input 'image' NCHW float32, output its coarse 'logits'), dynamic batch."""
    size = model.config.input_size
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.onnx.export(
            CoarseLogits(model).eval(), (torch.zeros(1, 3, size, size),), str(tmp), input_names=["image"],
            output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
        proto = onnx.load(str(tmp))
        set_metadata(proto, json.dumps(model.config.to_dict()), "fp32")
        onnx.save(proto, str(tmp))
    return path
