"""Commands around exported models: export, calibrate, check and benchmark."""

import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import FaceparseError
from ..export.calibration import DEFAULT_CALIBRATION_SIZE
from ..export.quantize import CALIBRATION_PERCENTILE
from ..fileio import check_outputs
from ..models import DEFAULT_MODEL, resolve_model
from ..progress import console
from .common import (MAX_THREADS, DataOpt, ImgszOpt, JsonOpt, ModelOpt, Precision, SplitOpt,
                     ThreadsOpt, app, fmt, out, print_table, write_json)


@app.command()
def export(
    model_name: Optional[str] = ModelOpt,
    to_format: str = typer.Option("onnx", "--format", "-f", help="onnx, openvino, or web (a static web app of a "
                                  "shipped model or an .onnx file, on ONNX Runtime Web; serve it with `serve`)."),
    int8: bool = typer.Option(False, "--int8", help="Also write an INT8 model (ONNX Runtime QDQ or NNCF); with "
                              "--format web, also ship the model's INT8 ONNX."),
    data: Optional[Path] = typer.Option(None, help="Labelled dataset: parity images, calibration and (with --max-drop) "
                                        "validation (needed unless --format web builds from an ONNX model)."),
    imgsz: Optional[int] = ImgszOpt,
    out_dir: Path = typer.Option(Path("runs/export"), "--out", help="Output folder."),
    calib_size: int = typer.Option(DEFAULT_CALIBRATION_SIZE, min=1, help="Calibration images (a stratified pick from "
                                   "the train split)."),
    manifest: Optional[Path] = typer.Option(None, help="Calibration manifest from `calibrate` (overrides --calib-size)."),
    max_drop: Optional[float] = typer.Option(None, min=0, help="OpenVINO: accuracy-controlled INT8 within this many mIoU points."),
    int8_target: str = typer.Option("auto", help="CPU the ONNX Runtime INT8 model is for: avx2 (no VNNI: 7-bit "
                                    "weights, no saturation), vnni (full 8-bit), auto (this CPU's flags)."),
    calib_percentile: float = typer.Option(CALIBRATION_PERCENTILE, min=99.0, max=100.0, help="ONNX Runtime INT8: "
                                           "activation ranges at this percentile of the calibration values "
                                           "(100 = their min/max)."),
    json_file: Optional[Path] = JsonOpt,
):
    """Export to ONNX or OpenVINO IR (FP32, and INT8 with --int8), with a parity check against torch; or build
    the web app (--format web)."""
    if to_format == "web":
        return _export_web(model_name, int8, data, out_dir, json_file)
    from ..export.exporter import export as run_export

    if data is None:
        raise FaceparseError(f"--format {to_format} needs --data (parity images and calibration)")
    weights = resolve_model(model_name)
    check_outputs([weights, manifest], [json_file], [out_dir])
    rows = run_export(weights, to_format, int8, str(data), out_dir, imgsz, calib_size, manifest, max_drop,
                      int8_target=int8_target, calib_percentile=calib_percentile)
    print_table("export", ("format", "precision", "file", "size MB", "max |diff|", "agreement %"),
                [(r["format"], r["precision"], r["path"], f"{r['size_mb']:.2f}", f"{r['max_abs_diff']:.2e}",
                  f"{r['agreement'] * 100:.2f}") for r in rows], left=("format", "precision", "file"))
    write_json(json_file, rows)


def _export_web(model_name, int8: bool, data: Optional[Path], out_dir: Path, json_file: Optional[Path]):
    from ..export.web import build_site

    check_outputs([], [json_file], [out_dir])
    rows = build_site(model_name, out_dir, int8, data)
    print_table("web app", ("file", "what", "size MB"), [(r["file"], r["what"], f"{r['size_mb']:.2f}") for r in rows],
                left=("file", "what"))
    out.print(f"serve it with: faceparse-edge serve {out_dir}")
    write_json(json_file, rows)


