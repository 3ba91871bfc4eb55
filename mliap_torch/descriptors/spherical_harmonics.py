"""Real spherical harmonics of unit vectors (vectorised, polynomial, twice differentiable).

Convention: orthonormal on the unit sphere; the complex harmonics are the standard ones with the
Condon–Shortley phase (``scipy.special.sph_harm_y``); the real ones are

    Y_{l,0} = Y_l^0,  Y_{l,m} = √2 (-1)^m Re Y_l^m,  Y_{l,-m} = √2 (-1)^m Im Y_l^m   (m > 0),

stored at index ``l² + l + m``. :func:`complex_from_real` gives the unitary matrix that maps the
real harmonics of one ``l`` to the complex ones, used to carry complex coupling coefficients
(PACE's generalised Clebsch–Gordan coefficients) over to the real basis.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def lm_index(l: int, m: int) -> int:
    """Column of ``(l, m)`` in the output of :func:`real_spherical_harmonics`."""
    return l * l + l + m


def real_spherical_harmonics(unit: torch.Tensor, lmax: int) -> torch.Tensor:
    """Real orthonormal spherical harmonics up to ``lmax``.

    Computed as polynomials in the Cartesian components (associated Legendre functions divided by
    sin^m θ times ``Re/Im (x + i y)^m``), so values and all derivatives are smooth everywhere,
    including the poles.

    Args:
        unit: (n, 3) unit vectors.
        lmax: largest degree.

    Returns:
        (n, (lmax+1)²) harmonics, column ``l² + l + m``.
    """
    x, y, z = unit[:, 0], unit[:, 1], unit[:, 2]
    # C_m + i S_m = (x + i y)^m
    cos_m = [torch.ones_like(x)]
    sin_m = [torch.zeros_like(x)]
    for _ in range(1, lmax + 1):
        c, s_ = cos_m[-1], sin_m[-1]
        cos_m.append(c * x - s_ * y)
        sin_m.append(s_ * x + c * y)
    # Q_l^m(z) = P_l^m(z) / sin^m θ (with Condon–Shortley phase), a polynomial in z
    q: dict[tuple[int, int], torch.Tensor] = {}
    for m in range(lmax + 1):
        q[(m, m)] = torch.full_like(z, (-1) ** m * _double_factorial(2 * m - 1))
        if m + 1 <= lmax:
            q[(m + 1, m)] = (2 * m + 1) * z * q[(m, m)]
        for l in range(m + 2, lmax + 1):
            q[(l, m)] = ((2 * l - 1) * z * q[(l - 1, m)] - (l + m - 1) * q[(l - 2, m)]) / (l - m)
    columns: list[torch.Tensor] = []
    for l in range(lmax + 1):
        row: list[Any] = [None] * (2 * l + 1)  # every entry is set below
        for m in range(l + 1):
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
            if m == 0:
                row[l] = norm * q[(l, 0)]
            else:
                base = math.sqrt(2.0) * (-1) ** m * norm * q[(l, m)]
                row[l + m] = base * cos_m[m]
                row[l - m] = base * sin_m[m]
        columns.extend(row)
    return torch.stack(columns, dim=-1)


def _double_factorial(n: int) -> float:
    return float(math.prod(range(n, 0, -2))) if n > 0 else 1.0


def complex_from_real(l: int) -> np.ndarray:
    """(2l+1, 2l+1) unitary ``V`` with ``Y_l^m = Σ_m' V[m+l, m'+l] Y_{l,m'}`` (complex from real)."""
    V = np.zeros((2 * l + 1, 2 * l + 1), dtype=complex)
    V[l, l] = 1.0
    s = 1.0 / math.sqrt(2.0)
    for m in range(1, l + 1):
        sign = (-1) ** m
        V[l + m, l + m] = sign * s
        V[l + m, l - m] = sign * s * 1j
        V[l - m, l + m] = s
        V[l - m, l - m] = -s * 1j
    return V
