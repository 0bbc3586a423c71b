"""The training loop: streamed or cached data, augmentation, losses, schedules, checkpoints and
metrics; one process, or several under torchrun (DDP), where rank 0 alone evaluates and writes."""

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..classes import IGNORE, NUM_CLASSES
from ..errors import FaceparseError, InvalidValueError
from ..fileio import write_text_atomic
from ..progress import console, progress_bar
from .augment import AugmentConfig, Augmenter
from .checkpoint import FORMAT_TAG, load_checkpoint, load_model, save_checkpoint, save_weights
from .loader import CACHE_CHOICES, FaceParsingDataset, make_loader, repeat_factors
from .samples import list_samples
from .distill import TTATeacher, soft_cross_entropy
from .distributed import from_rank0, process_group, rank_and_world
from .torch_backend import evaluate_torch
from .losses import CombinedLoss
from .model import FaceParser, build_model, count_parameters
from .model_config import ModelConfig, same_layers
from .plots import plot_curves
from .schedule import WarmupSchedule
from .settings import DEFAULTS as D, SIZE_MULTIPLE

OPTIMIZERS = ("adam", "adamw")


class Diverged(FaceparseError):
    """The loss became NaN or infinite (the learning rate is too high for the setting)."""


@dataclass
class TrainConfig:
    """One run's training settings; defaults and meanings: settings.TRAIN_SETTINGS (the names differ where noted)."""

    data: str
    out: str  # out_dir
    train_split: str | None = D["train_split"]
    val_split: str | None = D["val_split"]
    epochs: int = D["epochs"]
    batch_size: int = D["batch"]  # in all, over every process of a distributed run
    lr: float = D["lr"]
    weight_decay: float = D["weight_decay"]
    optimizer: str = D["optimizer"]
    scheduler: str = D["scheduler"]
    warmup_epochs: float = D["warmup"]
    loss: str = D["loss"]
    lovasz_pixels: int = D["lovasz_pixels"]
    patience: int = D["patience"]
    seed: int = D["seed"]
    fix_left_right: bool = D["fix_left_right"]
    device: str = D["device"]
    workers: int | None = D["workers"]
    cache: str = D["cache"]
    balance: float = D["balance"]
    init: str | None = D["init"]
    distill: str | None = D["distill"]
    distill_weight: float = D["distill_weight"]
    distill_scales: tuple[float, ...] = (1.0,)  # parsed from the comma-separated setting (distill.parse_scales)
    extra_blocks_lr: float = D["extra_blocks_lr"]
    ema: float = D["ema"]
    augment: dict = field(default_factory=lambda: asdict(AugmentConfig()))


def resolve_device(device: str) -> str:
    """The torch device a run uses: auto, cpu, cuda or cuda:N (a one-line error for any other, or a missing GPU)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise InvalidValueError(f"unknown device '{device}'; choose from auto, cpu, cuda (or cuda:N)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise FaceparseError(f"--device {device} was asked for but no CUDA GPU is available")
    return device


def train_step(model, loss_fn, optimizer, scaler, x, y, teacher=None, distill_weight: float = 0.0) -> float:
    """One optimisation step (mixed precision when the scaler is enabled, i.e. on CUDA); with a
    teacher, plus the cross-entropy to its soft targets."""
    with torch.autocast("cuda", dtype=torch.float16, enabled=scaler.is_enabled()):
        logits = model(x)
        loss = loss_fn(logits, y)
        if teacher is not None:
            loss = loss + distill_weight * soft_cross_entropy(logits, teacher(x), y != IGNORE)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def _write_history(out: Path, history: list[dict]) -> None:
    write_text_atomic(out / "metrics.json", json.dumps(history, indent=1))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(out / "metrics.csv", buf.getvalue())


def _averaged(model, decay: float):
    """An exponential moving average of the model's weights and BN statistics: it smooths the
    last epochs' noise at no training cost (torch.optim.swa_utils)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    if not 0 < decay < 1:
        raise FaceparseError(f"--ema must be a decay between 0 and 1 (e.g. 0.995), got {decay}")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def load_init(model, init: str) -> None:
    """Start from trained weights of the same architecture (any input size): fine-tuning, or
    training at a larger size after a cheaper one. Weights with fewer extra blocks or a
    narrower decoder also load, and the grown model starts as the trained one: new blocks
    start as the identity, and every layer ignores the decoder's new channels (zero weights
    from them) until training gives them a use."""
    source = load_model(init)
    s, m = source.config, model.config
    grown = replace(s, extra_blocks=m.extra_blocks, decoder_channels=m.decoder_channels)
    if (not same_layers(grown, m) or s.extra_blocks > m.extra_blocks
            or s.decoder_channels != m.decoder_channels and not 0 < s.decoder_channels < m.decoder_channels):
        raise FaceparseError(f"--init {init} is another architecture than this run's; its layers, width and "
                             "channels must match (extra blocks and decoder channels may only grow)")
    state = model.state_dict()
    with torch.no_grad():
        for name, weight in source.state_dict().items():
            target = state[name]
            if target.dim() > 1 and target.shape[1] > weight.shape[1]:
                target[:, weight.shape[1]:] = 0
            target[tuple(slice(0, n) for n in weight.shape)] = weight
    model.load_state_dict(state)


