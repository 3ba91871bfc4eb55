"""Lightning training of potentials: the LightningModule, the DataModule and the end-to-end run.

- :class:`~mliap_torch.training.module.PotentialModule`: weighted energy/force/stress loss, per-group
  validation metrics, optimizer and LR schedule.
- :class:`~mliap_torch.training.datamodule.AtomsDataModule`: train/val/test loaders of ``AtomsBatch``.
- :func:`~mliap_torch.training.run.run`: data → split → potential → exact fit and/or Lightning → run folder.
"""
from __future__ import annotations

from typing import Any

__all__ = ["PotentialModule", "AtomsDataModule", "run", "build_trainer"]


def __getattr__(name: str) -> Any:
    # Lazy: importing lightning takes seconds and most users of mliap_torch never train.
    if name == "PotentialModule":
        from .module import PotentialModule
        return PotentialModule
    if name == "AtomsDataModule":
        from .datamodule import AtomsDataModule
        return AtomsDataModule
    if name == "run":
        from .run import run
        return run
    if name == "build_trainer":
        from .trainer import build_trainer
        return build_trainer
    raise AttributeError(f"module 'mliap_torch.training' has no attribute {name!r}")
