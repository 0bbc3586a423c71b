"""Calibration sets for INT8: a stratified pick from a labelled dataset, preprocessed like the runtime."""

import json
from pathlib import Path

import numpy as np

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import FaceparseError
from ..fileio import read_image, write_text_atomic
from ..parsing import preprocess
from ..progress import progress_bar

RARE_CLASSES = (3, 14, 15, 16)  # eyeglasses, hat, earring, necklace
MIN_IMAGES = 8


def pick_stratified(samples, size: int, seed: int = 0, masks=None) -> list:
    """`size` samples where each rare class gets about size/8 images, the rest picked at random."""
    from ..fileio import read_label_png

    if size < MIN_IMAGES:
        raise FaceparseError(f"a calibration set needs at least {MIN_IMAGES} images, got {size}")
    if len(samples) < size:
        raise FaceparseError(f"only {len(samples)} images available for a calibration set of {size}")
    rng = np.random.default_rng(seed)
    present = []
    with progress_bar(transient=True) as progress:
        task = progress.add_task("scan masks", total=len(samples), info="")
        for sample in samples:
            present.append(np.bincount(read_label_png(sample.mask).ravel(), minlength=NUM_CLASSES) > 0)
            progress.update(task, advance=1)
    present = np.array(present)
    chosen: list[int] = []
    quota = max(1, size // 8)
    for c in RARE_CLASSES:
        candidates = [i for i in rng.permutation(np.nonzero(present[:, c])[0]) if i not in chosen]
        chosen += [int(i) for i in candidates[:quota]]
    rest = [int(i) for i in rng.permutation(len(samples)) if i not in chosen]
    chosen += rest[: size - len(chosen)]
    return [samples[i] for i in sorted(chosen[:size])]


def write_manifest(path: Path, data: str, split: str | None, picked, seed: int) -> None:
    from ..fileio import read_label_png

    counts = {CLASS_NAMES[c]: sum(bool((read_label_png(s.mask) == c).any()) for s in picked) for c in RARE_CLASSES}
    manifest = {"source": str(data), "split": split, "seed": seed, "size": len(picked),
                "rare_class_images": counts, "ids": [s.id for s in picked]}
    write_text_atomic(path, json.dumps(manifest, indent=1) + "\n")


def read_manifest(path: Path, data: str) -> list:
    from ..toolkit.data import list_samples

    try:
        manifest = json.loads(Path(path).read_text())
        ids = set(manifest["ids"])
    except (OSError, ValueError, KeyError) as exc:
        raise FaceparseError(f"cannot read calibration manifest {path}: {exc}") from None
    samples = [s for s in list_samples(data) if s.id in ids]
    if len(samples) < len(ids):
        raise FaceparseError(f"{len(ids) - len(samples)} images of manifest {path} are missing from {data}")
    return samples


def calibration_batches(image_paths, size: int, mean, std) -> list[np.ndarray]:
    """One (1, 3, size, size) batch per image, through the runtime's own preprocessing."""
    if len(image_paths) < MIN_IMAGES:
        raise FaceparseError(f"too few calibration images: {len(image_paths)} (need at least {MIN_IMAGES})")
    return [preprocess([read_image(p)], size, mean, std) for p in image_paths]
