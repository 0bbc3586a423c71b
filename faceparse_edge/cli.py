"""The `faceparse-edge` command line. Torch is imported only inside the commands that need it."""

import json
import os
import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .classes import CLASS_NAMES
from .errors import FaceparseError
from .export.quantize import CALIBRATION_PERCENTILE
from .fileio import check_outputs, write_text_atomic
from .progress import console
from .runtime.backends import EXECUTION_PRECISIONS
from .weights import DEFAULT_MODEL

# INT8 mIoU is flat from 8 calibration images on (benchmarks/results/avx2/int8_calibration_size.md); 32 is the
# smallest stratified pick that holds 4 images of each rare class.
DEFAULT_CALIBRATION_SIZE = 32
# click's base of usage errors: typer exports only BadParameter (and vendors click from 0.2x on).
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
MAX_THREADS = 256  # more threads than any CPU here has; ONNX Runtime hangs creating 100,000

app = typer.Typer(
    help="faceparse-edge: a small CelebAMask-HQ face parser for edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Prepare and inspect datasets (images/ + masks/ + splits/).", no_args_is_help=True)
app.add_typer(data_app, name="data")
out = Console()  # results go to stdout; progress bars and logs to stderr (`console`)

ModelOpt = typer.Option(None, "--model", "-m", "--weights", "-w", help="A shipped model: edge (fast, the default) or "
                        "edge-hq (accurate), NAME-int8 for its INT8 version; or a model file (.safetensors, checkpoint "
                        ".pt, .onnx, OpenVINO .xml).")
JsonOpt = typer.Option(None, "--json", help="Also write the result as JSON to this file.")
SplitOpt = typer.Option(None, help="Split: a name in splits/, or 'all' pairs; default: val where the dataset has "
                        "splits/val.txt, else all pairs.")


Precision = Enum("Precision", {p: p for p in EXECUTION_PRECISIONS}, type=str)


PrecisionOpt = typer.Option(Precision.f32, help="Floating-point execution precision: f32 (exact, every CPU), or bf16/f16 "
                            "with OpenVINO where the CPU supports it (never chosen silently).")


class Tta(str, Enum):
    none = "none"
    flip = "flip"


def _multiple_of_32(value: Optional[int]) -> Optional[int]:
    """Input sizes the encoder's strides divide evenly (the exported models' outputs need it)."""
    if value is not None and value % 32:
        raise typer.BadParameter(f"must be a multiple of 32, got {value}")
    return value


def print_table(title: str, columns, rows, left=(), caption: str | None = None, header: bool = True) -> None:
    """One table on stdout: `columns` names it, the `left` ones left-aligned (numbers right), rows of strings
    (None: a rule between sections)."""
    table = Table(title=title, caption=caption, show_header=header)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right", overflow="fold")
    for row in rows:
        if row is None:
            table.add_section()
        else:
            table.add_row(*row)
    out.print(table)


def write_json(path: Optional[Path], payload) -> None:
    if path is not None:
        write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
        console.print(f"wrote {path}")


@app.command()
def info(model_name: Optional[str] = ModelOpt, precision: Precision = PrecisionOpt, json_file: Optional[Path] = JsonOpt):
    """Describe a model (checkpoint, safetensors, ONNX or OpenVINO IR) and the precision it runs in on this CPU."""
    from .models import open_model
    from .runtime.backends import precision_ran
    from .sysinfo import describe, machine_info
    from .toolkit.model import PRESETS, FaceParser, ModelConfig, count_parameters, same_layers
    from .weights import resolve_model

    weights = resolve_model(model_name)
    check_outputs([weights], [json_file])
    backend = open_model(weights, precision=precision.value)
    model = FaceParser(ModelConfig.from_dict(backend.info.config))
    summary = {"weights": str(weights), "format": backend.name, "model_precision": backend.info.precision,
               "runs_in": precision_ran(backend)}
    config = model.config
    preset = next((name for name, p in PRESETS.items() if same_layers(p, config, any_width=True)), "custom")
    summary.update({"preset": preset, "config": config.to_dict(), "params": count_parameters(model),
                    "input_size": config.input_size, "classes": list(CLASS_NAMES), "machine": machine_info()})
    print_table(f"faceparse-edge model: {summary['weights']}", ("", ""), [
        ("format", summary["format"]), ("precision (stored / runs in)", f"{summary['model_precision']} / {summary['runs_in']}"),
        ("preset", preset), ("trainable parameters", f"{summary['params']:,}"),
        ("input size", f"{config.input_size} x {config.input_size}"),
        *((key, str(value)) for key, value in summary["config"].items()),
        ("classes", ", ".join(f"{i}:{n}" for i, n in enumerate(CLASS_NAMES))), ("machine", describe(summary["machine"]))],
        left=("",), header=False)
    write_json(json_file, summary)


@data_app.command("prepare")
def data_prepare(
    src: Path = typer.Argument(..., help="The official CelebAMask-HQ release folder."),
    out_dir: Path = typer.Argument(..., help="Where to write images/, masks/ and splits/."),
    size: int = typer.Option(512, min=32, help="Output side length in pixels."),
):
    """Convert the official CelebAMask-HQ release into the images/ + masks/ + splits/ layout."""
    from .toolkit.prepare import prepare

    check_outputs(folders=[out_dir])
    counts = prepare(src, out_dir, size)
    out.print(f"wrote {sum(counts.values())} pairs to {out_dir} (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")")


