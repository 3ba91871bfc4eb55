"""The one LightningModule: a :class:`Potential` trained on energies, forces and stresses."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler

from ..data.batch import AtomsBatch
from ..faults import kill_point
from ..fitting.metrics import ALL, MetricAccumulator
from ..models.io import potential_from_settings
from ..models.potential import Potential
from .guards import check_step_loss


def loss_terms(pred: dict[str, torch.Tensor], batch: AtomsBatch, use_config_weights: bool = True
               ) -> dict[str, torch.Tensor]:
    """Weighted mean squared errors of one batch (each a scalar tensor).

    ``energy``: (ΔE/N)² in (eV/atom)²; ``forces``: |ΔF|²/3 in (eV/Å)²; ``stress``: |Δσ|²/6 in
    (eV/Å³)². Each is averaged over the labelled configurations (atoms for forces) of the batch;
    with ``use_config_weights`` every term is multiplied by its configuration's weight first.
    """
    zero = pred["energy"].new_zeros(())
    out = {}
    n = batch.num_atoms.to(pred["energy"].dtype)
    ew = batch.energy_weight if use_config_weights else torch.ones_like(batch.energy_weight)
    mask = batch.energy_mask
    err = ((pred["energy"] - batch.energy) / n) ** 2 * ew
    out["energy"] = err[mask].sum() / mask.sum().clamp_min(1) if mask.any() else zero
    if "forces" in pred:
        fw = batch.force_weight if use_config_weights else torch.ones_like(batch.force_weight)
        fmask = batch.forces_mask
        err = ((pred["forces"] - batch.forces) ** 2).mean(-1) * fw[batch.atom_config]
        out["forces"] = err[fmask].sum() / fmask.sum().clamp_min(1) if fmask.any() else zero
    if "stress" in pred:
        sw = batch.stress_weight if use_config_weights else torch.ones_like(batch.stress_weight)
        smask = batch.stress_mask
        err = ((pred["stress"] - batch.stress) ** 2).mean(-1) * sw
        out["stress"] = err[smask].sum() / smask.sum().clamp_min(1) if smask.any() else zero
    return out


class PotentialModule(L.LightningModule):
    """Trains a :class:`Potential` with a weighted energy/force/stress loss.

    The potential is rebuilt from ``potential_settings`` (see :meth:`Potential.settings`), so a
    checkpoint loads with ``PotentialModule.load_from_checkpoint(path)`` alone.

    Args:
        potential_settings: the potential's settings.
        group_names: group names, indexed by ``AtomsBatch.group`` (per-group validation metrics).
        loss_weights: ``{"energy", "forces", "stress"}`` global weights of the loss terms.
        optimizer: ``{"name": adam|adamw|sgd, "lr", "weight_decay"}``.
        scheduler: ``{"name": plateau|cosine|none, "factor", "patience", "min_lr"}``.
        use_config_weights: multiply each term by the configuration's (group) weight.
        dtype: ``"float64"`` or ``"float32"``.
    """

    def __init__(self, potential_settings: dict[str, Any], group_names: Sequence[str] = ("default",),
                 loss_weights: dict[str, float] | None = None, optimizer: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None, use_config_weights: bool = True,
                 dtype: str = "float64"):
        super().__init__()
        self.save_hyperparameters()
        self.potential: Potential = potential_from_settings(potential_settings).to(getattr(torch, dtype))
        self.group_names = list(group_names)
        self.loss_weights = {"energy": 1.0, "forces": 1.0, "stress": 0.0, **(loss_weights or {})}
        self.optimizer_settings = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, **(optimizer or {})}
        self.scheduler_settings = {"name": "plateau", "factor": 0.5, "patience": 10, "min_lr": 0.0,
                                   **(scheduler or {})}
        self.use_config_weights = use_config_weights
        self._metrics: MetricAccumulator | None = None

    def forward(self, batch: AtomsBatch, create_graph: bool = False) -> dict[str, torch.Tensor]:
        return self.potential(batch, forces=self.loss_weights["forces"] > 0 or not self.training,
                              stress=self.loss_weights["stress"] > 0 or not self.training, create_graph=create_graph)

    def _weighted_loss(self, pred: dict[str, torch.Tensor], batch: AtomsBatch
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of one batch (the weighted sum of :func:`loss_terms`) and its terms."""
        terms = loss_terms(pred, batch, self.use_config_weights)
        loss = cast(torch.Tensor, sum(self.loss_weights[k] * v for k, v in terms.items() if self.loss_weights[k] > 0))
        return loss, terms

    def _eval_predictions(self, batch: AtomsBatch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(all predictions, those the validation loss scores) of one batch."""
        pred = self.potential(batch, forces=True, stress=True)
        return pred, {k: pred[k] for k in pred if k == "energy" or self.loss_weights.get(k, 0) > 0}

    def mean_loss(self, batches: Iterable[AtomsBatch]) -> float:
        """The loss Lightning logs as ``val/loss`` for these batches (their losses averaged with the number of
        configurations as weight), of the current parameters, outside a Trainer (e.g. before training)."""
        total, configs = 0.0, 0
        for batch in batches:
            loss, _ = self._weighted_loss(self._eval_predictions(batch)[1], batch)
            total += float(loss.detach()) * batch.num_configs
            configs += batch.num_configs
        return total / max(configs, 1)

    def _loss(self, pred: dict[str, torch.Tensor], batch: AtomsBatch, stage: str) -> torch.Tensor:
        loss, terms = self._weighted_loss(pred, batch)
        n = batch.num_configs
        for k, v in terms.items():
            self.log(f"{stage}/loss_{k}", v.detach(), batch_size=n, on_step=False, on_epoch=True, sync_dist=True)
        self.log(f"{stage}/loss", loss.detach(), batch_size=n, prog_bar=True, on_step=False, on_epoch=True,
                 sync_dist=True)
        return loss

    def training_step(self, batch: AtomsBatch, batch_idx: int) -> torch.Tensor:
        kill_point("train.batch")
        pred = self(batch, create_graph=True)
        loss = self._loss(pred, batch, "train")
        check_step_loss(loss, self.current_epoch, batch_idx, self.optimizer_settings["lr"])
        return loss

    def validation_step(self, batch: AtomsBatch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: AtomsBatch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_step(self, batch: AtomsBatch, stage: str) -> None:
        pred, scored = self._eval_predictions(batch)
        self._loss(scored, batch, stage)
        if self._metrics is None:
            self._metrics = MetricAccumulator(self.group_names)
        self._metrics.add_predictions(pred["energy"], batch.energy, batch.num_atoms, batch.group,
                                      energy_mask=batch.energy_mask, forces_pred=pred["forces"],
                                      forces_ref=batch.forces, atom_config=batch.atom_config,
                                      forces_mask=batch.forces_mask, stress_pred=pred["stress"],
                                      stress_ref=batch.stress, stress_mask=batch.stress_mask)

    def _log_metrics(self, stage: str) -> None:
        """Unweighted MAE/RMSE of all groups (and MAE per group) from the epoch's predictions."""
        metrics, self._metrics = self._metrics, None
        if metrics is None:
            return
        if self.trainer.world_size > 1:
            metrics.all_reduce()
        short = {"Energy": "e", "Force": "f", "Stress": "s"}
        several = len(self.group_names) > 1
        for row in metrics.table().rows:
            if row["weighting"] != "Unweighted":
                continue
            q = short[row["quantity"]]
            if row["group"] == ALL:
                self.log(f"{stage}/{q}_mae", row["mae"], prog_bar=q != "s", sync_dist=True)
                self.log(f"{stage}/{q}_rmse", row["rmse"], sync_dist=True)
            elif several:
                self.log(f"{stage}_groups/{row['group']}_{q}_mae", row["mae"], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def configure_optimizers(self) -> OptimizerLRScheduler:
        o = self.optimizer_settings
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[o["name"]]
        optimizer = cls(self.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
        s = self.scheduler_settings
        if s["name"] == "none":
            return {"optimizer": optimizer}
        if s["name"] == "cosine":
            epochs = max(int(self.trainer.max_epochs or 1), 1)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=s["min_lr"])
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=s["factor"], patience=s["patience"],
                                                             min_lr=s["min_lr"])
        # a run without a validation set (build_trainer: limit_val_batches=0) follows the training loss
        monitor = "train/loss" if self.trainer.limit_val_batches == 0 else "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": monitor,
                                                         "interval": "epoch"}}
