"""Dataset evaluation through any backend, at the ground-truth resolution (torch-free)."""

from pathlib import Path
from typing import Sequence

from .errors import FaceparseError
from .metrics import SegmentationMetrics
from .parsing import Backend, parse_batch
from .progress import progress_bar


def evaluate_backend(
    backend: Backend,
    samples: Sequence,
    load_pair,
    size: int,
    mean,
    std,
    tta: bool = False,
    batch_size: int = 8,
    description: str = "evaluate",
    show_progress: bool = True,
    predictions: list | None = None,
) -> tuple[dict, SegmentationMetrics]:
    """Parse every sample and score it against its mask at the mask's resolution.

    `load_pair(sample)` returns (RGB image, class-id mask) of one size; the image is resized to
    the model input, and the predicted probabilities are resized back to that size. If
    `predictions` is a list, each predicted label map is appended to it.
    """
    metrics = SegmentationMetrics()
    with progress_bar(transient=not show_progress) as progress:
        task = progress.add_task(description, total=len(samples), info="")
        for start in range(0, len(samples), batch_size):
            pairs = [load_pair(s) for s in samples[start : start + batch_size]]
            for labels, (_, mask) in zip(parse_batch(backend, [p[0] for p in pairs], size, mean, std, tta), pairs):
                metrics.update(labels, mask)
                if predictions is not None:
                    predictions.append(labels)
            progress.update(task, advance=len(pairs))
    return metrics.result(), metrics


def evaluate_model(model: str | Path | None, data, split: str | None = None, tta: bool = False,
                   imgsz: int | None = None, device: str = "cpu") -> tuple[dict, SegmentationMetrics]:
    """The `evaluate` command: any model (see open_model) on a dataset's split (default: val where it has one),
    at the model's input size or, for torch weights, at `imgsz`."""
    from .models import open_model
    from .toolkit.samples import list_samples, load_pair, resolve_split

    split = resolve_split(data, split)
    backend = open_model(model, device=device)
    size = imgsz or backend.info.input_size
    if backend.name != "torch" and size != backend.info.input_size:
        raise FaceparseError(f"{model} was exported at {backend.info.input_size} px: --imgsz applies to torch weights")
    result, metrics = evaluate_backend(backend, list_samples(data, split), load_pair, size, backend.info.mean,
                                       backend.info.std, tta=tta)
    result.update({"data": str(data), "split": split, "tta": "flip" if tta else "none", "input_size": size,
                   "weights": str(model)})
    return result, metrics