@data_app.command("stats")
def data_stats(
    data: Path = typer.Argument(..., help="Dataset directory."),
    split: Optional[str] = typer.Option(None, help="Use only the ids in splits/<name>.txt."),
    json_file: Optional[Path] = JsonOpt,
):
    """Class distribution (pixels, share, images containing each class) and per-channel mean/std."""
    from .toolkit.stats import dataset_stats

    check_outputs(files=[json_file])
    stats = dataset_stats(data, split)
    print_table(f"{data} ({stats['images']} images)", ("id", "class", "pixels", "share %", "images"),
                [(str(c["id"]), c["name"], f"{c['pixels']:,}", f"{c['share']:.3f}", str(c["images"])) for c in stats["classes"]],
                left=("class",))
    out.print(f"mean (RGB, 0..1): {stats['mean']}   std: {stats['std']}")
    if stats["left_right_swapped"]:
        out.print(f"{len(stats['left_right_swapped'])} masks have left/right labels reversed "
                  "(l_ classes on the image's left); `train` fixes them unless --no-fix-left-right")
    write_json(json_file, stats)


@data_app.command("pseudo-label")
def data_pseudo_label(
    data: Path = typer.Argument(..., help="Labelled dataset (images/, masks/, splits/)."),
    unlabelled: Path = typer.Argument(..., help="Folder of unlabelled face crops (like the dataset's images)."),
    out_dir: Path = typer.Argument(..., help="New dataset folder: the dataset linked, plus the pseudo-labelled images."),
    model_name: str = typer.Option("edge-hq", "--model", "-m", help="Teacher: a shipped model's name or torch weights."),
    split: str = typer.Option("train", help="The split that gains the pseudo-labelled images."),
    tta: bool = typer.Option(True, "--tta/--no-tta", help="Label with flip test-time augmentation."),
    json_file: Optional[Path] = JsonOpt,
):
    """Label unlabelled faces with a teacher model, as a dataset to train on (self-training)."""
    from .toolkit.checkpoint import load_model
    from .toolkit.pseudo_label import pseudo_label
    from .weights import resolve_model

    teacher = resolve_model(model_name)
    check_outputs([teacher], [json_file], [out_dir])
    summary = pseudo_label(load_model(teacher), data, unlabelled, out_dir, split, tta)
    out.print(f"wrote {out_dir}: split '{split}' holds {summary['labelled']} labelled and "
              f"{summary['pseudo_labelled']} pseudo-labelled images (teacher {teacher}, TTA {'flip' if tta else 'none'})")
    write_json(json_file, {**summary, "teacher": str(teacher), "out": str(out_dir)})


