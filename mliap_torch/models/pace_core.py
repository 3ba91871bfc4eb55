"""PACE's core repulsion and energy cutoff (the ``core-repulsion``, ``rho_core_cut`` and ``inner_cutoff_type`` of
pacemaker potentials).

As in the PACE evaluator (``ACERadialFunctions::radcore``/``ZBL``, ``ACEAbstractBasisSet::inner_cutoff`` and
``ACEBEvaluator``/``ACECTildeEvaluator::compute_atom`` of python-ace's ``ace-evaluator``), for a central atom i of
element e with neighbours j at r_ij < r_c(e, e_j):

``density`` and ``distance``::

    φ(r)     = |pre| exp(-|λ| r²) / r · (1 + cos(π r / r_c)) / 2      (0 where |λ| r² ≥ 50)
               × f_in(r)   with ``distance``: 1 below r_in - δ_in, 0 above r_in
    ρ_core,i = Σ_j φ(r_ij)
    E_i      = E_model,i · f_cut(ρ_core,i) + ρ_core,i + E0_e

where ``f_cut(ρ)`` is 1 below ``rho_core_cut - drho_core_cut``, 0 above ``rho_core_cut`` and PACE's quintic
step in between (:func:`cutoff_poly`); pacemaker's default ``rho_core_cut`` is 100000 eV, far above physical values.

``zbl`` (ZBL below the inner cutoff, switched by the nearest neighbour)::

    φ(r)     = pre · K/2 · Z_i Z_j · (ϕ(r/a)/r + S(r)) · f_c(r; r_c, dcut)        a = 0.4685 / (Z_i^0.23 + Z_j^0.23)
    ρ_core,i = Σ_j φ(r_ij)
    f_i      = f_c(r_in - r_min; δ_in, δ_in)   of the neighbour with the smallest r_ij - (r_in - δ_in)
    E_i      = E_model,i · f_i + ρ_core,i · (1 - f_i) + E0_e

with ϕ the universal ZBL screening function, K = e²/(4πε₀) in eV·Å, S(r) LAMMPS' ``pair_style zbl`` switch
between r_c - dcut and r_c, f_c PACE's quintic step and f_i = 1 for an atom without neighbours. The model's energy
is thus PACE's alone while every neighbour is beyond r_in, ZBL's alone once one comes within r_in - δ_in.

This reference is therefore not additive: its :meth:`PaceCoreRepulsion.forward` gives per atom ``[ρ_core, f_cut]``
and :meth:`PaceCoreRepulsion.combine` makes the atom's energy from them. ``E0`` is the per-element shift of a
``.yace`` file, added after the cutoff as PACE does.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from ..registry import register_reference
from .reference import ReferencePotential

INNER_CUTOFF_TYPES = ("density", "distance", "zbl")
"""PACE's inner cutoff types (``inner_cutoff_type``)."""
ZBL_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_EXPONENTS = (-3.19980, -0.94229, -0.40290, -0.20162)
"""The universal ZBL screening function ϕ(x) = Σ_k c_k exp(e_k x) (as LAMMPS' ``pair_style zbl`` and PACE)."""
COULOMB_EV_ANGSTROM = 14.399645351950543
"""e²/(4πε₀) in eV·Å, PACE's value."""


