"""Readers of training data, each returning ``list[Configuration]`` in mliap_torch's units and conventions.

=================  ===================================================================
``read_fitsnap_json``   FitSNAP JSON file / group folder / folder of group folders / tar archive of one
``read_mlearn``         mlearn JSON (pymatgen structure documents, per-element shear order)
``read_ase``            anything ``ase.io.read`` reads (extxyz, OUTCAR, vasprun.xml, ASE db)
``write_extxyz``        lossless extxyz writer (``read_ase`` reads identical records back)
``read_fitsnap_input``  FitSNAP ``.in`` file → typed dict (:mod:`mliap_torch.fitsnap.input`)
``read_fitsnap_data``   the data of a FitSNAP ``.in`` file (:mod:`mliap_torch.fitsnap.data`)
``read_dataset``        dispatcher choosing one of the above by format name
=================  ===================================================================

Format names are those of :mod:`mliap_torch.data.formats` (``builtin``, ``fitsnap_json``,
``fitsnap_input``, ``mlearn``, ``extxyz``), the same as the training config's ``data.format``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..archives import is_archive
from ..configuration import Configuration
from ..formats import FORMATS, canonical_format
from ._common import DataError, DroppedConfigurationWarning, ReadReport
from .ase_io import read_ase, write_extxyz
from .fitsnap_json import read_fitsnap_json
from .mlearn import SHEAR_ORDERS, read_mlearn

__all__ = ["DataError", "DroppedConfigurationWarning", "ReadReport", "read_ase", "write_extxyz",
           "read_fitsnap_input", "read_fitsnap_json", "read_mlearn", "read_dataset", "read_fitsnap_data",
           "detect_format", "SHEAR_ORDERS", "FORMATS"]


def __getattr__(name: str) -> Any:
    """``read_fitsnap_input`` and ``read_fitsnap_data`` from :mod:`mliap_torch.fitsnap` (imported on first use:
    that package reads its data with the readers here)."""
    if name == "read_fitsnap_input":
        from ...fitsnap.input import read_fitsnap_input
        return read_fitsnap_input
    if name == "read_fitsnap_data":
        from ...fitsnap.data import read_fitsnap_data
        return read_fitsnap_data
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _json_kind(path: Path) -> str:
    with open(path) as f:
        head = f.read(4096).lstrip()
    if head.startswith("#") or head.startswith("{"):
        return "fitsnap_json"
    if head.startswith("["):
        return "mlearn"
    raise DataError(f"{path}: cannot tell the JSON flavour (neither a FitSNAP object nor an mlearn list)")


def detect_format(path: str | Path) -> str:
    """The format of ``path`` (:mod:`mliap_torch.data.formats`): ``"builtin"``, ``"fitsnap_json"`` (also a
    tar archive), ``"fitsnap_input"``, ``"mlearn"`` or ``"extxyz"`` (anything else ASE reads)."""
    if str(path) == "builtin":
        return "builtin"
    p = Path(path)
    if p.is_dir() or is_archive(p):
        return "fitsnap_json"
    if p.suffix == ".in":
        return "fitsnap_input"
    if p.suffix == ".json":
        return _json_kind(p)
    return "extxyz"


def read_dataset(path: str | Path, format: str = "auto", **options: Any) -> list[Configuration]:
    """Read a data set with the reader ``format`` names (``"auto"``: by :func:`detect_format`).

    ``options`` go to the reader (e.g. ``order=`` for FitSNAP JSON, ``element=`` for mlearn,
    ``energy_key=`` for ASE). ``path="builtin"`` gives the built-in EMT data set.
    """
    kind = detect_format(path) if format == "auto" else canonical_format(format)
    if kind == "builtin":
        from ..builtin import builtin_dataset
        return builtin_dataset(**options)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such data file or folder")
    if kind == "fitsnap_input":
        from ...fitsnap.data import read_fitsnap_data
        return read_fitsnap_data(path, **options)
    readers: dict[str, Callable[..., list[Configuration]]] = {"fitsnap_json": read_fitsnap_json,
                                                              "mlearn": read_mlearn, "extxyz": read_ase}
    return readers[kind](path, **options)
