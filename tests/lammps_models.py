"""Small random potentials and structures for LAMMPS-vs-torch checks (shared by export tests)."""
from __future__ import annotations

import numpy as np
import torch
from ase.build import bulk

from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.models.heads import LinearHead, MLPHead, QuadraticHead
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL

Z = {"Ta": 73.0, "Cu": 29.0, "Ni": 28.0}


def random_structures(elements: list[str], count: int, seed: int) -> list[Configuration]:
    """``count`` rattled, randomly strained (triclinic) periodic cells of 16-32 atoms with random species."""
    rng = np.random.default_rng(seed)
    configs = []
    for k in range(count):
        if elements == ["Ta"]:
            atoms = bulk("Ta", "bcc", a=3.3, cubic=True).repeat((2, 2, 2))
        else:
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
            atoms.set_chemical_symbols(rng.choice(elements, size=len(atoms)).tolist())
        strain = np.eye(3) + 0.05 * rng.standard_normal((3, 3))
        atoms.set_cell(atoms.cell @ strain, scale_atoms=True)
        atoms.positions += 0.15 * rng.standard_normal(atoms.positions.shape)
        configs.append(Configuration.from_ase(atoms, index=k))
    return configs


def random_potential(elements: list[str], head: str, zbl: bool, seed: int, twojmax: int = 4) -> Potential:
    """A bispectrum potential with random coefficients (``head``: linear, quadratic or mlp)."""
    torch.manual_seed(seed)
    n = len(elements)
    radelem = [0.5, 0.45][:n]
    wj = [1.0, 0.8][:n]
    descriptor = Bispectrum(elements, twojmax=twojmax, rcutfac=4.2 if n == 1 else 4.6, radelem=radelem, wj=wj,
                            bzeroflag=False)
    K = descriptor.num_descriptors
    if head == "mlp":
        model_head = MLPHead(n, K, hidden=(16, 16))
    else:
        model_head = (LinearHead if head == "linear" else QuadraticHead)(n, K)
        coeffs = 0.05 * torch.randn(n, 1 + model_head.num_features, dtype=torch.float64)
        coeffs[:, 0] = -torch.arange(1, n + 1, dtype=torch.float64)
        model_head.set_coefficients(coeffs)
    reference = ZBL(elements, [Z[e] for e in elements], inner=1.5, outer=2.5) if zbl else None
    return Potential(descriptor, model_head, reference)
