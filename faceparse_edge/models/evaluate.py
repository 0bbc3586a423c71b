"""`faceparse-edge evaluate` as a function: any model a name or file opens, scored on a dataset's split."""

from pathlib import Path

from ..errors import FaceparseError
from ..evaluation import evaluate_backend
from ..metrics import SegmentationMetrics
from .loader import open_model


def evaluate_model(model: str | Path | None, data, split: str | None = None, tta: bool = False,
                   imgsz: int | None = None, device: str = "cpu") -> tuple[dict, SegmentationMetrics]:
    """The `evaluate` command: any model (see open_model) on a dataset's split (default: val where it has one),
    at the model's input size or, for torch weights, at `imgsz`."""
    from ..toolkit.samples import list_samples, load_pair, resolve_split

    split = resolve_split(data, split)
    backend = open_model(model, device=device)
    size = imgsz or backend.info.input_size
    if backend.name != "torch" and size != backend.info.input_size:
        raise FaceparseError(f"{model} was exported at {backend.info.input_size} px: --imgsz applies to torch weights")
    result, metrics = evaluate_backend(backend, list_samples(data, split), load_pair, size, backend.info.mean,
                                       backend.info.std, tta=tta, context=backend.info.context)
    result.update({"data": str(data), "split": split, "tta": "flip" if tta else "none", "input_size": size,
                   "weights": str(model)})
    return result, metrics