def param_groups(model: FaceParser, lr: float, extra_blocks_lr: float) -> list[dict]:
    """The optimiser's parameter groups: the encoder's extra blocks at `extra_blocks_lr` x `lr`.

    Grown from trained weights, those blocks start as the identity (a zero BN scale); at a
    fine-tuning rate they barely leave it in a few epochs, so they may take larger steps.
    """
    layers = model.encoder.layers
    extra = [p for block in layers[len(layers) - model.config.extra_blocks:] for p in block.parameters()]
    extra_ids = {id(p) for p in extra}
    groups = [{"params": [p for p in model.parameters() if id(p) not in extra_ids], "lr": lr}]
    if extra:
        groups.append({"params": extra, "lr": lr * extra_blocks_lr})
    return groups


MIN_IMAGES_PER_STEP = 2  # per process: BatchNorm after the ASPP's image pooling sees one value per channel and image


def check_trainable(cfg: TrainConfig, input_size: int, world: int = 1) -> None:
    """Refuse settings that cannot train, with one line naming the option and what would work.

    Runs before any image is read or any process group started (only the split files are
    listed), so under torchrun every rank fails alike and at once. The last partial batch of an
    epoch is always dropped (see make_loader), so no step ever sees a single image.
    """
    resolve_device(cfg.device)  # an unknown device, or CUDA without a GPU
    over = f" over {world} processes" if world > 1 else ""
    if cfg.batch_size % world:
        raise FaceparseError(f"--batch {cfg.batch_size} does not split over {world} processes; use a multiple of {world}")
    per_process = cfg.batch_size // world
    if per_process < MIN_IMAGES_PER_STEP:
        raise FaceparseError(f"--batch {cfg.batch_size}{over} gives {per_process} image per process and step, and "
                             f"BatchNorm needs {MIN_IMAGES_PER_STEP}: use --batch {MIN_IMAGES_PER_STEP * world} or more")
    if input_size % SIZE_MULTIPLE:
        raise FaceparseError(f"--imgsz {input_size} is not a multiple of {SIZE_MULTIPLE} (the encoder's strides): "
                             f"use {max(SIZE_MULTIPLE, input_size // SIZE_MULTIPLE * SIZE_MULTIPLE)} or "
                             f"{-(-input_size // SIZE_MULTIPLE) * SIZE_MULTIPLE}")
    images = len(list_samples(cfg.data, cfg.train_split))
    list_samples(cfg.data, cfg.val_split)  # a missing or empty val split: its own one-line error
    share = images // world  # each process's images in an epoch
    if share < per_process:
        fits = share * world if share >= MIN_IMAGES_PER_STEP else 0
        raise FaceparseError(f"the train split '{cfg.train_split}' has {images} images, fewer than one batch of "
                             f"--batch {cfg.batch_size}{over}: "
                             + (f"use --batch {fits} or less" if fits else
                                f"it needs at least {MIN_IMAGES_PER_STEP * world} images"))
    if cfg.workers and cfg.workers > share:
        raise FaceparseError(f"--workers {cfg.workers} is more than the {share} training images each process "
                             f"reads{over}: use --workers {share} or fewer")


def check_new_run(out: Path) -> None:
    """Refuse to start a run in a folder that holds one (its checkpoints and settings stay as they are)."""
    if (out / "last.pt").exists():
        raise FaceparseError(f"{out} already holds a run; pass --resume to continue it or choose another --out")


