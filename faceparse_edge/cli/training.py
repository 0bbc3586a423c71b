"""Commands around training: info, data (prepare, stats, pseudo-label, crop-rule), train, tune and evaluate."""

import importlib.util
import os
from pathlib import Path
from typing import Optional

import typer

from ..classes import CLASS_NAMES
from ..errors import FaceparseError
from ..fileio import check_outputs, write_text_atomic
from ..models import resolve_model
from ..progress import console
from ..toolkit.settings import PARAM_BUDGET, SIZE_MULTIPLE
from .common import (DataOpt, JsonOpt, ModelOpt, Precision, PrecisionOpt, SplitOpt, app, apply_config, data_app, fmt,
                     multiple_of, out, print_table, with_training_settings, write_json)


@app.command()
def info(model_name: Optional[str] = ModelOpt, precision: Precision = PrecisionOpt, json_file: Optional[Path] = JsonOpt):
    """Describe a model (checkpoint, safetensors, ONNX or OpenVINO IR) and the precision it runs in on this CPU."""
    from ..sysinfo import describe
    from ..models.info import model_info

    # A shipped name means its torch weights where torch is installed, else its ONNX model (the runtime install).
    weights = resolve_model(model_name, None if importlib.util.find_spec("torch") else "onnxruntime")
    check_outputs([weights], [json_file])
    s = model_info(weights, precision.value)
    print_table(f"faceparse-edge model: {weights}", ("", ""), [
        ("format", s["format"]), ("precision (stored / runs in)", f"{s['model_precision']} / {s['runs_in']}"),
        ("preset", s["preset"]),
        ("trainable parameters", f"{s['params']:,}" if s["params"] else "unknown (needs the torch weights)"),
        ("input size", f"{s['input_size']} x {s['input_size']}"), *((k, str(v)) for k, v in s["config"].items()),
        ("classes", ", ".join(f"{i}:{n}" for i, n in enumerate(CLASS_NAMES))), ("machine", describe(s["machine"]))],
        left=("",), header=False)
    write_json(json_file, s)


@data_app.command("prepare")
def data_prepare(src: Path = typer.Argument(..., help="The official CelebAMask-HQ release folder."),
                 out_dir: Path = typer.Argument(..., help="Where to write images/, masks/ and splits/."),
                 size: int = typer.Option(512, min=32, help="Output side length in pixels.")):
    """Convert the official CelebAMask-HQ release into the images/ + masks/ + splits/ layout."""
    from ..toolkit.prepare import prepare

    check_outputs(folders=[out_dir])
    counts = prepare(src, out_dir, size)
    out.print(f"wrote {sum(counts.values())} pairs to {out_dir} (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")")


@data_app.command("stats")
def data_stats(data: Path = typer.Argument(..., help="Dataset directory."),
               split: Optional[str] = typer.Option(None, help="Use only the ids in splits/<name>.txt."),
               json_file: Optional[Path] = JsonOpt):
    """Class distribution (pixels, share, images containing each class) and per-channel mean/std."""
    from ..toolkit.stats import dataset_stats

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
    from ..toolkit.checkpoint import load_model
    from ..toolkit.pseudo_label import pseudo_label

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
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the rule here (the runtime reads "
                                            "runtime/crop_rule_<detector>.json)."),
):
    """Measure where a face detector puts landmarks and boxes on the training crops (the runtime's crop rule)."""
    from ..runtime.crop_rule import measure_rule, rule_to_json

    check_outputs(files=[out_file])
    rule, found, images, detector_name = measure_rule(data, split, detector)
    out.print(f"{detector_name}: face found in {found}/{images} images; crop side = {rule.scale} x box height, "
              f"centre offset ({rule.dx}, {rule.dy}) x box height")
    if out_file:
        write_text_atomic(out_file, rule_to_json(rule, found, f"{data} [{split}]", detector_name))
        console.print(f"wrote {out_file}")


