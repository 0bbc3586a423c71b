"""Dataset evaluation through any backend, at the ground-truth resolution (torch-free)."""

from typing import Sequence

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
    context: float = 1.0,
) -> tuple[dict, SegmentationMetrics]:
    """Parse every sample and score it against its mask at the mask's resolution.

    `load_pair(sample)` returns (RGB image, class-id mask) of one size; the image is resized to
    the model input, and the predicted probabilities are resized back to that size. If
    `predictions` is a list, each predicted label map is appended to it. `context`: the model's framing
    (ModelConfig.context).
    """
    metrics = SegmentationMetrics()
    with progress_bar(transient=not show_progress) as progress:
        task = progress.add_task(description, total=len(samples), info="")
        for start in range(0, len(samples), batch_size):
            pairs = [load_pair(s) for s in samples[start : start + batch_size]]
            labels_of_pairs = parse_batch(backend, [p[0] for p in pairs], size, mean, std, tta, context)
            for labels, (_, mask) in zip(labels_of_pairs, pairs):
                metrics.update(labels, mask)
                if predictions is not None:
                    predictions.append(labels)
            progress.update(task, advance=len(pairs))
    return metrics.result(), metrics
