"""The training loop: cached data, augmentation, losses, schedules, checkpoints and metrics."""

import csv
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..classes import NUM_CLASSES
from ..errors import FaceparseError
from ..fileio import write_text_atomic
from ..progress import console, progress_bar
from .augment import Augmenter
from .checkpoint import FORMAT_TAG, load_checkpoint, save_checkpoint, save_weights
from .data import fix_left_right, list_samples, load_pair, resize_pair
from .evaluate import evaluate_model
from .losses import CombinedLoss
from .model import ModelConfig, build_model, count_parameters
from .plots import plot_curves
from .schedule import WarmupSchedule

OPTIMIZERS = ("adam", "adamw")


@dataclass
class TrainConfig:
    data: str
    out: str
    train_split: str | None = "train"
    val_split: str | None = "val"
    epochs: int = 60
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    warmup_epochs: float = 2.0
    loss: str = "ce:1,lovasz:0.5"
    lovasz_pixels: int = 16384
    patience: int = 0  # early stopping: epochs without a better val mIoU; 0 = off
    seed: int = 0
    fix_left_right: bool = True  # swap the labels of training masks with left/right reversed
    device: str = "auto"


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FaceparseError("--device cuda was asked for but no CUDA GPU is available")
    return device


def load_cached(samples, size: int, description: str, fix: bool):
    """Decode and resize every training pair once (optionally fixing reversed left/right labels)."""
    images = np.empty((len(samples), size, size, 3), np.uint8)
    masks = np.empty((len(samples), size, size), np.uint8)
    with progress_bar() as progress:
        task = progress.add_task(description, total=len(samples), info="")
        for i, sample in enumerate(samples):
            image, mask = load_pair(sample)
            images[i], masks[i] = resize_pair(image, fix_left_right(mask) if fix else mask, size)
            progress.update(task, advance=1)
    return images, masks


def batches(images, masks, batch_size, rng, augment, mean, std):
    """Shuffled, augmented, normalised batches; the last partial batch is dropped (BatchNorm)."""
    order = rng.permutation(len(images))
    mean = torch.tensor(mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(std).view(1, 3, 1, 1) * 255
    for start in range(0, len(order) - batch_size + 1, batch_size):
        pairs = [augment(images[i], masks[i], rng) for i in order[start : start + batch_size]]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).float()
        y = torch.from_numpy(np.stack([p[1] for p in pairs])).long()
        yield (x - mean) / std, y


def train_step(model, loss_fn, optimizer, scaler, x, y) -> float:
    """One optimisation step (mixed precision when the scaler is enabled, i.e. on CUDA)."""
    with torch.autocast("cuda", dtype=torch.float16, enabled=scaler.is_enabled()):
        loss = loss_fn(model(x), y)
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


