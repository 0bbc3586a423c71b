"""Convert the official CelebAMask-HQ release into the images/ + masks/ + splits/ layout."""

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..classes import CLASS_NAMES
from ..errors import FaceparseError
from ..fileio import atomic_path, read_image, write_label_png, write_text_atomic
from ..progress import progress_bar

# Official part order; later parts overwrite earlier ones, so the label id is the index + 1.
PARTS = CLASS_NAMES[1:]
IMAGES_PER_FOLDER = 2000
SPLIT_NAMES = {0: "train", 1: "val", 2: "test"}


def read_partition(src: Path) -> dict[int, str]:
    """CelebA-HQ index -> split name, via the HQ-to-CelebA mapping and CelebA's eval partition."""
    mapping_file = src / "CelebA-HQ-to-CelebA-mapping.txt"
    partition_file = src / "list_eval_partition.txt"
    for f in (mapping_file, partition_file):
        if not f.is_file():
            raise FaceparseError(f"{src} is not a CelebAMask-HQ release: missing {f.name}")
    partition = {}
    for line in partition_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            partition[parts[0]] = SPLIT_NAMES[int(parts[1])]
    splits = {}
    for line in mapping_file.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3 and parts[2] in partition:
            splits[int(parts[0])] = partition[parts[2]]
    return splits


def merge_parts(anno_dir: Path, index: int, size: int) -> np.ndarray:
    """One class-id mask from the per-part binary masks of image `index`."""
    folder = anno_dir / str(index // IMAGES_PER_FOLDER)
    mask = np.zeros((size, size), np.uint8)
    for label, part in enumerate(PARTS, start=1):
        path = folder / f"{index:05d}_{part}.png"
        if not path.is_file():
            continue
        try:
            with Image.open(path) as im:
                part_mask = np.asarray(im.convert("L")) > 127
        except OSError as exc:
            raise FaceparseError(f"cannot read part mask {path}: {exc}") from None
        if part_mask.shape != (size, size):
            part_mask = cv2.resize(part_mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
        mask[part_mask] = label
    return mask


def prepare(src: str | Path, out: str | Path, size: int = 512) -> dict[str, int]:
    src, out = Path(src), Path(out)
    images_dir, anno_dir = src / "CelebA-HQ-img", src / "CelebAMask-HQ-mask-anno"
    for d in (images_dir, anno_dir):
        if not d.is_dir():
            raise FaceparseError(f"{src} is not a CelebAMask-HQ release: missing {d.name}/")
    splits = read_partition(src)
    images = sorted((p for p in images_dir.glob("*.jpg") if p.stem.isdigit()), key=lambda p: int(p.stem))
    if not images:
        raise FaceparseError(f"no <index>.jpg images in {images_dir}")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    ids = {name: [] for name in SPLIT_NAMES.values()}
    with progress_bar() as progress:
        task = progress.add_task("prepare", total=len(images), info="")
        for path in images:
            index = int(path.stem)
            image = cv2.resize(read_image(path), (size, size), interpolation=cv2.INTER_AREA)
            with atomic_path(out / "images" / f"{index}.jpg") as tmp:
                Image.fromarray(image).save(tmp, format="JPEG", quality=95)
            write_label_png(out / "masks" / f"{index}.png", merge_parts(anno_dir, index, size))
            if index in splits:
                ids[splits[index]].append(str(index))
            progress.update(task, advance=1)
    for name, members in ids.items():
        if members:
            write_text_atomic(out / "splits" / f"{name}.txt", "\n".join(members) + "\n")
    return {name: len(members) for name, members in ids.items()}
