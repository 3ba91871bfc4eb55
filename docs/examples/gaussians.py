"""A toy descriptor for docs/extending.md: per atom, sums of Gaussians of its neighbours' distances."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from mliap_torch.descriptors.base import Descriptor
from mliap_torch.registry import register_descriptor


@register_descriptor("gaussians")
class Gaussians(Descriptor):
    """``B_ik = Σ_j exp(-((r_ij - μ_k) / width)²) · fc(r_ij)``: ``num_gaussians`` centres μ_k evenly spaced
    from 1 Å to ``rcut - 0.5`` Å, the cosine cutoff ``fc(r) = (cos(π r / rcut) + 1) / 2`` (r, rcut, width in Å)."""

    def __init__(self, elements: Sequence[str], num_gaussians: int = 6, rcut: float = 4.5, width: float = 0.5):
        super().__init__()
        self.elements = list(elements)
        self.num_gaussians, self.rcut, self.width = int(num_gaussians), float(rcut), float(width)
        self.register_buffer("centres", torch.linspace(1.0, self.rcut - 0.5, self.num_gaussians))

    @property
    def num_descriptors(self) -> int:
        return self.num_gaussians

    @property
    def cutoff(self) -> float:
        return self.rcut

    def pair_cutoffs(self) -> torch.Tensor:
        return torch.full((len(self.elements), len(self.elements)), self.rcut)

    def settings(self) -> dict[str, Any]:
        return {"elements": self.elements, "num_gaussians": self.num_gaussians, "rcut": self.rcut,
                "width": self.width}

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        r = torch.linalg.vector_norm(rij, dim=-1)
        inside = r < self.rcut
        r = torch.where(inside, r, self.rcut)
        fc = torch.where(inside, 0.5 * (torch.cos(math.pi * r / self.rcut) + 1.0), 0.0)
        g = torch.exp(-(((r[:, None] - self.centres) / self.width) ** 2)) * fc[:, None]
        return g.new_zeros(num_atoms, self.num_gaussians).index_add(0, pair_i, g)
