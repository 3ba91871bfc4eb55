"""Many configurations concatenated into one pair batch, the unit every model evaluates."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from .configuration import Configuration
from .neighbors import neighbor_pairs, pair_vectors
from .sanity import check_cell, check_pairs


@dataclass
class AtomsBatch:
    """Concatenated configurations with their full neighbor pair list and labels.

    Shapes: natoms atoms, npairs pairs, nconfigs configurations. Missing labels have mask False
    (their values are zeros and never used).

    Attributes:
        positions: (natoms, 3) Å.
        cell: (nconfigs, 3, 3) Å, rows.
        species: (natoms,) element index.
        atom_config: (natoms,) configuration index of each atom.
        pair_i: (npairs,) atom indices (global in the batch), first atom of each pair.
        pair_j: (npairs,) atom indices (global in the batch), second atom of each pair.
        shifts: (npairs, 3) cell shifts.
        num_atoms: (nconfigs,).
        energy: (nconfigs,) eV.
        forces: (natoms, 3) eV/Å.
        stress: (nconfigs, 6) eV/Å³, tension positive, Voigt ``xx yy zz yz xz xy``.
        energy_mask: (nconfigs,) bool.
        stress_mask: (nconfigs,) bool.
        forces_mask: (natoms,) bool.
        energy_weight: (nconfigs,) fit weights.
        force_weight: (nconfigs,) fit weights.
        stress_weight: (nconfigs,) fit weights.
        group: (nconfigs,) group index into ``group_names``.
        config_id: (nconfigs,) dataset index.
        descriptors: optional precomputed descriptors (natoms, K) of a frozen descriptor; ``None`` otherwise.
        descriptor_jacobian: (npairs, 3, K) ``∂B_k(pair_i)/∂rij`` per pair (see
            :func:`mliap_torch.training.precompute.attach_descriptor_jacobians`); ``None`` otherwise.
    """

    positions: torch.Tensor
    cell: torch.Tensor
    species: torch.Tensor
    atom_config: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    shifts: torch.Tensor
    num_atoms: torch.Tensor
    energy: torch.Tensor
    energy_mask: torch.Tensor
    forces: torch.Tensor
    forces_mask: torch.Tensor
    stress: torch.Tensor
    stress_mask: torch.Tensor
    energy_weight: torch.Tensor
    force_weight: torch.Tensor
    stress_weight: torch.Tensor
    group: torch.Tensor
    config_id: torch.Tensor
    descriptors: torch.Tensor | None = None
    descriptor_jacobian: torch.Tensor | None = None

    @property
    def num_configs(self) -> int:
        return int(self.num_atoms.shape[0])

    @property
    def total_atoms(self) -> int:
        return int(self.positions.shape[0])

    @property
    def pair_config(self) -> torch.Tensor:
        """(npairs,) configuration index of each pair."""
        return self.atom_config[self.pair_i]

    def rij(self) -> torch.Tensor:
        """(npairs, 3) pair vectors ``x[j] - x[i] + shift @ cell``, Å."""
        return pair_vectors(self.positions, self.cell, self.pair_i, self.pair_j, self.shifts, self.pair_config)

    def volume(self) -> torch.Tensor:
        """(nconfigs,) cell volumes, Å³."""
        return torch.linalg.det(self.cell).abs()

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> AtomsBatch:
        """Copy onto ``device``; floating tensors are cast to ``dtype`` when given."""
        out: dict[str, Any] = {}
        for f in fields(self):
            t = getattr(self, f.name)
            if t is None:
                out[f.name] = None
                continue
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            out[f.name] = t.to(device) if device is not None else t
        return AtomsBatch(**out)


def species_indices(config: Configuration, elements: Sequence[str]) -> np.ndarray:
    """(natoms,) index of each atom's element in ``elements``; a clear error for unknown elements."""
    lookup = {e: k for k, e in enumerate(elements)}
    unknown = sorted(str(s) for s in set(config.symbols) - set(lookup))
    if unknown:
        raise ValueError(f"{config.where} field 'symbols': element(s) {unknown} are not among the model's "
                         f"elements {list(elements)}")
    return np.array([lookup[s] for s in config.symbols], dtype=np.int64)


