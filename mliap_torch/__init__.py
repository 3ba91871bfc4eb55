"""mliap_torch: differentiable machine-learned interatomic potentials in PyTorch, exported to LAMMPS."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Calculator", "Potential", "average_potentials", "load", "save", "read_snap", "read_mliap", "write_mliap", "read_pace", "write_pace",
           "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import mliap_torch` fast and free of optional heavy dependencies.
    if name == "Calculator":
        from .calculator import Calculator
        return Calculator
    if name == "Potential":
        from .models.potential import Potential
        return Potential
    if name == "average_potentials":
        from .models.ensemble import average_potentials
        return average_potentials
    if name in ("load", "save"):
        from .models import io
        return getattr(io, name)
    if name in ("read_snap", "read_mliap", "write_mliap"):
        from .export import snap_files
        return getattr(snap_files, name)
    if name in ("read_pace", "write_pace"):
        from .export import pace_files
        return getattr(pace_files, name)
    raise AttributeError(f"module 'mliap_torch' has no attribute {name!r}")
