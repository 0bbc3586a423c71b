import numpy as np
import pytest
from PIL import Image

from faceparse_edge.errors import FaceparseError
from faceparse_edge.fileio import write_label_png
from faceparse_edge.toolkit.samples import list_samples, load_pair
from faceparse_edge.toolkit.stats import dataset_stats

from .conftest import make_dataset


def test_shared_dataset_splits(celeba_mini):
    train, val = list_samples(celeba_mini, "train"), list_samples(celeba_mini, "val")
    assert len(train) == 800 and len(val) == 100
    assert not {s.id for s in train} & {s.id for s in val}
    assert len(list_samples(celeba_mini)) == 900
    image, mask = load_pair(val[0])
    assert image.shape == (512, 512, 3) and mask.shape == (512, 512) and mask.max() <= 18


def test_missing_or_empty_directories(tmp_path):
    with pytest.raises(FaceparseError, match="not found"):
        list_samples(tmp_path / "nope")
    with pytest.raises(FaceparseError, match="missing images/"):
        list_samples(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(FaceparseError, match="no images"):
        list_samples(tmp_path)


def test_image_without_mask_and_unknown_split(tiny_dataset):
    (tiny_dataset / "masks" / "s3.png").unlink()
    with pytest.raises(FaceparseError, match="s3.jpg has no mask"):
        list_samples(tiny_dataset)
    with pytest.raises(FaceparseError, match="split 'test' not found"):
        list_samples(tiny_dataset, "test")


def test_out_of_range_mask_names_the_file(tiny_dataset):
    Image.fromarray(np.full((64, 64), 19, np.uint8), mode="L").save(tiny_dataset / "masks" / "s2.png")
    sample = next(s for s in list_samples(tiny_dataset) if s.id == "s2")
    with pytest.raises(FaceparseError, match=r"s2\.png has class id 19"):
        load_pair(sample)


def test_rgb_mask_is_rejected(tiny_dataset):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tiny_dataset / "masks" / "s1.png")
    with pytest.raises(FaceparseError, match="mode RGB"):
        load_pair(next(s for s in list_samples(tiny_dataset) if s.id == "s1"))


def test_grayscale_rgba_and_other_size_images_are_converted(tmp_path):
    root = make_dataset(tmp_path / "d", n=3)
    Image.fromarray(np.full((64, 64), 128, np.uint8), mode="L").save(root / "images" / "s0.jpg")
    Image.fromarray(np.full((64, 64, 4), 200, np.uint8), mode="RGBA").save(root / "images" / "s1.png")
    (root / "images" / "s1.jpg").unlink()
    Image.fromarray(np.full((128, 128, 3), 10, np.uint8)).save(root / "images" / "s2.jpg")  # as CelebAMask-HQ: 2x its mask
    for sample in list_samples(root):
        image, mask = load_pair(sample)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and mask.shape == (64, 64)
    Image.fromarray(np.full((50, 70, 3), 10, np.uint8)).save(root / "images" / "s2.jpg")  # not the mask's picture
    with pytest.raises(FaceparseError, match="is 70x50 but its mask .*s2.png is 64x64"):
        load_pair(next(s for s in list_samples(root) if s.id == "s2"))


def test_unreadable_image_is_named(tiny_dataset):
    (tiny_dataset / "images" / "s4.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FaceparseError, match="cannot read image .*s4.jpg"):
        load_pair(next(s for s in list_samples(tiny_dataset) if s.id == "s4"))


def test_label_png_round_trip(tmp_path):
    labels = np.arange(19, dtype=np.uint8).repeat(3).reshape(3, 19)
    write_label_png(tmp_path / "l.png", labels)
    with Image.open(tmp_path / "l.png") as im:
        assert im.mode == "P"
        assert (np.asarray(im) == labels).all()


def test_stats_counts_pixels_images_and_channels(tmp_path):
    root = make_dataset(tmp_path / "d", n=4)
    stats = dataset_stats(root)
    masks = [np.asarray(Image.open(p)) for p in sorted((root / "masks").glob("*.png"))]
    by_name = {c["name"]: c for c in stats["classes"]}
    assert by_name["skin"]["pixels"] == sum(int((m == 1).sum()) for m in masks)
    assert by_name["hair"]["images"] == 4 and by_name["hat"]["images"] == 0
    assert sum(c["share"] for c in stats["classes"]) == pytest.approx(100)
    assert stats["images"] == 4 and len(stats["mean"]) == 3 and all(0 < s < 1 for s in stats["std"])
