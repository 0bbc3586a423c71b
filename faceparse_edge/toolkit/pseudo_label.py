"""Self-training data: a teacher model's parse of unlabelled faces, laid out as a dataset.

The output folder holds the labelled dataset (linked, not copied) plus the unlabelled images
with the teacher's labels as masks; its train split lists both, its other splits are the
dataset's own. `train --data OUT` then trains on it like on any dataset, and validation stays
on real masks.
"""

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import FaceparseError, NotFoundError
from ..fileio import read_image, write_label_png
from ..parsing import parse_batch
from ..progress import progress_bar
from .samples import IMAGE_EXTENSIONS, list_samples
from .torch_backend import TorchBackend
from .model import FaceParser


def pseudo_label(teacher: FaceParser, data: str | Path, unlabelled: str | Path, out: str | Path,
                 split: str = "train", tta: bool = True, batch_size: int = 8) -> dict:
    """Write the dataset to `out`, which appears only when complete (built in a temporary sibling)."""
    data, unlabelled, out = Path(data), Path(unlabelled), Path(out)
    samples = list_samples(data)
    train_ids = [s.id for s in list_samples(data, split)]
    if not unlabelled.is_dir():
        raise NotFoundError(f"unlabelled images folder not found: {unlabelled}")
    images = sorted(p for p in unlabelled.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise FaceparseError(f"no images in {unlabelled}")
    clash = sorted({s.id for s in samples} & {p.stem for p in images})
    if clash:
        raise FaceparseError(f"{len(clash)} unlabelled images share an id with {data} (first: {clash[0]})")
    if out.exists() and any(out.iterdir()):
        raise FaceparseError(f"output folder {out} is not empty")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would make the dataset private
        for sub in ("images", "masks", "splits"):
            (tmp / sub).mkdir()
        links = [(s.image, "images") for s in samples] + [(s.mask, "masks") for s in samples]
        for target, sub in links + [(p, "images") for p in images]:
            os.symlink(target.resolve(), tmp / sub / target.name)
        c, backend = teacher.config, TorchBackend(teacher)
        with progress_bar() as progress:
            task = progress.add_task("pseudo-label", total=len(images), info="")
            for start in range(0, len(images), batch_size):
                paths = images[start : start + batch_size]
                labels = parse_batch(backend, [read_image(p) for p in paths], c.input_size, c.mean, c.std, tta,
                                     c.context)
                for path, label in zip(paths, labels):
                    write_label_png(tmp / "masks" / f"{path.stem}.png", label)
                progress.update(task, advance=len(paths))
        for split_file in sorted((data / "splits").glob("*.txt")):
            shutil.copyfile(split_file, tmp / "splits" / split_file.name)
        (tmp / "splits" / f"{split}.txt").write_text("\n".join(train_ids + [p.stem for p in images]) + "\n")
        os.replace(tmp, out)  # onto an empty folder or none
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"labelled": len(train_ids), "pseudo_labelled": len(images), "split": split, "tta": tta}
