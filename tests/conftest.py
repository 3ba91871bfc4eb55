"""Shared fixtures and the skip policy for LAMMPS and shared-data tests.

Tests marked ``lammps`` skip with the reason when LAMMPS is missing, except under CI (``CI=true``),
where a missing LAMMPS fails them. Tests marked ``mpi`` (runs of ``lmp`` on several ranks) do the same
when LAMMPS is a serial build or its ``mpirun`` is missing. Tests marked ``shared_data`` skip when ``../shared/data`` is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MLIAP_TORCH_SHARED_DATA", ROOT.parent / "shared" / "data"))

torch.set_default_dtype(torch.float64)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


_LAMMPS_STATUS: tuple[bool, str] | None = None


def lammps_status() -> tuple[bool, str]:
    global _LAMMPS_STATUS
    if _LAMMPS_STATUS is None:
        from mliap_torch.lammps import lammps_status as status

        _LAMMPS_STATUS = status()
    return _LAMMPS_STATUS


_MPI_STATUS: tuple[bool, str] | None = None


def mpi_status() -> tuple[bool, str]:
    global _MPI_STATUS
    if _MPI_STATUS is None:
        from mliap_torch.mpi import mpi_status as status

        _MPI_STATUS = status()
    return _MPI_STATUS


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lammps") is not None:
        ok, reason = lammps_status()
        if not ok:
            if _in_ci():
                pytest.fail(f"CI=true and LAMMPS is not available: {reason}")
            pytest.skip(reason)
    if item.get_closest_marker("mpi") is not None:
        ok, reason = mpi_status()
        if not ok:
            if _in_ci():
                pytest.fail(f"CI=true and LAMMPS cannot run on several MPI ranks: {reason}")
            pytest.skip(reason)
    if item.get_closest_marker("shared_data") is not None and not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")


@pytest.fixture
def shared_data() -> Path:
    """Path of ``../shared/data`` (tests using it should also carry the ``shared_data`` marker)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Run a test single-threaded (small tensors: OpenMP waits dominate on a shared, busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
