"""The SO(3) power spectrum of LAMMPS' ML-IAP (``descriptor so3``, as in PyXtal_FF), equal to LAMMPS' up to its rounding.

Every neighbour j of atom i (inside its element-pair cutoff) adds a Gaussian of width ``alpha`` at
``r_ij`` to the neighbour density of i, weighted by the neighbour's element weight and a cosine
switching function. The density is expanded in radial functions ``g_n`` (orthonormalised polynomials
``(rc - r)^(a+2)`` on ``[0, rc]``, ``n = 1..nmax``) and spherical harmonics ``Y_lm`` (``l ≤ lmax``)::

    c_i[n, l, m] = Σ_j w_j f_c(r_ij) R_nl(r_ij) Y_lm(r̂_ij)
    R_nl(r)      = 4π e^(-α r²) ∫_0^rc r'² g_n(r') e^(-α r'²) i_l(2α r r') dr'
    p_i[n1, n2, l] = 2√2 π / √(2l+1) · Σ_m Re(c_i[n1, l, m] · conj(c_i[n2, l, m])),   n2 ≤ n1

with ``i_l`` the modified spherical Bessel functions of the first kind, ``f_c(r) = (cos(π r/rc) + 1)/2``
and ``rc = rcutfac``. The integral is the Chebyshev–Gauss quadrature of ``src/ML-IAP/mliap_so3.cpp``
(``(nmax + lmax + 1)·10`` nodes). Descriptor order: ``n1`` outer, ``n2 ≤ n1``, ``l`` inner;
``K = nmax (nmax + 1) (lmax + 1) / 2``.

Where LAMMPS loses digits this module does not, so agreement with LAMMPS is limited by LAMMPS' own
rounding there (measured numbers: ``docs/so3.md``):

* the orthonormalisation ``W = S^(-1/2)`` of the radial polynomials and the quadrature weights are
  computed here in 50-digit arithmetic (``S`` has condition number 3.5e5 at nmax = 4, 6e8 at nmax = 6);
* ``i_l(x)`` comes from the power series for small x, where LAMMPS' upward recurrence is unstable
  (:func:`modified_spherical_bessel`; it matters for lmax ≥ 6 and small ``alpha``).

LAMMPS details reproduced on purpose:

* the radial functions and the switching function use ``rc = rcutfac`` itself, while a pair is in the
  neighbour list when ``r < rcutfac·(radelem_i + radelem_j)``: with radii 0.5 both are the same; with
  larger radii pairs beyond ``rcutfac`` contribute nothing, with smaller radii a pair drops out (with a
  jump in energy) at the element-pair cutoff;
* neighbour weights are ``welems`` truncated to integers (LAMMPS stores them in an ``int``), so
  ``welems 0.5`` makes an element invisible; the central atom's element does not enter otherwise;
* pairs shorter than 1e-8 Å are skipped.

The spherical harmonics are taken real (:mod:`.spherical_harmonics`): the sum over m is the same for
any unitary basis of each l, and the polynomial form has smooth derivatives at the poles.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import mpmath  # type: ignore[import-untyped]
import numpy as np
import torch

from ..registry import register_descriptor
from .base import Descriptor
from .spherical_harmonics import real_spherical_harmonics

SMALL = 1.0e-8
"""Pairs shorter than this (Å) are skipped, as in LAMMPS."""
_DIGITS = 50


def radial_overlap_inverse_sqrt(nmax: int) -> mpmath.matrix:
    """(nmax, nmax) ``W = S^(-1/2)`` (50 digits): orthonormalises the polynomials ``(rc - r)^(a+2)``, a = 1..nmax.

    ``S[a, b]`` is the overlap of the normalised polynomials a and b on ``[0, rc]`` (independent of rc);
    its condition number grows about 40-fold per radial function (6e8 at nmax = 6), hence the extended
    precision.
    """
    with mpmath.workdps(_DIGITS):
        t = [mpmath.mpf((2 * a + 5) * (2 * a + 6) * (2 * a + 7)) for a in range(1, nmax + 1)]
        S = mpmath.matrix(nmax, nmax)
        for a in range(nmax):
            for b in range(nmax):
                s = a + b + 2
                S[a, b] = mpmath.sqrt(t[a] * t[b]) / ((5 + s) * (6 + s) * (7 + s))
        evals, evecs = mpmath.eigsy(S)
        D = mpmath.diag([1 / mpmath.sqrt(v) for v in evals])
        return evecs * D * evecs.T


def radial_quadrature(nmax: int, lmax: int, rcut: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the radial integral of :math:`R_{nl}` (computed in 50 digits, then rounded).

    Returns:
        nodes (N,) Å on ``(0, rcut)`` and weights (nmax, N): ``R_nl(r) = 4π e^(-α r²) Σ_k
        weights[n-1, k] · i_l(2α r nodes[k])``, with ``N = (nmax + lmax + 1)·10`` Chebyshev nodes.
    """
    count = (nmax + lmax + 1) * 10
    W = radial_overlap_inverse_sqrt(nmax)
    nodes = np.empty(count)
    weights = np.empty((nmax, count))
    with mpmath.workdps(_DIGITS):
        rc, al = mpmath.mpf(rcut), mpmath.mpf(alpha)
        norm = [mpmath.sqrt(2 * rc ** (2 * a + 7) / ((2 * a + 5) * (2 * a + 6) * (2 * a + 7)))
                for a in range(1, nmax + 1)]
        for k in range(count):
            x = mpmath.cos((2 * k + 1) * mpmath.pi / (2 * count))
            xi = rc / 2 * (x + 1)
            phi = [(rc - xi) ** (a + 3) / norm[a] for a in range(nmax)]
            factor = rc / 2 * mpmath.pi / count * mpmath.sqrt(1 - x * x) * xi ** 2 * mpmath.exp(-al * xi ** 2)
            nodes[k] = float(xi)
            for n in range(nmax):
                weights[n, k] = float(factor * mpmath.fsum(W[n, a] * phi[a] for a in range(nmax)))
    return nodes, weights


