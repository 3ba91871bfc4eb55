"""Shared pieces of the readers: located errors, field validation, unit tables, dropped-config reports."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import chemical_symbols
from ase.units import Bohr, Hartree, Rydberg, kcal, kJ, mol

from ...errors import DataError

KNOWN_ELEMENTS = frozenset(chemical_symbols[1:])

ELEMENTARY_CHARGE = 1.602176634e-19
"""Exact SI value (C); 1 eV/Å³ = 1.602176634e11 Pa."""
BAR = 1e5 / (ELEMENTARY_CHARGE * 1e30)
"""One bar in eV/Å³ (exact SI; ``ase.units`` uses CODATA 2014, 8e-9 relative away)."""

LENGTH_UNITS = {"angstrom": 1.0, "bohr": Bohr, "nm": 10.0, "nanometer": 10.0}
"""Length styles → Å."""
ENERGY_UNITS = {"electronvolt": 1.0, "ev": 1.0, "hartree": Hartree, "rydberg": Rydberg,
                "kcal/mol": kcal / mol, "kcalpermol": kcal / mol, "kj/mol": kJ / mol}
"""Energy styles → eV."""
FORCE_UNITS = {"electronvoltperangstrom": 1.0, "ev/angstrom": 1.0, "hartreeperbohr": Hartree / Bohr,
               "rydbergperbohr": Rydberg / Bohr, "kcal/mol/angstrom": kcal / mol}
"""Force styles → eV/Å."""
PRESSURE_UNITS = {"bar": BAR, "kbar": 1e3 * BAR, "gpa": 1e4 * BAR, "atm": 1.01325 * BAR, "pa": 1e-5 * BAR,
                  "electronvoltperangstrom3": 1.0, "ev/angstrom^3": 1.0}
"""Pressure styles → eV/Å³ (magnitude only; the sign convention is the reader's business)."""


def located(source: str | Path, index: int | str | None, field_name: str | None, message: str) -> DataError:
    """A :class:`DataError` whose message starts with ``file [configuration k] field:``."""
    where = str(source)
    if isinstance(index, str) and index.startswith("section "):
        where += f" [{index}]"
    elif index is not None:
        where += f" [configuration {index}]"
    if field_name:
        where += f" field '{field_name}'"
    return DataError(f"{where}: {message}")


def float_array(value: Any, shape: tuple[int | None, ...], source: str | Path, index: int | str | None,
                field_name: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (None = any length), else a located error."""
    if value is None:
        raise located(source, index, field_name, "is missing (null)")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise located(source, index, field_name, f"is not a numeric array ({exc})") from None
    expected = tuple(arr.shape[k] if s is None and k < arr.ndim else s for k, s in enumerate(shape))
    if arr.shape != expected:
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise located(source, index, field_name, f"has shape {arr.shape}, expected {want}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr.reshape(arr.shape or (1,))))[0].tolist()
        raise located(source, index, field_name, f"contains non-finite values (first at index {bad})")
    return arr


def float_scalar(value: Any, source: str | Path, index: int | str | None, field_name: str) -> float:
    """``value`` as a finite float, else a located error."""
    if isinstance(value, bool) or value is None:
        raise located(source, index, field_name, f"must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise located(source, index, field_name, f"must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise located(source, index, field_name, f"is not finite ({out})")
    return out


def element_symbols(value: Any, natoms: int, source: str | Path, index: int | str | None,
                    field_name: str) -> np.ndarray:
    """(natoms,) chemical symbols, checked against the periodic table."""
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise located(source, index, field_name, f"must be a list of element symbols, got {type(value).__name__}")
    symbols = [str(s) for s in value]
    if len(symbols) != natoms:
        raise located(source, index, field_name, f"has {len(symbols)} entries for {natoms} atoms")
    unknown = sorted(set(symbols) - KNOWN_ELEMENTS)
    if unknown:
        raise located(source, index, field_name, f"unknown element symbol(s) {unknown}")
    return np.array(symbols, dtype=str)


def unit_factor(table: dict[str, float], style: Any, source: str | Path, field_name: str) -> float:
    """Conversion factor of ``style`` in ``table``; an unknown style is a located error."""
    key = str(style).strip().lower()
    if key not in table:
        raise located(source, None, field_name, f"unknown unit {style!r}; known: {sorted(table)}")
    return table[key]


class DroppedConfigurationWarning(UserWarning):
    """Configurations were skipped while reading (the message lists which and why)."""


@dataclass
class ReadReport:
    """What a reader skipped: ``(source, index, reason)`` per dropped configuration."""

    dropped: list[tuple[str, int | str, str]] = field(default_factory=list)

    def drop(self, source: str | Path, index: int | str, reason: str) -> None:
        self.dropped.append((str(source), index, reason))

    def warn(self, stacklevel: int = 3) -> None:
        """Emit one :class:`DroppedConfigurationWarning` listing every dropped configuration."""
        if self.dropped:
            lines = "\n".join(f"  {s} [configuration {i}]: {r}" for s, i, r in self.dropped)
            warnings.warn(f"{len(self.dropped)} configuration(s) dropped:\n{lines}",
                          DroppedConfigurationWarning, stacklevel=stacklevel)


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
