"""A fitted potential exported to LAMMPS conserves energy in NVE MD (native snap and ML-IAP unified),
also on 2 MPI ranks over 10 ps (slow)."""
from __future__ import annotations

import pytest

from lammps_models import fitted_model
from mliap_torch.data.builtin import builtin_dataset
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.export.md_input import run_md, write_md_input
from mliap_torch.export.md_structures import md_structure
from mliap_torch.fitting.exact_fit import fit_exact
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.potential import Potential

pytestmark = pytest.mark.lammps


@pytest.fixture(scope="module")
def fitted_cu():
    configs = [c for c in builtin_dataset() if set(c.symbols) == {"Cu"}][:60]
    descriptor = Bispectrum(["Cu"], twojmax=4, rcutfac=4.1, radelem=[0.5], wj=[1.0])
    potential = Potential(descriptor, LinearHead(1, descriptor.num_descriptors))
    fit_exact(potential, configs)
    return potential


@pytest.mark.parametrize("route", ["snap", "unified"])
def test_nve_energy_drift_is_small(tmp_path, fitted_cu, route):
    export = export_lammps(fitted_cu, tmp_path, routes=(route,))
    write_md_input(tmp_path, export.routes[route].include_file, md_structure(["Cu"], atoms=108), ["Cu"],
                   temperature=300, steps=400, timestep_fs=1.0, thermo_every=20)
    report = run_md(tmp_path)
    assert report.natoms == 108 and report.steps == 400
    assert report.max_drift_per_atom < 1e-4


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("model,route", [("qsnap", "snap"), ("nn", "unified")])
def test_nve_drift_on_2_ranks_over_10_ps(tmp_path, model, route):
    """NVE, 1000 atoms, 10 000 steps of 1 fs (10 ps), velocities drawn at 600 K, 2 MPI ranks."""
    potential = fitted_model(["Cu", "Ni"], "bispectrum", "quadratic" if model == "qsnap" else "mlp", zbl=False,
                             max_configs=None, alpha=None)
    export = export_lammps(potential, tmp_path, routes=(route,))
    write_md_input(tmp_path, export.routes[route].include_file, md_structure(["Cu", "Ni"], atoms=1000), ["Cu", "Ni"],
                   temperature=300, steps=10000, timestep_fs=1.0, thermo_every=100)
    report = run_md(tmp_path, ranks=2)
    print(f"{model} {route} 2 ranks: {report.natoms} atoms, {report.steps} steps, max drift "
          f"{report.max_drift_per_atom:.2e} eV/atom, final {report.final_drift_per_atom:.2e}, "
          f"{report.seconds_per_atom_step * 1e6:.1f} µs/atom-step")
    assert report.natoms == 1000 and report.steps == 10000
    assert report.max_drift_per_atom < 1e-4