@data_app.command("crop-rule")
def data_crop_rule(
    data: Path = typer.Argument(..., help="Dataset of aligned face crops (the training data)."),
    split: Optional[str] = typer.Option("train", help="Split to measure on."),
    detector: str = typer.Option("auto", help="auto, retinaface, yunet or haar: the detector whose boxes the rule maps."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the rule here (the runtime reads runtime/crop_rule_<detector>.json)."),
):
    """Measure where a face detector puts landmarks and boxes on the training crops (the runtime's crop rule)."""
    from .fileio import read_image
    from .progress import progress_bar
    from .runtime.detectors import make_detector
    from .runtime.faces import derive_rule, rule_to_json
    from .toolkit.data import list_samples

    check_outputs(files=[out_file])
    face_detector = make_detector(detector)
    samples = list_samples(data, split)

    def images():
        with progress_bar() as progress:
            task = progress.add_task("detect", total=len(samples), info="")
            for s in samples:
                yield read_image(s.image)
                progress.update(task, advance=1)

    rule, found = derive_rule(images(), face_detector)
    text = rule_to_json(rule, found, f"{data} [{split}]", face_detector.name)
    out.print(f"{face_detector.name}: face found in {found}/{len(samples)} images; crop side = {rule.scale} x box height, "
              f"centre offset ({rule.dx}, {rule.dy}) x box height")
    if out_file:
        write_text_atomic(out_file, text)
        console.print(f"wrote {out_file}")


def _apply_config(ctx: typer.Context, param: typer.CallbackParam, value: Optional[Path]):
    """`--config FILE`: the file's settings become the defaults; options on the command line win."""
    if value is not None:
        from .toolkit.run_config import read_settings

        settings = read_settings(value, known={p.name for p in ctx.command.params} - {"config"})
        ctx.default_map = {**(ctx.default_map or {}), **settings}
    return value


@app.command()
def train(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", is_eager=True, callback=_apply_config,
                                          help="Settings file (YAML/JSON, keys = these options' names, e.g. a run's "
                                          "config.yaml or `tune`'s best); options given here override it."),
    data: Optional[Path] = typer.Option(None, help="Dataset directory (images/, masks/, splits/); with --resume, the run's own."),
    out_dir: Path = typer.Option(Path("runs/train"), "--out", help="Run folder: checkpoints, metrics, curves, config.yaml."),
    preset: str = typer.Option("edge", help="Model preset: edge (default), edge-hq (edge's layers at 512 px) or seed (the reference design); the "
                               "architecture options below override its values.", rich_help_panel="Model"),
    width: Optional[str] = typer.Option(None, help="Encoder width multiplier, or 'auto' to fill the parameter budget.", rich_help_panel="Model"),
    layers: Optional[int] = typer.Option(None, min=2, max=12, help="Encoder feature layers kept (of MobileNetV3-small's 12).", rich_help_panel="Model"),
    extra_blocks: Optional[int] = typer.Option(None, min=0, max=8, help="Residual blocks appended to the encoder at its last width; they start as the identity, so --init weights with fewer grow into this model.", rich_help_panel="Model"),
    output_stride: Optional[int] = typer.Option(None, min=8, max=32, help="Encoder output stride (8, 16 or 32; dilated beyond).", rich_help_panel="Model"),
    aspp_channels: Optional[int] = typer.Option(None, min=8, max=1024, help="ASPP channels.", rich_help_panel="Model"),
    aspp_rate: Optional[int] = typer.Option(None, min=1, max=64, help="Atrous base rate: the branches use rate x 1..depth.", rich_help_panel="Model"),
    aspp_depth: Optional[int] = typer.Option(None, min=0, max=8, help="Atrous branches.", rich_help_panel="Model"),
    decoder_channels: Optional[int] = typer.Option(None, min=0, max=512, help="Decoder channels fusing the stride-4 feature (0 = no decoder); --init weights with fewer grow into a wider decoder, their function kept.", rich_help_panel="Model"),
    low_level_channels: Optional[int] = typer.Option(None, min=4, max=256, help="Channels of the projected stride-4 feature.", rich_help_panel="Model"),
    dropout: Optional[float] = typer.Option(None, min=0, max=0.9, help="Dropout before the classifier.", rich_help_panel="Model"),
    budget: int = typer.Option(2_000_000, min=1, help="Trainable parameter budget.", rich_help_panel="Model"),
    imgsz: Optional[int] = typer.Option(None, min=64, max=2048, callback=_multiple_of_32, help="Training and inference input size (a multiple of 32); default: the preset's (edge 256, edge-hq 512).", rich_help_panel="Model"),
    flip: float = typer.Option(0.5, min=0, max=1, help="Probability of a mirror (left/right labels swapped).", rich_help_panel="Augmentation"),
    scale: float = typer.Option(1.25, min=1, max=4, help="Zoom range: 1/scale .. scale.", rich_help_panel="Augmentation"),
    rotate: float = typer.Option(15.0, min=0, max=180, help="Rotation range in degrees (+-).", rich_help_panel="Augmentation"),
    translate: float = typer.Option(0.08, min=0, max=0.5, help="Shift range, fraction of the side (+-).", rich_help_panel="Augmentation"),
    hue: float = typer.Option(6.0, min=0, max=90, help="Hue shift range, OpenCV units of 0..180 (+-).", rich_help_panel="Augmentation"),
    saturation: float = typer.Option(0.3, min=0, max=1, help="Saturation factor range (1 +- this).", rich_help_panel="Augmentation"),
    value: float = typer.Option(0.25, min=0, max=1, help="Value (HSV brightness) factor range (1 +- this).", rich_help_panel="Augmentation"),
    brightness: float = typer.Option(0.15, min=0, max=1, help="Added brightness range, fraction of 255 (+-).", rich_help_panel="Augmentation"),
    contrast: float = typer.Option(0.2, min=0, max=1, help="Contrast factor range (1 +- this).", rich_help_panel="Augmentation"),
    epochs: Optional[int] = typer.Option(None, min=1, help="Epochs (default 60; with --resume, extends the run)."),
    batch: int = typer.Option(16, min=1, help="Batch size (in all, over every process of a torchrun run)."),
    lr: float = typer.Option(3e-3, min=1e-9, help="Peak learning rate."),
    weight_decay: float = typer.Option(1e-4, min=0, help="Weight decay."),
    optimizer: str = typer.Option("adamw", help="adam or adamw."),
    scheduler: str = typer.Option("cosine", help="cosine, linear or plateau (all with warm-up)."),
    warmup: float = typer.Option(2.0, min=0, help="Warm-up epochs."),
    loss: str = typer.Option("ce:1,lovasz:0.5", help="Weighted sum of ce, wce, lovasz, dice, jaccard."),
    lovasz_pixels: int = typer.Option(16384, min=0, help="Pixels sampled per batch for Lovasz-softmax (0 = all)."),
    patience: int = typer.Option(0, min=0, help="Early stopping patience in epochs (0 = off)."),
    seed: int = typer.Option(0, help="Random seed."),
    fix_left_right: bool = typer.Option(True, help="Swap the labels of training masks whose left/right pairs are reversed."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    workers: Optional[int] = typer.Option(None, min=0, max=64, help="DataLoader worker processes that decode and augment (0 = in the main process); default: 0 on CPU, where training needs every core (benchmarks/results/avx2/scaling.md), up to 4 on CUDA."),
    cache: str = typer.Option("auto", help="Training pairs decoded once into memory: auto (when under 2 GiB), ram, or none (streamed from disk)."),
    balance: float = typer.Option(0.0, min=0, max=1, help="Class-balanced sampling: an image holding a class found in "
                                  "a share s of the images, below this threshold t, is drawn sqrt(t / s) times as often "
                                  "(repeat-factor sampling); 0 = off."),
    init: Optional[str] = typer.Option(None, help="Start from these weights (the same architecture, any input size): a "
                                       ".safetensors/.pt file or a shipped model's name. Fine-tuning, or a larger "
                                       "--imgsz after a cheaper run."),
    distill: Optional[str] = typer.Option(None, help="Teacher weights (a .safetensors/.pt file or a shipped model's "
                                          "name): its flip-TTA class probabilities become soft targets beside the labels."),
    distill_weight: float = typer.Option(1.0, min=0, help="Weight of the cross-entropy to the teacher's soft targets."),
    distill_scales: str = typer.Option("1", help="Input scales (comma-separated, e.g. 0.8125,1,1.1875) the teacher's "
                                       "flip-TTA parse is averaged over: a stronger teacher at one forward pass per scale."),
    extra_blocks_lr: float = typer.Option(1.0, min=1e-3, help="Learning-rate multiplier of the --extra-blocks: grown "
                                          "from trained weights they start as the identity and need larger steps to "
                                          "leave it in a short fine-tune."),
    ema: float = typer.Option(0.0, min=0, max=0.9999, help="Decay of an exponential moving average of the weights "
                              "(e.g. 0.995), scored and saved in their place; the raw weights' val mIoU is logged "
                              "beside it. 0 = off."),
    train_split: str = typer.Option("train", help="Training split name."),
    val_split: str = typer.Option("val", help="Validation split name."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint."),
    json_file: Optional[Path] = JsonOpt,
):
    """Train a face parser from scratch (CPU by default, CUDA with mixed precision when present).

    Runs as it is under `torchrun --nproc-per-node N` (DDP: gloo on CPU, NCCL on CUDA).
    """
    from .toolkit.distributed import rank_and_world
    from .toolkit.run_config import architecture, resolved, train_config, with_data_stats, write_settings
    from .toolkit.train import check_trainable, train as run_training

    if data is None and not resume:
        raise FaceparseError("train needs --data (or --config with a data setting, or --resume)")
    from .weights import resolve_model

    for weights in (init, distill):
        if weights is not None:
            resolve_model(weights)  # a mistyped name fails before any work
    check_outputs([config, init, distill], [json_file], [out_dir])
    settings = {**{p.name: ctx.params[p.name] for p in ctx.command.params}, "epochs": epochs or (0 if resume else 60)}
    train_settings = train_config(settings)  # malformed values (e.g. --distill-scales) fail before any work
    rank, world, _ = rank_and_world()
    main_process = rank == 0  # under torchrun, rank 0 alone writes
    model_config = None
    if not resume:
        architecture_config = architecture(settings)[0]
        check_trainable(train_settings, architecture_config.input_size, world)  # before any image is read
        model_config = with_data_stats(architecture_config, data, train_split)
        if main_process:
            write_settings(out_dir / "config.yaml", resolved(settings, model_config))
    summary = run_training(train_settings, model_config, resume=resume)
    if main_process:
        write_json(json_file, summary)


@app.command()
def tune(
    config: Optional[Path] = typer.Option(None, "--config", help="Base `train` settings (YAML/JSON, e.g. a run's "
                                          "config.yaml) that trials start from; the options below override it."),
    data: Path = typer.Option(..., help="Dataset directory (images/, masks/, splits/)."),
    space: Optional[Path] = typer.Option(None, help="Search space file (YAML/JSON: option: {low, high, log} or "
                                         "{choices: [...]}); default: the built-in space over architecture, "
                                         "augmentation, optimiser, schedule and loss."),
    n_trials: int = typer.Option(20, "--n-trials", min=1, help="Trials in the study, all workers together."),
    timeout: Optional[float] = typer.Option(None, min=1, help="Stop this worker after this many seconds."),
    epochs: int = typer.Option(8, min=1, help="Epochs per trial (the proxy budget; the pruner may stop a trial sooner)."),
    imgsz: int = typer.Option(128, min=64, max=2048, callback=_multiple_of_32, help="Input size of the trials (a proxy for the full size)."),
    budget: int = typer.Option(2_000_000, min=1, help="Trainable parameter budget: trials over it are rejected before training."),
    study_name: str = typer.Option("faceparse-edge", "--study", help="Study name in the storage."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage URL shared by all workers, e.g. "
                                          "postgresql://user:pw@host/db; default: sqlite:///OUT/tune.db."),
    out_dir: Path = typer.Option(Path("runs/tune"), "--out", help="Trials, tables, plots and best.yaml."),
    pruner: str = typer.Option("median", help="median, hyperband or none."),
    startup_trials: int = typer.Option(5, min=0, help="Random trials before TPE models the space (and before the median pruner prunes)."),
    seed: Optional[int] = typer.Option(None, help="Sampler seed (leave unset when several workers share a study)."),
    workers: Optional[int] = typer.Option(None, min=0, max=64, help="DataLoader workers of each trial (default as `train`'s)."),
    json_file: Optional[Path] = JsonOpt,
):
    """Bayesian hyper-parameter search (Optuna TPE) over `train`'s settings; run it on several machines at once
    against one --storage to share a study."""
    from .toolkit.model import PRESETS
    from .toolkit.run_config import read_settings
    from .toolkit.tune import NOT_TUNABLE, DEFAULT_SPACE, check_space, open_study, run_worker, save_results, trial_rows

    check_outputs([config, space], [json_file], [out_dir])
    train_command = typer.main.get_command(app).commands["train"]
    defaults = {p.name: p.default for p in train_command.params}
    settings = {**defaults, **(read_settings(config, known=set(defaults)) if config else {})}
    preset = PRESETS.get(settings["preset"])  # (an unknown preset fails in the first trial)
    full = {"epochs": settings["epochs"] or 60,  # best.yaml: a full run, not the proxy
            "imgsz": settings["imgsz"] or (preset.input_size if preset else None)}
    settings.update(data=str(data), imgsz=imgsz, epochs=epochs, budget=budget, resume=False)
    if workers is not None:
        settings["workers"] = workers
    tunable = set(defaults) - NOT_TUNABLE
    search = check_space(read_settings(space) if space else DEFAULT_SPACE, tunable, space or "(built-in)")
    storage = storage or f"sqlite:///{(out_dir / 'tune.db').resolve()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(storage, study_name, search, pruner, startup_trials, seed)
    console.print(f"study '{study_name}' in {storage}: {len(study.trials)} trials so far, up to {n_trials}; "
                  f"{epochs} epochs per trial at {imgsz}px")
    run_worker(study, search, settings, out_dir, n_trials, timeout)
    result = save_results(study, settings, full, out_dir)
    print_table(f"study {study_name}: {result['trials']} trials ({', '.join(f'{n} {s}' for s, n in result['states'].items())})",
                ("trial", "state", "val mIoU", "epochs", "params", "s", "note"),
                [(str(r["trial"]), r["state"], "-" if r["val_miou"] is None else f"{r['val_miou']:.2f}", str(r["epochs"]),
                  f"{r['params']:,}" if r["params"] else "-", "-" if r["seconds"] is None else f"{r['seconds']:.0f}",
                  r["note"][:60]) for r in sorted(trial_rows(study), key=lambda r: -(r["val_miou"] or -1))[:15]],
                left=("state", "note"))
    if "best" in result:
        out.print(f"best: trial {result['best']['trial']}, val mIoU {result['best']['val_miou']:.2f}; "
                  f"train it in full: faceparse-edge train --config {result['best']['config']}")
    if "importances" in result:
        out.print("importance (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in result["importances"].items()))
    write_json(json_file, result)


@app.command()
def evaluate(
    data: Path = typer.Option(..., help="Dataset directory (images/, masks/, optional splits/)."),
    model_name: Optional[str] = ModelOpt,
    split: Optional[str] = SplitOpt,
    tta: Tta = typer.Option(Tta.none, help="Test-time augmentation: none or flip (swaps left/right labels)."),
    imgsz: Optional[int] = typer.Option(None, min=64, max=2048, callback=_multiple_of_32, help="Input size, a multiple of 32 (default: the model's); torch weights only, exported models keep theirs."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    confusion: Path = typer.Option(Path("runs/evaluate/confusion.png"), help="Where to save the confusion-matrix PNG."),
    json_file: Optional[Path] = JsonOpt,
):
    """mIoU, per-class IoU, pixel accuracy and F-measure at the ground-truth resolution."""
    from .evaluation import evaluate_backend
    from .models import open_model
    from .toolkit.data import list_samples, load_pair, resolve_split
    from .toolkit.plots import plot_confusion

    from .weights import resolve_model

    weights = resolve_model(model_name)
    check_outputs([weights], [confusion, json_file])
    split = resolve_split(data, split)
    samples = list_samples(data, split)
    backend = open_model(weights, device=device)
    size, mean, std = imgsz or backend.info.input_size, backend.info.mean, backend.info.std
    if backend.name != "torch" and size != backend.info.input_size:
        raise FaceparseError(f"{weights.name} was exported at {backend.info.input_size} px: --imgsz applies to torch weights")
    result, metrics = evaluate_backend(backend, samples, load_pair, size, mean, std, tta=tta == Tta.flip)
    result.update({"data": str(data), "split": split, "tta": tta.value, "input_size": size, "weights": str(weights)})
    print_table(f"{data}" + (f" [{split}]" if split else "") + f", {result['images']} images at {size} px, TTA {tta.value}",
                ("class", "IoU %"),
                [*((name, "-" if value is None else f"{value:.2f}") for name, value in result["per_class_iou"].items()), None,
                 *((f"[bold]{label}", f"[bold]{result[key]:.2f}")
                   for key, label in (("miou", "mIoU"), ("f_measure", "F-measure"), ("pixel_acc", "pixel accuracy")))],
                left=("class",))
    plot_confusion(metrics.confusion, confusion, title=f"confusion, mIoU {result['miou']:.2f} (TTA {tta.value})")
    console.print(f"confusion matrix: {confusion}")
    write_json(json_file, result)


@app.command()
def export(
    model_name: Optional[str] = ModelOpt,
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx or openvino."),
    int8: bool = typer.Option(False, "--int8", help="Also write an INT8 model (ONNX Runtime QDQ or NNCF)."),
    data: Path = typer.Option(..., help="Labelled dataset: parity images, calibration and (with --max-drop) validation."),
    imgsz: Optional[int] = typer.Option(None, min=64, max=2048, callback=_multiple_of_32, help="Input size, a multiple of 32 (default: the model's)."),
    out_dir: Path = typer.Option(Path("runs/export"), "--out", help="Output folder."),
    calib_size: int = typer.Option(DEFAULT_CALIBRATION_SIZE, min=1, help="Calibration images (a stratified pick from the train split)."),
    manifest: Optional[Path] = typer.Option(None, help="Calibration manifest from `calibrate` (overrides --calib-size)."),
    max_drop: Optional[float] = typer.Option(None, min=0, help="OpenVINO: accuracy-controlled INT8 within this many mIoU points."),
    int8_target: str = typer.Option("auto", help="CPU the ONNX Runtime INT8 model is for: avx2 (no VNNI: 7-bit "
                                    "weights, no saturation), vnni (full 8-bit), auto (this CPU's flags)."),
    calib_percentile: float = typer.Option(CALIBRATION_PERCENTILE, min=99.0, max=100.0, help="ONNX Runtime INT8: "
                                           "activation ranges at this percentile of the calibration values "
                                           "(100 = their min/max)."),
    json_file: Optional[Path] = JsonOpt,
):
    """Export to ONNX or OpenVINO IR (FP32, and INT8 with --int8), with a parity check against torch."""
    from .export.exporter import export as run_export

    if max_drop is not None and (fmt != "openvino" or not int8):
        raise FaceparseError("--max-drop applies to --format openvino --int8")
    if calib_percentile != CALIBRATION_PERCENTILE and (fmt != "onnx" or not int8):
        raise FaceparseError("--calib-percentile applies to --format onnx --int8")
    from .weights import resolve_model

    weights = resolve_model(model_name)
    check_outputs([weights, manifest], [json_file], [out_dir])
    rows = run_export(weights, fmt, int8, str(data), out_dir, imgsz, calib_size, manifest, max_drop,
                      int8_target=int8_target, calib_percentile=calib_percentile)
    print_table("export", ("format", "precision", "file", "size MB", "max |diff|", "agreement %"),
                [(r["format"], r["precision"], r["path"], f"{r['size_mb']:.2f}", f"{r['max_abs_diff']:.2e}",
                  f"{r['agreement'] * 100:.2f}") for r in rows], left=("format", "precision", "file"))
    write_json(json_file, rows)


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
    from .export.calibration import crops_from_video, pick_stratified, rare_class_counts, write_manifest
    from .toolkit.data import list_samples

    if (data is None) == (video is None):
        raise FaceparseError("give exactly one of --data or --video")
    check_outputs([video], [out_file], [crops_dir])
    if video is not None:
        images = crops_from_video(str(video), crops_dir, size)
        write_manifest(out_file, str(video), images, kind="video face crops")
    else:
        picked = pick_stratified(list_samples(data, split), size, seed)
        write_manifest(out_file, str(data), [s.image for s in picked], kind="stratified pick", split=split,
                       seed=seed, rare_class_images=rare_class_counts(picked), ids=[s.id for s in picked])
        images = picked
    out.print(f"wrote {out_file}: {len(images)} images")


@app.command()
def check(
    models: Optional[list[str]] = typer.Argument(None, help="Quantised models (.onnx / .xml files, or NAME-int8); "
                                                 "default: the INT8 models shipped with --model."),
    reference: Optional[str] = typer.Option(None, help="FP32 reference model (a file or a short name); default: "
                                            "the FP32 ONNX shipped with --model."),
    model_name: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The shipped model whose FP32 and INT8 "
                                   "models are checked by default: edge or edge-hq."),
    data: Path = typer.Option(..., help="Labelled dataset directory."),
    split: Optional[str] = SplitOpt,
    max_drop: float = typer.Option(1.0, min=0, help="Fail when any model loses more than this many mIoU points."),
    threads: int = typer.Option(0, min=0, max=MAX_THREADS, help="Inference threads (0 = backend default)."),
    precision: Precision = typer.Option(Precision.f32, help="Execution precision of the checked models (the "
                                        "reference runs in f32): f32, or bf16/f16 with OpenVINO where the CPU has it."),
    json_file: Optional[Path] = JsonOpt,
):
    """Evaluate FP32 and quantised models with `evaluate`'s metrics; exit 1 if any drop exceeds --max-drop."""
    from .export.check import check as run_check
    from .toolkit.data import resolve_split
    from .weights import resolve_model, shipped_int8_models

    split = resolve_split(data, split)
    reference = resolve_model(reference or model_name, "onnxruntime")
    models = [resolve_model(m, "onnxruntime") for m in models or []] or shipped_int8_models(model_name)
    check_outputs([reference, *models], [json_file])
    if not models:
        raise FaceparseError("no quantised models to check: name them or ship INT8 models")
    rows = run_check(reference, models, str(data), split, threads=threads, precision=precision.value)
    print_table(f"quantised accuracy check on {data}" + (f" [{split}]" if split else ""),
                ("model", "format", "ran", "size MB", "mIoU", "delta mIoU", "worst class delta", "agreement %"),
                [(Path(r["model"]).name, r["format"], r["ran"], f"{r['size_mb']:.2f}", f"{r['miou']:.2f}",
                  f"{r['delta_miou']:+.2f}", f"{r['worst_class']} {r['worst_class_delta']:+.2f}", f"{r['agreement']:.2f}")
                 for r in rows], left=("model", "format", "ran"))
    write_json(json_file, rows)
    failing = [r for r in rows if -r["delta_miou"] > max_drop]
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
    from .export.benchmark import benchmark as run_benchmark, save_results
    from .sysinfo import cpu_class, cpu_times, describe, machine_info
    from .toolkit.data import resolve_split
    from .weights import is_short_name, model_dir, resolve_model

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
    rows = run_benchmark(models, str(data), split, threads, runs, rounds,
                         executions=tuple(p.value for p in precision))
    machine = machine_info(threads, since=start)
    note = (f"Latency: batch 1 at the model's input size, after 10 warm-up runs, {rounds} interleaved rounds of "
            f"{runs} runs per format; FPS = 1000 / p50; speed-up = eager p50 / p50, same run. "
            f"mIoU on {data} [{split or 'all'}] at 512x512 ground truth, no TTA. Execution: the floating-point "
            f"precision the backend ran (OpenVINO INFERENCE_PRECISION_HINT, read back after compiling).")
    fmt = lambda v, f="{}": "-" if v is None else f.format(v)
    print_table("faceparse-edge benchmark",
                ("model", "format", "precision", "execution", "status", "size MB", "mIoU", "p50 ms", "p90 ms", "FPS", "speed-up"),
                [(r["model"], r["format"], r["precision"], r["execution"], r["status"], fmt(r["size_mb"], "{:.2f}"),
                  fmt(r["miou"], "{:.2f}"), fmt(r.get("p50_ms")), fmt(r.get("p90_ms")), fmt(r.get("fps")),
                  fmt(r.get("speedup_vs_eager"), "{}x")) for r in rows],
                left=("model", "format", "precision", "execution", "status"), caption=describe(machine))
    for path in save_results(rows, out_dir, machine, note):
        console.print(f"wrote {path}")
    failed = [r for r in rows if r["status"].startswith("failed")]
    if failed:
        raise FaceparseError(f"{len(failed)} of {len(rows)} benchmark rows failed (first: {failed[0]['model']} {failed[0]['format']} "
                             f"{failed[0]['precision']}, {failed[0]['status']})")


RuntimeModelOpt = typer.Option(None, "--model", "-m", help="A shipped model: edge (fast, the default) or edge-hq "
                               "(accurate), NAME-int8 for its INT8 version (OpenVINO IR with --backend openvino, "
                               "else ONNX); or a model file (.onnx, OpenVINO .xml).")
BackendOpt = typer.Option("auto", help="auto (by file type), onnxruntime or openvino.")
ThreadsOpt = typer.Option(0, min=0, max=MAX_THREADS, help="Inference threads (0 = backend default).")
TtaOpt = typer.Option(True, "--tta/--no-tta", help="Flip test-time augmentation (swaps left/right labels).")
DetectOpt = typer.Option(True, "--detect/--no-detect", help="Find faces; --no-detect treats each input as an aligned crop.")
DetectEveryOpt = typer.Option(5, min=1, help="Run the face detector every N frames (tracks follow their faces' motion in between).")
DetectorOpt = typer.Option("auto", help="Face detector: retinaface (every platform; profile and small faces, "
                           "landmark alignment), yunet (where its wheel installs), haar (OpenCV, frontal, no landmarks), "
                           "auto (retinaface; if its package is missing or broken, yunet, then haar, with a warning).")
SmoothingOpt = typer.Option(0.9, min=0, max=0.99, help="Weight of a still face's previous probabilities (moved with its motion; less as the face changes), 0 (off) to 0.99.")


def _runtime_model(model_name: Optional[str], backend: str) -> Path:
    from .weights import resolve_model

    return resolve_model(model_name, backend)


def _pipeline(model, backend, threads, tta, detect, precision, detector, detect_every=1, smoothing=0.0):
    from .runtime.pipeline import Parser

    return Parser(model, backend, threads, tta, detect, detect_every, smoothing, precision=precision.value,
                    detector=detector)


def _print_stream_summary(summary: dict) -> None:
    ms = "  ".join(f"{k} {v:.1f}" for k, v in summary["ms"].items())
    ms += f" (model {summary['model_fraction']:.0%} of the time)"
    one_face = summary["fps_by_faces"].get("1")
    out.print(f"{summary['frames']} frames ({summary['bad_frames']} unreadable), detector {summary['detector']}, "
              f"at {summary['fps']:.1f} FPS end to end"
              + (f" ({one_face:.1f} on the frames with one face)" if one_face else "") + "; "
              f"ms/frame: {ms}; faces/frame {summary['faces_per_frame']:.2f}; flicker {summary['flicker']}")
    if summary["out"]:
        out.print(f"wrote {summary['out']}")


@app.command()
def video(
    source: str = typer.Argument(..., help="Video file or stream URL."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the annotated video here (.mp4)."),
    show: bool = typer.Option(True, "--show/--no-show", help="Show a live window."),
    model_name: Optional[str] = RuntimeModelOpt, backend: str = BackendOpt, threads: int = ThreadsOpt, tta: bool = TtaOpt,
    detect: bool = DetectOpt, detect_every: int = DetectEveryOpt, smoothing: float = SmoothingOpt,
    precision: Precision = PrecisionOpt, detector: str = DetectorOpt, json_file: Optional[Path] = JsonOpt,
):
    """Parse every face in a video file or stream; same frame count and rate out as in."""
    from .runtime.video import run_stream

    model = _runtime_model(model_name, backend)
    check_outputs([source, model], [out_file, json_file])
    pipeline = _pipeline(model, backend, threads, tta, detect, precision, detector, detect_every, smoothing)
    summary = run_stream(pipeline, source, out_file, show=show)
    _print_stream_summary(summary)
    write_json(json_file, summary)
    kept = f"; {out_file} holds the {summary['frames']} frames parsed" if out_file else ""
    if summary["missing_frames"]:
        raise FaceparseError(f"{source} ended early: its last {summary['missing_frames']} of "
                             f"{summary['frames_expected']} frames could not be read (truncated file?){kept}")
    if summary["interrupted"]:
        raise FaceparseError(f"interrupted after {summary['frames']} frames{kept}")


@app.command()
def webcam(
    camera: int = typer.Option(0, min=0, help="Camera index."),
    save: Optional[Path] = typer.Option(None, "--out", "--save", help="Also record the annotated stream here "
                                        "(.mp4); --save is the older spelling."),
    show: bool = typer.Option(True, "--show/--no-show", help="Show a live window (q quits)."),
    model_name: Optional[str] = RuntimeModelOpt, backend: str = BackendOpt, threads: int = ThreadsOpt, tta: bool = TtaOpt,
    detect_every: int = DetectEveryOpt, smoothing: float = SmoothingOpt, precision: Precision = PrecisionOpt,
    detector: str = DetectorOpt,
    max_frames: Optional[int] = typer.Option(None, min=1, help="Stop after this many frames."),
    json_file: Optional[Path] = JsonOpt,
):
    """Live face parsing from a webcam; q or Ctrl-C stops and finalises the saved file."""
    from .runtime.video import run_stream

    model = _runtime_model(model_name, backend)
    check_outputs([model], [save, json_file])
    pipeline = _pipeline(model, backend, threads, tta, True, precision, detector, detect_every, smoothing)
    summary = run_stream(pipeline, camera, save, show=show, is_camera=True, max_frames=max_frames)
    _print_stream_summary(summary)
    write_json(json_file, summary)


@app.command()
def image(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders of images."),
    out_dir: Path = typer.Option(Path("runs/image"), "--out", help="Where to write <name>.png labels and <name>_overlay.png."),
    model_name: Optional[str] = RuntimeModelOpt, backend: str = BackendOpt, threads: int = ThreadsOpt, tta: bool = TtaOpt,
    detect: bool = DetectOpt, precision: Precision = PrecisionOpt, detector: str = DetectorOpt,
    json_file: Optional[Path] = JsonOpt,
):
    """Parse faces in images: a palette label PNG (class ids, input resolution) and an overlay per input."""
    from .runtime.images import parse_images, plan_outputs

    model = _runtime_model(model_name, backend)
    plan = plan_outputs(inputs, out_dir, protect=[model], also_written=[json_file])
    records, errors = parse_images(_pipeline(model, backend, threads, tta, detect, precision, detector), plan)
    for r in records:
        out.print(f"{r['input']}: {len(r['faces'])} face(s) ({r['detector']} detector) -> {r['labels']}, {r['overlay']}")
    write_json(json_file, records)
    if errors:
        raise FaceparseError(f"{len(errors)} of {len(errors) + len(records)} images could not be read (first: {errors[0]})")


def _stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: videos finalised, checkpoints whole


def main():
    signal.signal(signal.SIGTERM, _stop)
    try:
        code = app(standalone_mode=False)  # usage errors come here, to be one line like the rest
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Abort:
        console.print("interrupted")
        sys.exit(130)
    except ClickException as exc:
        message, context = " ".join(exc.format_message().split()), getattr(exc, "ctx", None)
        if message:  # (a bare command group has printed its help instead)
            hint = f" (see '{context.command_path} --help')" if context else ""
            print(f"error: {message}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except FaceparseError as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank fails alike; rank 0 says why
            print(f"error: {exc}", file=sys.stderr)  # plain print: one line, never wrapped
        else:  # torchrun stops every rank once one exits: let rank 0 say why first (and be stopped quietly;
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # torchrun stops this rank as soon as rank 0 exits)
            time.sleep(10)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
