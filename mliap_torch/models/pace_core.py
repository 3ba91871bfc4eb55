"""PACE's core repulsion and energy cutoff (the ``core-repulsion`` and ``rho_core_cut`` of pacemaker potentials).

As in the PACE evaluator (``ACERadialFunctions::radcore`` and ``ACEAbstractBasisSet::inner_cutoff`` of python-ace's
``ace-evaluator``, used by ``ACEBEvaluator``/``ACECTildeEvaluator::compute_atom``), for a central atom i of element
e with neighbours j at r_ij < r_c(e, e_j):

    φ(r)     = |pre| exp(-|λ| r²) / r · (1 + cos(π r / r_c)) / 2      (0 where |λ| r² ≥ 50)
               × f_in(r)   with inner_cutoff_type ``distance``: 1 below r_in - δ_in, 0 above r_in
    ρ_core,i = Σ_j φ(r_ij)
    E_i      = E_model,i · f_cut(ρ_core,i) + ρ_core,i

where ``f_cut(ρ)`` is 1 below ``rho_core_cut - drho_core_cut``, 0 above ``rho_core_cut`` and PACE's quintic
step in between (:func:`cutoff_poly`). This reference is therefore not additive: it switches the model's energy off
where the core density is large (pacemaker's default ``rho_core_cut`` is 100000 eV, far above physical values).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from ..registry import register_reference
from .reference import ReferencePotential

INNER_CUTOFF_TYPES = ("density", "distance")
"""PACE's inner cutoff types this reference represents (``zbl`` is not)."""


