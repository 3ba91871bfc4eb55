"""mlearn JSON (Zuo et al., J. Phys. Chem. A 124, 731 (2020)): a list of pymatgen structure documents.

Each document: ``structure`` (pymatgen ``Structure.as_dict()``: ``lattice.matrix`` rows Å,
``sites[].xyz`` Cartesian Å, ``sites[].species[0].element``), ``outputs.energy`` (eV),
``outputs.forces`` (N×3 eV/Å), ``outputs.virial_stress`` (6 numbers, kbar, compression positive,
or ``null``), ``group``, ``tag``, ``element``, ``description``.

The order of the three shear components of ``virial_stress`` differs by element (established from
energy changes along strain paths, see ``tests/test_mlearn_shear_order.py``):

* Cu, Ni, Mo: ``xx yy zz xy xz yz``
* Li, Si, Ge: ``xx yy zz xy yz zx``

Conversion to ASE's convention: ``stress = -virial_stress * 0.1 GPa`` (eV/Å³), reordered to Voigt
``xx yy zz yz xz xy``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..configuration import Configuration
from ._common import (
    PRESSURE_UNITS,
    DataError,
    ReadReport,
    check_on_error,
    element_symbols,
    float_array,
    float_scalar,
    located,
)

SHEAR_ORDERS: dict[str, tuple[str, ...]] = {
    "Cu": ("xx", "yy", "zz", "xy", "xz", "yz"),
    "Ni": ("xx", "yy", "zz", "xy", "xz", "yz"),
    "Mo": ("xx", "yy", "zz", "xy", "xz", "yz"),
    "Li": ("xx", "yy", "zz", "xy", "yz", "xz"),
    "Si": ("xx", "yy", "zz", "xy", "yz", "xz"),
    "Ge": ("xx", "yy", "zz", "xy", "yz", "xz"),
}
"""Component order of ``virial_stress`` per mlearn element."""

_VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
KBAR = PRESSURE_UNITS["kbar"]


def virial_to_ase(virial: np.ndarray, component_order: tuple[str, ...]) -> np.ndarray:
    """(6,) mlearn ``virial_stress`` (kbar, compression positive, in ``component_order``) → ASE stress."""
    slot = {name: k for k, name in enumerate(component_order)}
    return -KBAR * np.asarray(virial, dtype=np.float64)[[slot[c] for c in _VOIGT]]


def _element_of(path: Path, docs: list, element: str | None) -> str:
    if element is not None:
        if element not in SHEAR_ORDERS:
            raise located(path, None, "element", f"no known virial_stress order for {element!r}; "
                                                 f"known: {sorted(SHEAR_ORDERS)}")
        return element
    names: set[Any] = {d.get("element") for d in docs if isinstance(d, dict)}
    names.discard(None)
    if len(names) == 1 and next(iter(names)) in SHEAR_ORDERS:
        return next(iter(names))
    if path.parent.name in SHEAR_ORDERS:
        return path.parent.name
    raise located(path, None, "element", f"cannot tell the data set's element (fields: {sorted(names)}, "
                                         f"folder: {path.parent.name!r}); pass element= one of {sorted(SHEAR_ORDERS)}")


def _configuration(doc: Any, path: Path, index: int, order: tuple[str, ...]) -> Configuration:
    if not isinstance(doc, dict):
        raise located(path, index, None, f"entry must be an object, got {type(doc).__name__}")
    structure = doc.get("structure")
    if not isinstance(structure, dict):
        raise located(path, index, "structure", "is missing or not an object")
    lattice = structure.get("lattice")
    if not isinstance(lattice, dict) or "matrix" not in lattice:
        raise located(path, index, "structure.lattice.matrix", "is missing")
    cell = float_array(lattice["matrix"], (3, 3), path, index, "structure.lattice.matrix")
    if abs(np.linalg.det(cell)) < 1e-8:
        raise located(path, index, "structure.lattice.matrix", "is singular (zero cell volume)")
    sites = structure.get("sites")
    if not isinstance(sites, list) or not sites:
        raise located(path, index, "structure.sites", "is missing or empty")
    try:
        xyz = [s["xyz"] for s in sites]
        elements = [s["species"][0]["element"] for s in sites]
    except (KeyError, IndexError, TypeError) as exc:
        raise located(path, index, "structure.sites", f"a site lacks 'xyz' or 'species[0].element' ({exc!r})") from None
    positions = float_array(xyz, (len(sites), 3), path, index, "structure.sites[].xyz")
    natoms = len(positions)
    symbols = element_symbols(elements, natoms, path, index, "structure.sites[].species")
    if "num_atoms" in doc and doc["num_atoms"] != natoms:
        raise located(path, index, "num_atoms", f"is {doc['num_atoms']} but the structure has {natoms} sites")
    outputs = doc.get("outputs")
    if not isinstance(outputs, dict):
        raise located(path, index, "outputs", "is missing or not an object")
    energy = outputs.get("energy")
    energy = None if energy is None else float_scalar(energy, path, index, "outputs.energy")
    forces = outputs.get("forces")
    if forces is not None:
        forces = float_array(forces, (natoms, 3), path, index, "outputs.forces")
    virial = outputs.get("virial_stress")
    stress = None
    if virial is not None:
        stress = virial_to_ase(float_array(virial, (6,), path, index, "outputs.virial_stress"), order)
    info = {k: doc[k] for k in ("tag", "description", "element") if k in doc}
    return Configuration(positions=positions, cell=cell, pbc=np.ones(3, dtype=bool), symbols=symbols, energy=energy,
                         forces=forces, stress=stress, group=str(doc.get("group", "default")),
                         source=str(path), index=index, info=info)


def read_mlearn(path: str | Path, element: str | None = None, *, on_error: str = "raise") -> list[Configuration]:
    """Read an mlearn ``training.json`` / ``test.json``.

    Args:
        path: the JSON file.
        element: the data set's element (selects the ``virial_stress`` shear order); by default taken
            from the documents' ``element`` field or the parent folder's name.
        on_error: ``"raise"`` or ``"skip"`` (bad documents dropped and reported with a
            :class:`DroppedConfigurationWarning`).

    Returns:
        Configurations in file order; ``index`` is the position in the list, ``group`` the ``group``
        field, ``stress`` None where ``virial_stress`` is null.
    """
    check_on_error(on_error)
    path = Path(path)
    text = path.read_text()
    if not text.strip():
        raise located(path, None, None, "file is empty")
    try:
        docs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise located(path, None, None, f"is not valid JSON ({exc})") from None
    if not isinstance(docs, list):
        raise located(path, None, None, f"must hold a JSON list of documents, got {type(docs).__name__}")
    order = SHEAR_ORDERS[_element_of(path, docs, element)]
    report = ReadReport()
    configs = []
    for k, doc in enumerate(docs):
        try:
            configs.append(_configuration(doc, path, k, order))
        except DataError as exc:
            if on_error == "raise":
                raise
            report.drop(path, k, str(exc))
    report.warn()
    return configs
