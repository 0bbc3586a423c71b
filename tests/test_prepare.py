import numpy as np
import pytest
from PIL import Image

from faceparse_edge.errors import FaceparseError
from faceparse_edge.toolkit.samples import list_samples, load_pair
from faceparse_edge.toolkit.prepare import PARTS, prepare


def make_release(root, n=3, image_size=128, mask_size=64):
    """Files in the exact layout of the official CelebAMask-HQ release, at a small size."""
    (root / "CelebA-HQ-img").mkdir(parents=True)
    mapping = ["idx         orig_idx        orig_file"]
    partition = []
    for i in range(n):
        Image.fromarray(np.full((image_size, image_size, 3), 40 * i, np.uint8)).save(root / "CelebA-HQ-img" / f"{i}.jpg")
        folder = root / "CelebAMask-HQ-mask-anno" / str(i // 2000)
        folder.mkdir(parents=True, exist_ok=True)
        skin = np.zeros((mask_size, mask_size), np.uint8)
        skin[8:56, 8:56] = 255
        nose = np.zeros_like(skin)
        nose[20:40, 20:40] = 255  # overlaps skin: the later part (nose) wins
        hair = np.zeros_like(skin)
        hair[0:12, :] = 255  # overlaps skin's top rows: hair comes later, wins
        for part, m in (("skin", skin), ("nose", nose), ("hair", hair)):
            Image.fromarray(m).convert("RGB").save(folder / f"{i:05d}_{part}.png")
        orig = f"{100 + i:06d}.jpg"
        mapping.append(f"{i}  {100 + i}  {orig}")
        partition.append(f"{orig} {i % 3}")
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root


def test_prepare_merges_parts_in_official_order_and_writes_splits(tmp_path):
    src = make_release(tmp_path / "release")
    counts = prepare(src, tmp_path / "out", size=64)
    assert counts == {"train": 1, "val": 1, "test": 1}
    assert (tmp_path / "out" / "splits" / "val.txt").read_text().split() == ["1"]
    samples = list_samples(tmp_path / "out")
    assert [s.id for s in samples] == ["0", "1", "2"]
    image, mask = load_pair(samples[2])
    assert image.shape == (64, 64, 3) and abs(int(image.mean()) - 80) <= 2
    skin, nose, hair = (PARTS.index(p) + 1 for p in ("skin", "nose", "hair"))
    assert mask[30, 30] == nose and mask[50, 50] == skin and mask[5, 30] == hair and mask[60, 60] == 0
    assert mask[10, 30] == hair  # skin overwritten by the later hair part


def test_prepare_rejects_a_folder_that_is_not_a_release(tmp_path):
    with pytest.raises(FaceparseError, match="not a CelebAMask-HQ release"):
        prepare(tmp_path, tmp_path / "out")
