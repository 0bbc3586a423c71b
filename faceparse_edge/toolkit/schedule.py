"""Learning-rate schedules with linear warm-up: cosine, linear or reduce-on-plateau."""

import math

from ..errors import FaceparseError

SCHEDULERS = ("cosine", "linear", "plateau")


class WarmupSchedule:
    """Sets the optimiser's lr every batch; `plateau` also halves it when val mIoU stalls.

    Its whole state is a few numbers, so a resumed run continues exactly.
    """

    def __init__(self, optimizer, kind: str, total_steps: int, warmup_steps: int,
                 plateau_patience: int = 3, plateau_factor: float = 0.5, min_ratio: float = 0.01):
        if kind not in SCHEDULERS:
            raise FaceparseError(f"unknown scheduler '{kind}'; choose from {', '.join(SCHEDULERS)}")
        self.optimizer, self.kind = optimizer, kind
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.total_steps, self.warmup_steps = max(1, total_steps), warmup_steps
        self.plateau_patience, self.plateau_factor, self.min_ratio = plateau_patience, plateau_factor, min_ratio
        self.steps, self.plateau_scale, self.best, self.bad_epochs = 0, 1.0, -math.inf, 0
        self._apply()

    def factor(self) -> float:
        warm = min(1.0, (self.steps + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        progress = min(1.0, max(0, self.steps - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.kind == "cosine":
            decay = self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        elif self.kind == "linear":
            decay = 1.0 - (1 - self.min_ratio) * progress
        else:
            decay = self.plateau_scale
        return warm * decay

    def _apply(self):
        f = self.factor()
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step_batch(self):
        self.steps += 1
        self._apply()

    def step_epoch(self, metric: float):
        if self.kind != "plateau" or self.steps < self.warmup_steps:
            return
        if metric > self.best + 1e-4:
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.plateau_patience:
                self.plateau_scale *= self.plateau_factor
                self.bad_epochs = 0
        self._apply()

    def state_dict(self) -> dict:
        return {"steps": self.steps, "plateau_scale": self.plateau_scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict):
        self.steps, self.plateau_scale = state["steps"], state["plateau_scale"]
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
        self._apply()
