"""The run's LAMMPS step reports a 2-rank check of the route it deploys, and its MD input says how to
run it with mpirun."""
from __future__ import annotations

import pytest

from lammps_models import fitted_model, random_structures
from mliap_torch.export.run_export import export_run, format_export_report

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]


@pytest.mark.parametrize("descriptor,head,route", [("bispectrum", "quadratic", "snap"),
                                                   pytest.param("bispectrum", "mlp", "plugin", marks=pytest.mark.plugin),
                                                   pytest.param("ace", "mlp", "plugin", marks=pytest.mark.plugin)])
def test_export_run_reports_two_rank_check(tmp_path, descriptor, head, route):
    """The deployed route is the fastest one that can express the model: snap, else the plugin (SNA or
    compiled ACE); unified only where neither can (chemflag) or the plugin is not built."""
    potential = fitted_model(["Cu", "Ni"], descriptor, head, zbl=True)
    report = export_run(potential, tmp_path, random_structures(["Cu", "Ni"], 1, seed=4), md_steps=20, md_atoms=108)
    mpi = report["mpi"]
    assert mpi["route"] == route == report["deploy_route"] and mpi["ranks"] == 2 and mpi["atoms"] == 108
    assert "Open MPI" in mpi["library"]
    assert max(mpi["energy"], mpi["force"], mpi["pressure"]) < 1e-10
    assert max(mpi["energy_md"], mpi["force_md"]) < 1e-8
    assert "2 MPI ranks vs 1" in format_export_report(report)
    header = (tmp_path / "lammps" / "in.md.lammps").read_text().splitlines()[:6]
    assert any("mpirun -np N lmp -in in.md.lammps" in line for line in header)
