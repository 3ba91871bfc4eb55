"""Linear design rows of any mliap_torch descriptor, from torch autograd.

For descriptors LAMMPS cannot compute here (ACE: this LAMMPS build has no ML-PACE), the per-pair
Jacobian ``∂B_{i(p)}/∂r_p`` comes from :func:`mliap_torch.fitting.design.descriptor_and_pair_jacobian`
(for ACE, forward mode through its product tree) and gives the rows of a linear model ``E_i = β0 + β·B_i``
(:class:`~mlearn_study.snap_rows.SnapRows`: energy per atom, forces, stress in the ASE convention).
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import torch

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.fitting.design import descriptor_and_pair_jacobian
from mliap_torch.fitting.feature_gradients import virial_sums

from .snap_rows import SnapRows


def _chunks(configs: Sequence[Configuration], chunk_atoms: int) -> list[list[int]]:
    out, current, atoms = [], [], 0
    for k, c in enumerate(configs):
        if current and atoms + c.num_atoms > chunk_atoms:
            out.append(current)
            current, atoms = [], 0
        current.append(k)
        atoms += c.num_atoms
    if current:
        out.append(current)
    return out


#: The last call's (descriptor settings, chunk size), configurations and rows (:func:`torch_rows`).
_last: list[tuple[str, tuple[Configuration, ...], list[SnapRows]]] = []


def torch_rows(configs: Sequence[Configuration], descriptor, chunk_atoms: int = 500) -> list[SnapRows]:
    """Rows of a linear one-element model of every configuration, in the configuration's frame.

    The last call's rows are kept and returned again (the same list) for the same configuration objects and
    descriptor settings: an element's exact-fit lane asks for the large ACE's training rows twice, for its
    own fit and for ACE+qSNAP's (1–5 min per element). Callers must not modify them.

    Args:
        configs: configurations of the descriptor's single element.
        descriptor: any :class:`~mliap_torch.descriptors.base.Descriptor` with one element.
        chunk_atoms: atoms per descriptor call (memory: pairs × 3 × K of the chunk).
    """
    elements = list(descriptor.settings().get("elements") or [])
    if len(elements) != 1:
        raise ValueError(f"torch_rows: one element expected, the descriptor has {elements}")
    key = f"{json.dumps(descriptor.settings(), sort_keys=True, default=str)} {chunk_atoms}"
    if _last and _last[0][0] == key and len(_last[0][1]) == len(configs) and all(
            a is b for a, b in zip(_last[0][1], configs)):
        return _last[0][2]
    _last.clear()
    dtype = torch.float64
    rows: list[SnapRows] = []
    for chunk in _chunks(configs, chunk_atoms):
        part = [configs[k] for k in chunk]
        batch = make_batch(part, elements, descriptor.cutoff, dtype=dtype)
        rij = batch.rij()
        B, dB = descriptor_and_pair_jacobian(descriptor, rij, batch.pair_i, batch.pair_j, batch.species,
                                             batch.total_atoms)
        B, dB, rij = B.detach(), dB.detach(), rij.detach()
        natoms, K = B.shape
        # force rows: F_a = Σ_{p: i(p)=a} dB_p − Σ_{p: j(p)=a} dB_p (per unit coefficient)
        frows = torch.zeros((natoms, 3, K), dtype=dtype).index_add(0, batch.pair_i, dB).index_add(0, batch.pair_j, -dB)
        # strain derivative per column: sym(Σ_p r_p ⊗ dB_p), per configuration, in Voigt order
        strain = virial_sums(dB, rij, torch.zeros_like(batch.pair_i), batch.pair_config, len(part), 1)[:, 0]
        srows = strain.transpose(1, 2) / batch.volume()[:, None, None]         # (nconfigs, K, 6)
        offsets = np.cumsum([0] + [c.num_atoms for c in part])
        for local in range(len(part)):
            a0, a1 = int(offsets[local]), int(offsets[local + 1])
            n = a1 - a0
            energy = np.concatenate([[1.0], B[a0:a1].sum(0).numpy() / n])
            forces = np.zeros((3 * n, K + 1))
            forces[:, 1:] = frows[a0:a1].reshape(3 * n, K).numpy()
            stress = np.zeros((6, K + 1))
            stress[:, 1:] = srows[local].T.numpy()
            rows.append(SnapRows(energy, forces, stress))
    _last.append((key, tuple(configs), rows))
    return rows