@app.command()
def serve(
    site: Path = typer.Argument(Path("runs/web"), help="A folder built by `export --format web`."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port (0: any free one)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default; 0.0.0.0 for the "
                             "network: browsers allow the camera only on localhost or https)."),
):
    """Serve a built web app, cross-origin isolated (multi-threaded WebAssembly); Ctrl-C stops."""
    from ..export.web import site_server

    server = site_server(site, host, port)
    out.print(f"serving {site} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()


@app.command()
def calibrate(
    data: Optional[Path] = typer.Option(None, help="Labelled dataset to pick from (a stratified pick)."),
    video: Optional[Path] = typer.Option(None, help="Or a video: face crops cut as the runtime cuts them."),
    split: Optional[str] = typer.Option("train", help="Split to pick from."),
    size: int = typer.Option(DEFAULT_CALIBRATION_SIZE, min=1, help="Number of images."),
    seed: int = typer.Option(0, help="Random seed."),
    out_file: Path = typer.Option(Path("calibration_data/manifest.json"), "--out", help="Manifest to write."),
    crops_dir: Path = typer.Option(Path("calibration_data/images"), help="Where video crops are written."),
):
    """Build a calibration set for INT8 and write its manifest (pass it to `export --manifest`)."""
    from ..export.calibration import build_calibration_set

    if (data is None) == (video is None):
        raise FaceparseError("give exactly one of --data or --video")
    check_outputs([video], [out_file], [crops_dir])
    images = build_calibration_set(data, video, split, size, seed, out_file, crops_dir)
    out.print(f"wrote {out_file}: {images} images")


@app.command()
def check(
    models: Optional[list[str]] = typer.Argument(None, help="Quantised models (.onnx / .xml files, or NAME-int8); "
                                                 "default: the INT8 models shipped with --model."),
    reference: Optional[str] = typer.Option(None, help="FP32 reference model (a file or a short name); default: "
                                            "the FP32 ONNX shipped with --model."),
    model_name: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The shipped model whose FP32 and INT8 "
                                   "models are checked by default: edge or edge-hq."),
    data: Path = DataOpt, split: Optional[str] = SplitOpt,
    max_drop: float = typer.Option(1.0, min=0, help="Fail when any model loses more than this many mIoU points."),
    threads: int = ThreadsOpt,
    precision: Precision = typer.Option(Precision.f32, help="Execution precision of the checked models (the "
                                        "reference runs in f32): f32, or bf16/f16 with OpenVINO where the CPU has it."),
    json_file: Optional[Path] = JsonOpt,
):
    """Evaluate FP32 and quantised models with `evaluate`'s metrics; exit 1 if any drop exceeds --max-drop."""
    from ..export.check import check_quantised

    rows, failing = check_quantised(models, reference, model_name, data, split, max_drop, threads, precision.value,
                                    protect=[json_file])
    print_table(f"quantised accuracy check on {data}" + (f" [{split}]" if split else ""),
                ("model", "format", "ran", "size MB", "mIoU", "delta mIoU", "worst class delta", "agreement %"),
                [(Path(r["model"]).name, r["format"], r["ran"], f"{r['size_mb']:.2f}", f"{r['miou']:.2f}",
                  f"{r['delta_miou']:+.2f}", f"{r['worst_class']} {r['worst_class_delta']:+.2f}", f"{r['agreement']:.2f}")
                 for r in rows], left=("model", "format", "ran"))
    write_json(json_file, rows)
    if failing:
        raise FaceparseError(f"{len(failing)} model(s) lose more than {max_drop} mIoU: "
                             + ", ".join(f"{r['model']} ({r['delta_miou']:+.2f})" for r in failing))


@app.command()
def benchmark(
    model_names: list[str] = typer.Option([DEFAULT_MODEL], "--model", "-m", "--weights", "-w", help="Models to "
                                          "compare (repeat the option): a shipped model's name (its torch weights "
                                          "and exported models), or torch weights whose exports are in --models."),
    models_dir: Optional[Path] = typer.Option(None, "--models", help="Folder laid out like `export --out`, for a "
                                              "--model given as a file."),
    data: Path = typer.Option(..., help="Labelled dataset for the mIoU column."),
    split: Optional[str] = SplitOpt,
    threads: int = typer.Option(os.cpu_count() or 1, min=1, max=MAX_THREADS, help="Inference threads for every backend."),
    runs: int = typer.Option(30, min=1, help="Timed runs per format per round."),
    rounds: int = typer.Option(3, min=1, help="Interleaved rounds over all formats."),
    precision: list[Precision] = typer.Option(list(Precision), help="Execution precisions to measure (repeat the "
                                              "option); f32 rows always run; reduced ones run the OpenVINO models, "
                                              "skipped where the CPU lacks them."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Where to save the table and chart; default: "
                                           "benchmarks/results/<avx2|vnni|amx>, by this CPU's kind."),
):
    """PyTorch eager vs ONNX Runtime vs OpenVINO, FP32 and INT8, f32 and reduced execution, for one model or several:
    size, mIoU, latency, FPS."""
    from ..export.format_benchmark import run_benchmark
    from ..sysinfo import describe

    rows, machine, saved = run_benchmark(model_names, models_dir, data, split, threads, runs, rounds,
                                         tuple(p.value for p in precision), out_dir)
    print_table("faceparse-edge benchmark",
                ("model", "format", "precision", "execution", "status", "size MB", "mIoU", "p50 ms", "p90 ms", "FPS", "speed-up"),
                [(r["model"], r["format"], r["precision"], r["execution"], r["status"], fmt(r["size_mb"], "{:.2f}"),
                  fmt(r["miou"], "{:.2f}"), fmt(r.get("p50_ms")), fmt(r.get("p90_ms")), fmt(r.get("fps")),
                  fmt(r.get("speedup_vs_eager"), "{}x")) for r in rows],
                left=("model", "format", "precision", "execution", "status"), caption=describe(machine))
    for path in saved:
        console.print(f"wrote {path}")
    failed = [r for r in rows if r["status"].startswith("failed")]
    if failed:
        raise FaceparseError(f"{len(failed)} of {len(rows)} benchmark rows failed (first: {failed[0]['model']} "
                             f"{failed[0]['format']} {failed[0]['precision']}, {failed[0]['status']})")


