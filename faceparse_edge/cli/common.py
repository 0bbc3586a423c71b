"""What the commands share: the app, options declared once, the table printer and JSON output."""

import inspect
import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..fileio import write_text_atomic
from ..progress import console, make_console
from ..runtime.backends import EXECUTION_PRECISIONS
from ..toolkit.settings import DEFAULTS, SIZE_MULTIPLE, TRAIN_SETTINGS

MAX_THREADS = 256  # more threads than any CPU here has; ONNX Runtime hangs creating 100,000

app = typer.Typer(help="faceparse-edge: a small CelebAMask-HQ face parser for edge devices.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Prepare and inspect datasets (images/ + masks/ + splits/).", no_args_is_help=True)
app.add_typer(data_app, name="data")
out = make_console()  # results go to stdout; progress bars and logs to stderr (`console`)
Precision = Enum("Precision", {p: p for p in EXECUTION_PRECISIONS}, type=str)


def multiple_of(n: int):
    """An option callback that refuses values that are not multiples of `n` (a usage error)."""
    def check(value: Optional[int]) -> Optional[int]:
        if value is not None and value % n:
            raise typer.BadParameter(f"must be a multiple of {n}, got {value}")
        return value
    return check


# Options that several commands share, declared once.
ModelOpt = typer.Option(None, "--model", "-m", "--weights", "-w", help="A shipped model: edge (fast, the default) or "
                        "edge-hq (accurate), NAME-int8 for its INT8 version; or a model file (.safetensors, checkpoint "
                        ".pt, .onnx, OpenVINO .xml).")
RuntimeModelOpt = typer.Option(None, "--model", "-m", help="A shipped model: edge (fast, the default) or edge-hq "
                               "(accurate), NAME-int8 for its INT8 version (OpenVINO IR with --backend openvino, "
                               "else ONNX); or a model file (.onnx, OpenVINO .xml).")
JsonOpt = typer.Option(None, "--json", help="Also write the result as JSON to this file.")
DataOpt = typer.Option(..., help="Labelled dataset directory (images/, masks/, optional splits/).")
SplitOpt = typer.Option(None, help="Split: a name in splits/, or 'all' pairs; default: val where the dataset has "
                        "splits/val.txt, else all pairs.")
ImgszOpt = typer.Option(None, min=64, max=2048, callback=multiple_of(SIZE_MULTIPLE),
                        help="Input size, a multiple of 32 (default: the model's).")
PrecisionOpt = typer.Option(Precision.f32, help="Floating-point execution precision: f32 (exact, every CPU), or "
                            "bf16/f16 with OpenVINO where the CPU supports it (never chosen silently).")
BackendOpt = typer.Option("auto", help="auto (a shipped model: OpenVINO on x86-64 where it is installed, else ONNX "
                          "Runtime; a file: by its type), onnxruntime or openvino.")
ThreadsOpt = typer.Option(0, min=0, max=MAX_THREADS, help="Inference threads (0 = backend default).")
TtaOpt = typer.Option(True, "--tta/--no-tta", help="Flip test-time augmentation (swaps left/right labels).")
DetectOpt = typer.Option(True, "--detect/--no-detect", help="Find faces; --no-detect treats each input as an aligned crop.")
DetectEveryOpt = typer.Option(5, min=1, help="Run the face detector every N frames (tracks follow their faces' motion "
                              "in between).")
DetectorOpt = typer.Option("auto", help="Face detector: retinaface (every platform; profile and small faces, landmark "
                           "alignment), yunet (where its wheel installs), haar (OpenCV, frontal, no landmarks), auto "
                           "(retinaface; if its package is missing or broken, yunet, then haar, with a warning).")
SmoothingOpt = typer.Option(0.9, min=0, max=0.99, help="Weight of a still face's previous probabilities (moved with "
                            "its motion; less as the face changes), 0 (off) to 0.99.")
FollowPersonOpt = typer.Option(True, "--follow-person/--no-follow-person", help="Continue hair, hat and cloth past "
                               "each face's view over the person (a person segmenter's mask), not to a straight line; "
                               "--no-follow-person labels only inside the views (about 2.5 ms a frame faster on a "
                               "2-core CPU).")
ShowOpt = typer.Option(True, "--show/--no-show", help="Show a live window (q quits).")


def print_table(title: str, columns, rows, left=(), caption: str | None = None, header: bool = True) -> None:
    """One table on stdout: `columns` names it, the `left` ones left-aligned (numbers right), rows of strings
    (None: a rule between sections)."""
    table = Table(title=title, caption=caption, show_header=header)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right", overflow="fold")
    for row in rows:
        table.add_section() if row is None else table.add_row(*row)
    out.print(table)


def write_json(path: Optional[Path], payload) -> None:
    if path is not None:
        write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
        console.print(f"wrote {path}")


def fmt(value, spec: str = "{}") -> str:
    return "-" if value is None else spec.format(value)


def with_training_settings(command):
    """Give a command that takes **settings one option per training setting (settings.TRAIN_SETTINGS)."""
    signature = inspect.signature(command)
    options = [inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, annotation=s.type, default=typer.Option(
        s.default, s.flag or f"--{s.name.replace('_', '-')}", min=s.min, max=s.max, help=s.help,
        rich_help_panel=s.panel, callback=multiple_of(s.multiple_of) if s.multiple_of else None)) for s in TRAIN_SETTINGS]
    own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    command.__signature__ = signature.replace(parameters=own + options)
    command.__annotations__ = {**command.__annotations__, **{p.name: p.annotation for p in options}}
    return command


def apply_config(ctx: typer.Context, param: typer.CallbackParam, value: Optional[Path]):
    """`--config FILE`: the file's settings become the defaults; options on the command line win."""
    if value is not None:
        from ..toolkit.run_config import read_settings

        ctx.default_map = {**(ctx.default_map or {}), **read_settings(value, known=set(DEFAULTS))}
    return value


