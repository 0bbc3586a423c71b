"""`faceparse-edge benchmark`: one table of formats, like `yolo benchmark`.

Each row: status, file size, val mIoU (through the same backend code as the runtime),
batch-1 latency p50/p90 after warm-up, FPS, and speed relative to PyTorch eager FP32,
all measured in the same run. Latency samples are taken in interleaved rounds so that
machine noise spreads over all formats alike.
"""

import csv
import io
import json
import time
from pathlib import Path

import numpy as np

from ..errors import FaceparseError, first_line
from ..fileio import atomic_path, write_text_atomic
from ..runtime.backends import model_size_mb
from ..sysinfo import describe
from ..tables import markdown_table
from ..models import EXPORT_FILES

FORMATS = (  # name, precision, file relative to the models folder (None: the torch model)
    ("PyTorch eager", "fp32", None),
    *((name, "int8" if int8 else "fp32", EXPORT_FILES[runtime, int8])
      for runtime, name in (("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO")) for int8 in (False, True)),
)


def run_benchmark(model_names: list[str], models_dir: Path | None, data, split: str | None, threads: int, runs: int,
                  rounds: int, executions: tuple, out_dir: Path | None) -> tuple[list[dict], dict, list[Path]]:
    """The `benchmark` command: every format of each model (a shipped name, or torch weights whose exports are in
    `models_dir`) measured in one run; the rows, the machine and the files saved (default folder:
    benchmarks/results/<this CPU's kind>)."""
    from ..fileio import check_outputs
    from ..models import is_short_name, model_dir, resolve_model
    from ..sysinfo import cpu_class, cpu_times, machine_info
    from ..toolkit.samples import resolve_split

    out_dir = out_dir or Path("benchmarks/results") / cpu_class()
    models = []
    for name in model_names:
        if is_short_name(name):
            models.append((name, resolve_model(name), model_dir(name)))
        elif models_dir is None:
            raise FaceparseError(f"--model {name} is a file: give --models, the folder of its exported models")
        else:
            models.append((Path(name).stem, resolve_model(name), models_dir))
    check_outputs([m[1] for m in models], folders=[out_dir])
    split = resolve_split(data, split)
    start = cpu_times()
    rows = benchmark(models, str(data), split, threads, runs, rounds, executions=executions)
    machine = machine_info(threads, since=start)
    note = (f"Latency: batch 1 at the model's input size, after 10 warm-up runs, {rounds} interleaved rounds of "
            f"{runs} runs per format; FPS = 1000 / p50; speed-up = eager p50 / p50, same run. "
            f"mIoU on {data} [{split or 'all'}] at 512x512 ground truth, no TTA. Execution: the floating-point "
            f"precision the backend ran (OpenVINO INFERENCE_PRECISION_HINT, read back after compiling).")
    return rows, machine, save_results(rows, out_dir, machine, note)


def _rows_to_run(executions) -> list[tuple]:
    """(name, precision, file, execution precision): every format in f32, OpenVINO also in each reduced one."""
    rows = [(*f, "f32") for f in FORMATS]
    for execution in executions:
        if execution != "f32":
            rows += [(*f, execution) for f in FORMATS if f[0] == "OpenVINO"]
    return rows