def train(cfg: TrainConfig, model_config: ModelConfig | None, resume: bool = False) -> dict:
    """Train (or resume) a model; returns the run summary. `model_config` None means resume."""
    out = Path(cfg.out)
    last_path = out / "last.pt"
    state = None
    if resume:
        state = load_checkpoint(last_path)
        saved = state["train_config"]
        cfg = TrainConfig(**{**saved, "epochs": max(saved["epochs"], cfg.epochs) if cfg.epochs else saved["epochs"]})
        model_config = ModelConfig.from_dict(state["config"])
        console.print(f"resuming {last_path} after epoch {state['epoch']} of {cfg.epochs}")
    elif last_path.exists():
        raise FaceparseError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    train_samples = list_samples(cfg.data, cfg.train_split)
    val_samples = list_samples(cfg.data, cfg.val_split)
    images, masks = load_cached(train_samples, model_config.input_size, "load train", cfg.fix_left_right)
    counts = np.bincount(masks.ravel(), minlength=NUM_CLASSES)

    model = build_model(model_config).to(device)
    loss_fn = CombinedLoss(cfg.loss, counts, cfg.lovasz_pixels).to(device)
    if cfg.optimizer not in OPTIMIZERS:
        raise FaceparseError(f"unknown optimizer '{cfg.optimizer}'; choose from {', '.join(OPTIMIZERS)}")
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(images) // cfg.batch_size
    if steps_per_epoch == 0:
        raise FaceparseError(f"batch size {cfg.batch_size} is larger than the {len(images)} training images")
    schedule = WarmupSchedule(optimizer, cfg.scheduler, cfg.epochs * steps_per_epoch,
                              int(cfg.warmup_epochs * steps_per_epoch))
    use_amp = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history, best_miou, start_epoch, bad_epochs = [], -1.0, 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        history, best_miou, start_epoch = state["history"], state["best_miou"], state["epoch"]
        bad_epochs = state["bad_epochs"]
        torch.set_rng_state(state["rng"]["torch"])
        rng.bit_generator.state = state["rng"]["numpy"]
    augment = Augmenter()
    console.print(
        f"training {count_parameters(model):,} parameters on {device}: {len(images)} train / "
        f"{len(val_samples)} val images at {model_config.input_size}px, {cfg.epochs} epochs"
    )

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0, total_loss, seen = time.perf_counter(), 0.0, 0
        with progress_bar(transient=True) as progress:
            task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch, info="")
            for x, y in batches(images, masks, cfg.batch_size, rng, augment, model_config.mean, model_config.std):
                loss = train_step(model, loss_fn, optimizer, scaler, x.to(device), y.to(device))
                if not np.isfinite(loss):
                    raise FaceparseError(f"training diverged at epoch {epoch + 1} (loss {loss}); lower --lr")
                schedule.step_batch()
                total_loss += loss * len(x)
                seen += len(x)
                progress.update(task, advance=1, info=f"loss {total_loss / seen:.3f}  {seen / (time.perf_counter() - t0):.1f} img/s")
        train_time = time.perf_counter() - t0
        val, _ = evaluate_model(model, None, None, tta=False, device=device, samples=val_samples, show_progress=False)
        schedule.step_epoch(val["miou"])
        improved = val["miou"] > best_miou
        best_miou = max(best_miou, val["miou"])
        bad_epochs = 0 if improved else bad_epochs + 1
        history.append({
            "epoch": epoch + 1, "train_loss": round(total_loss / seen, 5), "val_miou": round(val["miou"], 3),
            "val_f_measure": round(val["f_measure"], 3), "val_pixel_acc": round(val["pixel_acc"], 3),
            "lr": optimizer.param_groups[0]["lr"], "images_per_s": round(seen / train_time, 2),
            "epoch_s": round(time.perf_counter() - t0, 1),
        })
        checkpoint = {
            "format": FORMAT_TAG, "config": model_config.to_dict(), "train_config": asdict(cfg),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict(), "epoch": epoch + 1, "best_miou": best_miou, "bad_epochs": bad_epochs,
            "history": history,
            "rng": {"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state},
        }
        if improved:
            save_weights(out / "best.safetensors", model)
        save_checkpoint(last_path, checkpoint)
        _write_history(out, history)
        h = history[-1]
        console.print(
            f"epoch {epoch + 1}/{cfg.epochs}  loss {h['train_loss']:.4f}  val mIoU {h['val_miou']:.2f}"
            f" (best {best_miou:.2f})  F {h['val_f_measure']:.2f}  {h['images_per_s']:.1f} img/s  {h['epoch_s']:.0f}s"
        )
        if cfg.patience and bad_epochs >= cfg.patience:
            console.print(f"early stop: no better val mIoU for {cfg.patience} epochs")
            break
    plot_curves(history, out / "curves.png")
    summary = {"best_miou": best_miou, "epochs": len(history), "out": str(out),
               "train_s": round(sum(h["epoch_s"] for h in history), 1)}
    console.print(f"done: best val mIoU {best_miou:.2f}; weights {out / 'best.safetensors'}, curves {out / 'curves.png'}")
    return summary
