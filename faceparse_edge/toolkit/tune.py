"""`faceparse-edge tune`: Bayesian hyper-parameter search (Optuna's TPE) over `train`'s settings.

Each trial is a short proxy run of the real trainer. Its val mIoU after every epoch goes to a
pruner that stops poor trials early; a configuration over the parameter budget is rejected
(its parameters counted, no data read) before any training. Several processes or machines
work on one study by running the same command against one storage: an SQLite file by
default, a PostgreSQL URL across machines.
"""

import json
import os
import socket
import warnings
from contextlib import contextmanager
from pathlib import Path

from ..errors import FaceparseError, first_line
from ..fileio import atomic_path, write_text_atomic
from ..progress import console
from .model_config import PRESETS, ModelConfig
from .run_config import architecture, plan_run, read_settings, resolved, train_run, with_data_stats, write_settings
from .settings import DEFAULTS
from .train import Diverged

# The search space: the architecture, augmentation limits, optimiser, schedule and loss weights.
DEFAULT_SPACE = {
    "layers": {"low": 6, "high": 11},
    "width": {"low": 0.5, "high": 2.0},
    "aspp_channels": {"choices": [64, 96, 128, 192, 256]},
    "aspp_rate": {"low": 1, "high": 6},
    "aspp_depth": {"low": 1, "high": 5},
    "decoder_channels": {"choices": [0, 32, 48, 64, 96]},
    "dropout": {"low": 0.0, "high": 0.3},
    "hue": {"low": 0.0, "high": 15.0},
    "saturation": {"low": 0.0, "high": 0.5},
    "value": {"low": 0.0, "high": 0.5},
    "brightness": {"low": 0.0, "high": 0.3},
    "contrast": {"low": 0.0, "high": 0.4},
    "scale": {"low": 1.0, "high": 1.5},
    "rotate": {"low": 0.0, "high": 30.0},
    "optimizer": {"choices": ["adam", "adamw"]},
    "lr": {"low": 3e-4, "high": 1e-2, "log": True},
    "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True},
    "scheduler": {"choices": ["cosine", "linear", "plateau"]},
    "loss": {"choices": ["ce:1", "ce:1,lovasz:0.5", "ce:1,lovasz:1", "wce:1,lovasz:0.5", "ce:1,dice:0.5"]},
}
NOT_TUNABLE = {"data", "out_dir", "device", "workers", "cache", "train_split", "val_split", "epochs", "imgsz",
               "budget", "preset"}  # a study's fixed frame, not its variables
PRUNERS = ("median", "hyperband", "none")


def tune(data, config: Path | None, space: Path | None, n_trials: int, timeout: float | None, epochs: int, imgsz: int,
         budget: int, study_name: str, storage: str | None, out_dir: Path, pruner: str, startup_trials: int,
         seed: int | None, workers: int | None) -> dict:
    """The `tune` command (its options, with their defaults and meanings, are this function's arguments): join (or
    create) a study, run trials in this process until it holds `n_trials`, and write the results. Trials start
    from the training defaults, then `config`'s settings, at the proxy budget (`epochs`, `imgsz`); best.yaml gets
    the full run's epochs and size. Returns save_results' summary and every trial's row."""
    settings = {**DEFAULTS, **(read_settings(config, known=set(DEFAULTS)) if config else {})}
    preset = PRESETS.get(settings["preset"])  # (an unknown preset fails in the first trial)
    full = {"epochs": settings["epochs"], "imgsz": settings["imgsz"] or (preset.input_size if preset else None)}
    settings.update(data=str(data), imgsz=imgsz, epochs=epochs, budget=budget)
    if workers is not None:
        settings["workers"] = workers
    search = check_space(read_settings(space) if space else DEFAULT_SPACE, set(DEFAULTS) - NOT_TUNABLE,
                         space or "(built-in)")
    storage = storage or f"sqlite:///{(Path(out_dir) / 'tune.db').resolve()}"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    study = open_study(storage, study_name, search, pruner, startup_trials, seed)
    console.print(f"study '{study_name}' in {storage}: {len(study.trials)} trials so far, up to {n_trials}; "
                  f"{epochs} epochs per trial at {imgsz}px")
    run_worker(study, search, settings, Path(out_dir), n_trials, timeout)
    return {**save_results(study, settings, full, Path(out_dir)), "rows": trial_rows(study)}


