"""A ``lightning.Trainer`` with mliap_torch's callbacks and loggers, from the ``trainer`` config section."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

TRAINER_OWN_KEYS = ("early_stopping_patience", "checkpoint", "extra")


def build_trainer(settings: Any, run_dir: str | Path, has_validation: bool = True) -> L.Trainer:
    """Trainer writing into ``run_dir``: ``checkpoints/{best,last}.ckpt``, ``logs/metrics.csv``, ``tensorboard/``.

    ``settings`` is a :class:`~mliap_torch.cli.schema.TrainerConfig` (or dict with its keys); all its
    keys except ``early_stopping_patience``, ``checkpoint`` and ``extra`` are Trainer arguments, and
    ``extra`` is merged into them. ``inference_mode`` is off so validation can differentiate for forces.
    Early stopping, the LR schedule and the best checkpoint follow ``val/loss`` (``train/loss``
    without a validation set).
    """
    s = dict(settings if isinstance(settings, dict) else asdict(settings))
    run_dir = Path(run_dir)
    monitor = "val/loss" if has_validation else "train/loss"
    kwargs = {k: v for k, v in s.items() if k not in TRAINER_OWN_KEYS and v is not None}
    kwargs.update(s.get("extra") or {})
    callbacks: list[L.Callback] = [LearningRateMonitor(logging_interval="epoch")]
    if s.get("checkpoint", True):
        # Two callbacks: Lightning's save_last only refreshes last.ckpt when a top-k checkpoint is saved.
        callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor,
                                         mode="min", save_top_k=1, auto_insert_metric_name=False,
                                         enable_version_counter=False))
        callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None,
                                         save_top_k=1, enable_version_counter=False))
    if s.get("early_stopping_patience") is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode="min", patience=int(s["early_stopping_patience"])))
    loggers = [CSVLogger(run_dir, name="logs", version=""), TensorBoardLogger(run_dir, name="tensorboard", version="")]
    if not has_validation:
        kwargs["limit_val_batches"] = 0
    return L.Trainer(default_root_dir=run_dir, inference_mode=False, logger=loggers, callbacks=callbacks,
                     enable_checkpointing=bool(s.get("checkpoint", True)), **kwargs)
