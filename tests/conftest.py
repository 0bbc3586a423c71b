import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceparse_edge.fileio import write_label_png

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEPARSE_SHARED", REPO.parent / "shared"))
CELEBA_MINI = SHARED / "data" / "celebamask-mini"
MEDIA = SHARED / "media"


@pytest.fixture(scope="session")
def celeba_mini() -> Path:
    if not (CELEBA_MINI / "images").is_dir():
        pytest.skip(f"shared data not found at {CELEBA_MINI}")
    return CELEBA_MINI


@pytest.fixture(scope="session")
def media() -> Path:
    """The shared photos and video (../shared/media)."""
    if not (MEDIA / "short_hamilton_clip.mp4").is_file() or not (MEDIA / "obama-720p.jpg").is_file():
        pytest.skip(f"shared media not found at {MEDIA}")
    return MEDIA


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


def link_pairs(root: Path, samples) -> Path:
    """A dataset folder of real image/mask pairs, linked into ../shared, not copied."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for s in samples:
        (root / "images" / s.image.name).symlink_to(s.image)
        (root / "masks" / s.mask.name).symlink_to(s.mask)
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "tiny", n=8, splits={"train": range(6), "val": range(6, 8)})