def series_terms(xmax: float) -> int:
    """Terms of the power series of ``i_0`` that reach double precision for every ``0 < x ≤ xmax``."""
    term, total, k = 1.0, 1.0, 0
    while term > 1e-18 * total:
        k += 1
        term *= xmax * xmax / 2 / (k * (2 * k + 1))
        total += term
    return k


def _series_coefficients(terms: int, lmax: int) -> torch.Tensor:
    """(terms + 1, lmax + 1) float64: ``a[k, l] = 1 / ((2l+1)!! · k! · (2l+3)(2l+5)…(2l+2k+1))``, so that
    ``i_l(x) = x^l Σ_k a[k, l] (x²/2)^k``."""
    a = torch.empty((terms + 1, lmax + 1), dtype=torch.float64)
    for l in range(lmax + 1):
        value = 1.0 / math.prod(range(2 * l + 1, 0, -2))
        a[0, l] = value
        for k in range(1, terms + 1):
            value /= k * (2 * l + 2 * k + 1)
            a[k, l] = value
    return a


def modified_spherical_bessel(x: torch.Tensor, lmax: int) -> torch.Tensor:
    """Modified spherical Bessel functions of the first kind ``i_l(x)``, l = 0..lmax, for x > 0.

    The upward recurrence ``i_l = i_(l-2) - (2l-1)/x · i_(l-1)`` from ``i_0 = sinh(x)/x`` (what LAMMPS
    uses everywhere) loses all digits of ``i_l`` for ``x ≪ l`` (relative error ~ 1e-16·((2l+1)!!)²/x^(2l));
    below ``x = 1.5·lmax + 2`` the power series ``i_l(x) = x^l/(2l+1)!! · Σ_k (x²/2)^k / (k! (2l+3)(2l+5)…(2l+2k+1))``
    is summed instead, so every value is accurate to rounding.

    Args:
        x: (n,) arguments.

    Returns:
        (n, lmax + 1).
    """
    threshold = 1.5 * lmax + 2.0
    small = x < threshold
    xl = torch.where(small, threshold, x)  # large-argument branch on safe inputs only
    i0 = torch.sinh(xl) / xl
    upward = [i0, (torch.cosh(xl) - i0) / xl]
    for l in range(2, lmax + 1):
        upward.append(upward[l - 2] - (2 * l - 1) / xl * upward[l - 1])
    out = torch.stack(upward[: lmax + 1], dim=-1)
    rows = torch.nonzero(small).squeeze(1)
    if rows.numel() == 0:
        return out
    xs = x.index_select(0, rows)[:, None]
    coefficients = _series_coefficients(series_terms(threshold), lmax).to(x)
    half_sq = xs * xs / 2
    total = coefficients[-1].expand(xs.shape[0], lmax + 1)
    for k in range(coefficients.shape[0] - 2, -1, -1):  # Horner in x²/2
        total = torch.addcmul(coefficients[k], total, half_sq)
    series = xs ** torch.arange(lmax + 1, dtype=x.dtype, device=x.device) * total
    return out.index_copy(0, rows, series)


