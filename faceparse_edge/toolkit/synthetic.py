"""A small synthetic dataset in the dataset layout, for smoke runs, tests and benchmarks (torch-free)."""

from pathlib import Path

import numpy as np
from PIL import Image

from ..fileio import write_label_png


def make_dataset(root: Path, n: int = 8, size: int = 64, seed: int = 0, splits=None) -> Path:
    """A synthetic dataset: a 'face' disc with two eyes on a background, labels to match."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cx, cy, r = size / 2 + rng.uniform(-4, 4), size / 2 + rng.uniform(-4, 4), size * 0.3
        mask = np.zeros((size, size), np.uint8)
        mask[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = 1
        mask[:, : size // 8] = 13
        for label, ex in ((5, cx - r / 2), (4, cx + r / 2)):  # r_eye on the image's left
            mask[(xx - ex) ** 2 + (yy - cy + r / 3) ** 2 < (r / 5) ** 2] = label
        image = (np.array([[30, 30, 30], [200, 150, 120], [0, 0, 0], [0, 0, 0], [40, 40, 200], [200, 40, 40]]
                          + [[0, 0, 0]] * 7 + [[90, 60, 20]] + [[0, 0, 0]] * 5, np.uint8)[mask])
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"s{i}.jpg", quality=95)
        write_label_png(root / "masks" / f"s{i}.png", mask)
    if splits:
        (root / "splits").mkdir()
        for name, ids in splits.items():
            (root / "splits" / f"{name}.txt").write_text("\n".join(f"s{i}" for i in ids) + "\n")
    return root
