"""Descriptors and their per-pair Jacobians computed once, so that training a head costs no descriptor passes.

With a frozen descriptor, ``E = Σ_i E_i(B_i)`` gives ``∂E/∂r_p = Σ_k ∂E_i/∂B_ik · ∂B_ik/∂r_p`` for each
pair ``p = (i, j)``: the forces and the virial need only the head's gradient and the stored Jacobian
blocks (what FitSNAP's network solver and LAMMPS' ``compute snap`` work with). Training on forces then
differentiates the head twice, never the descriptor.

Two sources of those blocks feed the same training step: :func:`attach_descriptor_jacobians` stores them
for every configuration once (up to ``max_stored_gb``), and :class:`JacobianCollate` computes them for each
batch as it is collated (larger data sets: memory stays one batch, an epoch costs one descriptor pass, and
under DDP every process computes only the batches of its own shard).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch

from ..data.batch import AtomsBatch, ProcessedConfiguration, collate
from ..descriptors.base import Descriptor
from ..fitting.design import descriptor_and_pair_jacobian
from ..models.potential import Potential

log = logging.getLogger(__name__)

DEFAULT_MAX_GB = 8.0
"""Largest Jacobian store (all splits together, float64) built by default, GB (``model.max_stored_gb``)."""


def descriptor_is_frozen(potential: Potential) -> bool:
    """True when no descriptor parameter is trained (then its values can be stored)."""
    return not any(p.requires_grad for p in potential.descriptor.parameters())


def jacobian_bytes(items: Sequence[ProcessedConfiguration], num_descriptors: int) -> int:
    """Memory of the stored descriptors and Jacobians of ``items`` in float64, bytes."""
    pairs = sum(len(it.pair_i) for it in items)
    atoms = sum(it.config.num_atoms for it in items)
    return 8 * num_descriptors * (3 * pairs + atoms)


@torch.no_grad()
def attach_descriptor_jacobians(items: Sequence[ProcessedConfiguration], potential: Potential,
                                chunk_atoms: int = 2000, progress: bool = True, desc: str = "descriptors") -> None:
    """Set ``descriptors`` (natoms, K) and ``descriptor_jacobian`` (npairs, 3, K) of every item, in place.

    Configurations are evaluated together in chunks of about ``chunk_atoms`` atoms (float64, on the
    descriptor's device) and the results split back per configuration.
    """
    descriptor = potential.descriptor
    device = next(iter(descriptor.buffers()), torch.empty(0)).device
    chunks: list[list[ProcessedConfiguration]] = [[]]
    atoms = 0
    for item in items:
        if atoms >= chunk_atoms:
            chunks.append([])
            atoms = 0
        chunks[-1].append(item)
        atoms += item.config.num_atoms
    iterator = chunks
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(chunks, desc=desc, unit="chunk")
    for chunk in iterator:
        if not chunk:
            continue
        batch = collate(chunk, torch.float64).to(device)
        B, dB = descriptor_and_pair_jacobian(descriptor, batch.rij(), batch.pair_i, batch.pair_j, batch.species,
                                             batch.total_atoms)
        B_np, dB_np = B.cpu().numpy(), dB.cpu().numpy()
        atom_ends = np.cumsum([it.config.num_atoms for it in chunk])
        pair_ends = np.cumsum([len(it.pair_i) for it in chunk])
        for item, a0, a1, p0, p1 in zip(chunk, np.r_[0, atom_ends[:-1]], atom_ends, np.r_[0, pair_ends[:-1]],
                                        pair_ends):
            item.descriptors = B_np[a0:a1]
            item.descriptor_jacobian = dB_np[p0:p1]


class JacobianCollate:
    """Collate function that attaches a frozen descriptor's values and pair Jacobians to every batch.

    ``items → AtomsBatch`` as :func:`~mliap_torch.data.batch.collate`, with ``descriptors`` (natoms, K) and
    ``descriptor_jacobian`` (npairs, 3, K) computed by ``descriptor.pair_jacobian`` (LAMMPS' ``SNA`` for the
    bispectrum when built) in float64 on the CPU, under ``no_grad``, then cast with the batch to ``dtype``:
    the same batch :func:`attach_descriptor_jacobians` + ``collate`` give, without storing anything.
    Picklable, so ``DataLoader`` workers can compute the next batches while the head trains.

    Args:
        descriptor: the frozen descriptor (a float64 CPU copy is kept).
        dtype: floating dtype of the batches.
    """

    def __init__(self, descriptor: Descriptor, dtype: torch.dtype = torch.float64):
        self.descriptor = copy.deepcopy(descriptor).to(device="cpu", dtype=torch.float64)
        self.dtype = dtype

    @torch.no_grad()
    def __call__(self, items: Sequence[ProcessedConfiguration]) -> AtomsBatch:
        batch = collate(items, torch.float64)
        batch.descriptors, batch.descriptor_jacobian = descriptor_and_pair_jacobian(
            self.descriptor, batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        return batch if self.dtype == torch.float64 else batch.to(dtype=self.dtype)
