"""LightningDataModule over train/validation/test lists of configurations."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..data.batch import AtomsBatch, ProcessedConfiguration
from ..data.configuration import Configuration
from ..data.dataset import ConfigurationDataset, collate_processed
from ..models.potential import Potential
from .precompute import DEFAULT_MAX_GB, JacobianCollate, attach_descriptor_jacobians, jacobian_bytes

log = logging.getLogger(__name__)


class AtomsDataModule(L.LightningDataModule):
    """Batches of :class:`~mliap_torch.data.batch.AtomsBatch` for training, validation and testing.

    Neighbor lists are built once per configuration (in :meth:`setup`). The loaders are plain
    ``DataLoader``s, so Lightning inserts a ``DistributedSampler`` under DDP (each process then
    sees ``1/world_size`` of the configurations per epoch).

    Args:
        train: configurations of the training split.
        val: configurations of the validation split (may be empty).
        test: configurations of the test split (may be empty).
        elements: element symbols in species-index order.
        cutoff: neighbor-list radius, Å.
        group_names: group names; a configuration's ``group`` is stored as its index here.
        batch_size: configurations per batch.
        num_workers: DataLoader worker processes.
        dtype: floating dtype of the batches.
        stored_descriptors: a potential whose (frozen) descriptor gives the batches their descriptors and
            pair Jacobians (see :mod:`mliap_torch.training.precompute`), so that training never
            differentiates the descriptor: evaluated once per configuration in :meth:`setup` when the store
            takes at most ``max_stored_gb``, else for every batch as it is collated (:class:`JacobianCollate`).
        max_stored_gb: largest store of descriptors and pair Jacobians (all splits, float64), GB.
        seed: seed of the training order. The order of epoch ``e`` depends on ``(seed, e)`` only (in one
            process and under DDP), so a resumed run sees the batches the uninterrupted run would have.
    """

    def __init__(self, train: Sequence[Configuration], val: Sequence[Configuration], test: Sequence[Configuration],
                 elements: Sequence[str], cutoff: float, group_names: Sequence[str], batch_size: int = 8,
                 num_workers: int = 0, dtype: torch.dtype = torch.float64,
                 stored_descriptors: Potential | None = None, max_stored_gb: float = DEFAULT_MAX_GB, seed: int = 0):
        super().__init__()
        self.seed = seed
        self.splits = {"train": list(train), "val": list(val), "test": list(test)}
        self.elements = list(elements)
        self.cutoff = float(cutoff)
        self.group_names = list(group_names)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dtype = dtype
        self.datasets: dict[str, ConfigurationDataset] = {}
        self.stored_descriptors = stored_descriptors
        self.max_stored_gb = float(max_stored_gb)
        self.collate: Callable[[Sequence[ProcessedConfiguration]], AtomsBatch] = partial(collate_processed,
                                                                                           dtype=dtype)

    def setup(self, stage: str | None = None) -> None:
        for name, configs in self.splits.items():
            if name not in self.datasets:
                self.datasets[name] = ConfigurationDataset(configs, self.elements, self.cutoff,
                                                           group_names=self.group_names)
        if self.stored_descriptors is not None:
            self._store_descriptors()

    def _store_descriptors(self) -> None:
        """Attach descriptors and pair Jacobians to every split, or, when they would take more than
        ``max_stored_gb``, compute them per batch in the collate function."""
        potential, self.stored_descriptors = self.stored_descriptors, None
        assert potential is not None
        items = [it for d in self.datasets.values() for it in d.items]
        size = jacobian_bytes(items, potential.descriptor.num_descriptors) / 1e9
        if size > self.max_stored_gb:
            log.info("descriptor Jacobians would take %.2f GB (> model.max_stored_gb = %g GB): computing them for "
                     "each batch instead of storing them", size, self.max_stored_gb)
            self.collate = JacobianCollate(potential.descriptor, self.dtype)
            return
        log.info("storing descriptors and their pair Jacobians (%.2f GB)", size)
        for name, dataset in self.datasets.items():
            attach_descriptor_jacobians(dataset.items, potential, desc=f"{name} descriptors")

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[name]
        sampler: DistributedSampler | None = None
        distributed = self.trainer is not None and self.trainer.world_size > 1
        if shuffle and not distributed:
            # Lightning calls set_epoch before every epoch; under DDP it inserts its own DistributedSampler.
            sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=self.seed)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle and distributed, sampler=sampler,
                          num_workers=self.num_workers, collate_fn=self.collate,
                          persistent_workers=self.num_workers > 0)

    def transfer_batch_to_device(self, batch: AtomsBatch, device: torch.device, dataloader_idx: int) -> AtomsBatch:
        return batch.to(device)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
