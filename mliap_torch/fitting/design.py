"""Design-matrix rows of a linear-in-coefficients potential (FitSNAP's A, b, w), chunk by chunk.

For a potential whose energy is ``E = Σ_i β_{s_i} · f(B_i)`` (``f`` = the head's
:meth:`features`: B for a linear head, ``[B, quadratic_features(B)]`` for a quadratic one), every
label is linear in the per-element coefficients ``[β0_e, β_e]`` (``.snapcoeff`` order). For a batch
of configurations the rows are

- energy (one per configuration): ``[n_e/N, Σ_{i∈e} f(B_i)/N]`` per element e, target
  ``(E − E_ref)/N`` (eV/atom);
- forces (3 per atom, atom-major x, y, z): ``−Σ_{i∈e} ∂f(B_i)/∂x_j``, target ``F − F_ref`` (eV/Å);
- stress (6 per configuration, Voigt ``xx yy zz yz xz xy``): ``s/V · Σ_p r_p ⊗ ∂f(B_{i(p)})/∂r_p``
  (symmetrised), target ``s·(σ − σ_ref)``, with ``s = stress_scale`` (1: ASE eV/Å³, tension
  positive; :data:`FITSNAP_STRESS_SCALE`: FitSNAP's bar, compression positive; see
  ``stress_target_scale`` for FitSNAP's exact targets);

with the reference potential (ZBL) subtracted from the targets. The constant columns ``n_e/N``
(zero in force and stress rows) are present when ``bias`` is on; FitSNAP's layout has them exactly
when the descriptor's ``bzeroflag`` is off (``bias=None`` follows that rule) and fits β0 = 0 otherwise.
Rows of missing labels are left out; each row carries its weight (the configuration's
``energy_weight``/``force_weight``/``stress_weight``), kind, configuration and group index.

Derivatives are analytic, never finite differences: the descriptor's per-pair Jacobian
``∂B_{i(p)}/∂r_p`` (ML-IAP descriptors of atom i depend only on the pairs whose central atom is i)
comes from its ``pair_jacobian`` (or K batched vector–Jacobian products), and the features' chain
rule is applied to per-atom and per-cell sums (:mod:`.feature_gradients`).

Within one chunk the rows are ordered: all energy rows, then all force rows, then all stress rows.
FitSNAP's 2021 reference layout (all energy rows of the data set, then all force rows, then all
stress rows) is the stable sort of the concatenated chunks by :attr:`DesignRows.kind`.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import torch

from ..data.batch import AtomsBatch, collate, process_configuration
from ..data.configuration import Configuration
from ..descriptors.base import Descriptor
from ..models.potential import Potential, forces_and_virial_from_pair_gradient, voigt
from ..models.reference import require_additive
from .feature_gradients import feature_gradient_rows

FITSNAP_STRESS_SCALE = -1.6021765e6
"""ASE stress (eV/Å³, tension positive) → FitSNAP/LAMMPS pressure (bar, compression positive); the
factor is LAMMPS' ``nktv2p`` for metal units, which FitSNAP also uses for its stress rows."""

ENERGY, FORCE, STRESS = 0, 1, 2


@dataclass
class DesignRows:
    """Rows of the linear system ``A x ≈ b`` with weights ``w`` (FitSNAP: ``w·A x ≈ w·b``).

    Attributes:
        A: (m, ncols).  b: (m,).  w: (m,).
        kind: (m,) 0 energy (per atom), 1 force component, 2 stress component.
        config: (m,) configuration index (position in the list given to the builder).
        group: (m,) group index.  test: (m,) bool, rows of test configurations.
    """

    A: torch.Tensor
    b: torch.Tensor
    w: torch.Tensor
    kind: torch.Tensor
    config: torch.Tensor
    group: torch.Tensor
    test: torch.Tensor

    @staticmethod
    def cat(parts: Sequence[DesignRows]) -> DesignRows:
        return DesignRows(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(DesignRows)})

    def select(self, mask: torch.Tensor) -> DesignRows:
        return DesignRows(**{f.name: getattr(self, f.name)[mask] for f in fields(DesignRows)})

    def fitsnap_order(self) -> DesignRows:
        """Rows stably sorted by kind: FitSNAP's reference layout (energies, forces, stresses)."""
        order = torch.sort(self.kind, stable=True).indices
        return self.select(order)

    @property
    def num_rows(self) -> int:
        return int(self.b.shape[0])


