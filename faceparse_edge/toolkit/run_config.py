"""A training run from its settings (settings.py): checked, trained, and saved as one settings file.

`train_run` is the one way in: the `train` command, each `tune` trial and Python scripts call it.
Every run saves its resolved settings as `config.yaml` (YAML or JSON files are read back by
`train --config FILE`), so any run is reproduced by one file. An option given on the command
line overrides the file.
"""

import json
from dataclasses import replace
from pathlib import Path

from ..errors import FaceparseError, InvalidValueError, NotFoundError, first_line
from ..fileio import write_text_atomic
from .samples import channel_mean_std, list_samples, load_pair, resize_pair
from .distill import parse_scales
from .distributed import rank_and_world
from .model import build_model, count_parameters, fit_width
from .model_config import PRESETS, ModelConfig
from .settings import SIZE_MULTIPLE, with_defaults
from .train import TrainConfig, check_new_run, check_trainable, train

# `train` options that set the architecture (ModelConfig fields) and the augmentation (AugmentConfig)
MODEL_OPTIONS = {"layers": "layers", "extra_blocks": "extra_blocks", "output_stride": "output_stride",
                 "aspp_channels": "aspp_channels", "aspp_rate": "aspp_rate_base", "aspp_depth": "aspp_depth", "decoder_channels": "decoder_channels",
                 "low_level_channels": "low_level_channels", "dropout": "dropout", "context": "context"}
AUGMENT_OPTIONS = {"flip": "flip_p", "rotate": "rotate_deg", "translate": "translate", "hue": "hue",
                   "saturation": "saturation", "value": "value", "brightness": "brightness", "contrast": "contrast"}
NOT_SAVED = {"config", "resume", "json_file"}  # how a run was invoked, not what it is