def latency_ms(backend, x: np.ndarray, runs: int) -> list[float]:
    """Wall-clock milliseconds of `runs` calls on the same input."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend(x)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def benchmark(models: list[tuple[str, Path, Path]], data: str, split: str | None, threads: int, runs: int = 30,
              rounds: int = 3, warmup: int = 10, eval_images: int | None = None,
              executions: tuple = ("f32",)) -> list[dict]:
    """One row per model, format and execution precision; reduced precisions the CPU lacks are
    'skipped' rows. `models`: (label, torch weights, folder laid out like `export --out`) each;
    the latency rounds interleave every model's formats."""
    from ..evaluation import evaluate_backend
    from ..models import open_model
    from ..runtime.backends import check_execution_precision, openvino_capabilities
    from ..toolkit.samples import list_samples, load_pair

    samples = list_samples(data, split)[:eval_images]
    rows, runners = [], []
    for (label, weights, models_dir), (name, precision, rel, execution) in (
            (m, r) for m in models for r in _rows_to_run(executions)):
        row = {"model": label, "format": name, "precision": precision, "execution": execution, "status": "ok",
               "size_mb": None, "miou": None}
        rows.append(row)
        if execution != "f32":
            try:
                check_execution_precision(execution, "openvino", openvino_capabilities())
            except FaceparseError as exc:
                row["status"] = f"skipped: {exc}"
                continue
        try:
            path = Path(weights) if rel is None else Path(models_dir) / rel
            backend = open_model(path, "torch" if rel is None else "auto", execution, threads)
            size, mean, std = backend.info.input_size, backend.info.mean, backend.info.std
            row["size_mb"] = round(model_size_mb(path), 3)
            result, _ = evaluate_backend(backend, samples, load_pair, size, mean, std, context=backend.info.context,
                                         description=f"{label} {name} {precision} ({execution})")
            row["miou"] = round(result["miou"], 2)
            runners.append((row, backend, np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)))
        except FaceparseError as exc:  # a missing or broken format is a row, not the end of the benchmark
            row["status"] = f"failed: {first_line(exc, 80)}"
    samples_ms = {id(row): [] for row, _, _ in runners}
    for _, backend, x in runners:
        latency_ms(backend, x, warmup)
    for _ in range(rounds):
        for row, backend, x in runners:
            samples_ms[id(row)] += latency_ms(backend, x, runs)
    for row, _, _ in runners:
        times = samples_ms[id(row)]
        row["p50_ms"] = round(float(np.percentile(times, 50)), 2)
        row["p90_ms"] = round(float(np.percentile(times, 90)), 2)
        row["fps"] = round(1000 / row["p50_ms"], 1)
    eager = {r["model"]: r.get("p50_ms") for r in rows if r["format"] == "PyTorch eager"}
    for row in rows:
        row["threads"] = threads
        base = eager[row["model"]]
        row["speedup_vs_eager"] = round(base / row["p50_ms"], 2) if base and row.get("p50_ms") else None
    return rows


COLUMNS = ("model", "format", "precision", "execution", "status", "size_mb", "miou", "p50_ms", "p90_ms", "fps", "speedup_vs_eager", "threads")


def to_markdown(rows, machine: dict, note: str) -> str:
    table = markdown_table(COLUMNS, ([r.get(c) for c in COLUMNS] for r in rows))
    return f"# faceparse-edge benchmark\n\nMachine: {describe(machine)}\n\n{note}\n\n{table}\n"


def save_results(rows, out_dir: Path, machine: dict, note: str) -> list[Path]:
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "benchmark.md", to_markdown(rows, machine, note))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out_dir / "benchmark.csv", buf.getvalue())
    write_text_atomic(out_dir / "benchmark.json", json.dumps({"machine": machine, "note": note, "rows": rows}, indent=2))
    _plot(rows, out_dir / "benchmark.png")
    return [out_dir / n for n in ("benchmark.md", "benchmark.csv", "benchmark.json", "benchmark.png")]


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {}  # one colour per model
    for r in rows:
        if r.get("p50_ms") is None or r.get("miou") is None:
            continue
        marker = "o" if r["precision"] == "fp32" else "s"
        ax.scatter(r["p50_ms"], r["miou"], s=60, marker=marker, color=colors.setdefault(r["model"], f"C{len(colors)}"))
        ax.annotate(f"{r['model']}: {r['format']} {r['precision']}" + (f" ({r['execution']})" if r["execution"] != "f32" else ""), (r["p50_ms"], r["miou"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.set(xlabel="latency p50, batch 1 (ms)", ylabel="val mIoU (%)", title="faceparse-edge: latency vs accuracy")
    ax.margins(x=0.2, y=0.15)  # room for the labels
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
