"""Calibration sets for INT8: a stratified pick from a labelled dataset, preprocessed like the runtime."""

import json
import os
from pathlib import Path

import numpy as np

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import FaceparseError
from ..fileio import read_image, read_label_png, write_text_atomic
from ..parsing import preprocess
from ..progress import progress_bar

RARE_CLASSES = (3, 14, 15, 16)  # eyeglasses, hat, earring, necklace
# INT8 mIoU is flat from 8 calibration images on (benchmarks/results/avx2/int8_calibration_size.md); 32 is the
# smallest stratified pick that holds 4 images of each rare class.
DEFAULT_CALIBRATION_SIZE = 32
MIN_IMAGES = 8


def build_calibration_set(data: Path | None, video: Path | None, split: str | None, size: int, seed: int,
                          out_file: Path, crops_dir: Path) -> int:
    """The `calibrate` command: a stratified pick from a labelled dataset, or face crops cut from a video as the
    runtime cuts them (written to `crops_dir`), listed in a manifest; returns the number of images."""
    from ..toolkit.samples import list_samples

    if video is not None:
        images = crops_from_video(str(video), crops_dir, size)
        write_manifest(out_file, str(video), images, kind="video face crops")
        return len(images)
    picked = pick_stratified(list_samples(data, split), size, seed)
    write_manifest(out_file, str(data), [s.image for s in picked], kind="stratified pick", split=split, seed=seed,
                   rare_class_images=rare_class_counts(picked), ids=[s.id for s in picked])
    return len(picked)


def pick_stratified(samples, size: int, seed: int = 0) -> list:
    """`size` samples where each rare class gets about size/8 images, the rest picked at random."""
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


def write_manifest(path: Path, source: str, images: list, **details) -> None:
    """A calibration manifest: where the images came from and their paths, relative to the manifest."""
    folder = Path(path).resolve().parent
    relative = [os.path.relpath(Path(p).resolve(), folder) for p in images]  # portable with the repo
    manifest = {"source": str(source), "size": len(images), **details, "images": relative}
    write_text_atomic(path, json.dumps(manifest, indent=1) + "\n")


def rare_class_counts(samples) -> dict:
    masks = [read_label_png(s.mask) for s in samples]
    return {CLASS_NAMES[c]: sum(bool((m == c).any()) for m in masks) for c in RARE_CLASSES}


def read_manifest(path: Path) -> list[Path]:
    try:
        images = [Path(path).parent / p for p in json.loads(Path(path).read_text())["images"]]
    except (OSError, ValueError, KeyError) as exc:
        raise FaceparseError(f"cannot read calibration manifest {path}: {exc}") from None
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise FaceparseError(f"{len(missing)} images of calibration manifest {path} are missing (first: {missing[0]})")
    return images


def crops_from_video(video: str, out_dir: Path, size: int) -> list[Path]:
    """Face crops from frames spread over a video, cut exactly as the runtime cuts them (PNG, lossless)."""
    import cv2

    from ..fileio import write_image
    from ..runtime.align import side, warp_crop
    from ..runtime.detectors import make_detector
    from ..runtime.crop_rule import CropRule, rule_file

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise FaceparseError(f"cannot open video {video}")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    step = max(1, total // (4 * size))  # look at 4x more frames than needed: not every frame has a face
    detector = make_detector()
    rule = CropRule.load(rule_file(detector.name))
    found, index = [], 0
    with progress_bar(transient=True) as progress:
        task = progress.add_task("video crops", total=total, info="")
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % step == 0:
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                crops = [rule.transform(*face) for face in detector.detect(rgb)]
                found += [(index, k, warp_crop(rgb, m, round(side(m)))) for k, m in enumerate(crops)]
            index += 1
            progress.update(task, advance=1)
    cap.release()
    if len(found) < MIN_IMAGES:
        raise FaceparseError(f"only {len(found)} face crops found in {video}; a calibration set needs {MIN_IMAGES}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in np.linspace(0, len(found) - 1, min(size, len(found))).round().astype(int):  # spread over the video
        frame_index, k, face = found[i]
        path = out_dir / f"{Path(video).stem}_{frame_index:06d}_{k}.png"
        write_image(path, cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def calibration_batches(image_paths, size: int, mean, std, context: float = 1.0) -> list[np.ndarray]:
    """One (1, 3, size, size) batch per image (aligned faces, framed with the model's `context`), through the
    runtime's own preprocessing."""
    if len(image_paths) < MIN_IMAGES:
        raise FaceparseError(f"too few calibration images: {len(image_paths)} (need at least {MIN_IMAGES})")
    return [preprocess([read_image(p)], size, mean, std, context) for p in image_paths]
