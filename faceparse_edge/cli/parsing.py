"""Commands that parse faces with the runtime (no torch): video, webcam and image."""

from pathlib import Path
from typing import Optional

import typer

from ..errors import FaceparseError
from ..fileio import check_outputs
from ..models import resolve_model
from .common import (BackendOpt, DetectEveryOpt, DetectOpt, DetectorOpt, FollowPersonOpt, JsonOpt, Precision,
                     PrecisionOpt, RuntimeModelOpt, ShowOpt, SmoothingOpt, ThreadsOpt, TtaOpt, app, out, write_json)


def _parser(model: Path, backend, threads, tta, detect, precision, detector, follow_person, detect_every=1,
            smoothing=0.0):
    """The runtime parser for a resolved model file (the commands resolve it once, to check their outputs too)."""
    from ..runtime.pipeline import Parser

    return Parser(model, backend, threads, tta, detect, detect_every, smoothing, precision=precision.value,
                  detector=detector, follow_person=follow_person)


def _stream(parser, source, out_file, json_file, show, **options) -> dict:
    """Run a video or camera through the parser; print the summary line and write the JSON."""
    from ..runtime.video import run_stream

    s = run_stream(parser, source, out_file, show=show, measure_flicker=json_file is not None, **options)
    one_face = s["fps_by_faces"].get("1")
    flicker = f"; flicker {s['flicker']}" if s["flicker"] is not None else ""  # measured for --json
    out.print(f"{s['frames']} frames ({s['bad_frames']} unreadable), {s['backend']} {s['precision']}, detector "
              f"{s['detector']}, at {s['fps']:.1f} FPS "
              f"end to end" + (f" ({one_face:.1f} on the frames with one face)" if one_face else "") + "; ms/frame: "
              + "  ".join(f"{k} {v:.1f}" for k, v in s["ms"].items()) + f" (model {s['model_fraction']:.0%} of the "
              f"time); faces/frame {s['faces_per_frame']:.2f}{flicker}")
    if s["out"]:
        out.print(f"wrote {s['out']}")
    write_json(json_file, s)
    return s


@app.command()
def video(
    source: str = typer.Argument(..., help="Video file or stream URL."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the annotated video here (.mp4)."),
    show: bool = ShowOpt, model_name: Optional[str] = RuntimeModelOpt, backend: str = BackendOpt,
    threads: int = ThreadsOpt, tta: bool = TtaOpt, detect: bool = DetectOpt, detect_every: int = DetectEveryOpt,
    smoothing: float = SmoothingOpt, precision: Precision = PrecisionOpt, detector: str = DetectorOpt,
    follow_person: bool = FollowPersonOpt, json_file: Optional[Path] = JsonOpt,
):
    """Parse every face in a video file or stream; same frame count and rate out as in."""
    model = resolve_model(model_name, backend)
    check_outputs([source, model], [out_file, json_file])
    parser = _parser(model, backend, threads, tta, detect, precision, detector, follow_person, detect_every, smoothing)
    s = _stream(parser, source, out_file, json_file, show)
    kept = f"; {out_file} holds the {s['frames']} frames parsed" if out_file else ""
    if s["missing_frames"]:
        raise FaceparseError(f"{source} ended early: its last {s['missing_frames']} of {s['frames_expected']} frames "
                             f"could not be read (truncated file?){kept}")
    if s["interrupted"]:
        raise FaceparseError(f"interrupted after {s['frames']} frames{kept}")


@app.command()
def webcam(
    camera: int = typer.Option(0, min=0, help="Camera index."),
    out_file: Optional[Path] = typer.Option(None, "--out", "--save", help="Also record the annotated stream here "
                                            "(.mp4); --save is the older spelling."),
    show: bool = ShowOpt, model_name: Optional[str] = RuntimeModelOpt, backend: str = BackendOpt,
    threads: int = ThreadsOpt, tta: bool = TtaOpt, detect_every: int = DetectEveryOpt, smoothing: float = SmoothingOpt,
    precision: Precision = PrecisionOpt, detector: str = DetectorOpt, follow_person: bool = FollowPersonOpt,
    max_frames: Optional[int] = typer.Option(None, min=1, help="Stop after this many frames."),
    json_file: Optional[Path] = JsonOpt,
):
    """Live face parsing from a webcam; q or Ctrl-C stops and finalises the saved file."""
    model = resolve_model(model_name, backend)
    check_outputs([model], [out_file, json_file])
    parser = _parser(model, backend, threads, tta, True, precision, detector, follow_person, detect_every, smoothing)
    _stream(parser, camera, out_file, json_file, show, max_frames=max_frames)


@app.command()
def image(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders of images."),
    out_dir: Path = typer.Option(Path("runs/image"), "--out", help="Where to write <name>.png labels and <name>_overlay.png."),
    model_name: Optional[str] = RuntimeModelOpt, backend: str = BackendOpt, threads: int = ThreadsOpt, tta: bool = TtaOpt,
    detect: bool = DetectOpt, precision: Precision = PrecisionOpt, detector: str = DetectorOpt,
    follow_person: bool = FollowPersonOpt, json_file: Optional[Path] = JsonOpt,
):
    """Parse faces in images: a palette label PNG (class ids, input resolution) and an overlay per input."""
    from ..runtime.images import parse_images, plan_outputs

    model = resolve_model(model_name, backend)
    plan = plan_outputs(inputs, out_dir, protect=[model], also_written=[json_file])
    records, errors = parse_images(_parser(model, backend, threads, tta, detect, precision, detector, follow_person),
                                    plan)
    for r in records:
        out.print(f"{r['input']}: {len(r['faces'])} face(s) ({r['backend']} {r['precision']}, {r['detector']} detector) -> "
                  f"{r['labels']}, {r['overlay']}")
    write_json(json_file, records)
    if errors:
        raise FaceparseError(f"{len(errors)} of {len(errors) + len(records)} images could not be read (first: {errors[0]})")


