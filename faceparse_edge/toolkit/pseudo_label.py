"""Self-training data: a teacher model's parse of unlabelled faces, laid out as a dataset.

The output folder holds the labelled dataset (linked, not copied) plus the unlabelled images
with the teacher's labels as masks; its train split lists both, its other splits are the
dataset's own. `train --data OUT` then trains on it like on any dataset, and validation stays
on real masks.
"""

import os
from pathlib import Path

from ..errors import FaceparseError
from ..fileio import read_image, write_label_png, write_text_atomic
from ..parsing import labels_at, predict_probs, preprocess
from ..progress import progress_bar
from .data import IMAGE_EXTENSIONS, list_samples
from .evaluate import torch_backend
from .model import FaceParser


def _link(target: Path, link: Path) -> None:
    os.symlink(target.resolve(), link)


def pseudo_label(teacher: FaceParser, data: str | Path, unlabelled: str | Path, out: str | Path,
                 split: str = "train", tta: bool = True, batch_size: int = 8) -> dict:
    data, unlabelled, out = Path(data), Path(unlabelled), Path(out)
    samples = list_samples(data)
    train_ids = [s.id for s in list_samples(data, split)]
    if not unlabelled.is_dir():
        raise FaceparseError(f"unlabelled images folder not found: {unlabelled}")
    images = sorted(p for p in unlabelled.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise FaceparseError(f"no images in {unlabelled}")
    clash = sorted({s.id for s in samples} & {p.stem for p in images})
    if clash:
        raise FaceparseError(f"{len(clash)} unlabelled images share an id with {data} (first: {clash[0]})")
    if out.exists() and any(out.iterdir()):
        raise FaceparseError(f"output folder {out} is not empty")
    for sub in ("images", "masks", "splits"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    for s in samples:
        _link(s.image, out / "images" / s.image.name)
        _link(s.mask, out / "masks" / s.mask.name)
    c, backend = teacher.config, torch_backend(teacher)
    with progress_bar() as progress:
        task = progress.add_task("pseudo-label", total=len(images), info="")
        for start in range(0, len(images), batch_size):
            paths = images[start : start + batch_size]
            rgbs = [read_image(p) for p in paths]
            probs = predict_probs(backend, preprocess(rgbs, c.input_size, c.mean, c.std), tta)
            for path, rgb, prob in zip(paths, rgbs, probs):
                write_label_png(out / "masks" / f"{path.stem}.png", labels_at(prob, *rgb.shape[:2]))
                _link(path, out / "images" / path.name)
            progress.update(task, advance=len(paths))

    for split_file in sorted((data / "splits").glob("*.txt")):
        if split_file.stem != split:
            write_text_atomic(out / "splits" / split_file.name, split_file.read_text())
    write_text_atomic(out / "splits" / f"{split}.txt", "\n".join(train_ids + [p.stem for p in images]) + "\n")
    return {"labelled": len(train_ids), "pseudo_labelled": len(images), "split": split, "tta": tta}
