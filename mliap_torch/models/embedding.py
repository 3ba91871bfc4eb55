"""PACE's nonlinear embedding as a head: ``E_i = E0[s] + Σ_p w_p F(ρ_p; m_p)``, ``ρ_p = Σ_k c_pk B_k``.

The embedding functions are those of the PACE evaluator (``Fexp`` and ``FexpShiftedScaled`` in
``ace_abstract_basis.cpp`` of python-ace's ``ace-evaluator``), with ``fs_parameters = [w_1, m_1, w_2, m_2, …]``
per element (``FS_values_and_derivatives``), written in torch so that autograd gives PACE's derivatives:

- ``FinnisSinclair``: with ``W = 10⁶``, ``λ = W^{1-m}``, ``a = |ρ|``, ``g = exp(-(W a)³)`` (0 where
  ``(W a)³ > 30``): ``F = sign(ρ) ((1 - g) a^m + λ g a)``; ``F = λ ρ`` for ``a ≤ 10⁻¹⁰``.
- ``FinnisSinclairShiftedScaled``: ``F = ρ`` when ``|m - 1| < 10⁻¹⁰``; otherwise, with ``ν = 1/m``,
  ``x₀ = ν^{ν/(1-ν)} e^{-a}`` and ``y₀ = ν^{1/(1-ν)} e^{-a}``: ``F = sign(ρ) ((x₀ + a)^m - y₀)``, smooth at 0.

Pacemaker's default is ``FinnisSinclairShiftedScaled`` with ``fs_parameters: [1, 1, 1, 0.5]`` (F = ρ₁ + √ρ₂
away from 0).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..registry import register_head
from .heads import Head

EMBEDDINGS = ("FinnisSinclair", "FinnisSinclairShiftedScaled")
"""PACE's embedding function families (``npoti``)."""

PACE_DEFAULT_FS_PARAMETERS = (1.0, 1.0, 1.0, 0.5)
"""Pacemaker's default ``fs_parameters`` (two densities: F = ρ₁ + √ρ₂)."""

_EPS = 1e-10  # PACE's threshold of |ρ| (FinnisSinclair) and of |m - 1| (ShiftedScaled)
_W = 1e6  # PACE's width of FinnisSinclair's linear core


def _sign(rho: torch.Tensor) -> torch.Tensor:
    """C's ``signbit(ρ) ? -1 : 1`` (a constant for autograd)."""
    return torch.where(torch.signbit(rho), -1.0, 1.0).to(rho.dtype)