class Rejected(FaceparseError):
    """A trial refused before training (over the parameter budget, or an impossible architecture)."""


def check_space(space: dict, tunable: set[str], source) -> dict:
    """A search space: {option: {low, high[, log]} or {choices: [...]}}; one-line errors for bad entries."""
    if not isinstance(space, dict) or not space:
        raise FaceparseError(f"search space {source} is empty")
    for name, spec in space.items():
        if name not in tunable:
            raise FaceparseError(f"search space {source}: unknown parameter '{name}' (tunable: {', '.join(sorted(tunable))})")
        if not isinstance(spec, dict):
            raise FaceparseError(f"search space {source}: '{name}' needs low/high or choices")
        if "choices" in spec:
            if set(spec) - {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
                raise FaceparseError(f"search space {source}: '{name}' has an empty or malformed choices list")
            continue
        low, high = spec.get("low"), spec.get("high")
        if set(spec) - {"low", "high", "log"} or not all(isinstance(v, (int, float)) for v in (low, high)):
            raise FaceparseError(f"search space {source}: '{name}' needs numbers low and high (and optional log)")
        if not low < high:
            raise FaceparseError(f"search space {source}: '{name}' has an empty or inverted range {low}..{high}")
        if spec.get("log") and low <= 0:
            raise FaceparseError(f"search space {source}: '{name}' is log-scaled but its range reaches {low} <= 0")
    return space


def suggest(trial, name: str, spec: dict):
    if "choices" in spec:
        return trial.suggest_categorical(name, spec["choices"])
    if isinstance(spec["low"], int) and isinstance(spec["high"], int) and not isinstance(spec["low"], bool):
        return trial.suggest_int(name, spec["low"], spec["high"], log=bool(spec.get("log")))
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


def open_study(storage: str, name: str, space: dict, pruner: str, startup_trials: int, seed: int | None):
    """Create or join a study; refuse one that exists with another search space."""
    import optuna

    if pruner not in PRUNERS:
        raise FaceparseError(f"unknown pruner '{pruner}'; choose from {', '.join(PRUNERS)}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own one line per trial instead
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: stable enough
    pruners = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=1),
               "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1),
               "none": optuna.pruners.NopPruner}
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}  # SQLite: wait for the lock
    try:
        rdb = optuna.storages.RDBStorage(storage, engine_kwargs=engine, heartbeat_interval=30, grace_period=120)
        study = optuna.create_study(storage=rdb, study_name=name, load_if_exists=True, direction="maximize",
                                    sampler=optuna.samplers.TPESampler(n_startup_trials=startup_trials, seed=seed),
                                    pruner=pruners[pruner]())
        stored = study.user_attrs.get("space")
        if stored is None:
            study.set_user_attr("space", space)
    except FaceparseError:
        raise
    except Exception as exc:  # SQLAlchemy/psycopg errors for a storage that cannot be reached or opened
        raise FaceparseError(f"cannot open study storage {storage}: {first_line(exc)}") from None
    if stored is not None and stored != json.loads(json.dumps(space)):
        raise FaceparseError(f"study '{name}' in {storage} was created with another search space; "
                             "use its space file or another --study")
    return study


