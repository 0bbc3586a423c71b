"""Distillation from a teacher's test-time-augmented parse: the student learns, in one pass,
what the teacher sees with several (its own view averaged with the mirrored one, left/right
swapped, at one or more input scales)."""

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..classes import FLIP_PERMUTATION
from ..errors import FaceparseError
from .model import FaceParser


def parse_scales(text: str) -> tuple[float, ...]:
    """Scales from a comma-separated list such as '0.8125,1,1.1875' (each 0.25..4)."""
    try:
        scales = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise FaceparseError(f"scales are comma-separated numbers such as 0.8125,1,1.1875, got '{text}'") from None
    if not all(0.25 <= s <= 4 for s in scales):
        raise FaceparseError(f"each scale must be between 0.25 and 4, got '{text}'")
    return scales


class TTATeacher(nn.Module):
    """A frozen model whose soft targets are its flip-TTA class probabilities at its decoder's
    resolution (as evaluation and the runtime average them), averaged over input `scales`
    (each input resized to scale x its side, rounded to a multiple of 32; each scale's
    probabilities resized to the grid of scale 1). Inputs normalised for the student are
    re-normalised for the teacher."""

    def __init__(self, teacher: FaceParser, student_mean, student_std, scales: Sequence[float] = (1.0,)):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.scales = tuple(scales)
        c = teacher.config
        mean_s, std_s, mean_t, std_t = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1)
                                        for v in (student_mean, student_std, c.mean, c.std))
        # teacher input = student input * gain + offset
        self.register_buffer("gain", std_s / std_t)
        self.register_buffer("offset", (mean_s - mean_t) / std_t)
        self.register_buffer("permutation", torch.as_tensor(FLIP_PERMUTATION, dtype=torch.long))

    def _flip_probs(self, x: torch.Tensor) -> torch.Tensor:
        probs = self.teacher.coarse_logits(torch.cat([x, x.flip(3)])).float().softmax(1)
        n = len(x)
        return 0.5 * (probs[:n] + probs[n:][:, self.permutation].flip(3))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.gain + self.offset
        height, width = x.shape[-2:]
        total, grid = 0.0, None
        for s in self.scales:
            size = (max(32, round(height * s / 32) * 32), max(32, round(width * s / 32) * 32))
            scaled = x if size == (height, width) else F.interpolate(
                x, size=size, mode="bilinear", align_corners=False, antialias=s < 1)
            probs = self._flip_probs(scaled)
            if grid is None:  # the teacher's output stride, from this scale's input and output
                stride = size[0] / probs.shape[-2]
                grid = (round(height / stride), round(width / stride))
            if probs.shape[-2:] != grid:
                probs = F.interpolate(probs, size=grid, mode="bilinear", align_corners=False)
            total = total + probs
        return total / len(self.scales)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Pixel-mean cross-entropy to soft targets (the KL divergence to them plus a constant) over the pixels of
    the image (`known`, (N, H, W) bool at the logits' resolution: not beyond the labelled image).

    Logits finer than the targets are average-pooled to their grid first: scoring 16x fewer
    pixels at the decoder's stride keeps distillation cheap on a CPU.
    """
    weight = known.unsqueeze(1).float()
    if logits.shape[-2:] != target_probs.shape[-2:]:
        logits = F.adaptive_avg_pool2d(logits, target_probs.shape[-2:])
        weight = F.adaptive_avg_pool2d(weight, target_probs.shape[-2:])
    per_pixel = -(target_probs * F.log_softmax(logits.float(), dim=1)).sum(1, keepdim=True)
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1)