def finnis_sinclair(rho: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """PACE's ``Fexp``: F(ρ) elementwise for densities ``rho`` and exponents ``m`` (same shape)."""
    sign = _sign(rho)
    a = rho * sign  # |ρ| with derivative sign(ρ), also at 0
    small = a <= _EPS
    a_safe = torch.where(small, torch.ones_like(a), a)
    lam = (1.0 / _W) ** (m - 1.0)
    w3x3 = (_W * a_safe) ** 3
    g = torch.where(w3x3 > 30.0, torch.zeros_like(a), torch.exp(-w3x3.clamp(max=30.0)))
    F = sign * ((1.0 - g) * a_safe ** m + lam * g * a_safe)
    return torch.where(small, lam * rho, F)


def finnis_sinclair_shifted_scaled(rho: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """PACE's ``FexpShiftedScaled``: F(ρ) elementwise for densities ``rho`` and exponents ``m`` (same shape)."""
    linear = (m - 1.0).abs() < _EPS
    m_safe = torch.where(linear, torch.full_like(m, 2.0), m)
    sign = _sign(rho)
    a = rho * sign
    e = torch.exp(-a)
    nu = 1.0 / m_safe
    xoff = nu ** (nu / (1.0 - nu)) * e
    yoff = nu ** (1.0 / (1.0 - nu)) * e
    F = sign * ((xoff + a) ** m_safe - yoff)
    return torch.where(linear, rho, F)


def _per_element(value: Any, nelements: int, name: str, is_item: Any) -> list[Any]:
    """A value for all elements (``is_item(value)``) or a list of one per element → one per element."""
    if is_item(value):
        return [value] * nelements
    values = list(value)
    if len(values) != nelements:
        raise ValueError(f"EmbeddingHead: {name} must be one value or one per element ({nelements}), got {value!r}")
    return values


def _is_flat(value: Any) -> bool:
    return all(isinstance(v, (int, float)) for v in value)


@register_head("pace_embedding")
class EmbeddingHead(Head):
    """PACE's embedding head: per element e, ``E_i = E0[e] + Σ_p w_ep F_e(ρ_p; m_ep)`` with the densities
    ``ρ_p = Σ_k c[e, p, k] B_ik`` (eV).

    Args:
        num_elements: number of elements.
        num_descriptors: K, the descriptors per atom.
        embedding: ``FinnisSinclair`` or ``FinnisSinclairShiftedScaled`` (:data:`EMBEDDINGS`), one for all
            elements or one per element (PACE's ``npoti``).
        fs_parameters: ``[w_1, m_1, w_2, m_2, …]`` (one pair per density; PACE's ``fs_parameters``), one list for
            all elements or one per element; elements may have different numbers of densities.

    Parameters: ``coefficients`` c (nelements, ndensity, K) (PACE's per-density function coefficients; an
    element with fewer densities than the largest has weight 0 on the rest) and ``bias`` E0 (nelements,) eV.
    ``fs_parameters`` are fixed (buffers ``weight`` and ``exponent``, (nelements, ndensity)).
    """

    # buffers registered in __init__ (declared for the type checker)
    weight: torch.Tensor
    exponent: torch.Tensor
    shifted: torch.Tensor

    def __init__(self, num_elements: int, num_descriptors: int, embedding: str | Sequence[str] = EMBEDDINGS[1],
                 fs_parameters: Sequence[float] | Sequence[Sequence[float]] = PACE_DEFAULT_FS_PARAMETERS):
        super().__init__(num_elements, num_descriptors)
        self.embedding = _per_element(embedding, num_elements, "embedding", lambda v: isinstance(v, str))
        self.fs_parameters = [[float(v) for v in p] for p in
                              _per_element(fs_parameters, num_elements, "fs_parameters", _is_flat)]
        unknown = sorted({e for e in self.embedding if e not in EMBEDDINGS})
        if unknown:
            raise ValueError(f"EmbeddingHead: unknown embedding {unknown}; PACE's are {list(EMBEDDINGS)}")
        if any(len(p) % 2 or not p for p in self.fs_parameters):
            raise ValueError(f"EmbeddingHead: fs_parameters must be pairs [w_1, m_1, w_2, m_2, ...] per element, "
                             f"got {self.fs_parameters}")
        self.ndensity = max(len(p) // 2 for p in self.fs_parameters)
        weight = torch.zeros(num_elements, self.ndensity, dtype=torch.float64)
        exponent = torch.ones(num_elements, self.ndensity, dtype=torch.float64)
        for e, p in enumerate(self.fs_parameters):
            weight[e, :len(p) // 2] = torch.tensor(p[0::2], dtype=torch.float64)
            exponent[e, :len(p) // 2] = torch.tensor(p[1::2], dtype=torch.float64)
        self.register_buffer("weight", weight)
        self.register_buffer("exponent", exponent)
        self.register_buffer("shifted", torch.tensor([e == EMBEDDINGS[1] for e in self.embedding]))
        self.coefficients = nn.Parameter(torch.zeros(num_elements, self.ndensity, num_descriptors, dtype=torch.float64))
        self.bias = nn.Parameter(torch.zeros(num_elements, dtype=torch.float64))

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "embedding": list(self.embedding),
                "fs_parameters": [list(p) for p in self.fs_parameters]}

    def densities(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """(natoms, ndensity) ρ_p = Σ_k c[s, p, k] B_k from descriptors B (natoms, K) and species (natoms,)."""
        rho = torch.einsum("ak,epk->aep", B, self.coefficients.to(B.dtype))
        return rho.gather(1, species[:, None, None].expand(-1, 1, self.ndensity)).squeeze(1)

    def embed(self, rho: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """(natoms,) Σ_p w_p F(ρ_p; m_p), eV, from densities ρ (natoms, ndensity) and species (natoms,)."""
        m = self.exponent[species].to(rho.dtype)
        F = torch.where(self.shifted[species][:, None], finnis_sinclair_shifted_scaled(rho, m),
                        finnis_sinclair(rho, m))
        return (self.weight[species].to(rho.dtype) * F).sum(-1)

    def forward(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (natoms,) eV from descriptors B (natoms, K) and species (natoms,)."""
        return self.bias[species].to(B.dtype) + self.embed(self.densities(B, species), species)

    def grade_features(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """(natoms, 1 + ndensity·K) ``[1, w_1 F'(ρ_1) B, …, w_P F'(ρ_P) B]``: the gradient of E_i with respect to
        the head's parameters (E0 and every c_pk), pacemaker's "B-projections" of a nonlinear potential. Each
        density's block is the descriptors B (natoms, K) scaled by the slope of its embedding at the atom's
        density, so γ grades the atom on each density's features as the fitted embedding sees them."""
        B = B.detach()
        with torch.enable_grad():
            rho = self.densities(B, species).detach().requires_grad_(True)
            (slope,) = torch.autograd.grad(self.embed(rho, species).sum(), rho)
        projections = (slope[:, :, None] * B[:, None, :]).flatten(1)
        return torch.cat([projections.new_ones(len(projections), 1), projections], dim=1)

    @torch.no_grad()
    def set_density_coefficients(self, coefficients: torch.Tensor) -> None:
        """Set c from (nelements, ndensity, K) coefficients."""
        coefficients = torch.as_tensor(coefficients, dtype=self.coefficients.dtype, device=self.coefficients.device)
        if coefficients.shape != self.coefficients.shape:
            raise ValueError(f"EmbeddingHead: coefficients of shape {tuple(coefficients.shape)}, expected "
                             f"{tuple(self.coefficients.shape)}")
        self.coefficients.copy_(coefficients)