def run_worker(study, space: dict, base: dict, out_dir: Path, n_trials: int, timeout: float | None) -> None:
    """Run trials until the study holds `n_trials` (all workers together) or `timeout` seconds pass."""
    import optuna

    TrialState = optuna.trial.TrialState
    begun = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)  # not those still queued
    if len(study.get_trials(deepcopy=False, states=begun)) >= n_trials:
        return  # the study is done: this worker only writes the results
    stats = with_data_stats(ModelConfig(input_size=base["imgsz"]), base["data"], base["train_split"])
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial) -> float:
        if trial.number >= n_trials:  # two workers asked for the last trial at once: this one is surplus
            trial.set_user_attr("surplus", True)
            study.stop()
            raise optuna.TrialPruned("surplus: the study already holds its trials")
        settings = {**base, **{name: suggest(trial, name, spec) for name, spec in space.items()},
                    "out_dir": str(out_dir / "trials" / f"{trial.number:04d}")}
        trial.set_user_attr("worker", worker)
        try:
            plan = plan_run(settings)
        except FaceparseError as exc:
            trial.set_user_attr("rejected", str(exc))
            console.print(f"trial {trial.number} rejected before training: {exc}")
            raise Rejected(str(exc)) from None
        trial.set_user_attr("params", plan[2])

        def report(epoch: int, miou: float) -> None:
            trial.report(miou, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val mIoU {miou:.2f} after epoch {epoch}")

        try:
            return train_run(settings, on_epoch=report, stats=stats, plan=plan)["best_miou"]
        except Diverged as exc:  # this trial's settings, not the study's: the search goes on
            trial.set_user_attr("rejected", str(exc))
            raise
        except optuna.TrialPruned as exc:
            console.print(f"trial {trial.number} pruned: {exc}")
            raise

    # Rejected and diverged trials are recorded as failed and the search goes on; any other
    # error (unreadable data, impossible settings) would fail every trial, so it ends the run.
    study.optimize(objective, timeout=timeout, catch=(Rejected, Diverged),
                   callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=begun)])


def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.trials:
        if t.user_attrs.get("surplus"):  # started by a worker racing another for the last trial (see run_worker)
            continue
        rows.append({"trial": t.number, "state": t.state.name.lower(), "val_miou": None if t.value is None else round(t.value, 2),
                     "epochs": len(t.intermediate_values), "params": t.user_attrs.get("params"),
                     "seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
                     "worker": t.user_attrs.get("worker"), "note": t.user_attrs.get("rejected", ""), **t.params})
    return rows


@contextmanager
def _one_writer_at_a_time(out_dir: Path):
    """An exclusive lock on the results folder. Workers sharing it write in turn, each from what
    it reads under the lock, so the last to finish writes every trial's final state; without it,
    a worker still plotting from an older read could rename its tables over a newer worker's.
    The folder itself is locked: no lock file is left in it."""
    import fcntl

    folder = os.open(out_dir, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # (closing releases the lock)


def save_results(study, base: dict, full: dict, out_dir: Path) -> dict:
    """Trials table (CSV/JSON), best settings (a `train --config` file for a full run: the `full`
    epochs and input size, not the proxy's), importances and plots."""
    with _one_writer_at_a_time(out_dir):
        return _save_results(study, base, full, out_dir)


def _save_results(study, base: dict, full: dict, out_dir: Path) -> dict:
    import csv
    import io

    import optuna

    rows = trial_rows(study)
    buf = io.StringIO()
    columns = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out_dir / "trials.csv", buf.getvalue())
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    result = {"study": study.study_name, "trials": len(rows),
              "states": {s: sum(r["state"] == s for r in rows) for s in sorted({r["state"] for r in rows})}}
    if complete:
        best = study.best_trial
        settings = {**base, **best.params, **full, "out_dir": "runs/train"}
        write_settings(out_dir / "best.yaml", resolved(settings, architecture(settings)[0]))
        result["best"] = {"trial": best.number, "val_miou": round(best.value, 2), "params": best.params,
                          "config": str(out_dir / "best.yaml")}
    if len(complete) >= 2:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        try:
            result["importances"] = {k: round(v, 4) for k, v in optuna.importance.get_param_importances(
                study, evaluator=evaluator).items()}
        except RuntimeError:  # fANOVA needs completed trials whose scores differ
            evaluator = None  # the plot falls back to Optuna's default evaluator
        _plots(study, out_dir, evaluator)
    write_text_atomic(out_dir / "tune.json", json.dumps({**result, "rows": rows}, indent=1, default=str))
    return result


def _plots(study, out_dir: Path, evaluator) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as plots

    warnings.filterwarnings("ignore", message="Attempting to set identical", category=UserWarning)  # a fixed parameter
    for name, draw in (("history", lambda: plots.plot_optimization_history(study)),
                       ("importances", lambda: plots.plot_param_importances(study, evaluator=evaluator)),
                       ("parallel", lambda: plots.plot_parallel_coordinate(study))):
        ax = draw()
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(10, 5.5)
        fig.tight_layout()
        with atomic_path(out_dir / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
