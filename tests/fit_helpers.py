"""Small, fast test fixtures for the fitting tests: a radial-basis descriptor and random W–Be structures."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.base import Descriptor
from mliap_torch.models.heads import LinearHead, QuadraticHead
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL

ELEMENTS = ["W", "Be"]


class RadialBasis(Descriptor):
    """Gaussian radial basis × cosine cutoff, neighbours weighted by element: K descriptors per atom.

    Atom i's descriptors depend only on the pairs whose central atom is i (the ML-IAP contract).
    """

    type_name = "radial_test"

    def __init__(self, elements: Sequence[str], rcut: float = 3.6, num: int = 4, weights: Sequence[float] = (1.0, 0.6)):
        super().__init__()
        self.elements = list(elements)
        self.rcut = float(rcut)
        self.num = int(num)
        self.weights = [float(w) for w in weights]
        self.register_buffer("centres", torch.linspace(1.6, rcut - 0.4, num, dtype=torch.float64))
        self.register_buffer("wj", torch.tensor(self.weights, dtype=torch.float64))

    @property
    def num_descriptors(self) -> int:
        return self.num

    @property
    def cutoff(self) -> float:
        return self.rcut

    def pair_cutoffs(self) -> torch.Tensor:
        n = len(self.elements)
        return torch.full((n, n), self.rcut, dtype=torch.float64)

    def settings(self) -> dict[str, Any]:
        return {"elements": self.elements, "rcut": self.rcut, "num": self.num, "weights": self.weights}

    def forward(self, rij, pair_i, pair_j, species, num_atoms):
        r = torch.linalg.vector_norm(rij, dim=-1)
        inside = r < self.rcut
        rs = torch.where(inside, r, torch.full_like(r, self.rcut))
        fc = torch.where(inside, 0.5 * (torch.cos(math.pi * rs / self.rcut) + 1.0), torch.zeros_like(r))
        basis = torch.exp(-((rs[:, None] - self.centres.to(r.dtype)) / 0.6) ** 2) * (fc * self.wj.to(r.dtype)[species[pair_j]])[:, None]
        return torch.zeros(num_atoms, self.num, dtype=rij.dtype, device=rij.device).index_add(0, pair_i, basis)


def structures(count: int, seed: int = 0, reps: int = 2) -> list[Configuration]:
    """Random W–Be BCC supercells (2·reps³ atoms) with sheared cells and displaced atoms (no labels)."""
    rng = np.random.default_rng(seed)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0.5]])
    frac = np.array([(b + [i, j, k]) / reps for i in range(reps) for j in range(reps) for k in range(reps) for b in basis])
    out = []
    for n in range(count):
        a = rng.uniform(2.5, 2.9) * reps
        cell = np.diag([a, a, a]) + rng.normal(scale=0.15, size=(3, 3))
        positions = frac @ cell + rng.normal(scale=0.12, size=frac.shape)
        symbols = rng.choice(ELEMENTS, size=len(frac), p=[0.7, 0.3])
        out.append(Configuration(positions=positions, cell=cell, pbc=True, symbols=symbols, group=f"g{n % 3}",
                                 source="synthetic", index=n))
    return out


def potential(quadratic: bool = False, reference: bool = True, seed: int = 1) -> Potential:
    """Radial descriptor + head with random coefficients (+ ZBL) — the "true" model of synthetic data."""
    desc = RadialBasis(ELEMENTS)
    head = (QuadraticHead if quadratic else LinearHead)(len(ELEMENTS), desc.num_descriptors)
    gen = torch.Generator().manual_seed(seed)
    head.set_coefficients(torch.randn(head.coefficients().shape, generator=gen, dtype=torch.float64) * 0.3)
    zbl = ZBL(ELEMENTS, [74.0, 4.0], 1.4, 2.2) if reference else None
    return Potential(desc, head, zbl)


def label(configs: Sequence[Configuration], model: Potential, noise: float = 0.0, seed: int = 2,
          weights: tuple[float, float, float] = (10.0, 1.0, 30.0)) -> list[Configuration]:
    """Copies of ``configs`` labelled by ``model`` (+ Gaussian noise) with per-group-like weights."""
    rng = np.random.default_rng(seed)
    out = []
    for c in configs:
        batch = make_batch([c], model.elements, model.cutoff)
        pred = model(batch)
        e = float(pred["energy"][0].detach()) + noise * c.num_atoms * rng.normal()
        f = pred["forces"].detach().numpy() + noise * rng.normal(size=(c.num_atoms, 3))
        s = pred["stress"][0].detach().numpy() + 0.01 * noise * rng.normal(size=6)
        scale = 1.0 + int(c.group[1:])
        out.append(Configuration(positions=c.positions, cell=c.cell, pbc=c.pbc, symbols=c.symbols, energy=e, forces=f,
                                 stress=s, group=c.group, source=c.source, index=c.index,
                                 energy_weight=weights[0] * scale, force_weight=weights[1], stress_weight=weights[2] / scale))
    return out


class RadialBasisWithJacobian(RadialBasis):
    """:class:`RadialBasis` with an analytic per-pair Jacobian (the ``pair_jacobian`` hook of the design rows)."""

    def pair_jacobian(self, rij, pair_i, pair_j, species, num_atoms):
        r = torch.linalg.vector_norm(rij, dim=-1)
        inside = r < self.rcut
        rs = torch.where(inside, r, torch.full_like(r, self.rcut))
        fc = torch.where(inside, 0.5 * (torch.cos(math.pi * rs / self.rcut) + 1.0), torch.zeros_like(r))
        dfc = torch.where(inside, -0.5 * math.pi / self.rcut * torch.sin(math.pi * rs / self.rcut), torch.zeros_like(r))
        x = (rs[:, None] - self.centres) / 0.6
        g = torch.exp(-x ** 2)
        w = self.wj[species[pair_j]][:, None]
        basis = g * fc[:, None] * w
        dbasis_dr = (g * (-2.0 * x / 0.6) * fc[:, None] + g * dfc[:, None]) * w
        unit = rij / rs[:, None]
        B = torch.zeros(num_atoms, self.num, dtype=rij.dtype).index_add(0, pair_i, basis)
        return B, unit[:, :, None] * dbasis_dr[:, None, :]
