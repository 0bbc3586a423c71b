"""Reading and writing images and label maps, with atomic writes (torch-free)."""

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .classes import NUM_CLASSES, PALETTE
from .errors import FaceparseError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read any image PIL understands as RGB uint8, as a photo viewer shows it.

    EXIF orientation is applied (phones store photos sideways and say so in EXIF); 16-bit
    grayscale is scaled to 8 bits (PIL's own conversion clips it); palette, CMYK, LA and
    RGBA images are converted.
    """
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
                gray = np.asarray(im, np.float64)
                if im.mode != "I" or gray.max() > 255:  # 16-bit range -> 8-bit ("I" may also hold 8-bit values)
                    gray = gray / 257.0
                return np.repeat(np.clip(gray + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB")).copy()
    except FileNotFoundError:
        raise FaceparseError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FaceparseError(f"cannot read image {path}: {exc}") from None


def refuse_overwriting(inputs, outputs) -> None:
    """A one-line error when an output path is one of the inputs: nothing a user gave is ever overwritten."""
    given = {}
    for path in inputs:
        if path is not None and os.path.isfile(path):
            st = os.stat(path)
            given[(st.st_dev, st.st_ino)] = path
    for path in outputs:
        if path is not None and os.path.exists(path):
            st = os.stat(path)
            if (st.st_dev, st.st_ino) in given:
                raise FaceparseError(f"output {path} is the input {given[st.st_dev, st.st_ino]}; "
                                     "writing it would destroy the input (choose another output path)")


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a class-id mask (single-channel or palette PNG) and check its values are 0..18."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I", "I;16"):
                raise FaceparseError(
                    f"mask {path} has mode {im.mode}; expected a single-channel or palette PNG of class ids"
                )
            labels = np.asarray(im)
    except FileNotFoundError:
        raise FaceparseError(f"mask not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FaceparseError(f"cannot read mask {path}: {exc}") from None
    top = int(labels.max()) if labels.size else 0
    if labels.min() < 0 or top >= NUM_CLASSES:
        raise FaceparseError(f"mask {path} has class id {top}, outside 0..{NUM_CLASSES - 1}")
    return labels.astype(np.uint8)


def write_label_png(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write class ids as a palette PNG in the CelebAMask-HQ colours (the dataset's format)."""
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(PALETTE)] = PALETTE
    im.putpalette(palette.flatten().tolist())
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