def cutoff_poly(x: torch.Tensor, x_in: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """PACE's ``cutoff_func_poly``: 1 for x ≤ x_in - δ, 0 for x ≥ x_in, a quintic step in between (elementwise)."""
    middle = (x > x_in - delta) & (x < x_in)
    width = torch.where(middle, delta, torch.ones_like(delta))
    t = torch.where(middle, 1 - 2 * (1 + (x - x_in) / width), torch.zeros_like(x))
    step = 0.5 + 7.5 / 2 * (t / 4 - t ** 3 / 6 + t ** 5 / 20)
    return torch.where(x <= x_in - delta, torch.ones_like(x), torch.where(middle, step, torch.zeros_like(x)))


def _table(value: Sequence[Sequence[float]], n: int, name: str) -> torch.Tensor:
    t = torch.tensor([[float(v) for v in row] for row in value], dtype=torch.float64)
    if t.shape != (n, n):
        raise ValueError(f"PaceCoreRepulsion: {name} must be {n}x{n} (one value per element pair), got {value!r}")
    return t


@register_reference("pace_core")
class PaceCoreRepulsion(ReferencePotential):
    """PACE's core repulsion ρ_core and the energy cutoff ``E = E_model · f_cut(ρ_core) + ρ_core`` (eV).

    Args:
        elements: element symbols (index = species index).
        prehc: (nelements, nelements) prefactor of the repulsion, eV·Å, indexed [central, neighbour] (PACE's
            ``core-repulsion: [pre, λ]``).
        lambdahc: (nelements, nelements) exponent λ of the repulsion, Å⁻².
        rcut: (nelements, nelements) cutoffs r_c, Å (the ACE bonds' ``rcut``).
        r_in: (nelements, nelements) inner cutoff, Å (used with ``distance``).
        delta_in: (nelements, nelements) width of the inner cutoff, Å.
        inner_cutoff_type: ``distance`` (the repulsion acts below r_in only) or ``density`` (everywhere).
        rho_core_cut: per element the energy cutoff ρ_c, eV.
        drho_core_cut: per element the width of the energy cutoff, eV.
    """

    additive: ClassVar[bool] = False
    # buffers registered in __init__ (declared for the type checker)
    prehc: torch.Tensor
    lambdahc: torch.Tensor
    rcut: torch.Tensor
    r_in: torch.Tensor
    delta_in: torch.Tensor
    rho_core_cut: torch.Tensor
    drho_core_cut: torch.Tensor

    def __init__(self, elements: Sequence[str], prehc: Sequence[Sequence[float]], lambdahc: Sequence[Sequence[float]],
                 rcut: Sequence[Sequence[float]], r_in: Sequence[Sequence[float]], delta_in: Sequence[Sequence[float]],
                 inner_cutoff_type: str, rho_core_cut: Sequence[float], drho_core_cut: Sequence[float]):
        super().__init__()
        self.elements = [str(e) for e in elements]
        n = len(self.elements)
        if inner_cutoff_type not in INNER_CUTOFF_TYPES:
            raise ValueError(f"PaceCoreRepulsion: inner_cutoff_type {inner_cutoff_type!r} is not one of "
                             f"{list(INNER_CUTOFF_TYPES)}")
        self.inner_cutoff_type = inner_cutoff_type
        for name, table in (("prehc", prehc), ("lambdahc", lambdahc), ("rcut", rcut), ("r_in", r_in),
                            ("delta_in", delta_in)):
            self.register_buffer(name, _table(table, n, name))
        for name, values in (("rho_core_cut", rho_core_cut), ("drho_core_cut", drho_core_cut)):
            if len(values) != n:
                raise ValueError(f"PaceCoreRepulsion: {name} needs one value per element ({n}), got {list(values)}")
            self.register_buffer(name, torch.tensor([float(v) for v in values], dtype=torch.float64))

    @property
    def cutoff(self) -> float:
        """Largest r_c, Å."""
        return float(self.rcut.max())

    def settings(self) -> dict[str, Any]:
        def rows(t: torch.Tensor) -> list[list[float]]:
            return [[float(v) for v in row] for row in t]

        return {"elements": list(self.elements), "prehc": rows(self.prehc), "lambdahc": rows(self.lambdahc),
                "rcut": rows(self.rcut), "r_in": rows(self.r_in), "delta_in": rows(self.delta_in),
                "inner_cutoff_type": self.inner_cutoff_type,
                "rho_core_cut": [float(v) for v in self.rho_core_cut],
                "drho_core_cut": [float(v) for v in self.drho_core_cut]}

    def pair_energy(self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> torch.Tensor:
        """φ(r) (npairs,) eV at distances r (npairs,) Å of central species si and neighbour species sj."""
        def pair(t: torch.Tensor) -> torch.Tensor:
            return t[si, sj].to(r.dtype)

        rcut, pre, lam = pair(self.rcut), pair(self.prehc).abs(), pair(self.lambdahc).abs()
        lr2 = lam * r * r
        inside = (r < rcut) & (lr2 < 50.0)
        rs = torch.where(inside, r, 0.5 * rcut)
        phi = pre * torch.exp(-lam * rs * rs) / rs * 0.5 * (1 + torch.cos(math.pi * rs / rcut))
        if self.inner_cutoff_type == "distance":
            phi = phi * cutoff_poly(rs, pair(self.r_in), pair(self.delta_in))
        return torch.where(inside, phi, torch.zeros_like(phi))

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        """ρ_core (num_atoms,) eV: Σ_j φ(r_ij) over the full pair list ``rij`` (npairs, 3) Å of each central atom."""
        r = torch.linalg.vector_norm(rij, dim=-1)
        phi = self.pair_energy(r, species[pair_i], species[pair_j])
        return torch.zeros(num_atoms, dtype=rij.dtype, device=rij.device).index_add(0, pair_i, phi)

    def combine(self, model_energies: torch.Tensor, reference_energies: torch.Tensor,
                species: torch.Tensor) -> torch.Tensor:
        """``E_model · f_cut(ρ_core) + ρ_core`` (natoms,) eV."""
        rho_cut = self.rho_core_cut[species].to(reference_energies.dtype)
        fcut = cutoff_poly(reference_energies, rho_cut, self.drho_core_cut[species].to(reference_energies.dtype))
        return model_energies * fcut + reference_energies
