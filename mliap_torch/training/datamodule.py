"""LightningDataModule over train/validation/test lists of configurations."""
from __future__ import annotations

from functools import partial
from typing import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..data.batch import AtomsBatch
from ..data.configuration import Configuration
from ..data.dataset import ConfigurationDataset, collate_processed


class AtomsDataModule(L.LightningDataModule):
    """Batches of :class:`~mliap_torch.data.batch.AtomsBatch` for training, validation and testing.

    Neighbor lists are built once per configuration (in :meth:`setup`). The loaders are plain
    ``DataLoader``s, so Lightning inserts a ``DistributedSampler`` under DDP (each process then
    sees ``1/world_size`` of the configurations per epoch).

    Args:
        train, val, test: configurations of each split (val/test may be empty).
        elements: element symbols in species-index order.
        cutoff: neighbor-list radius, Å.
        group_names: group names; a configuration's ``group`` is stored as its index here.
        batch_size: configurations per batch.
        num_workers: DataLoader worker processes.
        dtype: floating dtype of the batches.
    """

    def __init__(self, train: Sequence[Configuration], val: Sequence[Configuration], test: Sequence[Configuration],
                 elements: Sequence[str], cutoff: float, group_names: Sequence[str], batch_size: int = 8,
                 num_workers: int = 0, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.splits = {"train": list(train), "val": list(val), "test": list(test)}
        self.elements = list(elements)
        self.cutoff = float(cutoff)
        self.group_names = list(group_names)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dtype = dtype
        self.datasets: dict[str, ConfigurationDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for name, configs in self.splits.items():
            if name not in self.datasets:
                self.datasets[name] = ConfigurationDataset(configs, self.elements, self.cutoff,
                                                           group_names=self.group_names)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.datasets[name], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, collate_fn=partial(collate_processed, dtype=self.dtype),
                          persistent_workers=self.num_workers > 0)

    def transfer_batch_to_device(self, batch: AtomsBatch, device: torch.device, dataloader_idx: int) -> AtomsBatch:
        return batch.to(device)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
