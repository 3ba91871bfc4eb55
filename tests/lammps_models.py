"""Small random potentials and structures for LAMMPS checks (shared by export and MPI tests)."""
from __future__ import annotations

import numpy as np
import torch
from ase.build import bulk

from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.ace import ACE
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.descriptors.trainable import TrainableBispectrum
from mliap_torch.models.embedding import EmbeddingHead
from mliap_torch.models.heads import LinearHead, MLPHead, QuadraticHead
from mliap_torch.models.pace_core import PaceCoreRepulsion
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


def pace_potential(seed: int = 3) -> Potential:
    """Cu–Ni ACE + PACE's embedding (both families, three densities) + core repulsion whose energy cutoff
    switches the densest atoms of ``random_structures(["Cu", "Ni"], 3, seed=9)`` partly or fully off."""
    torch.manual_seed(seed)
    descriptor = ACE(["Cu", "Ni"], nradmax_by_orders=[3, 1, 1], lmax_by_orders=[0, 1, 1], rcut=4.6)
    head = EmbeddingHead(2, descriptor.num_descriptors, ["FinnisSinclairShiftedScaled", "FinnisSinclair"],
                         [[1.0, 1.0, 1.0, 0.5, -0.5, 1.5], [1.0, 0.8, 0.7, 1.3]])
    head.set_density_coefficients(0.1 * torch.randn(2, 3, descriptor.num_descriptors, dtype=torch.float64))
    core = PaceCoreRepulsion(["Cu", "Ni"], [[50.0] * 2] * 2, [[1.0] * 2] * 2, [[4.6] * 2] * 2, [[2.6] * 2] * 2,
                             [[0.5] * 2] * 2, "distance", rho_core_cut=[0.8, 1.0], drho_core_cut=[0.5, 0.5])
    return Potential(descriptor, head, core).to(torch.float64)


def random_potential(elements: list[str], head: str, zbl: bool, seed: int, twojmax: int = 4) -> Potential:
    """A bispectrum potential with random coefficients (``head``: linear, quadratic or mlp)."""
    torch.manual_seed(seed)
    n = len(elements)
    radelem = [0.5, 0.45][:n]
    wj = [1.0, 0.8][:n]
    descriptor = Bispectrum(elements, twojmax=twojmax, rcutfac=4.2 if n == 1 else 4.6, radelem=radelem, wj=wj,
                            bzeroflag=False)
    model_head = _random_head(head, n, descriptor.num_descriptors)
    reference = ZBL(elements, [Z[e] for e in elements], inner=1.5, outer=2.5) if zbl else None
    return Potential(descriptor, model_head, reference)


def _random_head(head: str, n: int, K: int) -> LinearHead | QuadraticHead | MLPHead:
    """A head with random coefficients (``head``: linear, quadratic or mlp) for ``n`` elements and ``K`` descriptors."""
    if head == "mlp":
        return MLPHead(n, K, hidden=(16, 16))
    model_head = (LinearHead if head == "linear" else QuadraticHead)(n, K)
    coeffs = 0.05 * torch.randn(n, 1 + model_head.num_features, dtype=torch.float64)
    coeffs[:, 0] = -torch.arange(1, n + 1, dtype=torch.float64)
    model_head.set_coefficients(coeffs)
    return model_head


def _descriptor(elements: list[str], descriptor: str) -> Bispectrum | ACE:
    """bispectrum (2Jmax 4), ace (ranks 1-3) or trainable (a TrainableBispectrum whose wj, radelem and
    rfac0 have left their starting values), with cutoffs of about 4.1-4.6 Å."""
    n = len(elements)
    if descriptor == "bispectrum":
        return Bispectrum(elements, twojmax=4, rcutfac=4.1, radelem=[0.5, 0.55][:n], wj=[1.0, 0.8][:n],
                          bzeroflag=False)
    if descriptor == "ace":
        return ACE(elements, nradmax_by_orders=[4, 2, 1], lmax_by_orders=[0, 2, 1], rcut=4.6)
    if descriptor == "trainable":
        desc = TrainableBispectrum(elements, twojmax=4, rcutfac=4.1, radelem=[0.5, 0.45][:n], wj=[1.0, 0.8][:n],
                                   rfac0=0.99363, bzeroflag=False, max_cutoff=4.6)
        with torch.no_grad():
            desc.wj_raw.add_(torch.tensor([0.3, -0.2][:n]))
            desc.radelem_raw.add_(torch.tensor([-0.4, 0.3][:n]))
            desc.rfac0_raw.sub_(0.7)
        return desc
    raise ValueError(f"unknown descriptor {descriptor!r}")


