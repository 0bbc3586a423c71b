"""Segmentation losses: (weighted) cross-entropy, Lovasz-softmax, Dice, Jaccard and their sums; pixels labelled
IGNORE count in none of them."""

import torch
import torch.nn.functional as F
from torch import nn

from ..classes import IGNORE
from ..errors import FaceparseError


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al. 2018)."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax_flat(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovasz-softmax over P pixels: probs (P, C), labels (P,), averaged over present classes."""
    losses = []
    for c in range(probs.shape[1]):
        fg = (labels == c).float()
        if fg.sum() == 0:
            continue
        errors = (fg - probs[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[order])))
    return torch.stack(losses).mean() if losses else probs.sum() * 0


def _flatten(logits, target):
    """(P, C) logits and (P,) labels of the pixels with a known class (not IGNORE)."""
    c = logits.shape[1]
    flat_logits, flat_target = logits.permute(0, 2, 3, 1).reshape(-1, c), target.reshape(-1)
    known = flat_target != IGNORE
    return flat_logits[known], flat_target[known]


class LovaszSoftmax(nn.Module):
    """Lovasz-softmax on a random subsample of pixels: the full-resolution sort dominates a CPU step."""

    def __init__(self, max_pixels: int = 65536):
        super().__init__()
        self.max_pixels = max_pixels

    def forward(self, logits, target):
        flat_logits, flat_target = _flatten(logits, target)
        if self.max_pixels and len(flat_target) > self.max_pixels:
            keep = torch.randint(len(flat_target), (self.max_pixels,), device=flat_target.device)
            flat_logits, flat_target = flat_logits[keep], flat_target[keep]
        return lovasz_softmax_flat(flat_logits.float().softmax(1), flat_target)


class SoftOverlap(nn.Module):
    """Soft Dice or Jaccard loss over the batch, averaged over classes present in the target."""

    def __init__(self, kind: str, eps: float = 1.0):
        super().__init__()
        self.kind, self.eps = kind, eps

    def forward(self, logits, target):
        known = (target != IGNORE).unsqueeze(1)
        probs = logits.float().softmax(1) * known
        onehot = F.one_hot(target.masked_fill(~known[:, 0], 0), probs.shape[1]).permute(0, 3, 1, 2).float() * known
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        total = probs.sum(dims) + onehot.sum(dims)
        if self.kind == "dice":
            score = (2 * inter + self.eps) / (total + self.eps)
        else:
            score = (inter + self.eps) / (total - inter + self.eps)
        present = onehot.sum(dims) > 0
        return (1 - score)[present].mean()


class CrossEntropy(nn.Module):
    def __init__(self, weight: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits, target):
        return F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=IGNORE)


LOSS_NAMES = ("ce", "wce", "lovasz", "dice", "jaccard")


def parse_loss_spec(spec: str) -> dict[str, float]:
    """'ce:1,lovasz:0.5' -> {'ce': 1.0, 'lovasz': 0.5}; a bare name has weight 1."""
    terms = {}
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        if name not in LOSS_NAMES:
            raise FaceparseError(f"unknown loss '{name}' in '{spec}'; choose from {', '.join(LOSS_NAMES)}")
        try:
            terms[name] = float(weight) if weight else 1.0
        except ValueError:
            raise FaceparseError(f"loss weight '{weight}' in '{spec}' is not a number") from None
    return terms


def class_weights(pixel_counts, smoothing: float = 1.02) -> torch.Tensor:
    """ENet-style weights 1/ln(smoothing + frequency), normalised to mean 1."""
    counts = torch.as_tensor(pixel_counts, dtype=torch.float64)
    weights = 1.0 / torch.log(smoothing + counts / counts.sum())
    return (weights / weights.mean()).float()


class CombinedLoss(nn.Module):
    """A weighted sum of the named losses."""

    def __init__(self, spec: str, class_pixel_counts=None, lovasz_pixels: int = 65536):
        super().__init__()
        self.weights = parse_loss_spec(spec)
        makers = {
            "ce": lambda: CrossEntropy(),
            "wce": lambda: CrossEntropy(class_weights(class_pixel_counts)),
            "lovasz": lambda: LovaszSoftmax(lovasz_pixels),
            "dice": lambda: SoftOverlap("dice"),
            "jaccard": lambda: SoftOverlap("jaccard"),
        }
        if "wce" in self.weights and class_pixel_counts is None:
            raise FaceparseError("the wce loss needs the training set's class pixel counts")
        self.terms = nn.ModuleDict({name: makers[name]() for name in self.weights})

    def forward(self, logits, target):
        return sum(self.weights[name] * term(logits, target) for name, term in self.terms.items())
