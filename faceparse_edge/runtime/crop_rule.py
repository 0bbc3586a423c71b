"""CelebAMask-HQ-style crops of detected faces: the crop rule (detectors: detectors.py; tracking: tracker.py).

CelebAMask-HQ faces are aligned by their eye and mouth landmarks and framed with hair, neck
and some shoulders; a detector box covers roughly eyebrows to chin. The crop rule says where
a detector's five landmarks sit in that framing (a template: faces are aligned to it by a
similarity transform, see align.py) and, for detectors without landmarks, which square
crop a box maps to. It is measured, not guessed, for each detector: `derive_rule` runs that
detector on the training images (`faceparse-edge data crop-rule --detector NAME`), and the
shipped crop_rule_<name>.json files came from that command.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceparseError
from . import align


def rule_file(detector: str) -> Path:
    return Path(__file__).resolve().parent / f"crop_rule_{detector}.json"


@dataclass(frozen=True)
class CropRule:
    """How a detected face is cropped as CelebAMask-HQ crops faces, measured on its aligned images.

    With landmarks: the similarity that puts the eyes, nose and mouth corners where they sit in
    the aligned training images (`template`, unit crop coordinates), as CelebA-HQ aligned them.
    Without (Haar), and for faces in profile: a square of side scale * box height centred at box
    centre + (dx, dy) * box height (the height: a face turned away narrows its box, not its height).
    """

    scale: float = 2.0
    dx: float = 0.0
    dy: float = 0.0
    template: tuple | None = None  # five (x, y) landmark positions in unit crop coordinates

    @classmethod
    def load(cls, path: Path) -> "CropRule":
        data = json.loads(Path(path).read_text())
        template = data.get("template")
        return cls(data["scale"], data["dx"], data["dy"], tuple(map(tuple, template)) if template else None)

    def transform(self, box, landmarks=None) -> np.ndarray:
        """The crop (frame -> unit crop coordinates, 2x3) for a detected face."""
        by_box = self._square(box)
        if landmarks is None or self.template is None:
            return by_box
        by_landmarks = align.fit_similarity(landmarks, self.template)
        # Landmarks on a face in profile crowd together and would zoom in on half the face:
        # there the box sets the crop's size and place, and the landmarks only its rotation.
        if not 0.75 < align.side(by_landmarks) / align.side(by_box) < 1.33:
            angle = np.arctan2(by_landmarks[1, 0], by_landmarks[0, 0])
            return align.rotated(by_box, angle)
        return by_landmarks

    def _square(self, box) -> np.ndarray:
        x, y, w, h = box
        side = self.scale * h
        cx, cy = x + w / 2 + self.dx * h, y + h / 2 + self.dy * h
        return align.square(cx - side / 2, cy - side / 2, side)


def measure_rule(data, split: str | None, detector: str = "auto") -> tuple["CropRule", int, int, str]:
    """The `data crop-rule` command: `detector` run over a dataset's aligned training crops; the rule, the images
    with a face found, the images, and the detector that ran."""
    from ..fileio import read_image
    from ..progress import progress_bar
    from ..toolkit.samples import list_samples
    from .detectors import make_detector

    face_detector = make_detector(detector)
    samples = list_samples(data, split)

    def images():
        with progress_bar() as progress:
            task = progress.add_task("detect", total=len(samples), info="")
            for s in samples:
                yield read_image(s.image)
                progress.update(task, advance=1)

    rule, found = derive_rule(images(), face_detector)
    return rule, found, len(samples), face_detector.name


def derive_rule(images, detector) -> tuple[CropRule, int]:
    """The median box-to-crop mapping and landmark positions over aligned training images (each image is the crop)."""
    scales, dxs, dys, points = [], [], [], []
    for image in images:
        found = detector.detect(image)
        if not found:
            continue
        (x, y, w, h), landmarks = found[0]
        height, width = image.shape[:2]
        scales.append(width / h)
        dxs.append((width / 2 - (x + w / 2)) / h)
        dys.append((height / 2 - (y + h / 2)) / h)
        if landmarks is not None:
            points.append(landmarks / [width, height])
    if not scales:
        raise FaceparseError("the face detector found no face in any of the images")
    template = tuple(tuple(round(float(v), 4) for v in p) for p in np.median(points, axis=0)) if points else None
    rule = CropRule(*(round(float(np.median(v)), 4) for v in (scales, dxs, dys)), template)
    return rule, len(scales)


def rule_to_json(rule: CropRule, images: int, source: str, detector: str) -> str:
    data = {"scale": rule.scale, "dx": rule.dx, "dy": rule.dy}
    if rule.template:
        data["template"] = [list(p) for p in rule.template]
    return json.dumps({**data, "images_with_a_face": images, "source": source, "detector": detector}, indent=2) + "\n"