def read_settings(path: Path, known: set[str] | None = None) -> dict:
    """A settings file as a dict; one-line errors for a missing or malformed file, or for a key
    outside `known` (when given)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"config file not found: {path}")
    try:
        if path.suffix.lower() == ".json":
            settings = json.loads(path.read_text())
        else:
            import yaml

            settings = yaml.safe_load(path.read_text())
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError
        mark = getattr(exc, "problem_mark", None)  # YAML: say what and where, not its multi-line context
        reason = f"{exc.problem} (line {mark.line + 1})" if mark else first_line(exc)
        raise FaceparseError(f"cannot read config {path}: {reason}") from None
    if not isinstance(settings, dict):
        raise FaceparseError(f"config {path} must map option names to values, not hold a {type(settings).__name__}")
    settings = {key.replace("-", "_"): value for key, value in settings.items()}
    unknown = sorted(set(settings) - known) if known is not None else []
    if unknown:
        raise FaceparseError(f"unknown settings in {path}: {', '.join(unknown)}")
    return settings


def write_settings(path: Path, settings: dict) -> None:
    import yaml

    plain = {k: (str(v) if isinstance(v, Path) else getattr(v, "value", v)) for k, v in settings.items()
             if k not in NOT_SAVED}
    write_text_atomic(path, "# faceparse-edge train settings: `faceparse-edge train --config THIS_FILE` repeats the run\n"
                      + yaml.safe_dump(plain, sort_keys=False))


def architecture(settings: dict) -> tuple[ModelConfig, int]:
    """The model config a settings dict describes (preset, then the architecture options, width,
    input size) and its trainable parameter count, checked against the budget: no data is read,
    no epoch spent."""
    preset, width = settings["preset"], settings["width"]
    if preset not in PRESETS:
        raise FaceparseError(f"unknown preset '{preset}'; choose from {', '.join(PRESETS)}")
    overrides = {field: settings[option] for option, field in MODEL_OPTIONS.items() if settings.get(option) is not None}
    config = replace(PRESETS[preset], **overrides)
    # The face keeps the preset's resolution in a wider view unless an input size is given.
    size = settings["imgsz"] or round(config.input_size * config.context / SIZE_MULTIPLE) * SIZE_MULTIPLE
    config = replace(config, input_size=size)
    if width == "auto":
        config = fit_width(config, settings["budget"])
    elif width is not None:
        try:
            value = float(width)
        except ValueError:
            value = None
        if value is None or not 0 < value < float("inf"):
            raise InvalidValueError(f"--width must be a positive number or 'auto', got '{width}'")
        config = replace(config, width=value)
    model = build_model(config, settings["budget"])  # over the budget: a one-line error
    return config, count_parameters(model)


def with_data_stats(config: ModelConfig, data, split) -> ModelConfig:
    """The config with the training images' channel mean/std (the model's input normalisation)."""
    samples = list_samples(data, split)
    mean, std = channel_mean_std(resize_pair(*load_pair(s), config.input_size)[0] for s in samples)
    return replace(config, mean=tuple(mean), std=tuple(std))


def train_config(settings: dict) -> TrainConfig:
    """The TrainConfig of a settings dict (option name -> value)."""
    augment = {field: settings[option] for option, field in AUGMENT_OPTIONS.items()}
    augment["scale"] = (1 / settings["scale"], settings["scale"])
    return TrainConfig(
        data=str(settings["data"]), out=str(settings["out_dir"]), train_split=settings["train_split"],
        val_split=settings["val_split"], epochs=settings["epochs"] or 0, batch_size=settings["batch"],
        lr=settings["lr"], weight_decay=settings["weight_decay"], optimizer=settings["optimizer"],
        scheduler=settings["scheduler"], warmup_epochs=settings["warmup"], loss=settings["loss"],
        lovasz_pixels=settings["lovasz_pixels"], patience=settings["patience"], seed=settings["seed"],
        device=settings["device"], fix_left_right=settings["fix_left_right"], workers=settings["workers"],
        cache=settings["cache"], balance=settings["balance"], init=settings["init"], ema=settings["ema"],
        extra_blocks_lr=settings.get("extra_blocks_lr") or 1.0,
        distill=settings["distill"], distill_weight=settings["distill_weight"],
        distill_scales=parse_scales(str(settings.get("distill_scales") or "1")),
        augment=augment,
    )


def resolved(settings: dict, config: ModelConfig) -> dict:
    """The settings with the architecture spelled out (the preset's values, the width `auto` found)."""
    return {**settings, **{option: getattr(config, field) for option, field in MODEL_OPTIONS.items()},
            "width": config.width}


def plan_run(settings: dict) -> tuple[TrainConfig, ModelConfig, int]:
    """What complete training settings would train, checked before any image is read: the run's TrainConfig, its
    architecture and trainable parameters. One-line errors for no data, a mistyped --init/--distill, an
    architecture over the budget, or settings that cannot train (check_trainable)."""
    from ..models.registry import resolve_model

    if settings["data"] is None:
        raise FaceparseError("train needs --data (or --config with a data setting, or --resume)")
    for weights in (settings["init"], settings["distill"]):
        if weights is not None:
            resolve_model(weights)
    cfg = train_config(settings)  # malformed values (e.g. --distill-scales) fail here
    config, params = architecture(settings)
    check_trainable(cfg, config.input_size, rank_and_world()[1])
    return cfg, config, params


def train_run(settings: dict, on_epoch=None, stats: ModelConfig | None = None, plan: tuple | None = None) -> dict:
    """Train a model from scratch (or from --init weights): the `train` command as a function.

    `settings`: names as in settings.TRAIN_SETTINGS, the rest at their defaults. Where the caller has them
    already (tune): `stats`, a config holding the training images' mean/std (else they are measured), and
    `plan`, plan_run's result for these settings. Writes `config.yaml` into the run folder (rank 0), then
    trains; returns the run's summary. `on_epoch(epoch, val_miou)` is called after every epoch.
    """
    settings = with_defaults(settings)
    cfg, config, _ = plan or plan_run(settings)
    check_new_run(Path(cfg.out))
    stats = stats or with_data_stats(config, cfg.data, cfg.train_split)
    config = replace(config, mean=stats.mean, std=stats.std)
    if rank_and_world()[0] == 0:  # under torchrun, rank 0 alone writes
        write_settings(Path(cfg.out) / "config.yaml", resolved(settings, config))
    return train(cfg, config, on_epoch=on_epoch, checked=True)


def resume_run(out_dir, epochs: int | None = None) -> dict:
    """Continue the run in `out_dir` from its last checkpoint, with its own settings; `epochs`: a new total."""
    return train(TrainConfig(data="", out=str(out_dir), epochs=epochs or 0), None, resume=True)
