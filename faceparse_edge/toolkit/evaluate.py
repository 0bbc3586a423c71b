"""Evaluating a torch model on a dataset directory."""

import numpy as np
import torch

from ..evaluation import evaluate_backend
from .data import list_samples, load_pair
from .model import FaceParser


def torch_backend(model: FaceParser, device: str = "cpu"):
    """Wrap a model as a backend: float32 NCHW numpy batch -> coarse NCHW numpy logits, as exported."""
    model = model.to(device).eval()

    @torch.inference_mode()
    def run(batch: np.ndarray) -> np.ndarray:
        return model.coarse_logits(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    return run


def evaluate_model(model: FaceParser, data: str, split: str | None, tta: bool, device: str = "cpu",
                   samples=None, show_progress: bool = True, description: str = "evaluate"):
    samples = samples if samples is not None else list_samples(data, split)
    c = model.config
    return evaluate_backend(
        torch_backend(model, device), samples, load_pair, c.input_size, c.mean, c.std, tta=tta,
        description=description, show_progress=show_progress,
    )
