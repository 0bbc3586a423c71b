"""Distillation from a teacher's flip-TTA parse: the student learns, in one pass, what the
teacher sees with two (its own view averaged with the mirrored one, left/right swapped)."""

import torch
import torch.nn.functional as F
from torch import nn

from ..classes import FLIP_PERMUTATION
from .model import FaceParser


class FlipTeacher(nn.Module):
    """A frozen model whose soft targets are its flip-TTA class probabilities at its decoder's
    resolution (as evaluation and the runtime average them); inputs normalised for the student
    are re-normalised for the teacher."""

    def __init__(self, teacher: FaceParser, student_mean, student_std):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        c = teacher.config
        mean_s, std_s, mean_t, std_t = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1)
                                        for v in (student_mean, student_std, c.mean, c.std))
        # teacher input = student input * scale + shift
        self.register_buffer("scale", std_s / std_t)
        self.register_buffer("shift", (mean_s - mean_t) / std_t)
        self.register_buffer("permutation", torch.as_tensor(FLIP_PERMUTATION, dtype=torch.long))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale + self.shift
        probs = self.teacher.coarse_logits(torch.cat([x, x.flip(3)])).float().softmax(1)
        n = len(x)
        return 0.5 * (probs[:n] + probs[n:][:, self.permutation].flip(3))


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Pixel-mean cross-entropy to soft targets (the KL divergence to them plus a constant).

    Logits finer than the targets are average-pooled to their grid first: scoring 16x fewer
    pixels at the decoder's stride keeps distillation cheap on a CPU.
    """
    if logits.shape[-2:] != target_probs.shape[-2:]:
        logits = F.adaptive_avg_pool2d(logits, target_probs.shape[-2:])
    return -(target_probs * F.log_softmax(logits.float(), dim=1)).sum(1).mean()
