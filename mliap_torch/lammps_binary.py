"""Where the ``lmp`` executable of the LAMMPS built by ``scripts/build_lammps.sh`` is (shared by
:mod:`mliap_torch.lammps` and :mod:`mliap_torch.mpi`)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

BUILD_HINT = "build it with `bash scripts/build_lammps.sh` (or run the test command, which builds it)"


def lmp_executable() -> Path | None:
    """The ``lmp`` binary: ``$LAMMPS_LMP``, else the one next to this Python, else on ``PATH``."""
    if os.environ.get("LAMMPS_LMP"):
        return Path(os.environ["LAMMPS_LMP"])
    local = Path(sys.prefix) / "bin" / "lmp"
    if local.exists():
        return local
    found = shutil.which("lmp")
    return Path(found) if found else None
