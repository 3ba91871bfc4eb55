"""PACE radial basis functions g_k(r) and radial functions R_nl(r) = Σ_k c_nlk g_k(r).

The definitions follow the ML-PACE evaluator (``ace_radial.cpp`` of ``lammps-user-pace``), without
its spline tabulation:

- ``ChebExpCos`` (parameter λ): ``x = 1 - 2 (e^{-λ r/r_c} - e^{-λ}) / (1 - e^{-λ})``,
  ``g_0 = 1``, ``g_k = (1 - T_k(x)) / 2`` (k ≥ 1), times the envelope ``(1 + cos(π r / r_c)) / 2``
  and, for ``r > r_c - d_c``, the cutoff ``(1 + cos(π (r - r_c + d_c) / d_c)) / 2``.
- ``ChebPow`` (parameter λ): ``x = 1 - 2 (1 - r/r_c)^λ``, ``g_k = (1 - T_{k+1}(x)) / 2``.
- ``ChebLinear``: ``x = 1 - r/r_c``, ``g_k = (1 - T_{k+1}(x)) / 2``.
- ``SBessel``: the simplified (orthogonalised) spherical Bessel functions of Kocer et al., which
  vanish with their first derivative at ``r_c``.

All vanish for ``r ≥ r_c``. An optional inner cutoff (PACE's ``inner_cutoff_type: distance``,
parameters ``r_in``, ``delta_in``) multiplies them by a quintic switch that rises from 0 at
``r_in - delta_in`` to 1 at ``r_in``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

RADIAL_BASES = ("ChebExpCos", "ChebPow", "ChebLinear", "SBessel")


def chebyshev(x: torch.Tensor, n: int) -> torch.Tensor:
    """(..., n) Chebyshev polynomials of the first kind T_0 … T_{n-1} at ``x``."""
    values = [torch.ones_like(x), x]
    for _ in range(2, n):
        values.append(2 * x * values[-1] - values[-2])
    return torch.stack(values[:n], dim=-1)


def cheb_exp_cos(r: torch.Tensor, lam: torch.Tensor, rcut: torch.Tensor, dcut: torch.Tensor, n: int) -> torch.Tensor:
    """(npairs, n) PACE ``ChebExpCos`` basis for distances ``r`` < ``rcut`` (all per pair, Å)."""
    y1 = torch.exp(-lam * r / rcut)
    y2 = torch.exp(-lam)
    x = 1 - 2 * (y1 - y2) / (1 - y2)
    T = chebyshev(x, max(n, 2))[:, :n]
    g = torch.cat([torch.ones_like(T[:, :1]), 0.5 - 0.5 * T[:, 1:]], dim=1)
    envelope = 0.5 * (1 + torch.cos(math.pi * r / rcut))
    inner = rcut - dcut
    in_switch = (r > inner) & (dcut > 0)
    x = torch.where(in_switch, (r - inner) / torch.where(dcut > 0, dcut, torch.ones_like(dcut)), torch.zeros_like(r))
    switch = torch.where(in_switch, 0.5 * (1 + torch.cos(math.pi * x)), torch.ones_like(r))
    return g * (envelope * switch)[:, None]


def cheb_pow(r: torch.Tensor, lam: torch.Tensor, rcut: torch.Tensor, n: int) -> torch.Tensor:
    """(npairs, n) PACE ``ChebPow`` basis for distances ``r`` < ``rcut``."""
    x = 1 - 2 * (1 - r / rcut) ** lam
    return 0.5 - 0.5 * chebyshev(x, n + 1)[:, 1:]


def cheb_linear(r: torch.Tensor, rcut: torch.Tensor, n: int) -> torch.Tensor:
    """(npairs, n) PACE ``ChebLinear`` basis for distances ``r`` < ``rcut``."""
    x = 1 - r / rcut
    return 0.5 - 0.5 * chebyshev(x, n + 1)[:, 1:]


def _sinc(x: torch.Tensor) -> torch.Tensor:
    return torch.sinc(x / math.pi)


def simplified_bessel(r: torch.Tensor, rcut: torch.Tensor, n: int) -> torch.Tensor:
    """(npairs, n) PACE ``SBessel`` basis for distances ``r`` < ``rcut``."""
    def aux(k: int) -> torch.Tensor:
        pref = (-1) ** k * math.sqrt(2) * math.pi * (k + 1) * (k + 2) / math.sqrt((k + 1) ** 2 + (k + 2) ** 2)
        return pref / rcut ** 1.5 * (_sinc(r * (k + 1) * math.pi / rcut) + _sinc(r * (k + 2) * math.pi / rcut))

    g = [aux(0)]
    d_prev = 1.0
    for k in range(1, n):
        e = k * k * (k + 2) ** 2 / (4 * (k + 1) ** 4 + 1)
        d = 1 - e / d_prev
        g.append((aux(k) + math.sqrt(e / d_prev) * g[-1]) / math.sqrt(d))
        d_prev = d
    return torch.stack(g, dim=-1)


def pace_inner_cutoff(inner_cutoff_type: str, r_in: float, delta_in: float) -> tuple[float, float]:
    """``(r_in, delta_in)`` Å of the radial basis' inner cutoff for PACE's ``inner_cutoff_type`` of a bond with
    ``rcut_in`` = ``r_in`` and ``dcut_in`` = ``delta_in``, as ``ACERadialFunctions::radbase`` applies it:
    ``distance`` keeps them; ``density`` has none (0, 0); ``zbl`` resets the inner cutoff to ``dcut_in == 0``
    (1 Å when δ_in is 0: the basis vanishes below 1 Å; else 0, none), since ZBL takes over by its own switch.

    Raises:
        ValueError: for other types.
    """
    if inner_cutoff_type == "distance":
        return float(r_in), float(delta_in)
    if inner_cutoff_type == "density":
        return 0.0, 0.0
    if inner_cutoff_type == "zbl":
        return (1.0, 0.0) if float(delta_in) == 0.0 else (0.0, 0.0)
    raise ValueError(f"inner_cutoff_type {inner_cutoff_type!r} is not one of 'density', 'distance', 'zbl'")


def inner_switch(r: torch.Tensor, r_in: torch.Tensor, delta_in: torch.Tensor) -> torch.Tensor:
    """(npairs,) PACE inner cutoff: 0 for r ≤ r_in - δ, 1 for r ≥ r_in, a quintic step in between."""
    inside = (r < r_in) & (r > r_in - delta_in)
    width = torch.where(inside, delta_in, torch.ones_like(delta_in))
    x = torch.where(inside, 1 - 2 * (1 + (r - r_in) / width), torch.zeros_like(r))
    fc = 0.5 + 7.5 / 2 * (x / 4 - x ** 3 / 6 + x ** 5 / 20)
    return torch.where(r >= r_in, torch.ones_like(r), torch.where(inside, 1 - fc, torch.zeros_like(r)))


class RadialBasis(nn.Module):
    """The radial basis g_k(r) of every element pair (PACE's ``radbase``), k = 0 … nradbase-1.

    Per-element-pair parameters are (nelements, nelements) tables indexed ``[species_i, species_j]``.

    Args:
        nradbase: number of basis functions.
        kinds: (nelements, nelements) names from :data:`RADIAL_BASES`.
        lam: radial parameter λ (ignored by ``ChebLinear`` and ``SBessel``).
        rcut: outer cutoff, Å.
        dcut: width of the ``ChebExpCos`` cutoff switch, Å.
        r_in: inner cutoff, Å (``r_in = 0`` switches it off).
        delta_in: width of the inner cutoff, Å.
    """

    # buffers registered in __init__ (declared for the type checker)
    kind_index: torch.Tensor
    lam: torch.Tensor
    rcut: torch.Tensor
    dcut: torch.Tensor
    r_in: torch.Tensor
    delta_in: torch.Tensor

    def __init__(self, nradbase: int, kinds: Sequence[Sequence[str]], lam: torch.Tensor, rcut: torch.Tensor,
                 dcut: torch.Tensor, r_in: torch.Tensor, delta_in: torch.Tensor):
        super().__init__()
        self.nradbase = int(nradbase)
        self.kinds = [list(row) for row in kinds]
        names = sorted({k for row in self.kinds for k in row})
        unknown = [k for k in names if k not in RADIAL_BASES]
        if unknown:
            raise ValueError(f"unknown radial basis {unknown}; choose from {list(RADIAL_BASES)}")
        self.kind_names = names
        kind_index = torch.tensor([[names.index(k) for k in row] for row in self.kinds], dtype=torch.int64)
        self.register_buffer("kind_index", kind_index)
        for name, value in (("lam", lam), ("rcut", rcut), ("dcut", dcut), ("r_in", r_in), ("delta_in", delta_in)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float64).clone())

    def forward(self, r: torch.Tensor, species_i: torch.Tensor, species_j: torch.Tensor,
                rcut: torch.Tensor | None = None) -> torch.Tensor:
        """(npairs, nradbase) g_k at distances ``r`` (npairs,) Å; exactly zero outside (r_in - δ, r_c).

        ``rcut``: (nelements, nelements) cutoffs r_c, Å, in place of the ``rcut`` buffer (learned cutoffs)."""
        def pair(table: torch.Tensor) -> torch.Tensor:
            return table[species_i, species_j].to(r.dtype)

        table = self.rcut if rcut is None else rcut
        rcut, dcut, lam, r_in, delta_in = (pair(t) for t in (table, self.dcut, self.lam, self.r_in, self.delta_in))
        inside = (r < rcut) & (r > r_in - delta_in)
        r_safe = torch.where(inside, r, 0.5 * rcut)
        n = self.nradbase
        g = torch.zeros((r.shape[0], n), dtype=r.dtype, device=r.device)
        kind = self.kind_index[species_i, species_j]
        for k, name in enumerate(self.kind_names):
            if name == "ChebExpCos":
                values = cheb_exp_cos(r_safe, lam, rcut, dcut, n)
            elif name == "ChebPow":
                values = cheb_pow(r_safe, lam, rcut, n)
            elif name == "ChebLinear":
                values = cheb_linear(r_safe, rcut, n)
            else:
                values = simplified_bessel(r_safe, rcut, n)
            g = torch.where((kind == k)[:, None], values, g) if len(self.kind_names) > 1 else values
        switch = inner_switch(r_safe, r_in, delta_in)
        return torch.where(inside[:, None], g * switch[:, None], torch.zeros_like(g))
