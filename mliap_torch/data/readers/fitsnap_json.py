"""FitSNAP JSON training files: one file per configuration, one folder per group.

File layout (FitSNAP ``scraper = JSON``): an optional first comment line (``# ...``), then
``{"Dataset": {"Data": [{"Positions", "Forces", "Energy", "Stress", "Lattice", "AtomTypes", "NumAtoms"}],
"PositionsStyle", "LatticeStyle", "EnergyStyle", "ForcesStyle", "StressStyle", "AtomTypeStyle", "Label"}}``.
``Lattice`` rows are the cell vectors; ``Stress`` is a 3×3 tensor in the unit ``StressStyle`` names
(``bar``, ``kbar``, ``GPa``), compression positive as VASP writes it. The reader converts to
mliap_torch's conventions: Å, eV, eV/Å, and ASE stress (tension positive, eV/Å³, Voigt
``xx yy zz yz xz xy``), i.e. ``stress = -Stress * unit``. Positions and cell keep their frame
(FitSNAP rotates each cell into LAMMPS' upper-triangular frame; for the Ta and WBe sets the cells are
already in that frame, so the rotation is the identity).

Order of configurations (FitSNAP's design-matrix rows follow its read order):

* FitSNAP reads the groups in the order of its ``[GROUPS]`` table and, within a group, the files
  in ``os.listdir`` order, which is the file system's directory order (ext4 hash order), not
  reproducible across machines. The ``Ta_Linear_JCP2014/reference`` rows follow such an order
  (groups alphabetical as in the table, files scrambled: ``A15_7, A15_6, A15_1, ...``).
* ``order="sorted"`` (default): sorted group names (or the order of ``groups`` when given), then
  sorted file names — deterministic everywhere.
* ``order="listdir"``: FitSNAP's rule on this machine (``groups`` order, then ``os.listdir``).
* ``order=[... "group/file.json" ...]``: an explicit order, e.g. the one recovered from a reference
  design matrix (``tests/data/ta_fitsnap_reference_order.txt`` for the Ta reference).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..archives import is_archive, unpacked
from ..configuration import Configuration, full_to_voigt
from ._common import (
    ENERGY_UNITS,
    FORCE_UNITS,
    LENGTH_UNITS,
    PRESSURE_UNITS,
    DataError,
    ReadReport,
    check_on_error,
    element_symbols,
    float_array,
    float_scalar,
    located,
    unit_factor,
)

STYLE_TABLES = {"PositionsStyle": LENGTH_UNITS, "LatticeStyle": LENGTH_UNITS, "EnergyStyle": ENERGY_UNITS,
                "ForcesStyle": FORCE_UNITS, "StressStyle": PRESSURE_UNITS}
"""Unit tables of the ``*Style`` fields FitSNAP defines (``AtomTypeStyle`` must be ``chemicalsymbol``)."""

SYMMETRY_TOLERANCE = 1e-6
"""Largest accepted relative asymmetry of a stress tensor."""


def _load_json(path: Path) -> Any:
    """The JSON object of a FitSNAP file, skipping a leading ``#`` comment line."""
    text = path.read_text()
    if not text.strip():
        raise located(path, None, None, "file is empty")
    body = text
    if text.lstrip().startswith("#"):
        newline = text.find("\n")
        body = text[newline + 1:] if newline >= 0 else ""
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise located(path, None, None, f"is not valid JSON after the comment line ({exc})") from None


def _factors(dataset: dict, path: Path) -> dict[str, float]:
    """Unit factors of the ``*Style`` fields; a style that a present data field needs must be stated."""
    data = dataset["Data"]
    factors = {}
    for key, table in STYLE_TABLES.items():
        needed = any(isinstance(e, dict) and e.get(key[:-5]) is not None for e in data)
        if key not in dataset:
            if needed:
                raise located(path, None, key, f"is missing (the unit of '{key[:-5]}' must be stated)")
            factors[key] = 1.0
            continue
        factors[key] = unit_factor(table, dataset[key], path, key)
    style = dataset.get("AtomTypeStyle", "chemicalsymbol")
    if str(style).lower() != "chemicalsymbol":
        raise located(path, None, "AtomTypeStyle", f"unknown style {style!r}; known: ['chemicalsymbol']")
    return factors


def _configuration(entry: Any, factors: dict[str, float], path: Path, index: int, group: str) -> Configuration:
    if not isinstance(entry, dict):
        raise located(path, index, "Data", f"entry must be an object, got {type(entry).__name__}")
    for key in ("Positions", "Lattice", "AtomTypes"):
        if key not in entry:
            raise located(path, index, key, "is missing")
    positions = float_array(entry["Positions"], (None, 3), path, index, "Positions") * factors["PositionsStyle"]
    natoms = len(positions)
    if natoms == 0:
        raise located(path, index, "Positions", "has no atoms")
    if "NumAtoms" in entry and int(float_scalar(entry["NumAtoms"], path, index, "NumAtoms")) != natoms:
        raise located(path, index, "NumAtoms", f"is {entry['NumAtoms']} but 'Positions' has {natoms} rows")
    cell = float_array(entry["Lattice"], (3, 3), path, index, "Lattice") * factors["LatticeStyle"]
    if abs(np.linalg.det(cell)) < 1e-8:
        raise located(path, index, "Lattice", "is singular (zero cell volume)")
    symbols = element_symbols(entry["AtomTypes"], natoms, path, index, "AtomTypes")
    energy = entry.get("Energy")
    energy = None if energy is None else float_scalar(energy, path, index, "Energy") * factors["EnergyStyle"]
    forces = entry.get("Forces")
    if forces is not None:
        forces = float_array(forces, (natoms, 3), path, index, "Forces") * factors["ForcesStyle"]
    stress = entry.get("Stress")
    if stress is not None:
        tensor = float_array(stress, (3, 3), path, index, "Stress")
        scale = max(float(np.abs(tensor).max()), 1.0)
        if np.abs(tensor - tensor.T).max() > SYMMETRY_TOLERANCE * scale:
            raise located(path, index, "Stress", "is not symmetric")
        stress = -full_to_voigt(0.5 * (tensor + tensor.T)) * factors["StressStyle"]
    return Configuration(positions=positions, cell=cell, pbc=np.ones(3, dtype=bool), symbols=symbols, energy=energy,
                         forces=forces, stress=stress, group=group, source=str(path), index=index,
                         info={"file": path.name})


