"""Stop every MPI rank when Python code inside LAMMPS fails on one of them.

LAMMPS answers a Python exception in an ML-IAP unified callback with ``error->all``, which waits
at a barrier for all ranks: when only one rank failed, the others never arrive and the run hangs.
:func:`abort_on_error` catches the exception first; on more than one rank it prints the traceback
with the rank and aborts the whole MPI job (``MPI_Abort``, else ``os._exit``, which ``mpirun``
also answers by stopping the job). On one rank the exception is re-raised, so LAMMPS reports it
as usual (and a Python-driven LAMMPS raises it to its caller).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import traceback
from collections.abc import Iterator

_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return default


def world_size() -> int:
    """Number of ranks of the MPI job this process belongs to, from the launcher's environment (1 without one)."""
    return _first_int(_SIZE_VARIABLES, 1)


def world_rank() -> int:
    """This process' rank in its MPI job (0 without a launcher)."""
    return _first_int(_RANK_VARIABLES, 0)


def abort_world(code: int = 1) -> None:
    """End the whole MPI job: ``MPI_Abort(MPI_COMM_WORLD)`` of OpenMPI when the MPI library is loaded in
    this process, else ``os._exit`` (``mpirun`` stops the other ranks when one exits without finalizing)."""
    sys.stdout.flush()
    sys.stderr.flush()
    process = ctypes.CDLL(None)
    try:
        comm_world = ctypes.addressof(ctypes.c_char.in_dll(process, "ompi_mpi_comm_world"))
        process.MPI_Abort(ctypes.c_void_p(comm_world), ctypes.c_int(code))
    except (AttributeError, ValueError):  # not OpenMPI, or no MPI library in this process
        pass
    os._exit(code)


@contextlib.contextmanager
def abort_on_error(where: str) -> Iterator[None]:
    """Run a block; an exception in it aborts all ranks when there are several (see the module text)."""
    try:
        yield
    except Exception:
        if world_size() <= 1:
            raise
        print(f"mliap_torch: Python error in {where} on MPI rank {world_rank()} of {world_size()}; "
              "aborting all ranks", file=sys.stderr)
        traceback.print_exc()
        abort_world(1)
