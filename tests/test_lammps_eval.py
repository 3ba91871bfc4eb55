"""evaluate_in_lammps returns LAMMPS results in mliap_torch's frame and units (checked with ASE's LJ)."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.lj import LennardJones

from mliap_torch.data.configuration import Configuration
from mliap_torch.lammps import lammps_cell
from mliap_torch.lammps_eval import evaluate_in_lammps

pytestmark = pytest.mark.lammps


def random_triclinic_copper(seed: int) -> Configuration:
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    strain = np.eye(3) + 0.08 * rng.standard_normal((3, 3))
    atoms.set_cell(atoms.cell @ strain, scale_atoms=True)
    atoms.rattle(0.1, seed=seed)
    return Configuration.from_ase(atoms)


def test_lammps_cell_is_lower_triangular_rotation():
    cell = random_triclinic_copper(0).cell
    lower, rot = lammps_cell(cell)
    assert np.allclose(np.triu(lower, 1), 0)
    assert np.all(np.diag(lower) > 0)
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.linalg.det(rot) == pytest.approx(1.0)
    assert np.allclose(cell @ rot, lower)


@pytest.mark.parametrize("seed", [1, 2])
def test_lj_in_lammps_equals_ase(seed):
    config = random_triclinic_copper(seed)
    eps, sigma, rc = 0.4, 2.3, 4.5
    atoms = config.to_ase()
    atoms.calc = LennardJones(epsilon=eps, sigma=sigma, rc=rc, smooth=False)
    (res,) = evaluate_in_lammps([config], ["Cu"], [f"pair_style lj/cut {rc}", f"pair_coeff * * {eps} {sigma}",
                                                   "pair_modify shift yes"])
    assert res["energy"] == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
    np.testing.assert_allclose(res["atomic_energies"], atoms.get_potential_energies(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res["forces"], atoms.get_forces(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(res["stress"], atoms.get_stress(), rtol=1e-9, atol=1e-12)
