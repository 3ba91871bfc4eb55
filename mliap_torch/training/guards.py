"""Stopping a training run whose loss is not finite or explodes, before anything is saved or exported."""
from __future__ import annotations

import math
from typing import Any, cast

import lightning as L
import torch

from ..errors import TrainingDivergedError

ADVICE = ("Nothing was saved or exported. Lower the learning rate (model.optimizer.lr={lr}), clip gradients "
          "(trainer.gradient_clip_val=1.0), or check the data for outliers.")


def check_step_loss(loss: torch.Tensor, epoch: int, batch_idx: int, lr: float) -> None:
    """TrainingDivergedError when a training batch's loss is NaN or infinite."""
    if not bool(torch.isfinite(loss.detach())):
        raise TrainingDivergedError(f"Training diverged in epoch {epoch}, batch {batch_idx}: the loss is "
                                    f"{float(loss.detach())}. " + ADVICE.format(lr=lr))


class DivergenceGuard(L.Callback):
    """Raise :class:`TrainingDivergedError` when the training loss explodes or is not finite.

    Two tests, both with ``factor``: a batch's loss above ``factor`` times the reference — the larger
    of the run's first batch loss and the smallest epoch mean so far — (a learning rate far too large
    blows the loss up within the first epoch), and an epoch's mean loss above ``factor`` times the
    smallest epoch mean so far. A batch can exceed its epoch's mean by at most the number of batches,
    so healthy training stays far below the default factor 10⁴. The references are part of the
    checkpoint, so a resumed run judges as the uninterrupted one would.

    Args:
        factor: allowed growth (``None``: only non-finite losses stop the run).
        monitor: the logged epoch metric (``train/loss``).
    """

    def __init__(self, factor: float | None = 1e4, monitor: str = "train/loss"):
        self.factor = factor
        self.monitor = monitor
        self.best = math.inf
        self.first_batch = math.nan

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or self.factor is None:
            return
        value = float(loss.detach())
        if math.isnan(self.first_batch):
            self.first_batch = value
            return
        reference = max(self.first_batch, self.best if math.isfinite(self.best) else 0.0)
        if value > self.factor * reference:
            raise TrainingDivergedError(
                f"Training diverged in epoch {trainer.current_epoch}, batch {batch_idx}: the loss {value:.3g} is "
                f"{value / reference:.3g} times the reference {reference:.3g} (the first batch's loss or the best "
                f"epoch mean; trainer.divergence_factor={self.factor:g}). "
                + ADVICE.format(lr=cast(Any, pl_module).optimizer_settings["lr"]))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        loss = float(value)
        lr = cast(Any, pl_module).optimizer_settings["lr"]  # a PotentialModule
        epoch = trainer.current_epoch
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"Training diverged in epoch {epoch}: the mean training loss is {loss}. "
                                        + ADVICE.format(lr=lr))
        if self.factor is not None and math.isfinite(self.best) and loss > self.factor * self.best:
            raise TrainingDivergedError(
                f"Training diverged in epoch {epoch}: the mean training loss {loss:.3g} is {loss / self.best:.3g} "
                f"times its best value so far ({self.best:.3g}; trainer.divergence_factor={self.factor:g}). "
                + ADVICE.format(lr=lr))
        self.best = min(self.best, loss)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "first_batch": self.first_batch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = float(state_dict["best"])
        self.first_batch = float(state_dict["first_batch"])