def fitted_model(elements: list[str], descriptor: str, head: str, zbl: bool, seed: int = 0,
                 max_configs: int | None = 80, alpha: float | None = 1e-6) -> Potential:
    """A potential fitted to the built-in EMT data (its configurations of ``elements`` only; about
    ``max_configs`` of them spread over the set, None: all): ``head`` linear or quadratic by exact
    least squares (ridge with ``alpha`` relative to each column's squared norm, None: plain QR);
    mlp (16-16, silu, with a linear term) started from the exact linear fit as training does, then its
    output layers drawn at random (standard deviation 0.05, ``seed``) so that its nonlinear part
    takes part. ZBL (1.5-2.5 Å) when ``zbl``. The ridge keeps quadratic ACE on 80 bulk
    configurations sane on the slab's surfaces (short MD of the rank checks); long MD uses all data."""
    from mliap_torch.data.builtin import builtin_dataset
    from mliap_torch.fitting.exact_fit import fit_exact
    from mliap_torch.training.setup import initialize_mlp

    configs = [c for c in builtin_dataset() if set(c.symbols) <= set(elements)]
    if max_configs is not None:
        configs = configs[:: max(1, len(configs) // max_configs)]
    desc = _descriptor(elements, descriptor)
    n, K = len(elements), desc.num_descriptors
    reference = ZBL(elements, [Z[e] for e in elements], inner=1.5, outer=2.5) if zbl else None
    if head == "mlp":
        potential = Potential(desc, MLPHead(n, K, hidden=(16, 16), linear_term=True), reference)
        initialize_mlp(potential, configs)
        torch.manual_seed(seed)
        with torch.no_grad():
            for net in potential.head.networks:
                net[-1].weight.normal_(0.0, 0.05)
        return potential
    potential = Potential(desc, (LinearHead if head == "linear" else QuadraticHead)(n, K), reference)
    solver = {} if alpha is None else {"solver": "ridge", "alpha": alpha, "scale_columns": True}
    fit_exact(potential, configs, **solver)
    return potential


def random_model(elements: list[str], descriptor: str, head: str, zbl: bool, seed: int) -> Potential:
    """A potential with random coefficients on :func:`_descriptor` (``head`` linear, quadratic or mlp),
    a ZBL reference when ``zbl``; for single evaluations (its forces are too large for MD)."""
    if descriptor == "bispectrum":
        return random_potential(elements, head, zbl, seed)
    torch.manual_seed(seed)
    desc = _descriptor(elements, descriptor)
    reference = ZBL(elements, [Z[e] for e in elements], inner=1.5, outer=2.5) if zbl else None
    return Potential(desc, _random_head(head, len(elements), desc.num_descriptors), reference)


def random_head(kind: str, n: int, k: int, seed: int, activation: str = "silu", linear_term: bool = True):
    """A head with random coefficients large enough that every part of it matters."""
    torch.manual_seed(seed)
    if kind == "mlp":
        head = MLPHead(n, k, hidden=(12, 8), activation=activation, linear_term=linear_term)
        with torch.no_grad():
            for p in head.parameters():
                p.normal_(0.0, 0.3)
            head.set_scaling(torch.rand(k), 0.5 + torch.rand(k))
        return head
    head = (LinearHead if kind == "linear" else QuadraticHead)(n, k)
    coeffs = 0.05 * torch.randn(n, 1 + head.num_features)
    coeffs[:, 0] = -torch.arange(1, n + 1, dtype=torch.float64)
    head.set_coefficients(coeffs)
    return head


def ace_model(elements: list[str], head: str, seed: int, trainable: bool = False, zbl: bool = False) -> Potential:
    """An ACE model (ranks 1-3) with random radial coefficients and head; with ``trainable`` the radial
    coefficients and per-element-pair cutoffs are learned parameters moved off their start."""
    torch.manual_seed(seed)
    kw = dict(nradmax_by_orders=[4, 2, 1], lmax_by_orders=[0, 2, 1])
    if trainable:
        desc = ACE(elements, rcut=4.4, trainable=["crad", "rcut"], max_cutoff=4.6, **kw)
        with torch.no_grad():
            desc.rcut_raw.add_(0.3 * torch.randn_like(desc.rcut_raw))
    else:
        desc = ACE(elements, rcut=4.6, **kw)
    with torch.no_grad():
        desc.crad.add_(0.2 * torch.randn_like(desc.crad))
    reference = ZBL(elements, [Z[e] for e in elements], inner=1.5, outer=2.5) if zbl else None
    return Potential(desc, random_head(head, len(elements), desc.num_descriptors, seed=seed), reference)


def assert_results_equal(results: list[dict], configs: list[Configuration], torch_out: dict, tolerance: float,
                         min_force: float = 0.1) -> None:
    """LAMMPS ``results`` (``evaluate_in_lammps``) equal the torch outputs of the same ``configs`` to
    ``tolerance`` relative: energy, per-atom energies, forces, stress; the largest force exceeds
    ``min_force`` eV/Å so that the comparison is not between near-zero forces."""
    start = 0
    for k, (lmp, config) in enumerate(zip(results, configs)):
        atoms = slice(start, start + config.num_atoms)
        start += config.num_atoms
        energy = torch_out["energy"][k].item()
        atomic = torch_out["atomic_energies"][atoms].detach().numpy()
        forces = torch_out["forces"][atoms].detach().numpy()
        stress = torch_out["stress"][k].detach().numpy()
        assert abs(lmp["energy"] - energy) <= tolerance * abs(energy)
        assert np.abs(lmp["atomic_energies"] - atomic).max() <= tolerance * np.abs(atomic).max()
        assert np.abs(lmp["forces"] - forces).max() <= tolerance * np.abs(forces).max()
        assert np.abs(lmp["stress"] - stress).max() <= tolerance * np.abs(stress).max()
        assert np.abs(forces).max() > min_force