def fitsnap_stress_target_scale() -> float:
    """Factor taking the readers' ASE stress (eV/Å³, tension positive) back to FitSNAP's file bar."""
    from ..data.readers._common import BAR

    return -1.0 / BAR


def descriptor_and_pair_jacobian(descriptor: Descriptor, rij: torch.Tensor, pair_i: torch.Tensor,
                                 pair_j: torch.Tensor, species: torch.Tensor, num_atoms: int
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Descriptors B (natoms, K) and the per-pair Jacobian dB (npairs, 3, K) = ``∂B_{pair_i[p]}/∂r_p``, detached:
    :meth:`~mliap_torch.descriptors.base.Descriptor.pair_jacobian` (analytic where the descriptor has one,
    LAMMPS' ``compute snap`` quantity; K vector–Jacobian products otherwise)."""
    B, dB = descriptor.pair_jacobian(rij, pair_i, pair_j, species, num_atoms)
    return B.detach(), dB.detach()


class DesignMatrixBuilder:
    """Builds :class:`DesignRows` for batches of configurations with a given potential.

    Args:
        potential: descriptor + linear-in-coefficients head (``features()``, ``set_coefficients``)
            + optional reference potential, whose energy, forces and stress are subtracted.
        bias: constant per-element columns; ``None`` = FitSNAP's rule (``not descriptor.bzeroflag``,
            on for descriptors without that flag).
        energy: build the energy rows.
        forces: build the force rows.
        stress: build the stress rows.
        stress_scale: factor applied to stress rows and reference stresses (see the module docstring).
        stress_target_scale: factor applied to the labelled stresses (default ``stress_scale``).
            FitSNAP takes its truth in the file's own bar but rows and reference stress through
            LAMMPS' ``nktv2p``; the readers' bar is CODATA's, 7.5e-8 relative away, so reproducing
            FitSNAP's targets exactly needs ``-1/bar`` here (:func:`fitsnap_stress_target_scale`).
    """

    def __init__(self, potential: Potential, *, bias: bool | None = None, energy: bool = True, forces: bool = True,
                 stress: bool = True, stress_scale: float = 1.0, stress_target_scale: float | None = None):
        head = potential.head
        if not getattr(head, "linear_in_parameters", False):
            raise TypeError(f"{type(head).__name__} is not linear in its coefficients; exact fits need a "
                            "linear, quadratic or blocks head")
        self.potential = potential
        self.bias = (not bool(getattr(potential.descriptor, "bzeroflag", False))) if bias is None else bool(bias)
        self.energy, self.forces, self.stress = energy, forces, stress
        self.stress_scale = float(stress_scale)
        self.stress_target_scale = self.stress_scale if stress_target_scale is None else float(stress_target_scale)
        self.num_elements = len(potential.elements)
        self.num_features = int(head.num_features)

    @property
    def block_width(self) -> int:
        """Columns per element: the constant (when ``bias``) and the head's features."""
        return self.num_features + int(self.bias)

    @property
    def num_columns(self) -> int:
        return self.num_elements * self.block_width

    def column_degrees(self) -> torch.Tensor:
        """(num_columns,) total polynomial degree of each column's feature (0 for the constant): the
        descriptor's ``function_degrees()`` (ACE), summed over the two factors of a quadratic feature.

        Raises:
            ValueError: the descriptor does not define degrees (only ACE does).
        """
        descriptor = self.potential.descriptor
        function_degrees = getattr(descriptor, "function_degrees", None)
        if not callable(function_degrees):
            raise ValueError(f"a smoothness prior needs the polynomial degree of every feature; "
                             f"{type(descriptor).__name__} does not define one (ACE does)")
        of_descriptors = function_degrees().to(torch.float64)                # (nelements, K)
        pieces = []
        for block in self.potential.head.feature_blocks():
            degrees = of_descriptors[:, block.start:block.stop]
            pieces.append(degrees)
            if block.quadratic:
                a, b = torch.triu_indices(degrees.shape[1], degrees.shape[1])
                pieces.append(degrees[:, a] + degrees[:, b])
        degrees = torch.cat(pieces, dim=1)
        if self.bias:
            degrees = torch.cat([degrees.new_zeros(self.num_elements, 1), degrees], dim=1)
        return degrees.reshape(-1)

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """(nelements, 1 + num_features) ``.snapcoeff``-ordered coefficients from a solution x (num_columns,)."""
        blocks = x.reshape(self.num_elements, self.block_width)
        if not self.bias:
            blocks = torch.cat([blocks.new_zeros(self.num_elements, 1), blocks], dim=1)
        return blocks

    def batches(self, configurations: Sequence[Configuration], chunk_atoms: int = 2000,
                group_index: dict[str, int] | None = None, offset: int = 0,
                dtype: torch.dtype = torch.float64) -> Iterator[AtomsBatch]:
        """Neighbor-listed batches of about ``chunk_atoms`` atoms (whole configurations, in order).

        ``config_id`` of each batch entry is its position in ``configurations`` plus ``offset``.
        """
        elements, cutoff = self.potential.elements, self.potential.cutoff
        group_index = group_index or {}
        items, atoms = [], 0
        for k, config in enumerate(configurations):
            items.append(process_configuration(config, elements, cutoff, group_index.get(config.group, 0), offset + k))
            atoms += config.num_atoms
            if atoms >= chunk_atoms:
                yield collate(items, dtype)
                items, atoms = [], 0
        if items:
            yield collate(items, dtype)

    def rows(self, batch: AtomsBatch, test: torch.Tensor | None = None) -> DesignRows:
        """Rows of one batch; ``test`` (nconfigs,) marks test configurations (default none)."""
        pot = self.potential
        nconf, natoms, nel, M = batch.num_configs, batch.total_atoms, self.num_elements, self.num_features
        need_grad = self.forces or self.stress
        rij = batch.rij().detach()
        species, pair_i, ac = batch.species, batch.pair_i, batch.atom_config
        if need_grad:
            B, dB = descriptor_and_pair_jacobian(pot.descriptor, rij, pair_i, batch.pair_j, species, natoms)
        else:
            with torch.no_grad():
                B, dB = pot.descriptor(rij, pair_i, batch.pair_j, species, natoms), None
        feats = pot.head.features(B)
        natoms_f = batch.num_atoms.to(B.dtype)
        test = torch.zeros(nconf, dtype=torch.bool, device=B.device) if test is None else test.to(B.device)
        e_ref, f_ref, s_ref = self._reference(batch, rij)

        parts_A, parts = [], []

        def add(A_rows, b, w, kind, config):
            parts_A.append(A_rows)
            parts.append((b, w, torch.full_like(config, kind), config))

        if self.energy:
            energy = torch.zeros(nconf * nel, M, dtype=B.dtype, device=B.device)
            energy.index_add_(0, ac * nel + species, feats)
            energy = energy.reshape(nconf, nel, M) / natoms_f[:, None, None]
            if self.bias:
                counts = torch.zeros(nconf * nel, dtype=B.dtype, device=B.device)
                counts.index_add_(0, ac * nel + species, torch.ones_like(B[:, 0]))
                energy = torch.cat([(counts.reshape(nconf, nel) / natoms_f[:, None])[:, :, None], energy], dim=2)
            m = batch.energy_mask
            cfg = torch.arange(nconf, device=B.device)[m]
            add(energy.reshape(nconf, -1)[m], ((batch.energy - e_ref) / natoms_f)[m], batch.energy_weight[m],
                ENERGY, cfg)
        if need_grad:
            assert dB is not None
            force_rows, virial = self._gradient_rows(batch, rij, B, dB)
        if self.forces:
            m = batch.forces_mask.repeat_interleave(3)
            A_f = self._pad_bias(force_rows.reshape(natoms * 3, nel, M))
            add(A_f.reshape(natoms * 3, -1)[m], (batch.forces - f_ref).reshape(-1)[m],
                batch.force_weight[ac].repeat_interleave(3)[m], FORCE, ac.repeat_interleave(3)[m])
        if self.stress:
            volume = batch.volume()
            m = batch.stress_mask & (volume > 0)
            scale = self.stress_scale / volume.clamp_min(1e-300)
            A_s = self._pad_bias(virial * scale[:, None, None, None]).reshape(nconf, 6, -1)[m].reshape(-1, self.num_columns)
            b_s = (self.stress_target_scale * batch.stress - self.stress_scale * s_ref)[m].reshape(-1)
            add(A_s, b_s, batch.stress_weight[m].repeat_interleave(6), STRESS,
                torch.arange(nconf, device=B.device)[m].repeat_interleave(6))
        A = torch.cat(parts_A) if parts_A else B.new_zeros(0, self.num_columns)
        b, w, kind, cfg = (torch.cat([p[k] for p in parts]) for k in range(4))
        return DesignRows(A=A, b=b, w=w.to(B.dtype), kind=kind, config=batch.config_id[cfg], group=batch.group[cfg],
                          test=test[cfg])

    def _pad_bias(self, blocks: torch.Tensor) -> torch.Tensor:
        """Prepend the (zero) constant column to each element block of force/stress rows when ``bias``."""
        if not self.bias:
            return blocks
        return torch.cat([blocks.new_zeros(*blocks.shape[:-1], 1), blocks], dim=-1)

    def _gradient_rows(self, batch: AtomsBatch, rij: torch.Tensor, B: torch.Tensor,
                       dB: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Force rows (natoms, 3, nel, M) and strain derivatives (nconfigs, 6, nel, M) of the features, block by
        block of the head's :meth:`feature_blocks`."""
        rows = [feature_gradient_rows(B[:, b.start:b.stop], dB[:, :, b.start:b.stop], rij, batch.pair_i, batch.pair_j,
                                      batch.species, batch.pair_config, batch.num_configs, self.num_elements,
                                      quadratic=b.quadratic)
                for b in self.potential.head.feature_blocks()]
        if len(rows) == 1:
            return rows[0]
        return torch.cat([f for f, _ in rows], dim=-1), torch.cat([v for _, v in rows], dim=-1)

    def _reference(self, batch: AtomsBatch, rij: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reference-potential energies (nconfigs,), forces (natoms, 3) and ASE stress (nconfigs, 6)."""
        ref = self.potential.reference
        nconf, natoms = batch.num_configs, batch.total_atoms
        zeros = (rij.new_zeros(nconf), rij.new_zeros(natoms, 3), rij.new_zeros(nconf, 6))
        if ref is None:
            return zeros
        require_additive(ref)
        rij = rij.detach().requires_grad_(True)
        with torch.enable_grad():
            atomic = ref(rij, batch.pair_i, batch.pair_j, batch.species, natoms)
            (g,) = torch.autograd.grad(atomic.sum(), rij, allow_unused=True)
        g = torch.zeros_like(rij) if g is None else g
        energy = rij.new_zeros(nconf).index_add_(0, batch.atom_config, atomic.detach())
        forces, dE_dstrain = forces_and_virial_from_pair_gradient(g, rij.detach(), batch.pair_i, batch.pair_j, natoms,
                                                                  batch.atom_config[batch.pair_i], nconf)
        volume = batch.volume()
        inv = torch.where(volume > 0, 1.0 / volume.clamp_min(1e-300), torch.zeros_like(volume))
        return energy, forces, voigt(dE_dstrain) * inv[:, None]