def _bessel_at_nodes(r: torch.Tensor, nodes: torch.Tensor, alpha: float, lmax: int) -> torch.Tensor:
    """``i_l(2α r·nodes[k])``: (npairs, N, lmax + 1)."""
    x = 2 * alpha * r[:, None] * nodes[None, :]
    return modified_spherical_bessel(x.reshape(-1), lmax).reshape(*x.shape, lmax + 1)


def radial_values(r: torch.Tensor, nodes: torch.Tensor, quadrature: torch.Tensor, alpha: float,
                  lmax: int) -> torch.Tensor:
    """``R_nl(r) = 4π e^(-α r²) Σ_k quadrature[k, n] i_l(2α r nodes[k])``: (npairs, nmax, lmax + 1).

    Args:
        r: (npairs,) pair distances, Å (> 0).
        nodes: (N,) quadrature nodes, Å (:func:`radial_quadrature`).
        quadrature: (N, nmax) quadrature weights (the transpose of :func:`radial_quadrature`'s).
        alpha: Gaussian width parameter, Å⁻².
        lmax: largest angular degree.
    """
    integral = torch.einsum("pkl,kn->pnl", _bessel_at_nodes(r, nodes, alpha, lmax), quadrature)
    return (4 * math.pi) * torch.exp(-alpha * r * r)[:, None, None] * integral


