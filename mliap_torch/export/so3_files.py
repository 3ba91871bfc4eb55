"""ML-IAP ``descriptor so3`` parameter files (``.mliap.descriptor``) as LAMMPS reads them.

Keywords (``src/ML-IAP/mliap_descriptor_so3.cpp``, LAMMPS 4Feb2025), all required: ``rcutfac``,
``nmax``, ``lmax``, ``alpha``, ``nelems`` and, after it, the per-element ``elems``, ``radelems``,
``welems``. ``#`` starts a comment, quotes are stripped; any other keyword is an error, as in LAMMPS.
"""
from __future__ import annotations

from pathlib import Path

from ..descriptors.so3 import SO3
from .file_words import SnapFileError, file_lines, format_float, parse_number

SO3_ONLY_KEYWORDS = frozenset({"nmax", "lmax", "alpha"})
"""Keywords that mark a descriptor file as ``so3`` (a ``sna`` file has none of them)."""

_SCALARS = {"rcutfac": float, "alpha": float, "nmax": int, "lmax": int, "nelems": int}


def is_so3_descriptor_file(path: str | Path) -> bool:
    """True when the descriptor file uses a keyword only ``descriptor so3`` knows (nmax, lmax, alpha)."""
    return any(line.words[0] in SO3_ONLY_KEYWORDS for line in file_lines(path))


def read_so3_descriptor(path: str | Path) -> SO3:
    """The :class:`SO3` descriptor of a ``descriptor so3`` file.

    Raises:
        SnapFileError: malformed file or a keyword LAMMPS rejects (the message names file and line).
    """
    values: dict[str, float | int] = {}
    per_element: dict[str, list] = {}
    nelem: int | None = None
    for line in file_lines(path):
        key, words = line.words[0], line.words[1:]
        if key in ("elems", "radelems", "welems"):
            if nelem is None:
                raise line.error(f"{key} before nelems")
            if len(words) != nelem:
                raise line.error(f"{key} needs {nelem} values (nelems), got {len(words)}")
            per_element[key] = list(words) if key == "elems" else [float(parse_number(line, w, key)) for w in words]
        elif key in _SCALARS:
            if len(words) != 1:
                raise line.error(f"keyword {key!r} takes one value, got {len(words)}")
            value = parse_number(line, words[0], key, integer=_SCALARS[key] is int)
            values[key] = _SCALARS[key](value)
            if key == "nelems":
                nelem = int(value)
                if nelem < 1:
                    raise line.error("nelems must be at least 1")
        else:
            raise line.error(f"unknown keyword {key!r} in ML-IAP SO3 descriptor file")
    missing = [k for k in ("rcutfac", "nmax", "lmax", "alpha", "nelems") if k not in values]
    missing += [k for k in ("elems", "radelems", "welems") if k not in per_element]
    if missing:
        raise SnapFileError(f"{path}: required keyword(s) {missing} missing")
    try:
        return SO3(per_element["elems"], nmax=int(values["nmax"]), lmax=int(values["lmax"]),
                   rcutfac=float(values["rcutfac"]), alpha=float(values["alpha"]),
                   radelem=per_element["radelems"], wj=per_element["welems"])
    except ValueError as exc:
        raise SnapFileError(f"{path}: {exc}") from exc


def so3_descriptor_text(d: SO3) -> str:
    """The ``descriptor so3`` file of ``d`` (numbers written so that they read back exactly)."""
    lines = ["# ML-IAP SO3 descriptor written by mliap_torch (pair_style mliap ... descriptor so3)",
             f"rcutfac {format_float(d.rcutfac)}", f"nmax {d.nmax}", f"lmax {d.lmax}", f"alpha {format_float(d.alpha)}",
             f"nelems {len(d.elements)}", "elems " + " ".join(d.elements),
             "radelems " + " ".join(format_float(v) for v in d.radelem), "welems " + " ".join(format_float(v) for v in d.wj)]
    return "\n".join(lines) + "\n"
