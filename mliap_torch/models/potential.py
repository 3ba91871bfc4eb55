"""Potential = descriptor + per-element head (+ optional reference pair potential such as ZBL)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..data.batch import AtomsBatch, make_batch
from ..data.configuration import Configuration
from ..descriptors.base import Descriptor
from ..uncertainty.active_set import ActiveSet
from .reference import ReferencePotential


def forces_and_virial_from_pair_gradient(dE_drij: torch.Tensor, rij: torch.Tensor, pair_i: torch.Tensor,
                                         pair_j: torch.Tensor, num_atoms: int, pair_config: torch.Tensor,
                                         num_configs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Atomic forces and per-configuration virial from ``fij = ∂E/∂r_ij`` (LAMMPS ML-IAP's ``fij``).

    Since ``r_ij = x_j - x_i``: ``F_i = Σ_{pairs (i,·)} fij - Σ_{pairs (·,i)} fij``.
    The strain derivative is ``∂E/∂ε_ab = Σ_p r_a f_b`` (the negative of LAMMPS' virial).

    Returns:
        forces: (num_atoms, 3) eV/Å; dE_dstrain: (num_configs, 3, 3) eV.
    """
    forces = torch.zeros((num_atoms, 3), dtype=dE_drij.dtype, device=dE_drij.device)
    forces = forces.index_add(0, pair_i, dE_drij).index_add(0, pair_j, -dE_drij)
    outer = rij[:, :, None] * dE_drij[:, None, :]
    dE_dstrain = torch.zeros((num_configs, 3, 3), dtype=dE_drij.dtype, device=dE_drij.device)
    dE_dstrain = dE_dstrain.index_add(0, pair_config, outer)
    return forces, dE_dstrain