def train(cfg: TrainConfig, model_config: ModelConfig | None, resume: bool = False,
          on_epoch: Callable[[int, float], None] | None = None, checked: bool = False) -> dict:
    """Train (or resume) a model; returns the run summary. `model_config` None means resume; with `cfg.epochs`
    (0: the saved count) the run's new total.

    `on_epoch(epoch, val_miou)` is called after each epoch (a tuner's pruner raises from it). `checked`: the
    settings passed check_trainable already (run_config.plan_run), which then runs once per run.
    """
    out = Path(cfg.out)
    last_path = out / "last.pt"
    state = None
    if resume:
        state = load_checkpoint(last_path)
        saved = state["train_config"]
        if cfg.epochs and cfg.epochs < state["epoch"]:
            raise FaceparseError(f"{out} has trained {state['epoch']} epochs already: --epochs, its new total, "
                                 f"must be {state['epoch']} or more")
        cfg = TrainConfig(**{**saved, "out": str(out), "epochs": cfg.epochs or saved["epochs"]})  # (it may have moved)
        model_config = ModelConfig.from_dict(state["config"])
    else:
        check_new_run(out)
    if cfg.cache not in CACHE_CHOICES:
        raise FaceparseError(f"unknown cache '{cfg.cache}'; choose from {', '.join(CACHE_CHOICES)}")
    if cfg.extra_blocks_lr != 1.0 and not model_config.extra_blocks:
        raise FaceparseError("--extra-blocks-lr sets the learning rate of the --extra-blocks, and this model has none")
    if not checked:
        check_trainable(cfg, model_config.input_size, rank_and_world()[1])
    device = resolve_device(cfg.device)
    with process_group(device):
        return _train(cfg, model_config, state, device, on_epoch)