def read_fitsnap_file(path: str | Path, group: str | None = None) -> list[Configuration]:
    """Configurations of one FitSNAP JSON file; ``group`` defaults to the parent folder's name."""
    path = Path(path)
    obj = _load_json(path)
    if not isinstance(obj, dict) or "Dataset" not in obj:
        raise located(path, None, "Dataset", "is missing (expected {\"Dataset\": {...}})")
    dataset = obj["Dataset"]
    if not isinstance(dataset, dict):
        raise located(path, None, "Dataset", f"must be an object, got {type(dataset).__name__}")
    data = dataset.get("Data")
    if not isinstance(data, list) or not data:
        raise located(path, None, "Data", "is missing or empty")
    factors = _factors(dataset, path)
    group = group if group is not None else path.parent.name
    return [_configuration(entry, factors, path, k, group) for k, entry in enumerate(data)]


def _group_folders(root: Path, groups: Sequence[str] | None) -> list[tuple[str, Path]]:
    if groups is None:
        if any(p.is_file() and p.suffix == ".json" for p in root.iterdir()):
            return [(root.name, root)]
        return [(p.name, p) for p in sorted(root.iterdir()) if p.is_dir()]
    missing = [g for g in groups if not (root / g).is_dir()]
    if missing:
        raise located(root, None, "groups", f"group folder(s) {missing} do not exist")
    return [(g, root / g) for g in groups]


def fitsnap_files(path: str | Path, groups: Sequence[str] | None = None,
                  order: str | Sequence[str] = "sorted") -> list[tuple[str, Path]]:
    """``(group, path)`` of every entry of the group folders, in read order (module docstring for ``order``);
    entries that are not ``.json`` files are included (the reader reports and skips them)."""
    root = Path(path)
    if is_archive(root):
        root = unpacked(root)
    if root.is_file():
        return [(root.parent.name, root)]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such FitSNAP JSON file or folder")
    if not isinstance(order, str):
        files = [(Path(name).parent.name, root / name) for name in order]
        absent = [str(f) for _, f in files if not f.is_file()]
        if absent:
            raise located(root, None, "order", f"file(s) not found: {absent[:5]}")
        return files
    if order not in ("sorted", "listdir"):
        raise ValueError(f"order must be 'sorted', 'listdir' or a list of 'group/file' names, got {order!r}")
    out: list[tuple[str, Path]] = []
    for group, folder in _group_folders(root, groups):
        names = os.listdir(folder) if order == "listdir" else sorted(os.listdir(folder))
        out.extend((group, folder / n) for n in names)
    return out


def read_fitsnap_json(path: str | Path, *, groups: Sequence[str] | None = None,
                      order: str | Sequence[str] = "sorted", on_error: str = "raise",
                      progress: bool = False) -> list[Configuration]:
    """Read a FitSNAP JSON file, a group folder, or a folder of group folders.

    Args:
        path: a ``.json`` file, a folder of ``.json`` files (one group), a folder of group folders, or a
            ``.tar.gz``/``.tgz``/``.tar`` archive of such a folder (unpacked once into the cache,
            :mod:`mliap_torch.data.archives`).
        groups: read only these group folders, in this order (FitSNAP's ``[GROUPS]`` table order).
        order: ``"sorted"``, ``"listdir"`` or an explicit list of ``"group/file.json"`` names.
        on_error: ``"raise"`` (default) stops at the first bad file; ``"skip"`` drops bad files
            and reports them with one :class:`DroppedConfigurationWarning`.
        progress: show a tqdm progress bar.

    Returns:
        Configurations in read order; ``source`` is the file, ``index`` the entry in its ``Data``
        list, ``group`` the folder name and ``info["file"]`` the file name.
    """
    check_on_error(on_error)
    report = ReadReport()
    files = fitsnap_files(path, groups, order)
    if progress:
        from tqdm.auto import tqdm
        files = tqdm(files, desc=f"reading {Path(path).name}", unit="file")
    configs: list[Configuration] = []
    for group, file in files:
        if file.suffix != ".json" or not file.is_file():
            report.drop(file, "*", "not a .json file, ignored")
            continue
        try:
            configs.extend(read_fitsnap_file(file, group))
        except DataError as exc:
            if on_error == "raise":
                raise
            report.drop(file, "*", str(exc))
    report.warn()
    return configs