def voigt(tensor: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) → (..., 6) in the order ``xx yy zz yz xz xy`` (symmetrised)."""
    t = 0.5 * (tensor + tensor.transpose(-1, -2))
    return torch.stack([t[..., 0, 0], t[..., 1, 1], t[..., 2, 2], t[..., 1, 2], t[..., 0, 2], t[..., 0, 1]], dim=-1)


class Potential(nn.Module):
    """An interatomic potential on the pair-list representation.

    ``E_i = head(descriptor(rij, ...), species)_i + reference_i`` (or the reference's
    :meth:`~mliap_torch.models.reference.ReferencePotential.combine` of the two); total energies are sums over
    each configuration's atoms, forces ``-∂E/∂x`` and stress ``(1/V) ∂E/∂ε`` come from one
    gradient with respect to the pair vectors. ``active_set`` (None until one is built from training data,
    :func:`mliap_torch.uncertainty.build.build_active_set`) grades how far atoms extrapolate
    (:meth:`extrapolation_grade`).
    """

    # a duck-typed head (any of the registry; besides forward it provides ``settings()``)
    head: Any
    reference: ReferencePotential | None

    def __init__(self, descriptor: Descriptor, head: nn.Module, reference: ReferencePotential | None = None):
        super().__init__()
        self.descriptor = descriptor
        self.head = head
        self.reference = reference
        self.active_set: ActiveSet | None = None

    @property
    def elements(self) -> list[str]:
        return list(self.descriptor.elements)

    @property
    def cutoff(self) -> float:
        """Neighbor-list radius, Å: the largest descriptor or reference cutoff."""
        ref = float(self.reference.cutoff) if self.reference is not None else 0.0
        return max(float(self.descriptor.cutoff), ref)

    def settings(self) -> dict[str, Any]:
        """Plain-data description from which :func:`mliap_torch.models.io.potential_from_settings` rebuilds it."""
        return {
            "descriptor": {"type": self.descriptor.type_name, **self.descriptor.settings()},
            "head": self.head.settings(),
            "reference": None if self.reference is None else {"type": self.reference.type_name,
                                                              **self.reference.settings()},
            **({} if self.active_set is None else {"active_set": self.active_set.settings()}),
        }

    def atomic_energies(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor,
                        species: torch.Tensor, num_atoms: int) -> torch.Tensor:
        """Per-atom energies (num_atoms,) eV from pair vectors ``rij`` (npairs, 3) Å.

        ``species`` (ntotal,) holds the element index of every atom that ``pair_i``/``pair_j`` name; the
        first ``num_atoms`` are the central atoms, any further ones are neighbours only (LAMMPS ghosts).
        """
        B = self.descriptor(rij, pair_i, pair_j, species, num_atoms)
        return self._head_and_reference(B, rij, pair_i, pair_j, species, num_atoms)

    def _head_and_reference(self, B: torch.Tensor, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor,
                            species: torch.Tensor, num_atoms: int) -> torch.Tensor:
        """Per-atom energies (num_atoms,) eV: the head on descriptors B (num_atoms, K) plus the reference."""
        energies = self.head(B, species[:num_atoms])
        if self.reference is not None:
            reference = self.reference(rij, pair_i, pair_j, species, num_atoms)
            energies = self.reference.combine(energies, reference, species[:num_atoms])
        return energies

    def _grade(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """γ (natoms,) of descriptors B (natoms, K); ValueError without an active set."""
        if self.active_set is None:
            raise ValueError("this potential has no active set, so no extrapolation grade: build one from its "
                             "training data (mliap_torch.uncertainty.build.build_active_set), as training runs do")
        with torch.no_grad():
            return self.active_set(self.head.grade_features(B.detach(), species), species)

    def extrapolation_grade(self, data: AtomsBatch | Sequence[Any]) -> torch.Tensor:
        """Extrapolation grade γ of every atom (D-optimality, :mod:`mliap_torch.uncertainty`).

        γ_i = max |c_i| with c_i the coefficients of atom i's features (:meth:`~mliap_torch.models.heads.Head.grade_features`)
        in the basis of its element's active set of training atoms: ``γ ≤ 1`` interpolation (every training
        atom has ``γ ≤ 1.01``), ``γ > 1`` extrapolation, the larger the further; ``inf`` for an element with no
        training atoms.

        Args:
            data: an :class:`~mliap_torch.data.batch.AtomsBatch`, or configurations
                (:class:`~mliap_torch.data.configuration.Configuration` or ``ase.Atoms``), evaluated as one batch.
        Returns:
            (natoms,) γ, dimensionless, atoms in batch order (configurations one after another).
        Raises:
            ValueError: the potential has no active set.
        """
        if isinstance(data, AtomsBatch):
            batch = data
        else:
            configs = [c if isinstance(c, Configuration) else Configuration.from_ase(c) for c in data]
            dtype = next(iter(self.parameters()), torch.empty(0, dtype=torch.float64)).dtype
            batch = make_batch(configs, self.elements, self.cutoff, dtype=dtype)
            device = next(iter(self.buffers()), torch.empty(0)).device
            batch = batch.to(device)
        with torch.no_grad():
            B = self.descriptor(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        return self._grade(B, batch.species[: batch.total_atoms])

    def _energies_from_stored_jacobian(self, batch: AtomsBatch, rij: torch.Tensor, need_grad: bool,
                                       create_graph: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-atom energies (natoms,) eV and, with ``need_grad``, ∂E/∂rij (npairs, 3) eV/Å from the batch's
        stored descriptors: ∂E/∂r_p = Σ_k ∂E_i/∂B_ik · ∂B_ik/∂r_p (+ the reference potential's gradient)."""
        assert batch.descriptors is not None and batch.descriptor_jacobian is not None, "no stored descriptors"
        B = batch.descriptors.detach().requires_grad_(need_grad)
        atomic = self.head(B, batch.species)
        if self.reference is not None:
            reference = self.reference(rij, batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
            atomic = self.reference.combine(atomic, reference, batch.species)
        if not need_grad:
            return atomic, None
        inputs = [B] if self.reference is None else [B, rij]
        grads = torch.autograd.grad(atomic.sum(), inputs, create_graph=create_graph, allow_unused=True,
                                    materialize_grads=True)
        dE_drij = torch.einsum("pxk,pk->px", batch.descriptor_jacobian.to(B.dtype), grads[0][batch.pair_i])
        if self.reference is not None:
            dE_drij = dE_drij + grads[1]
        return atomic, dE_drij

    def forward(self, batch: AtomsBatch, forces: bool = True, stress: bool = True,
                create_graph: bool = False, grade: bool = False) -> dict[str, torch.Tensor]:
        """Energies, forces and stress of every configuration in ``batch``.

        Returns a dict with ``energy`` (nconfigs,) eV, ``atomic_energies`` (natoms,) eV and, when
        asked, ``forces`` (natoms, 3) eV/Å and ``stress`` (nconfigs, 6) eV/Å³ (ASE convention:
        tension positive, Voigt ``xx yy zz yz xz xy``; zero for cells without volume).
        Pass ``create_graph=True`` to train on forces or stress (double backward); ``grade=True`` adds
        ``extrapolation_grade`` (natoms,) from the same descriptors (:meth:`extrapolation_grade`).

        When the batch carries precomputed ``descriptors`` and ``descriptor_jacobian`` and no descriptor
        parameter is trained, they replace the descriptor evaluation (same results, and double
        backward then goes through the head only).
        """
        need_grad = forces or stress
        rij = batch.rij()
        if need_grad and not rij.requires_grad:
            rij = rij.detach().requires_grad_(True)
        precomputed = batch.descriptors is not None and not any(p.requires_grad for p in self.descriptor.parameters())
        with torch.enable_grad() if need_grad else torch.no_grad():
            if precomputed:
                atomic, dE_drij = self._energies_from_stored_jacobian(batch, rij, need_grad, create_graph)
                B = batch.descriptors
            else:
                B = self.descriptor(rij, batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
                atomic = self._head_and_reference(B, rij, batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
            energy = torch.zeros(batch.num_configs, dtype=atomic.dtype, device=atomic.device)
            energy = energy.index_add(0, batch.atom_config, atomic)
            out = {"energy": energy, "atomic_energies": atomic}
            if grade:
                assert B is not None  # set on both routes
                out["extrapolation_grade"] = self._grade(B, batch.species)
            if not need_grad:
                return out
            if not precomputed:
                (dE_drij,) = torch.autograd.grad(energy.sum(), rij, create_graph=create_graph, allow_unused=True)
            if dE_drij is None:
                dE_drij = torch.zeros_like(rij)
        f, dE_dstrain = forces_and_virial_from_pair_gradient(dE_drij, rij, batch.pair_i, batch.pair_j,
                                                             batch.total_atoms, batch.pair_config, batch.num_configs)
        if forces:
            out["forces"] = f
        if stress:
            volume = batch.volume()
            inv = torch.where(volume > 0, 1.0 / volume.clamp_min(1e-300), torch.zeros_like(volume))
            out["stress"] = voigt(dE_dstrain) * inv[:, None]
        return out