def _train(cfg: TrainConfig, model_config: ModelConfig, state: dict | None, device: str, on_epoch) -> dict:
    from torch.nn.parallel import DistributedDataParallel

    rank, world, local_rank = rank_and_world()
    main = rank == 0
    if device == "cuda" and world > 1:
        device = f"cuda:{local_rank}"
    out = Path(cfg.out)
    say = console.print if main else (lambda *a, **k: None)
    if state is not None:
        say(f"resuming {out / 'last.pt'} after epoch {state['epoch']} of {cfg.epochs}")
    torch.manual_seed(cfg.seed)

    train_samples = list_samples(cfg.data, cfg.train_split)
    val_samples = list_samples(cfg.data, cfg.val_split)
    dataset = FaceParsingDataset(train_samples, model_config.input_size, model_config.mean, model_config.std,
                                 Augmenter(AugmentConfig(**cfg.augment), model_config.context), cfg.seed,
                                 cfg.fix_left_right, cfg.cache)
    # On CPU, workers take cores from training (benchmarks/results/avx2/scaling.md); a GPU leaves them free.
    workers = cfg.workers if cfg.workers is not None else min(4, os.cpu_count() or 1) if device.startswith("cuda") else 0
    weights = repeat_factors(dataset.classes_present(NUM_CLASSES), cfg.balance) if cfg.balance else None
    loader, sampler = make_loader(dataset, cfg.batch_size // world, workers, cfg.seed, rank, world, weights)
    steps_per_epoch = len(loader)  # at least 1: check_trainable

    model = build_model(model_config)
    if cfg.init and state is None:
        load_init(model, cfg.init)
    model = model.to(device)
    loss_fn = CombinedLoss(cfg.loss, dataset.class_pixel_counts(NUM_CLASSES) if "wce" in cfg.loss else None,
                           cfg.lovasz_pixels).to(device)
    if cfg.optimizer not in OPTIMIZERS:
        raise FaceparseError(f"unknown optimizer '{cfg.optimizer}'; choose from {', '.join(OPTIMIZERS)}")
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(param_groups(model, cfg.lr, cfg.extra_blocks_lr), weight_decay=cfg.weight_decay)
    schedule = WarmupSchedule(optimizer, cfg.scheduler, cfg.epochs * steps_per_epoch,
                              int(cfg.warmup_epochs * steps_per_epoch))
    scaler = torch.amp.GradScaler("cuda", enabled=device.startswith("cuda"))
    ema = _averaged(model, cfg.ema) if cfg.ema else None
    teacher = (TTATeacher(load_model(cfg.distill), model_config.mean, model_config.std, cfg.distill_scales).to(device)
               if cfg.distill else None)
    history, best_miou, start_epoch, bad_epochs = [], -1.0, 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        history, best_miou, start_epoch = state["history"], state["best_miou"], state["epoch"]
        bad_epochs = state["bad_epochs"]
        torch.set_rng_state(state["rng"]["torch"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
    trained = DistributedDataParallel(model, device_ids=[local_rank] if device.startswith("cuda") else None) \
        if world > 1 else model
    say(f"training {count_parameters(model):,} parameters on {device}" + (f" x {world} processes" if world > 1 else "")
        + f": {len(dataset)} train / {len(val_samples)} val images at {model_config.input_size}px, {cfg.epochs} epochs, "
        + (f"distilling {cfg.distill}'s flip-TTA parse at scales {', '.join(map(str, cfg.distill_scales))}, "
           if teacher is not None else "")
        + f"{workers} data workers, " + ("cached in memory" if dataset.cached else "streamed from disk"))

    for epoch in range(start_epoch, cfg.epochs):
        trained.train()
        sampler.set_epoch(epoch)
        t0, total_loss, seen = time.perf_counter(), 0.0, 0
        with progress_bar(transient=True, disable=not main) as progress:
            task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch, info="")
            for x, y in loader:
                loss = train_step(trained, loss_fn, optimizer, scaler, x.to(device), y.to(device), teacher,
                                  cfg.distill_weight)
                if not np.isfinite(loss):
                    raise Diverged(f"training diverged at epoch {epoch + 1} (loss {loss}); lower --lr")
                schedule.step_batch()
                if ema is not None:
                    ema.update_parameters(model)
                total_loss += loss * len(x)
                seen += len(x) * world
                progress.update(task, advance=1, info=f"loss {total_loss * world / seen:.3f}  "
                                f"{seen / (time.perf_counter() - t0):.1f} img/s")
        train_time = time.perf_counter() - t0
        scored = ema.module if ema is not None else model
        val = raw_miou = None
        if main:
            val, _ = evaluate_torch(scored, None, None, tta=False, device=device, samples=val_samples, show_progress=False)
            if ema is not None:  # what the average adds, measured every epoch
                raw_miou = evaluate_torch(model, None, None, tta=False, device=device, samples=val_samples,
                                          show_progress=False)[0]["miou"]
        val, raw_miou = from_rank0(val), from_rank0(raw_miou)
        schedule.step_epoch(val["miou"])
        improved = val["miou"] > best_miou
        best_miou = max(best_miou, val["miou"])
        bad_epochs = 0 if improved else bad_epochs + 1
        history.append({
            "epoch": epoch + 1, "train_loss": round(total_loss * world / seen, 5), "val_miou": round(val["miou"], 3),
            **({"val_miou_raw": round(raw_miou, 3)} if ema is not None else {}),
            "val_f_measure": round(val["f_measure"], 3), "val_pixel_acc": round(val["pixel_acc"], 3),
            "lr": optimizer.param_groups[0]["lr"], "images_per_s": round(seen / train_time, 2),
            "epoch_s": round(time.perf_counter() - t0, 1),
        })
        if main:
            checkpoint = {
                "format": FORMAT_TAG, "config": model_config.to_dict(), "train_config": asdict(cfg),
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict(), "epoch": epoch + 1, "best_miou": best_miou, "bad_epochs": bad_epochs,
                "history": history, "rng": {"torch": torch.get_rng_state()},
                "ema": ema.state_dict() if ema is not None else None,
            }
            if improved:
                save_weights(out / "best.safetensors", scored)
            save_checkpoint(out / "last.pt", checkpoint)
            _write_history(out, history)
            plot_curves(history, out / "curves.png")  # each epoch: a stopped run keeps its plot
        h = history[-1]
        raw = f" (EMA; raw {h['val_miou_raw']:.2f})" if ema is not None else ""
        say(f"epoch {epoch + 1}/{cfg.epochs}  loss {h['train_loss']:.4f}  val mIoU {h['val_miou']:.2f}{raw}"
            f" (best {best_miou:.2f})  F {h['val_f_measure']:.2f}  {h['images_per_s']:.1f} img/s  {h['epoch_s']:.0f}s")
        if on_epoch is not None:
            on_epoch(epoch + 1, val["miou"])
        if cfg.patience and bad_epochs >= cfg.patience:
            say(f"early stop: no better val mIoU for {cfg.patience} epochs")
            break
    summary = {"best_miou": best_miou, "epochs": len(history), "out": str(out),
               "train_s": round(sum(h["epoch_s"] for h in history), 1)}
    say(f"done: best val mIoU {best_miou:.2f}; weights {out / 'best.safetensors'}, curves {out / 'curves.png'}")
    return summary
