"""A torch ``Dataset`` of processed configurations (species indices + neighbor list) and its collate function."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .batch import AtomsBatch, ProcessedConfiguration, collate, process_configuration
from .configuration import Configuration

PROGRESS_THRESHOLD = 2000
"""Data sets with more configurations than this show a progress bar while their neighbor lists are built."""


class ConfigurationDataset(Dataset):
    """Configurations processed once for given elements and cutoff; items are
    :class:`~mliap_torch.data.batch.ProcessedConfiguration` (numpy arrays, cheap to pickle to workers).

    Args:
        configs: the configurations (item ``k`` gets ``config_id = k``).
        elements: element symbols in species-index order.
        cutoff: neighbor-list radius, Å.
        group_names: group names defining ``group_index`` (default: sorted names found in ``configs``);
            a configuration whose group is not listed is an error.
        progress: show a tqdm bar while building (default: when there are more than
            ``PROGRESS_THRESHOLD`` configurations).
        processed: already processed items (e.g. from the HDF5 cache); then ``configs`` is ignored.

    Use with ``torch.utils.data.DataLoader(dataset, collate_fn=AtomsCollate())`` or :meth:`loader`;
    a ``DistributedSampler`` works as with any map-style dataset.
    """

    def __init__(self, configs: Sequence[Configuration], elements: Sequence[str], cutoff: float,
                 group_names: Sequence[str] | None = None, progress: bool | None = None,
                 processed: Sequence[ProcessedConfiguration] | None = None):
        self.elements = list(elements)
        self.cutoff = float(cutoff)
        self.cache_path: Path | None = None
        if processed is not None:
            self.items = list(processed)
            self.group_names = list(group_names) if group_names is not None else sorted(
                {it.config.group for it in self.items})
            return
        self.group_names = list(group_names) if group_names is not None else sorted({c.group for c in configs})
        lookup = {g: k for k, g in enumerate(self.group_names)}
        for c in configs:
            if c.group not in lookup:
                raise ValueError(f"{c.where} field 'group': group {c.group!r} is not among {self.group_names}")
        show = len(configs) > PROGRESS_THRESHOLD if progress is None else progress
        iterator = enumerate(configs)
        if show:
            from tqdm.auto import tqdm
            iterator = tqdm(iterator, total=len(configs), desc="neighbor lists", unit="config")
        self.items = [process_configuration(c, self.elements, self.cutoff, lookup[c.group], k) for k, c in iterator]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> ProcessedConfiguration:
        return self.items[index]

    @property
    def configurations(self) -> list[Configuration]:
        return [it.config for it in self.items]

    def loader(self, batch_size: int = 8, shuffle: bool = False, dtype: torch.dtype = torch.float64,
               **kwargs) -> DataLoader:
        """A ``DataLoader`` yielding :class:`AtomsBatch` es (``kwargs`` go to ``DataLoader``, e.g. ``sampler``)."""
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, collate_fn=AtomsCollate(dtype), **kwargs)


def collate_processed(items: Sequence[ProcessedConfiguration], dtype: torch.dtype = torch.float64) -> AtomsBatch:
    """Concatenate processed configurations into one :class:`AtomsBatch` (pair indices offset per config)."""
    return collate(items, dtype)


class AtomsCollate:
    """Picklable collate function (for ``DataLoader`` workers): ``items → AtomsBatch`` in ``dtype``."""

    def __init__(self, dtype: torch.dtype = torch.float64):
        self.dtype = dtype

    def __call__(self, items: Sequence[ProcessedConfiguration]) -> AtomsBatch:
        return collate(items, self.dtype)
