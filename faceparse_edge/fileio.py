"""Reading and writing images and label maps, with atomic writes (torch-free)."""

import contextlib
import glob
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .classes import NUM_CLASSES, PALETTE
from .errors import FaceparseError, NotFoundError, first_line


LOW_SPACE = 1 << 20  # bytes free below which a failed write is put down to a full disk


def write_error(path, cause: BaseException | str) -> FaceparseError:
    """The one-line error for a failed write: the path, and why (read-only, full disk, a folder in the way...)."""
    if isinstance(cause, str):
        reason = cause
    else:
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else first_line(cause)
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if shutil.disk_usage(folder).free < LOW_SPACE and "space" not in reason:
            reason += " (no space left on device)"  # native writers (torch, OpenVINO) say it less plainly
    except OSError:
        pass
    return FaceparseError(f"cannot write {path}: {reason}")


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (PermissionError: another user's process)
        return True
    return True


def remove_stale(folder: Path, prefix: str) -> None:
    """Remove the temporary files and folders that killed processes left in `folder`: names `prefix` + PID + '.' +
    anything, whose PID no longer runs (a live writer's, this process's included, are kept)."""
    for leftover in folder.glob(f"{glob.escape(prefix)}*"):
        pid = leftover.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _is_running(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    A failed write (full disk, read-only folder, a folder or file in the way) is a one-line
    error naming `path`, and leaves neither the temporary file nor anything under `path`. The
    temporary name holds this process's id, so that a later write to `path` removes what a killed
    one left behind.
    """
    path = Path(path)
    prefix = f".{path.name}."
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
        remove_stale(path.parent, prefix)
    except FaceparseError:
        raise
    except Exception as exc:  # the writers raise OSError, RuntimeError, SafetensorError... for one failed write
        raise write_error(path, exc) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


STAGING_PREFIX = ".staging-"


@contextlib.contextmanager
def staging_dir(out_dir: str | os.PathLike):
    """Yield a temporary folder inside `out_dir`; its files move to the same places in `out_dir`
    only if the block succeeds, so a failed job (e.g. an export that fails its parity check)
    leaves nothing under the final names."""
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}.", dir=out_dir))
    except OSError as exc:
        raise write_error(out_dir, exc) from None
    try:
        yield stage
        for src in sorted(p for p in stage.rglob("*") if p.is_file()):
            dst = out_dir / src.relative_to(stage)
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
            except OSError as exc:
                raise write_error(dst, exc) from None
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a failed job leaves no trace, not even the folder it made
        if isinstance(exc, FaceparseError):  # name the files where the user will look for them
            raise FaceparseError(str(exc).replace(str(stage), str(out_dir))) from None
        raise
    shutil.rmtree(stage, ignore_errors=True)
    remove_stale(out_dir, STAGING_PREFIX)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_image(path: str | os.PathLike, bgr: np.ndarray) -> None:
    """Write an OpenCV (BGR) image in the format its suffix names, atomically and checked
    (cv2.imwrite only returns False on a failed write)."""
    ok, encoded = cv2.imencode(Path(path).suffix or ".png", bgr)
    if not ok:
        raise FaceparseError(f"cannot encode an image as {Path(path).suffix} for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


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
        raise NotFoundError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FaceparseError(f"cannot read image {path}: {exc}") from None


def check_outputs(inputs=(), files=(), folders=()) -> None:
    """Check outputs before any work, with a one-line error for one that is a folder where a
    file is needed (or the reverse), lies under a file, or is one of the `inputs` (symlinks
    and hard links count): nothing a user gave is ever overwritten. None entries are skipped."""
    wanted = [(Path(p), False) for p in files if p is not None] + [(Path(p), True) for p in folders if p is not None]
    for path, is_folder in wanted:
        if path.exists() and path.is_dir() != is_folder:
            kind, other = ("a file", "folder") if is_folder else ("a folder", "file")
            raise FaceparseError(f"output {path} is {kind}; a {other} is needed there")
        parent = next(a for a in path.parents if a.exists())
        if not parent.is_dir():
            raise FaceparseError(f"cannot write {path}: {parent} is a file, not a folder")
    given = {}
    for path in inputs:
        if path is not None and os.path.isfile(path):
            st = os.stat(path)
            given[(st.st_dev, st.st_ino)] = path
    for path, is_folder in wanted:
        if not is_folder and path.is_file():
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
        raise NotFoundError(f"mask not found: {path}") from None
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
