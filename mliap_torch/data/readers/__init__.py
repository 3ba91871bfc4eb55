"""Readers of training data, each returning ``list[Configuration]`` in mliap_torch's units and conventions.

=================  ===================================================================
``read_fitsnap_json``   FitSNAP JSON file / group folder / folder of group folders
``read_mlearn``         mlearn JSON (pymatgen structure documents, per-element shear order)
``read_ase``            anything ``ase.io.read`` reads (extxyz, OUTCAR, vasprun.xml, ASE db)
``write_extxyz``        lossless extxyz writer (``read_ase`` reads identical records back)
``read_fitsnap_input``  FitSNAP ``.in`` file → typed dict with ``GroupSpec`` s
``read_dataset``        dispatcher choosing one of the above
=================  ===================================================================
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..configuration import Configuration
from ._common import DataError, DroppedConfigurationWarning, ReadReport
from .ase_io import read_ase, write_extxyz
from .fitsnap_input import read_fitsnap_input
from .fitsnap_json import read_fitsnap_json
from .mlearn import SHEAR_ORDERS, read_mlearn

FORMATS = ("auto", "fitsnap", "fitsnap-input", "mlearn", "ase", "builtin")

__all__ = ["DataError", "DroppedConfigurationWarning", "ReadReport", "read_ase", "write_extxyz",
           "read_fitsnap_input", "read_fitsnap_json", "read_mlearn", "read_dataset", "read_fitsnap_data",
           "detect_format", "SHEAR_ORDERS", "FORMATS"]


def _json_kind(path: Path) -> str:
    with open(path) as f:
        head = f.read(4096).lstrip()
    if head.startswith("#") or head.startswith("{"):
        return "fitsnap"
    if head.startswith("["):
        return "mlearn"
    raise DataError(f"{path}: cannot tell the JSON flavour (neither a FitSNAP object nor an mlearn list)")


def detect_format(path: str | Path) -> str:
    """The reader for ``path``: ``"builtin"``, ``"fitsnap"``, ``"fitsnap-input"``, ``"mlearn"`` or ``"ase"``."""
    if str(path) == "builtin":
        return "builtin"
    p = Path(path)
    if p.is_dir():
        return "fitsnap"
    if p.suffix == ".in":
        return "fitsnap-input"
    if p.suffix == ".json":
        return _json_kind(p)
    return "ase"


def read_fitsnap_data(input_path: str | Path, **options: Any) -> list[Configuration]:
    """The configurations a FitSNAP input trains on: its ``[GROUPS]`` (in table order) under ``dataPath``,
    with ``[ESHIFT]`` applied and each group's ``eweight``/``fweight``/``vweight`` as weights."""
    from ..groups import apply_energy_shift, assign_group_weights

    settings = read_fitsnap_input(input_path)
    if "PATH" not in settings or "data_path" not in settings["PATH"]:
        raise DataError(f"{input_path} field 'dataPath': [PATH] dataPath is missing")
    specs = settings["GROUPS"]["groups"] if "GROUPS" in settings else None
    configs = read_fitsnap_json(settings["PATH"]["data_path"], groups=[s.name for s in specs] if specs else None,
                                **options)
    if settings.get("ESHIFT"):
        configs = apply_energy_shift(configs, settings["ESHIFT"])
    return assign_group_weights(configs, specs) if specs else configs


def read_dataset(path: str | Path, format: str = "auto", **options: Any) -> list[Configuration]:
    """Read a data set with the reader ``format`` names (``"auto"``: by :func:`detect_format`).

    ``options`` go to the reader (e.g. ``order=`` for FitSNAP JSON, ``element=`` for mlearn,
    ``energy_key=`` for ASE). ``path="builtin"`` gives the built-in EMT data set.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown data format {format!r}; known: {FORMATS}")
    kind = detect_format(path) if format == "auto" else format
    if kind == "builtin":
        from ..builtin import builtin_dataset
        return builtin_dataset(**options)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such data file or folder")
    readers: dict[str, Callable[..., list[Configuration]]] = {"fitsnap": read_fitsnap_json, "fitsnap-input": read_fitsnap_data, "mlearn": read_mlearn,
               "ase": read_ase}
    return readers[kind](path, **options)
