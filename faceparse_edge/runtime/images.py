"""Parsing still images: an overlay PNG and a palette label PNG per input."""

from pathlib import Path

import cv2

from ..errors import FaceparseError, NotFoundError
from ..fileio import check_outputs, read_image, write_image, write_label_png
from ..progress import console, progress_bar
from .align import corners
from .draw import hud_lines, overlay
from .pipeline import Parser

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def expand_inputs(inputs) -> list[Path]:
    """Image files among the inputs (folders give their images), each file once."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise NotFoundError(f"input not found: {item}")
    if not files:
        raise FaceparseError("no images among the inputs")
    return list({p.resolve(): p for p in files}.values())


def plan_outputs(inputs, out_dir: Path, protect=(), also_written=()) -> list[tuple[Path, Path, Path]]:
    """(image, labels, overlay) per input image, checked before any work.

    Outputs are <stem>.png and <stem>_overlay.png, numbered (<stem>_2 ...) where two inputs
    would otherwise share one (same stem in different folders, or a.png beside a_overlay.jpg).
    No output, nor any path in `also_written` (e.g. the JSON), may replace an input image or
    a path in `protect` (e.g. the model).
    """
    out_dir = Path(out_dir)
    files, taken, plan = expand_inputs(inputs), set(), []
    for path in files:
        stem, n = path.stem, 1
        while {f"{stem}.png", f"{stem}_overlay.png"} & taken:
            n += 1
            stem = f"{path.stem}_{n}"
        taken |= {f"{stem}.png", f"{stem}_overlay.png"}
        plan.append((path, out_dir / f"{stem}.png", out_dir / f"{stem}_overlay.png"))
    check_outputs([*files, *protect], [p for _, *written in plan for p in written] + list(also_written), [out_dir])
    return plan


def parse_images(pipeline: Parser, plan) -> tuple[list[dict], list[str]]:
    """Parse each (image, labels, overlay) of `plan_outputs`; returns one record per parsed image, and the
    errors of images that could not be read."""
    records, errors = [], []
    with progress_bar() as progress:
        task = progress.add_task("parse", total=len(plan), info="")
        for path, labels_path, overlay_path in plan:
            progress.update(task, advance=1)
            try:
                image = read_image(path)
            except FaceparseError as exc:
                errors.append(str(exc))
                console.print(f"skipped: {exc}")
                continue
            result = pipeline.parse(image)
            write_label_png(labels_path, result.labels)
            hud = hud_lines(None, result.timings, pipeline.engine, len(result.faces))[:1]
            drawn = overlay(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), result.labels, result.faces, hud)
            write_image(overlay_path, drawn)
            records.append({
                "input": str(path), "labels": str(labels_path), "overlay": str(overlay_path),
                "size": [image.shape[1], image.shape[0]], "backend": pipeline.backend.name, "precision": pipeline.precision, "detector": pipeline.detector_name,
                "follow_person": pipeline.follow_person,
                "faces": [{"box": f.box, "crop": corners(f.crop).round(1).tolist(), "track_id": f.track_id,
                           "landmarks": None if f.landmarks is None else f.landmarks.round(1).tolist(), "areas": f.areas}
                          for f in result.faces],
            })
    return records, errors
