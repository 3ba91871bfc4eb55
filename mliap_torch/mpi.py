"""Run the project's LAMMPS on several MPI ranks: find the matching ``mpirun`` and build its command line.

``scripts/build_lammps.sh`` links the ``mpirun`` of the MPI library it built LAMMPS with next to the
build (``<cache entry>/mpirun``), so runs never pick up another MPI's launcher from ``PATH`` (a pip
wheel may bring MPICH's). ``$MLIAP_TORCH_MPIRUN`` overrides it.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .lammps_binary import BUILD_HINT, lmp_executable


def mpirun_executable() -> Path | None:
    """``$MLIAP_TORCH_MPIRUN``, else the ``mpirun`` the build script linked next to the LAMMPS build."""
    if os.environ.get("MLIAP_TORCH_MPIRUN"):
        return Path(os.environ["MLIAP_TORCH_MPIRUN"])
    exe = lmp_executable()
    if exe is None:
        return None
    linked = exe.resolve().parent.parent / "mpirun"
    return linked if linked.exists() else None


def lammps_mpi_library() -> str:
    """The MPI line of ``lmp -h`` (e.g. ``MPI v3.1: Open MPI v4.1.4, ...``; ``... MPI STUBS`` for a serial build)."""
    exe = lmp_executable()
    if exe is None:
        raise FileNotFoundError(f"no lmp executable; {BUILD_HINT}")
    text = subprocess.run([str(exe), "-h"], capture_output=True, text=True, timeout=120).stdout
    return next((line.strip() for line in text.splitlines() if line.startswith("MPI v")), "no MPI line in lmp -h")


def mpi_status() -> tuple[bool, str]:
    """(True, description) when ``lmp`` is an MPI build and its ``mpirun`` is found, else (False, reason)."""
    exe = lmp_executable()
    if exe is None or not exe.exists():
        return False, f"no lmp executable; {BUILD_HINT}"
    library = lammps_mpi_library()
    if "STUBS" in library or not library.startswith("MPI v"):
        return False, f"{exe} is a serial build ({library}); install libopenmpi-dev openmpi-bin and {BUILD_HINT}"
    mpirun = mpirun_executable()
    if mpirun is None:
        return False, f"no mpirun linked next to the LAMMPS build of {exe} (set MLIAP_TORCH_MPIRUN); {BUILD_HINT}"
    return True, f"{library} ({mpirun})"


def mpirun_prefix(ranks: int) -> list[str]:
    """``mpirun -np <ranks>`` with the options a shared machine needs: more ranks than cores
    (``--oversubscribe``), root in containers (``--allow-run-as-root``), and ``--noprefix``: OpenMPI's
    mpirun called by its full path would otherwise put its own ``bin/`` first on the ranks' ``PATH``,
    and LAMMPS' embedded Python would take the system Python's ``sys.prefix`` instead of this
    environment's (:func:`mliap_torch.lammps.lmp_environment`)."""
    mpirun = mpirun_executable()
    if mpirun is None:
        raise FileNotFoundError(f"no mpirun for the LAMMPS build (set MLIAP_TORCH_MPIRUN); {BUILD_HINT}")
    prefix = [str(mpirun), "-np", str(ranks), "--oversubscribe", "--noprefix"]
    if os.geteuid() == 0:
        prefix.append("--allow-run-as-root")
    return prefix
