"""Dataset layout: DIR/images/<id>.<ext> + DIR/masks/<id>.png, optional DIR/splits/<name>.txt."""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..classes import FLIP_PERMUTATION, LEFT_RIGHT_PAIRS
from ..errors import FaceparseError, NotFoundError
from ..fileio import read_image, read_label_png

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    mask: Path


def list_samples(root: str | Path, split: str | None = None) -> list[Sample]:
    """The image/mask pairs of a dataset directory, optionally restricted to one split."""
    root = Path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    if not root.is_dir():
        raise NotFoundError(f"data directory not found: {root}")
    for sub in (images_dir, masks_dir):
        if not sub.is_dir():
            raise FaceparseError(f"{root} is not a dataset directory: missing {sub.name}/")
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    if split is None:
        ids = sorted(images)
    else:
        split_file = root / "splits" / f"{split}.txt"
        if not split_file.is_file():
            raise NotFoundError(f"split '{split}' not found: {split_file} does not exist")
        ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise FaceparseError(f"no images in {images_dir}" + (f" for split '{split}'" if split else ""))
    samples = []
    for i in ids:
        if i not in images:
            raise NotFoundError(f"image for id '{i}' not found in {images_dir}")
        mask = masks_dir / f"{i}.png"
        if not mask.is_file():
            raise FaceparseError(f"image {images[i]} has no mask ({mask} is missing)")
        samples.append(Sample(i, images[i], mask))
    return samples


def resolve_split(root: str | Path, split: str | None, default: str = "val") -> str | None:
    """One split rule for every command: a named split; 'all' pairs; or, when none is named,
    `default` where the dataset has splits/<default>.txt and all pairs where it has not."""
    if split == "all":
        return None
    if split is None:
        return default if (Path(root) / "splits" / f"{default}.txt").is_file() else None
    return split


def load_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """RGB image and class-id mask; an image of another size than its mask (CelebAMask-HQ's images
    are 1024 px, its masks 512) is resized to it, if both have the same shape."""
    image = read_image(sample.image)
    mask = read_label_png(sample.mask)
    (h, w), (mh, mw) = image.shape[:2], mask.shape
    if abs(w / h - mw / mh) > 0.01:
        raise FaceparseError(f"image {sample.image} is {w}x{h} but its mask {sample.mask} is {mw}x{mh}: not the same shape")
    if image.shape[:2] != mask.shape:
        image = cv2.resize(image, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_AREA)
    return image, mask


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (area) and its mask (nearest) to size x size."""
    return (
        cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA),
        cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST),
    )


def channel_mean_std(images) -> tuple[list[float], list[float]]:
    """Per-channel RGB mean and std (0..1 scale) over an iterable of uint8 images."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for image in images:
        pixels = image.reshape(-1, 3).astype(np.float64) / 255.0
        total += pixels.sum(0)
        total_sq += (pixels**2).sum(0)
        count += len(pixels)
    if count == 0:
        raise FaceparseError("no images to compute the mean/std from")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return mean.round(4).tolist(), std.round(4).tolist()


def left_right_swapped(mask: np.ndarray) -> bool:
    """True when most left/right pairs in the mask sit against the convention.

    "l_" is the subject's left, on the image's right. Some CelebAMask-HQ masks (58 of the
    900 in celebamask-mini) label the pairs the other way round.
    """
    votes = 0
    for left, right in LEFT_RIGHT_PAIRS:
        xs_left, xs_right = np.nonzero(mask == left)[1], np.nonzero(mask == right)[1]
        if len(xs_left) and len(xs_right):
            votes += 1 if xs_left.mean() < xs_right.mean() else -1
    return votes > 0


def fix_left_right(mask: np.ndarray) -> np.ndarray:
    """Swap the left/right labels of a mask that has them against the convention."""
    return FLIP_PERMUTATION.astype(np.uint8)[mask] if left_right_swapped(mask) else mask