@dataclass
class ProcessedConfiguration:
    """One configuration with its species indices and neighbor list, ready to be batched.

    ``descriptors`` (natoms, K) and ``descriptor_jacobian`` (npairs, 3, K), when set, are a frozen
    descriptor's values and per-pair Jacobian, so that training needs no descriptor evaluation.
    """

    config: Configuration
    species: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray
    shifts: np.ndarray
    group_index: int = 0
    config_id: int = 0
    descriptors: np.ndarray | None = None
    descriptor_jacobian: np.ndarray | None = None


def process_configuration(config: Configuration, elements: Sequence[str], cutoff: float,
                          group_index: int = 0, config_id: int = 0) -> ProcessedConfiguration:
    """Species indices and the full neighbor list of ``config`` within ``cutoff`` Å.

    The sanity checks of :mod:`mliap_torch.data.sanity` (limits in force: ``current_limits()``) run
    before and after the neighbor list; a failing one raises a ``SanityError`` naming the configuration.
    """
    species = species_indices(config, elements)
    check_cell(config, cutoff)
    i, j, s = neighbor_pairs(config.positions, config.cell, config.pbc, cutoff)
    check_pairs(config, cutoff, i.numpy(), j.numpy(), s.numpy())
    return ProcessedConfiguration(config, species, i.numpy(), j.numpy(), s.numpy(), group_index, config_id)


def collate(items: Sequence[ProcessedConfiguration], dtype: torch.dtype = torch.float64) -> AtomsBatch:
    """Concatenate processed configurations into one :class:`AtomsBatch` (pair indices offset)."""
    natoms = np.array([it.config.num_atoms for it in items], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(natoms)[:-1]]) if len(items) else np.zeros(0, np.int64)
    nconf = len(items)

    def cat(arrays, shape, np_dtype):
        return np.concatenate(arrays) if arrays else np.zeros(shape, dtype=np_dtype)

    positions = cat([it.config.positions for it in items], (0, 3), np.float64)
    species = cat([it.species for it in items], (0,), np.int64)
    pair_i = cat([it.pair_i + o for it, o in zip(items, offsets)], (0,), np.int64)
    pair_j = cat([it.pair_j + o for it, o in zip(items, offsets)], (0,), np.int64)
    shifts = cat([it.shifts for it in items], (0, 3), np.int64)
    forces = cat([it.config.forces if it.config.forces is not None else np.zeros((it.config.num_atoms, 3))
                  for it in items], (0, 3), np.float64)
    forces_mask = cat([np.full(it.config.num_atoms, it.config.forces is not None) for it in items], (0,), bool)
    energy = np.array([it.config.energy if it.config.energy is not None else 0.0 for it in items])
    stress = np.array([it.config.stress if it.config.stress is not None else np.zeros(6) for it in items]).reshape(nconf, 6)

    def t(a, dt=dtype):
        return torch.as_tensor(np.asarray(a), dtype=dt)

    precomputed = bool(items) and all(it.descriptors is not None for it in items)

    return AtomsBatch(
        positions=t(positions),
        cell=t(np.array([it.config.cell for it in items]).reshape(nconf, 3, 3)),
        species=t(species, torch.int64),
        atom_config=t(np.repeat(np.arange(nconf), natoms), torch.int64),
        pair_i=t(pair_i, torch.int64),
        pair_j=t(pair_j, torch.int64),
        shifts=t(shifts, torch.int64),
        num_atoms=t(natoms, torch.int64),
        energy=t(energy),
        energy_mask=t([it.config.energy is not None for it in items], torch.bool),
        forces=t(forces),
        forces_mask=t(forces_mask, torch.bool),
        stress=t(stress),
        stress_mask=t([it.config.stress is not None for it in items], torch.bool),
        energy_weight=t([it.config.energy_weight for it in items]),
        force_weight=t([it.config.force_weight for it in items]),
        stress_weight=t([it.config.stress_weight for it in items]),
        group=t([it.group_index for it in items], torch.int64),
        config_id=t([it.config_id for it in items], torch.int64),
        descriptors=t(np.concatenate([it.descriptors for it in items])) if precomputed else None,
        descriptor_jacobian=t(np.concatenate([it.descriptor_jacobian for it in items])) if precomputed else None,
    )


def make_batch(configs: Sequence[Configuration], elements: Sequence[str], cutoff: float,
               dtype: torch.dtype = torch.float64) -> AtomsBatch:
    """Neighbor lists within ``cutoff`` Å and one batch of all ``configs``."""
    return collate([process_configuration(c, elements, cutoff, config_id=k) for k, c in enumerate(configs)], dtype)