def radial_values_and_slopes(r: torch.Tensor, nodes: torch.Tensor, quadrature: torch.Tensor, alpha: float,
                             lmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``R_nl(r)`` and ``dR_nl/dr`` (Å⁻¹ times the unit of R), each (npairs, nmax, lmax + 1), from
    ``i_0' = i_1`` and ``i_l' = (l·i_(l-1) + (l+1)·i_(l+1)) / (2l+1)``."""
    bessel = _bessel_at_nodes(r, nodes, alpha, lmax + 1)
    l = torch.arange(lmax + 1, dtype=r.dtype, device=r.device)
    below = torch.cat([bessel[..., :1], bessel[..., : lmax]], dim=-1)  # i_(l-1); its factor l is 0 at l = 0
    derivative = (l * below + (l + 1) * bessel[..., 1:]) / (2 * l + 1)
    integral = torch.einsum("pkl,kn->pnl", bessel[..., : lmax + 1], quadrature)
    slope = torch.einsum("pkl,kn->pnl", derivative, quadrature * (2 * alpha * nodes)[:, None])
    gauss = (4 * math.pi) * torch.exp(-alpha * r * r)[:, None, None]
    return gauss * integral, gauss * (slope - 2 * alpha * r[:, None, None] * integral)


class _RadialFunction(torch.autograd.Function):
    """``R_nl(r)`` with the analytic derivative: kept from the forward pass for a first-order backward,
    recomputed with recorded torch operations when the backward itself must be differentiable."""

    @staticmethod
    def forward(ctx: Any, r: torch.Tensor, nodes: torch.Tensor, quadrature: torch.Tensor, alpha: float,
                lmax: int) -> torch.Tensor:
        values, slopes = radial_values_and_slopes(r, nodes, quadrature, alpha, lmax)
        ctx.save_for_backward(r, nodes, quadrature, slopes)
        ctx.alpha, ctx.lmax = alpha, lmax
        return values

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        r, nodes, quadrature, slopes = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: the slopes must carry their own derivative
            slopes = radial_values_and_slopes(r, nodes, quadrature, ctx.alpha, ctx.lmax)[1]
        return (grad * slopes).sum(dim=(1, 2)), None, None, None, None


@register_descriptor("so3")
class SO3(Descriptor):
    """SO(3) power spectrum of every atom, in LAMMPS' order and conventions (``descriptor so3``).

    Keywords mirror LAMMPS' ``.mliap.descriptor`` file for ``descriptor so3``:

    Args:
        elements: element symbols (``elems``); species index k means ``elements[k]``.
        nmax: number of radial functions (≥ 1).
        lmax: largest angular degree (≥ 1; LAMMPS writes out of bounds for 0).
        rcutfac: radial cutoff ``rc`` of the basis and the switching function, Å.
        alpha: width parameter of the neighbour Gaussians, Å⁻².
        radelem: per-element radii (``radelems``); a pair is a neighbour when
            ``r < rcutfac·(radelem_i + radelem_j)``.
        wj: per-element neighbour weights (``welems``); truncated to integers as LAMMPS does.

    ``num_descriptors`` is ``nmax (nmax + 1) (lmax + 1) / 2``. Tables are buffers, so ``.to(device,
    dtype)`` moves everything; computed in the tables' dtype (float64 by default).
    """

    wjelem: torch.Tensor
    cutsq: torch.Tensor
    nodes: torch.Tensor
    quadrature: torch.Tensor
    l_of_lm: torch.Tensor
    n1_index: torch.Tensor
    n2_index: torch.Tensor
    lm_to_l: torch.Tensor

    def __init__(self, elements: Sequence[str], nmax: int, lmax: int, rcutfac: float, alpha: float,
                 radelem: Sequence[float], wj: Sequence[float]):
        super().__init__()
        self.elements = [str(e) for e in elements]
        ne = len(self.elements)
        if ne == 0:
            raise ValueError("SO3 needs at least one element")
        if len(set(self.elements)) != ne:
            raise ValueError(f"duplicate element symbols in {self.elements}")
        for name, value, least in (("nmax", nmax, 1), ("lmax", lmax, 1)):
            if int(value) != value or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value}")
        self.nmax, self.lmax = int(nmax), int(lmax)
        self.rcutfac, self.alpha = float(rcutfac), float(alpha)
        if self.rcutfac <= 0 or self.alpha <= 0:
            raise ValueError(f"rcutfac and alpha must be positive, got {rcutfac}, {alpha}")
        self.radelem = [float(v) for v in radelem]
        self.wj = [float(v) for v in wj]
        if len(self.radelem) != ne or len(self.wj) != ne:
            raise ValueError(f"radelem and wj need one value per element ({ne})")
        if any(r <= 0 for r in self.radelem):
            raise ValueError("radelem must be positive")
        if any(w != math.trunc(w) for w in self.wj):
            warnings.warn(f"SO3: LAMMPS truncates the neighbour weights {self.wj} to integers "
                          f"{[math.trunc(w) for w in self.wj]}; so does this descriptor", stacklevel=2)

        dt = torch.float64
        radius = torch.tensor(self.radelem, dtype=dt)
        self.register_buffer("cutsq", (self.rcutfac * (radius[:, None] + radius[None, :])) ** 2)
        self.register_buffer("wjelem", torch.tensor([float(math.trunc(w)) for w in self.wj], dtype=dt))
        nodes, weights = radial_quadrature(self.nmax, self.lmax, self.rcutfac, self.alpha)
        self.register_buffer("nodes", torch.as_tensor(nodes, dtype=dt))
        self.register_buffer("quadrature", torch.as_tensor(weights.T.copy(), dtype=dt))  # (N, nmax)
        nlm = (self.lmax + 1) ** 2
        l_of_lm = [l for l in range(self.lmax + 1) for _ in range(2 * l + 1)]
        self.register_buffer("l_of_lm", torch.tensor(l_of_lm, dtype=torch.int64))
        pairs = [(n1, n2) for n1 in range(self.nmax) for n2 in range(n1 + 1)]
        self.register_buffer("n1_index", torch.tensor([a for a, _ in pairs], dtype=torch.int64))
        self.register_buffer("n2_index", torch.tensor([b for _, b in pairs], dtype=torch.int64))
        norm = [2.0 * math.sqrt(2.0) * math.pi / math.sqrt(2.0 * l + 1.0) for l in range(self.lmax + 1)]
        lm_to_l = torch.zeros((nlm, self.lmax + 1), dtype=dt)
        lm_to_l[torch.arange(nlm), torch.tensor(l_of_lm)] = torch.tensor(norm, dtype=dt)[torch.tensor(l_of_lm)]
        self.register_buffer("lm_to_l", lm_to_l)

    per_element_keys = ("radelem", "wj")

    @property
    def num_descriptors(self) -> int:
        return self.nmax * (self.nmax + 1) * (self.lmax + 1) // 2

    def pair_cutoffs(self) -> torch.Tensor:
        """(nelements, nelements) Å: ``min(rcutfac·(radelem_i + radelem_j), rcutfac)``, beyond which a
        pair contributes nothing."""
        return self.cutsq.sqrt().clamp(max=self.rcutfac)

    @property
    def cutoff(self) -> float:
        return float(self.pair_cutoffs().max())

    def settings(self) -> dict[str, Any]:
        return {"elements": list(self.elements), "nmax": self.nmax, "lmax": self.lmax, "rcutfac": self.rcutfac,
                "alpha": self.alpha, "radelem": list(self.radelem), "wj": list(self.wj)}

    def extra_repr(self) -> str:
        return (f"elements={self.elements}, nmax={self.nmax}, lmax={self.lmax}, rcutfac={self.rcutfac}, "
                f"alpha={self.alpha}, num_descriptors={self.num_descriptors}")

    def radial(self, r: torch.Tensor) -> torch.Tensor:
        """``R_nl(r)`` of pair distances r (npairs,) Å, 0 < r: (npairs, nmax, lmax + 1).

        Differentiable with the analytic derivative (:func:`radial_values_and_slopes`), so autograd keeps no per-node
        intermediates; higher derivatives go through the derivative's own torch operations.
        """
        if torch.is_grad_enabled() and r.requires_grad:
            return _RadialFunction.apply(r, self.nodes, self.quadrature, self.alpha, self.lmax)
        return radial_values(r, self.nodes, self.quadrature, self.alpha, self.lmax)

    def density_coefficients(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor,
                             species: torch.Tensor, num_atoms: int) -> torch.Tensor:
        """Expansion coefficients ``c_i[n, l, m]`` (real harmonics): (num_atoms, nmax, (lmax + 1)²)."""
        si, sj = species[pair_i], species[pair_j]
        rsq = (rij * rij).sum(dim=1)
        inside = (rsq < self.cutsq[si, sj]) & (rsq < self.rcutfac ** 2) & (rsq >= SMALL ** 2)
        keep = torch.nonzero(inside).squeeze(1)
        rij, pi, sj = rij.index_select(0, keep), pair_i.index_select(0, keep), sj.index_select(0, keep)
        r = torch.linalg.vector_norm(rij, dim=1)
        scale = self.wjelem[sj] * 0.5 * (torch.cos(math.pi * r / self.rcutfac) + 1.0)
        R = self.radial(r)[:, :, self.l_of_lm]  # (P, nmax, nlm)
        Y = real_spherical_harmonics(rij / r[:, None], self.lmax)  # (P, nlm)
        nlm = (self.lmax + 1) ** 2
        terms = (scale[:, None, None] * R * Y[:, None, :]).reshape(len(keep), self.nmax * nlm)
        out = torch.zeros((num_atoms, self.nmax * nlm), dtype=terms.dtype, device=terms.device)
        return out.index_add(0, pi, terms).reshape(num_atoms, self.nmax, nlm)

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        """(num_atoms, K) power spectrum, columns ``(n1, n2 ≤ n1, l)`` with l fastest."""
        if rij.dtype != self.nodes.dtype:
            rij = rij.to(self.nodes.dtype)
        c = self.density_coefficients(rij, pair_i, pair_j, species, int(num_atoms))
        products = c[:, self.n1_index, :] * c[:, self.n2_index, :]  # (natoms, npairs_n, nlm)
        return (products @ self.lm_to_l).reshape(int(num_atoms), -1)