def cutoff_poly(x: torch.Tensor, x_in: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """PACE's ``cutoff_func_poly``: 1 for x ≤ x_in - δ, 0 for x ≥ x_in, a quintic step in between (elementwise)."""
    middle = (x > x_in - delta) & (x < x_in)
    width = torch.where(middle, delta, torch.ones_like(delta))
    t = torch.where(middle, 1 - 2 * (1 + (x - x_in) / width), torch.zeros_like(x))
    step = 0.5 + 7.5 / 2 * (t / 4 - t ** 3 / 6 + t ** 5 / 20)
    return torch.where(x <= x_in - delta, torch.ones_like(x), torch.where(middle, step, torch.zeros_like(x)))


def _zbl_energy_terms(r: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ϕ(r/a)/r and its first and second derivatives in r (all shaped like ``r``, Å; ``a`` the screening length)."""
    x = r / a
    phi = dphi = d2phi = torch.zeros_like(r)
    for c, e in zip(ZBL_COEFFICIENTS, ZBL_EXPONENTS):
        term = c * torch.exp(e * x)
        phi, dphi, d2phi = phi + term, dphi + e * term, d2phi + e * e * term
    return (phi / r, -phi / r ** 2 + dphi / (a * r),
            2 * phi / r ** 3 - 2 * dphi / (a * r ** 2) + d2phi / (a * a * r))


def zbl_core(r: torch.Tensor, Zi: torch.Tensor, Zj: torch.Tensor, prefactor: torch.Tensor, cut_out: torch.Tensor,
             cut_in: torch.Tensor) -> torch.Tensor:
    """PACE's ``ACERadialFunctions::ZBL`` (npairs,) eV at distances r (npairs,) Å: ZBL between atomic numbers Zi and
    Zj, scaled by ``prefactor``, shifted by LAMMPS' switch S(r) between ``cut_in`` and ``cut_out`` and multiplied by
    PACE's quintic step from ``cut_in`` to ``cut_out``; 0 at r ≥ cut_out (all per pair)."""
    a = 0.46850 / (Zi ** 0.23 + Zj ** 0.23)
    inside = r < cut_out
    rs = torch.where(inside, r, 0.5 * cut_out)
    energy, _, _ = _zbl_energy_terms(rs, a)
    Ec, dEc, d2Ec = _zbl_energy_terms(cut_out, a)
    width = cut_out - cut_in
    A = (-3 * dEc + width * d2Ec) / width ** 2
    B = (2 * dEc - width * d2Ec) / width ** 3
    C = -Ec + width * dEc / 2 - width ** 2 * d2Ec / 12
    t = (rs - cut_in).clamp_min(0.0)
    switch = torch.where(rs <= cut_in, C, A / 3 * t ** 3 + B / 4 * t ** 4 + C)
    value = prefactor * COULOMB_EV_ANGSTROM / 2 * Zi * Zj * (energy + switch) * cutoff_poly(rs, cut_out, width)
    return torch.where(inside, value, torch.zeros_like(value))


def _table(value: Sequence[Sequence[float]], n: int, name: str) -> torch.Tensor:
    t = torch.tensor([[float(v) for v in row] for row in value], dtype=torch.float64)
    if t.shape != (n, n):
        raise ValueError(f"PaceCoreRepulsion: {name} must be {n}x{n} (one value per element pair), got {value!r}")
    return t


@register_reference("pace_core")
class PaceCoreRepulsion(ReferencePotential):
    """PACE's core repulsion ρ_core and the energy cutoff (module doc): ``E = E_model · f_cut(ρ_core) + ρ_core + E0``
    (``density``, ``distance``) or ``E = E_model · f + ρ_core · (1 - f) + E0`` with f by the nearest neighbour
    (``zbl``), eV.

    Args:
        elements: element symbols (index = species index).
        prehc: (nelements, nelements) prefactor of the repulsion, eV·Å (``zbl``: of ZBL, dimensionless), indexed
            [central, neighbour] (PACE's ``core-repulsion: [pre, λ]``).
        lambdahc: (nelements, nelements) exponent λ of the repulsion, Å⁻² (not used by ``zbl``).
        rcut: (nelements, nelements) cutoffs r_c, Å (the ACE bonds' ``rcut``).
        r_in: (nelements, nelements) inner cutoff, Å (used with ``distance`` and ``zbl``).
        delta_in: (nelements, nelements) width of the inner cutoff, Å.
        inner_cutoff_type: ``distance`` (the repulsion acts below r_in only), ``density`` (everywhere) or ``zbl``.
        rho_core_cut: per element the energy cutoff ρ_c, eV (not used by ``zbl``).
        drho_core_cut: per element the width of the energy cutoff, eV (not used by ``zbl``).
        dcut: (nelements, nelements) the bonds' ``dcut``, Å: ZBL's switch starts at r_c - dcut (``zbl`` only).
        energy_shift: per element E0, eV, added after the cutoff (a ``.yace`` file's ``E0``); default 0.
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
    dcut: torch.Tensor
    energy_shift: torch.Tensor
    atomic_numbers: torch.Tensor

    def __init__(self, elements: Sequence[str], prehc: Sequence[Sequence[float]], lambdahc: Sequence[Sequence[float]],
                 rcut: Sequence[Sequence[float]], r_in: Sequence[Sequence[float]], delta_in: Sequence[Sequence[float]],
                 inner_cutoff_type: str, rho_core_cut: Sequence[float], drho_core_cut: Sequence[float],
                 dcut: Sequence[Sequence[float]] | None = None, energy_shift: Sequence[float] | None = None):
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
        if inner_cutoff_type == "zbl" and dcut is None:
            raise ValueError("PaceCoreRepulsion: inner_cutoff_type 'zbl' needs the bonds' dcut (ZBL's switch starts at "
                             "rcut - dcut)")
        self.register_buffer("dcut", _table(dcut if dcut is not None else [[0.0] * n] * n, n, "dcut"))
        from ase.data import atomic_numbers

        unknown = [e for e in self.elements if e not in atomic_numbers]
        if unknown and inner_cutoff_type == "zbl":
            raise ValueError(f"PaceCoreRepulsion: ZBL needs atomic numbers; {unknown} are not element symbols")
        self.register_buffer("atomic_numbers", torch.tensor([float(atomic_numbers.get(e, 0)) for e in self.elements],
                                                            dtype=torch.float64))
        shift = [0.0] * n if energy_shift is None else list(energy_shift)
        for name, values in (("rho_core_cut", rho_core_cut), ("drho_core_cut", drho_core_cut),
                             ("energy_shift", shift)):
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
                "drho_core_cut": [float(v) for v in self.drho_core_cut], "dcut": rows(self.dcut),
                "energy_shift": [float(v) for v in self.energy_shift]}

    def pair_energy(self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> torch.Tensor:
        """φ(r) (npairs,) eV at distances r (npairs,) Å of central species si and neighbour species sj."""
        def pair(t: torch.Tensor) -> torch.Tensor:
            return t[si, sj].to(r.dtype)

        if self.inner_cutoff_type == "zbl":
            return zbl_core(r, self.atomic_numbers[si].to(r.dtype), self.atomic_numbers[sj].to(r.dtype),
                            pair(self.prehc), pair(self.rcut), pair(self.rcut) - pair(self.dcut))
        rcut, pre, lam = pair(self.rcut), pair(self.prehc).abs(), pair(self.lambdahc).abs()
        lr2 = lam * r * r
        inside = (r < rcut) & (lr2 < 50.0)
        rs = torch.where(inside, r, 0.5 * rcut)
        phi = pre * torch.exp(-lam * rs * rs) / rs * 0.5 * (1 + torch.cos(math.pi * rs / rcut))
        if self.inner_cutoff_type == "distance":
            phi = phi * cutoff_poly(rs, pair(self.r_in), pair(self.delta_in))
        return torch.where(inside, phi, torch.zeros_like(phi))

    def nearest_neighbour_switch(self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor, pair_i: torch.Tensor,
                                 num_atoms: int) -> torch.Tensor:
        """``zbl``'s f_i (num_atoms,): PACE's quintic step of r_in - r_min over δ_in for the neighbour j with the
        smallest r_ij - (r_in - δ_in) (within its bond's r_c); 1 for an atom without neighbours."""
        r_in, delta = self.r_in[si, sj].to(r.dtype), self.delta_in[si, sj].to(r.dtype)
        d = torch.where(r < self.rcut[si, sj].to(r.dtype), r - (r_in - delta), torch.full_like(r, math.inf))
        d_min = torch.full((num_atoms,), math.inf, dtype=r.dtype, device=r.device).scatter_reduce(
            0, pair_i, d, "amin", include_self=False)
        nearest = (d == d_min[pair_i]) & torch.isfinite(d)
        delta_min = torch.full((num_atoms,), -math.inf, dtype=r.dtype, device=r.device).scatter_reduce(
            0, pair_i, torch.where(nearest, delta, torch.full_like(delta, -math.inf)), "amax", include_self=False)
        found = torch.isfinite(d_min)
        delta_min = torch.where(found, delta_min, torch.ones_like(delta_min))
        transition = torch.where(found, delta_min - torch.where(found, d_min, torch.zeros_like(d_min)),
                                 -torch.ones_like(d_min))
        return cutoff_poly(transition, delta_min, delta_min)

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        """(num_atoms, 2) ``[ρ_core (eV), f_cut]`` of each central atom from the full pair list ``rij`` (npairs, 3) Å
        (species (natoms_all,) indexed by ``pair_i`` and ``pair_j``; the first ``num_atoms`` are the central atoms)."""
        r = torch.linalg.vector_norm(rij, dim=-1)
        si, sj = species[pair_i], species[pair_j]
        rho = torch.zeros(num_atoms, dtype=rij.dtype, device=rij.device).index_add(0, pair_i, self.pair_energy(r, si, sj))
        if self.inner_cutoff_type == "zbl":
            fcut = self.nearest_neighbour_switch(r, si, sj, pair_i, num_atoms)
        else:
            centers = species[:num_atoms]
            fcut = cutoff_poly(rho, self.rho_core_cut[centers].to(rho.dtype), self.drho_core_cut[centers].to(rho.dtype))
        return torch.stack([rho, fcut], dim=1)

    def combine(self, model_energies: torch.Tensor, reference_energies: torch.Tensor,
                species: torch.Tensor) -> torch.Tensor:
        """(natoms,) eV from the model's energies (natoms,) and :meth:`forward`'s ``[ρ_core, f_cut]`` (natoms, 2):
        ``E_model · f_cut + ρ_core + E0`` (``zbl``: ``E_model · f + ρ_core · (1 - f) + E0``)."""
        rho, fcut = reference_energies[:, 0], reference_energies[:, 1]
        core = rho * (1 - fcut) if self.inner_cutoff_type == "zbl" else rho
        return model_energies * fcut + core + self.energy_shift[species].to(rho.dtype)
