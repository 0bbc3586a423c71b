"""Segmentation metrics on a dataset-level confusion matrix (torch-free)."""

import numpy as np

from .classes import CLASS_NAMES, NUM_CLASSES


class SegmentationMetrics:
    """Accumulates a confusion matrix over all pixels and a per-image F-measure.

    mIoU is dataset-level: IoU = TP / (TP + FP + FN) per class from one confusion matrix
    over every pixel, averaged over the classes that occur in the ground truth or the
    prediction. The F-measure is per image: mean F1 over the classes present in that
    image's ground truth, then averaged over images.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), np.int64)
        self.f_scores: list[float] = []

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
        n = self.num_classes
        idx = gt.astype(np.int64).ravel() * n + pred.astype(np.int64).ravel()
        cm = np.bincount(idx, minlength=n * n).reshape(n, n)
        self.confusion += cm
        tp = np.diag(cm)
        present = cm.sum(1) > 0
        f1 = 2 * tp[present] / (cm.sum(0)[present] + cm.sum(1)[present])
        self.f_scores.append(float(f1.mean()))

    def per_class_iou(self) -> np.ndarray:
        cm = self.confusion
        tp = np.diag(cm).astype(np.float64)
        union = cm.sum(0) + cm.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def result(self) -> dict:
        iou = self.per_class_iou()
        total = self.confusion.sum()
        return {
            "miou": float(np.nanmean(iou) * 100) if total else float("nan"),
            "per_class_iou": {
                name: (None if np.isnan(v) else float(v * 100)) for name, v in zip(CLASS_NAMES, iou)
            },
            "pixel_acc": float(np.trace(self.confusion) / total * 100) if total else float("nan"),
            "f_measure": float(np.mean(self.f_scores) * 100) if self.f_scores else float("nan"),
            "images": len(self.f_scores),
        }
