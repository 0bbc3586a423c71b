"""A torch model run like an exported one (open_model's torch backend), and scored on a dataset (training's val)."""

import numpy as np
import torch

from ..evaluation import evaluate_backend
from .samples import list_samples, load_pair
from .model import FaceParser


class TorchBackend:
    """A torch model as a backend like the exported ones: float32 NCHW numpy batch -> coarse NCHW numpy
    logits (as exported), with the same `name`, `info` and `execution_precision`."""

    name = "torch"
    execution_precision = "f32"

    def __init__(self, model: FaceParser, device: str = "cpu"):
        from ..runtime.backends import ModelInfo

        self.model, self.device = model.to(device).eval(), device
        c = model.config
        self.info = ModelInfo(c.input_size, tuple(c.mean), tuple(c.std), "fp32", c.to_dict())

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.model.coarse_logits(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()


def evaluate_torch(model: FaceParser, data: str, split: str | None, tta: bool, device: str = "cpu",
                   samples=None, show_progress: bool = True, description: str = "evaluate"):
    samples = samples if samples is not None else list_samples(data, split)
    c = model.config
    return evaluate_backend(
        TorchBackend(model, device), samples, load_pair, c.input_size, c.mean, c.std, tta=tta, context=c.context,
        description=description, show_progress=show_progress,
    )
