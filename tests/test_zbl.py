"""ZBL reference potential against LAMMPS ``pair_style zbl`` (energies, per-atom energies, forces, virial)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.models.potential import forces_and_virial_from_pair_gradient, voigt
from mliap_torch.models.zbl import ZBL

NKTV2P_METAL = 1.6021765e6  # LAMMPS metal units: eV/Å³ → bar
INNER, OUTER = 2.2, 3.4
ELEMENTS, Z = ["W", "Be"], [74.0, 4.0]


def _structure(seed: int = 3) -> Configuration:
    """A sheared, displaced 2×2×2 BCC cell with both elements: distances fill 1.8–4 Å."""
    rng = np.random.default_rng(seed)
    a = 2.6
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0.5]])
    frac = np.array([(b + [i, j, k]) / 2 for i in range(2) for j in range(2) for k in range(2) for b in basis])
    cell = np.array([[2 * a, 0, 0], [0.4, 2 * a * 1.03, 0], [-0.3, 0.5, 2 * a * 0.97]])
    positions = frac @ cell + rng.normal(scale=0.25, size=frac.shape)
    symbols = rng.choice(ELEMENTS, size=len(frac))
    return Configuration(positions=positions, cell=cell, pbc=[True, True, True], symbols=symbols)


def _ours(config: Configuration, zbl: ZBL):
    batch = make_batch([config], ELEMENTS, zbl.cutoff)
    rij = batch.rij().detach().requires_grad_(True)
    atomic = zbl(rij, batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    (g,) = torch.autograd.grad(atomic.sum(), rij)
    forces, dE_dstrain = forces_and_virial_from_pair_gradient(g, rij, batch.pair_i, batch.pair_j, batch.total_atoms,
                                                              batch.pair_config, 1)
    stress = voigt(dE_dstrain)[0] / config.volume
    return atomic.detach().numpy(), forces.numpy(), stress.detach().numpy()


def _lammps(config: Configuration):
    from mliap_torch.lammps import start

    lmp = start()
    try:
        (ax, _, _), (bx, by, _), (cx, cy, cz) = config.cell.tolist()
        lmp.commands_list([
            "units metal", "atom_style atomic", "boundary p p p", "atom_modify map array",
            f"region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r}",
            "create_box 2 box", "mass 1 183.84", "mass 2 9.012",
        ])
        types = [1 + ELEMENTS.index(s) for s in config.symbols]
        lmp.create_atoms(config.num_atoms, list(range(1, config.num_atoms + 1)), types,
                         config.positions.reshape(-1).tolist())
        lmp.commands_list([
            f"pair_style zbl {INNER} {OUTER}", "pair_coeff 1 1 74 74", "pair_coeff 1 2 74 4", "pair_coeff 2 2 4 4",
            "compute pe all pe/atom", "thermo_style custom step pe pxx pyy pzz pyz pxz pxy",
            "thermo_modify format float %20.15g", "run 0",
        ])
        energy = lmp.get_thermo("pe")
        press = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])
        n = config.num_atoms
        forces = np.array(lmp.numpy.extract_atom("f")[:n], dtype=float)
        atomic = np.array(lmp.numpy.extract_compute("pe", 1, 1)[:n], dtype=float)
        ids = np.array(lmp.numpy.extract_atom("id")[:n]).ravel()
    finally:
        lmp.close()
    order = np.argsort(ids)
    return energy, atomic[order], forces[order], -press / NKTV2P_METAL


@pytest.mark.lammps
def test_zbl_matches_lammps_pair_zbl():
    config = _structure()
    zbl = ZBL(ELEMENTS, Z, INNER, OUTER)
    atomic, forces, stress = _ours(config, zbl)
    r = np.linalg.norm(config.positions[:, None] - config.positions[None], axis=-1)
    assert ((r > INNER) & (r < OUTER)).any(), "the structure must probe the switching region"
    energy_ref, atomic_ref, forces_ref, stress_ref = _lammps(config)
    assert atomic.sum() == pytest.approx(energy_ref, rel=1e-10)
    np.testing.assert_allclose(atomic, atomic_ref, rtol=1e-10, atol=1e-10 * abs(atomic_ref).max())
    np.testing.assert_allclose(forces, forces_ref, rtol=1e-10, atol=1e-10 * abs(forces_ref).max())
    np.testing.assert_allclose(stress, stress_ref, rtol=1e-10, atol=1e-10 * abs(stress_ref).max())


def test_zbl_switch_is_smooth_at_cutoff():
    """φ, φ′ and φ″ vanish at the outer cutoff (the switching construction) and φ is zero beyond it."""
    zbl = ZBL(["Ta"], [73.0], 4.0, 4.8)
    s = torch.zeros(3, dtype=torch.long)
    r = torch.tensor([4.8 - 1e-4, 4.8, 5.0], dtype=torch.float64, requires_grad=True)
    phi = zbl.pair_energy(r, s, s)
    (d1,) = torch.autograd.grad(phi.sum(), r, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), r)
    assert abs(phi[0].item()) < 1e-12 and phi[1].item() == 0.0 and phi[2].item() == 0.0
    assert abs(d1[0].item()) < 1e-8 and abs(d2[0].item()) < 1e-4


def test_zbl_rejects_bad_settings():
    with pytest.raises(ValueError, match="inner"):
        ZBL(["Ta"], [73.0], 4.8, 4.0)
    with pytest.raises(ValueError, match="nuclear charges"):
        ZBL(["Ta", "W"], [73.0], 4.0, 4.8)
