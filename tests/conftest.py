import os
from pathlib import Path

import pytest

from faceparse_edge.toolkit.synthetic import make_dataset  # the tests import it from here

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
