"""PNG plots: training curves and the confusion matrix."""

from pathlib import Path

import numpy as np

from ..classes import CLASS_NAMES
from ..fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path: str | Path) -> None:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker=".")
    ax_loss.set(title="training loss", xlabel="epoch")
    ax_miou.plot(epochs, [h["val_miou"] for h in history], marker=".", label="val mIoU")
    if "val_miou_raw" in history[0]:  # --ema scores the average; the raw weights' mIoU beside it
        ax_miou.plot(epochs, [h["val_miou_raw"] for h in history], marker=".", label="val mIoU, raw weights")
    ax_miou.plot(epochs, [h["val_f_measure"] for h in history], marker=".", label="val F-measure")
    ax_miou.set(title="validation", xlabel="epoch", ylabel="%")
    ax_miou.legend()
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, path: str | Path, title: str = "confusion (row-normalised)") -> None:
    """Rows are ground truth, columns prediction, each row normalised to sum to 1."""
    plt = _pyplot()
    rows = confusion.sum(1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(9, 8))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(CLASS_NAMES))
    ax.set_xticks(ticks, CLASS_NAMES, rotation=90)
    ax.set_yticks(ticks, CLASS_NAMES)
    ax.set(xlabel="predicted", ylabel="ground truth", title=title)
    for i in range(len(norm)):
        for j in range(len(norm)):
            if norm[i, j] >= 0.01:
                ax.text(j, i, f"{norm[i, j]:.2f}"[1:] if norm[i, j] < 1 else "1", ha="center", va="center",
                        fontsize=6, color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