@app.command()
@with_training_settings
def train(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", is_eager=True, callback=apply_config, help="Settings "
                                          "file (YAML/JSON, keys = these options' names, e.g. a run's config.yaml or "
                                          "`tune`'s best); options given here override it."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint."),
    json_file: Optional[Path] = JsonOpt,
    **settings,
):
    """Train a face parser from scratch (CPU by default, CUDA with mixed precision when present).

    Runs as it is under `torchrun --nproc-per-node N` (DDP: gloo on CPU, NCCL on CUDA).
    """
    from ..toolkit.run_config import resume_run, train_run

    check_outputs([config, settings["init"], settings["distill"]], [json_file], [settings["out_dir"]])
    if resume:  # the run's own settings; --epochs, when given, is its new total
        given = ctx.get_parameter_source("epochs").name != "DEFAULT"
        summary = resume_run(settings["out_dir"], settings["epochs"] if given else None)
    else:
        summary = train_run(settings)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone writes
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
    imgsz: int = typer.Option(128, min=64, max=2048, callback=multiple_of(SIZE_MULTIPLE),
                              help="Input size of the trials (a proxy for the full size)."),
    budget: int = typer.Option(PARAM_BUDGET, min=1, help="Trainable parameter budget: trials over it are rejected "
                               "before training."),
    study_name: str = typer.Option("faceparse-edge", "--study", help="Study name in the storage."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage URL shared by all workers, e.g. "
                                          "postgresql://user:pw@host/db; default: sqlite:///OUT/tune.db."),
    out_dir: Path = typer.Option(Path("runs/tune"), "--out", help="Trials, tables, plots and best.yaml."),
    pruner: str = typer.Option("median", help="median, hyperband or none."),
    startup_trials: int = typer.Option(5, min=0, help="Random trials before TPE models the space (and before the "
                                       "median pruner prunes)."),
    seed: Optional[int] = typer.Option(None, help="Sampler seed (leave unset when several workers share a study)."),
    workers: Optional[int] = typer.Option(None, min=0, max=64, help="DataLoader workers of each trial (default as `train`'s)."),
    json_file: Optional[Path] = JsonOpt,
):
    """Bayesian hyper-parameter search (Optuna TPE) over `train`'s settings; run it on several machines at once
    against one --storage to share a study."""
    from ..toolkit.tune import tune as run_tune

    check_outputs([config, space], [json_file], [out_dir])
    result = run_tune(data, config, space, n_trials, timeout, epochs, imgsz, budget, study_name, storage, out_dir,
                      pruner, startup_trials, seed, workers)
    rows = result.pop("rows")
    states = ", ".join(f"{n} {s}" for s, n in result["states"].items())
    print_table(f"study {study_name}: {result['trials']} trials ({states})",
                ("trial", "state", "val mIoU", "epochs", "params", "s", "note"),
                [(str(r["trial"]), r["state"], fmt(r["val_miou"], "{:.2f}"), str(r["epochs"]), fmt(r["params"], "{:,}"),
                  fmt(r["seconds"], "{:.0f}"), r["note"])
                 for r in sorted(rows, key=lambda r: -(r["val_miou"] or -1))[:15]], left=("state", "note"))
    if "best" in result:
        out.print(f"best: trial {result['best']['trial']}, val mIoU {result['best']['val_miou']:.2f}; "
                  f"train it in full: faceparse-edge train --config {result['best']['config']}")
    if "importances" in result:
        out.print("importance (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in result["importances"].items()))
    write_json(json_file, result)
    if "best" not in result:
        reason = next((f" (trial {r['trial']}: {r['note']})" for r in rows if r["note"]), "")
        raise FaceparseError(f"no trial of study {study_name} completed ({states}){reason}: no best settings written")


@app.command()
def evaluate(
    data: Path = DataOpt, model_name: Optional[str] = ModelOpt, split: Optional[str] = SplitOpt,
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Flip test-time augmentation (swaps left/right labels); "
                             "--tta flip / --tta none also work."),
    imgsz: Optional[int] = typer.Option(None, min=64, max=2048, callback=multiple_of(SIZE_MULTIPLE), help="Input "
                                        "size, a multiple of 32 (default: the model's); torch weights only, exported "
                                        "models keep theirs."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    confusion: Path = typer.Option(Path("runs/evaluate/confusion.png"), help="Where to save the confusion-matrix PNG."),
    json_file: Optional[Path] = JsonOpt,
):
    """mIoU, per-class IoU, pixel accuracy and F-measure at the ground-truth resolution."""
    from ..models.evaluate import evaluate_model
    from ..toolkit.plots import plot_confusion

    weights = resolve_model(model_name)
    check_outputs([weights], [confusion, json_file])
    r, metrics = evaluate_model(weights, data, split, tta, imgsz, device)
    print_table(f"{data}" + (f" [{r['split']}]" if r["split"] else "") + f", {r['images']} images at "
                f"{r['input_size']} px, TTA {r['tta']}", ("class", "IoU %"),
                [*((name, fmt(v, "{:.2f}")) for name, v in r["per_class_iou"].items()), None,
                 *((f"[bold]{label}", f"[bold]{r[key]:.2f}")
                   for key, label in (("miou", "mIoU"), ("f_measure", "F-measure"), ("pixel_acc", "pixel accuracy")))],
                left=("class",))
    plot_confusion(metrics.confusion, confusion, title=f"confusion, mIoU {r['miou']:.2f} (TTA {r['tta']})")
    console.print(f"confusion matrix: {confusion}")
    write_json(json_file, r)


