"""An ACE potential exported through LAMMPS' ML-IAP unified interface gives pyace's energies,
forces and stress (a pyace basis with its coefficients, run inside LAMMPS by mliap_torch)."""
from __future__ import annotations

import numpy as np
import pytest

pyace = pytest.importorskip("pyace")
from ase.build import bulk  # noqa: E402
from pyace import ACEBBasisSet, PyACECalculator  # noqa: E402
from pyace.multispecies_basisextension import create_multispecies_basis_config  # noqa: E402

from mliap_torch.data.configuration import Configuration  # noqa: E402
from mliap_torch.descriptors.ace import ACE, pyace_linear_coefficients  # noqa: E402
from mliap_torch.export.lammps_export import export_lammps  # noqa: E402
from mliap_torch.lammps_eval import evaluate_in_lammps  # noqa: E402
from mliap_torch.models.heads import LinearHead  # noqa: E402
from mliap_torch.models.potential import Potential  # noqa: E402

pytestmark = pytest.mark.lammps


def test_ace_in_lammps_equals_pyace(tmp_path, monkeypatch) -> None:
    config = create_multispecies_basis_config({
        "deltaSplineBins": 1e-5, "elements": ["Cu", "Ni"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
        "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [1.0], "rcut": 4.2, "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [4, 2, 1], "lmax_by_orders": [0, 2, 1]}}})
    rng = np.random.default_rng(0)
    for block in config.funcspecs_blocks:
        block.set_func_coeffs(rng.normal(size=np.array(block.get_func_coeffs()).shape) * 0.1)
    basis = ACEBBasisSet(config)
    ace = ACE.from_pyace(basis)
    head = LinearHead(2, ace.num_descriptors)
    head.set_coefficients(pyace_linear_coefficients(basis, ace))
    potential = Potential(ace, head)

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1)
    atoms.symbols[[0, 3, 5]] = "Ni"
    atoms.rattle(0.1, seed=2)
    result = export_lammps(potential, tmp_path, routes=("unified",))
    monkeypatch.chdir(tmp_path)
    (res,) = evaluate_in_lammps([Configuration.from_ase(atoms)], ace.elements,
                                result.routes["unified"].pair_commands, activate_mliappy=True)
    atoms.calc = PyACECalculator(basis)
    assert res["energy"] == pytest.approx(atoms.get_potential_energy(), rel=1e-9)
    forces = atoms.get_forces()
    np.testing.assert_allclose(res["forces"], forces, rtol=1e-7, atol=1e-8 * np.abs(forces).max())
    stress = atoms.get_stress()
    np.testing.assert_allclose(res["stress"], stress, rtol=1e-7, atol=1e-8 * np.abs(stress).max())
