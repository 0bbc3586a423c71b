"""Class distribution and normalisation statistics of a dataset directory."""

import numpy as np

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..progress import progress_bar
from .samples import channel_mean_std, left_right_swapped, list_samples, load_pair


def dataset_stats(root, split: str | None = None) -> dict:
    samples = list_samples(root, split)
    pixels = np.zeros(NUM_CLASSES, np.int64)
    images_with = np.zeros(NUM_CLASSES, np.int64)
    loaded, swapped = [], []

    def images():
        with progress_bar(transient=True) as progress:
            task = progress.add_task("stats", total=len(samples), info="")
            for sample in samples:
                image, mask = load_pair(sample)
                counts = np.bincount(mask.ravel(), minlength=NUM_CLASSES)
                pixels[:] += counts
                images_with[:] += counts > 0
                loaded.append(sample.id)
                if left_right_swapped(mask):
                    swapped.append(sample.id)
                progress.update(task, advance=1)
                yield image

    mean, std = channel_mean_std(images())
    total = pixels.sum()
    return {
        "images": len(loaded),
        "classes": [
            {"id": i, "name": name, "pixels": int(pixels[i]), "share": float(pixels[i] / total * 100),
             "images": int(images_with[i])}
            for i, name in enumerate(CLASS_NAMES)
        ],
        "left_right_swapped": swapped,
        "mean": mean,
        "std": std,
    }
