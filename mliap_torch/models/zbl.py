"""Ziegler–Biersack–Littmark screened nuclear repulsion, identical to LAMMPS ``pair_style zbl inner outer``.

For a pair of elements with nuclear charges ``Z_a``, ``Z_b`` at distance r (Å), LAMMPS (metal units) uses

    φ(r) = (Z_a Z_b e²/4πε0) / r · Σ_k c_k exp(−d_k r / a),   a = 0.46850 / (Z_a^0.23 + Z_b^0.23) Å,

plus, for all r < outer, the constant ``C`` and, for inner < r < outer, the switching polynomial
``A/3 t³ + B/4 t⁴`` (t = r − inner) whose coefficients make φ, φ′ and φ″ vanish at ``outer``
(``PairZBL::set_coeff`` in ``src/pair_zbl.cpp``). Constants are LAMMPS' (``pair_zbl_const.h``,
``qqr2e = 14.399645`` eV·Å for metal units).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..registry import register_reference
from .reference import ReferencePotential

QQR2E_METAL = 14.399645
"""e²/(4πε0) in eV·Å, as in LAMMPS ``units metal``."""
PZBL = 0.23
A0 = 0.46850
C = (0.02817, 0.28022, 0.50986, 0.18175)
D = (0.20162, 0.40290, 0.94229, 3.19980)


def _zbl_derivatives(r: float, zi: float, zj: float) -> tuple[float, float, float]:
    """φ, φ′, φ″ of the bare ZBL function at r (Å) for charges zi, zj (eV, eV/Å, eV/Å²)."""
    ainv = (zi ** PZBL + zj ** PZBL) / A0
    zze = zi * zj * QQR2E_METAL
    e = [math.exp(-d * ainv * r) for d in D]
    s = sum(c * ek for c, ek in zip(C, e))
    sp = sum(c * d * ainv * ek for c, d, ek in zip(C, D, e))
    spp = sum(c * (d * ainv) ** 2 * ek for c, d, ek in zip(C, D, e))
    rinv = 1.0 / r
    phi = zze * s * rinv
    dphi = zze * (-sp - s * rinv) * rinv
    d2phi = zze * (spp + 2.0 * sp * rinv + 2.0 * s * rinv * rinv) * rinv
    return phi, dphi, d2phi


@register_reference("zbl")
class ZBL(ReferencePotential):
    """ZBL pair repulsion with LAMMPS' switching between ``inner`` and ``outer`` (Å).

    Args:
        elements: element symbols (index = species index).
        z: nuclear charge of each element (LAMMPS ``pair_coeff i i zbl Z Z``; mixed pairs use Z_a, Z_b).
        inner: switching start, Å.
        outer: cutoff, Å.
    """

    type_name: str
    # buffers registered in __init__ (declared for the type checker)
    ainv: torch.Tensor
    zze: torch.Tensor
    switch: torch.Tensor
    c: torch.Tensor
    d: torch.Tensor

    def __init__(self, elements: Sequence[str], z: Sequence[float], inner: float, outer: float):
        super().__init__()
        if len(z) != len(elements):
            raise ValueError(f"ZBL: {len(z)} nuclear charges for {len(elements)} elements {list(elements)}")
        if not 0.0 < inner < outer:
            raise ValueError(f"ZBL: need 0 < inner < outer, got inner={inner}, outer={outer}")
        self.elements = list(elements)
        self.z = [float(v) for v in z]
        self.inner = float(inner)
        self.outer = float(outer)
        n = len(self.elements)
        ainv = torch.zeros(n, n, dtype=torch.float64)
        zze = torch.zeros(n, n, dtype=torch.float64)
        sw = torch.zeros(n, n, 3, dtype=torch.float64)
        tc = self.outer - self.inner
        for a in range(n):
            for b in range(n):
                za, zb = self.z[a], self.z[b]
                ainv[a, b] = (za ** PZBL + zb ** PZBL) / A0
                zze[a, b] = za * zb * QQR2E_METAL
                fc, fcp, fcpp = _zbl_derivatives(self.outer, za, zb)
                swa = (-3.0 * fcp + tc * fcpp) / (tc * tc)
                swb = (2.0 * fcp - tc * fcpp) / (tc * tc * tc)
                swc = -fc + (tc / 2.0) * fcp - (tc * tc / 12.0) * fcpp
                sw[a, b] = torch.tensor([swa / 3.0, swb / 4.0, swc], dtype=torch.float64)
        self.register_buffer("ainv", ainv)
        self.register_buffer("zze", zze)
        self.register_buffer("switch", sw)
        self.register_buffer("c", torch.tensor(C, dtype=torch.float64))
        self.register_buffer("d", torch.tensor(D, dtype=torch.float64))

    @property
    def cutoff(self) -> float:
        """Outer cutoff, Å."""
        return self.outer

    def settings(self) -> dict[str, Any]:
        return {"elements": list(self.elements), "z": list(self.z), "inner": self.inner, "outer": self.outer}

    def pair_energy(self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> torch.Tensor:
        """φ(r) (npairs,) eV for distances r (npairs,) Å between species si and sj; zero beyond ``outer``."""
        inside = r < self.outer
        rs = torch.where(inside, r, torch.full_like(r, self.outer))
        ainv = self.ainv[si, sj].to(r.dtype)
        screen = (self.c.to(r.dtype) * torch.exp(-self.d.to(r.dtype) * (ainv * rs)[:, None])).sum(-1)
        phi = self.zze[si, sj].to(r.dtype) * screen / rs
        sw = self.switch[si, sj].to(r.dtype)
        t = (rs - self.inner).clamp_min(0.0)
        phi = phi + sw[:, 2] + t ** 3 * (sw[:, 0] + sw[:, 1] * t)
        return torch.where(inside, phi, torch.zeros_like(phi))

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        """Per-atom energies (num_atoms,) eV: half of each pair energy of the full list ``rij`` (npairs, 3) Å."""
        r = torch.linalg.vector_norm(rij, dim=-1)
        phi = self.pair_energy(r, species[pair_i], species[pair_j])
        energies = torch.zeros(num_atoms, dtype=rij.dtype, device=rij.device)
        return energies.index_add(0, pair_i, 0.5 * phi)
