"""A ``lightning.Trainer`` with mliap_torch's callbacks and loggers, from the ``trainer`` config section."""
from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.loggers.csv_logs import _ExperimentWriter as _FabricExperimentWriter
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from .guards import DivergenceGuard

TRAINER_OWN_KEYS = ("early_stopping_patience", "divergence_factor", "checkpoint", "extra")


class _ContinuedMetricsWriter(ExperimentWriter):
    """Lightning's CSV writer, continuing an existing ``metrics.csv``: rows of epochs up to
    ``keep_through_epoch`` stay (Lightning's own writer deletes the file), later rows — left by a run
    killed after its last checkpoint, and about to be recomputed — are dropped."""

    def __init__(self, log_dir: str, keep_through_epoch: int):
        self.keep_through_epoch = keep_through_epoch
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            fieldnames = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("epoch") and float(r["epoch"]) <= self.keep_through_epoch]
        with open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = sorted(fieldnames)


class ContinuedCSVLogger(CSVLogger):
    """A ``CSVLogger`` whose ``metrics.csv`` is continued by a resumed run (see :class:`_ContinuedMetricsWriter`);
    ``keep_through_epoch=-1`` (a new run) starts the file afresh."""

    def __init__(self, *args: Any, keep_through_epoch: int = -1, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.keep_through_epoch = keep_through_epoch

    @property
    def experiment(self) -> _FabricExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuedMetricsWriter(self.log_dir, self.keep_through_epoch)
        return self._experiment


def build_trainer(settings: Any, run_dir: str | Path, has_validation: bool = True,
                  resume_epoch: int | None = None, callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """Trainer writing into ``run_dir``: ``checkpoints/{best,last}.ckpt``, ``logs/metrics.csv``, ``tensorboard/``.

    ``settings`` is a :class:`~mliap_torch.cli.schema.TrainerConfig` (or dict with its keys); all its
    keys except ``early_stopping_patience``, ``checkpoint`` and ``extra`` are Trainer arguments, and
    ``extra`` is merged into them. ``inference_mode`` is off so validation can differentiate for forces.
    Early stopping, the LR schedule and the best checkpoint follow ``val/loss`` (``train/loss``
    without a validation set). ``divergence_factor`` sets the :class:`~mliap_torch.training.guards.DivergenceGuard`.
    ``resume_epoch``: the epoch of the checkpoint a resumed run starts from; ``metrics.csv`` keeps its
    rows up to that epoch and continues. ``callbacks`` are added to the trainer's own (e.g. a benchmark's timer).
    """
    s = dict(settings if isinstance(settings, dict) else asdict(settings))
    run_dir = Path(run_dir)
    monitor = "val/loss" if has_validation else "train/loss"
    kwargs = {k: v for k, v in s.items() if k not in TRAINER_OWN_KEYS and v is not None}
    kwargs.update(s.get("extra") or {})
    all_callbacks: list[L.Callback] = [LearningRateMonitor(logging_interval="epoch"),
                                       DivergenceGuard(s.get("divergence_factor", 1e4)), *callbacks]
    if s.get("checkpoint", True):
        # Two callbacks: Lightning's save_last only refreshes last.ckpt when a top-k checkpoint is saved.
        all_callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor,
                                             mode="min", save_top_k=1, auto_insert_metric_name=False,
                                             enable_version_counter=False))
        all_callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None,
                                             save_top_k=1, enable_version_counter=False))
    if s.get("early_stopping_patience") is not None:
        all_callbacks.append(EarlyStopping(monitor=monitor, mode="min", patience=int(s["early_stopping_patience"])))
    loggers = [ContinuedCSVLogger(run_dir, name="logs", version="",
                                  keep_through_epoch=-1 if resume_epoch is None else resume_epoch),
               TensorBoardLogger(run_dir, name="tensorboard", version="")]
    if not has_validation:
        kwargs["limit_val_batches"] = 0
    return L.Trainer(default_root_dir=run_dir, inference_mode=False, logger=loggers, callbacks=all_callbacks,
                     enable_checkpointing=bool(s.get("checkpoint", True)), **kwargs)
