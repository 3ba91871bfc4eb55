"""A Python error inside the ML-IAP unified model on one MPI rank stops the whole run with its message
(instead of leaving the other ranks waiting at LAMMPS' barrier), and on one rank it is still reported
as a LAMMPS error to the caller."""
from __future__ import annotations

import subprocess
import time

import pytest

from lammps_models import random_model, random_structures
from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.export.md_structures import md_structure, write_lammps_data
from mliap_torch.export.rank_check import RankCase, write_rank_input
from mliap_torch.lammps import lmp_environment, lmp_executable
from mliap_torch.lammps_eval import evaluate_in_lammps
from mliap_torch.mpi import mpirun_prefix

BAD_DEVICE = "MLIAP_TORCH_DEVICE=nosuchdevice"   # a real failure: torch rejects the device string


@pytest.mark.lammps
@pytest.mark.mpi
def test_error_on_one_rank_aborts_all_ranks(tmp_path):
    potential = random_model(["Cu", "Ni"], "bispectrum", "linear", zbl=False, seed=2)
    export = export_lammps(potential, tmp_path, routes=("unified",))
    write_lammps_data(tmp_path / "bulk.data", md_structure(["Cu", "Ni"], 256), ["Cu", "Ni"])
    name = write_rank_input(tmp_path, export.routes["unified"].include_file, [RankCase("bulk", "bulk.data")]).name
    lmp = [str(lmp_executable()), "-nocite", "-log", "none", "-in", name, "-var", "tag", "mpmd"]
    # MPMD: rank 0 runs normally, rank 1 gets a device torch does not know.
    command = mpirun_prefix(1) + lmp + [":", "-np", "1", "-x", BAD_DEVICE] + lmp
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=tmp_path, env=lmp_environment(), capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "Python error in MLIAPUnifiedTorch.compute_forces on MPI rank 1 of 2; aborting all ranks" in output
    assert "nosuchdevice" in output
    assert elapsed < 120, f"the abort took {elapsed:.0f} s"


@pytest.mark.lammps
def test_error_on_a_single_rank_is_a_lammps_error(tmp_path, monkeypatch):
    potential = random_model(["Cu", "Ni"], "bispectrum", "linear", zbl=False, seed=2)
    export = export_lammps(potential, tmp_path, routes=("unified",))
    monkeypatch.setenv(*BAD_DEVICE.split("="))
    with pytest.raises(Exception, match="compute_forces failure"):
        evaluate_in_lammps(random_structures(["Cu", "Ni"], 1, seed=1), ["Cu", "Ni"],
                           export.routes["unified"].pair_commands, activate_mliappy=True, directory=tmp_path)
