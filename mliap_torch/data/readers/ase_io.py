"""Anything ``ase.io.read`` reads (extxyz, OUTCAR, vasprun.xml, ASE db), and a lossless extxyz writer.

Labels come from the calculator results ASE attaches (``energy``, ``forces``, ``stress``: ASE's
units and conventions already) or from ``info``/``arrays`` keys the user names; named keys are read
as they are (eV, eV/Å, ASE stress in eV/Å³ tension positive, 6 Voigt or 9 values).
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..configuration import Configuration, full_to_voigt, voigt_to_full
from ._common import DataError, ReadReport, check_on_error, element_symbols, float_array, float_scalar, located

WEIGHT_KEYS = ("energy_weight", "force_weight", "stress_weight")
_RESERVED_INFO = {"group", *WEIGHT_KEYS}


def _info_lookup(atoms) -> dict[str, Any]:
    info = dict(atoms.info)
    extra = info.pop("key_value_pairs", None)
    if isinstance(extra, dict):
        info.update(extra)
    return info


def _labels(atoms, info: dict, natoms: int, source: Path, index: int, energy_key: str | None,
            forces_key: str | None, stress_key: str | None) -> tuple[Any, Any, Any]:
    results = dict(getattr(atoms.calc, "results", {}) or {}) if atoms.calc is not None else {}
    energy: float | None
    forces: np.ndarray | None
    if energy_key is not None:
        if energy_key not in info:
            raise located(source, index, energy_key, f"energy key not in the configuration's info "
                                                     f"(keys: {sorted(info)})")
        energy = float_scalar(info[energy_key], source, index, energy_key)
    else:
        energy = results.get("energy")
        energy = None if energy is None else float_scalar(energy, source, index, "energy")
    if forces_key is not None:
        if forces_key not in atoms.arrays:
            raise located(source, index, forces_key, f"forces key not in the configuration's arrays "
                                                     f"(keys: {sorted(atoms.arrays)})")
        forces = float_array(atoms.arrays[forces_key], (natoms, 3), source, index, forces_key)
    else:
        forces = results.get("forces")
        forces = None if forces is None else float_array(forces, (natoms, 3), source, index, "forces")
    if stress_key is not None:
        if stress_key not in info:
            raise located(source, index, stress_key, f"stress key not in the configuration's info "
                                                     f"(keys: {sorted(info)})")
        raw, name = info[stress_key], stress_key
    else:
        raw, name = results.get("stress"), "stress"
    stress = None
    if raw is not None:
        flat = float_array(np.asarray(raw, dtype=float).reshape(-1), (None,), source, index, name)
        if flat.size == 9:
            stress = full_to_voigt(flat.reshape(3, 3))
        elif flat.size == 6:
            stress = flat
        else:
            raise located(source, index, name, f"has {flat.size} values, expected 6 (Voigt) or 9 (3×3)")
    return energy, forces, stress


def _configuration(atoms, source: Path, index: int, energy_key: str | None, forces_key: str | None,
                   stress_key: str | None, group: str | None) -> Configuration:
    natoms = len(atoms)
    if natoms == 0:
        raise located(source, index, "positions", "configuration has no atoms")
    positions = float_array(atoms.get_positions(), (natoms, 3), source, index, "positions")
    cell = float_array(np.asarray(atoms.get_cell()), (3, 3), source, index, "cell")
    pbc = np.asarray(atoms.get_pbc(), dtype=bool)
    if np.any(pbc & (np.linalg.norm(cell, axis=1) == 0)):
        raise located(source, index, "cell", f"periodic direction(s) {np.flatnonzero(pbc).tolist()} "
                                             "have a zero cell vector")
    symbols = element_symbols(atoms.get_chemical_symbols(), natoms, source, index, "symbols")
    info = _info_lookup(atoms)
    energy, forces, stress = _labels(atoms, info, natoms, source, index, energy_key, forces_key, stress_key)
    weights = {k: float_scalar(info[k], source, index, k) for k in WEIGHT_KEYS if k in info}
    name = group if group is not None else str(info.get("group", info.get("config_type", source.stem)))
    used = _RESERVED_INFO | {energy_key, stress_key}
    extra = {k: v for k, v in info.items() if k not in used}
    return Configuration(positions=positions, cell=cell, pbc=pbc, symbols=symbols, energy=energy, forces=forces,
                         stress=stress, group=name, source=str(source), index=index, info=extra, **weights)


def _read_db(path: Path, index: str | int | slice) -> list:
    """Rows of an ASE database as Atoms with their key-value pairs in ``info``."""
    from ase.db import connect
    from ase.io.formats import string2index

    with connect(path) as db:
        frames = [row.toatoms(add_additional_information=True) for row in db.select()]
    selected = string2index(index) if isinstance(index, str) else index
    # a non-integer string index (an ASE database query) raises TypeError here, reported by read_ase
    return frames[selected] if isinstance(selected, slice) else [frames[selected]]  # type: ignore[index]


def read_ase(path: str | Path, index: str | int | slice = ":", energy_key: str | None = None,
             forces_key: str | None = None, stress_key: str | None = None, group: str | None = None,
             *, format: str | None = None, on_error: str = "raise") -> list[Configuration]:
    """Read configurations with ``ase.io.read``.

    Args:
        path: any file ASE reads (extxyz, OUTCAR, vasprun.xml, ``.db``, ...).
        index: ASE index string/int/slice (``":"`` = all).
        energy_key: ``info`` key of the total energy (eV); default: the calculator's ``energy``.
        forces_key: ``arrays`` key of the forces (eV/Å); default: the calculator's ``forces``.
        stress_key: ``info`` key of the stress (ASE convention, eV/Å³, 6 or 9 values); default: the
            calculator's ``stress``.
        group: group of every configuration; default: ``info["group"]``, ``info["config_type"]``, or the
            file's stem.
        format: ASE format name when the suffix does not tell.
        on_error: ``"raise"`` or ``"skip"`` (bad configurations dropped with a warning listing them).

    Returns:
        Configurations; ``index`` is the position among the frames read, ``info`` keeps the remaining
        ``atoms.info`` entries; ``energy_weight`` etc. are read back from ``info`` when present.
    """
    import ase.io

    check_on_error(on_error)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise located(path, None, None, "file is empty")
    try:
        if format in (None, "db") and path.suffix == ".db":
            frames = _read_db(path, index)
        else:
            frames = ase.io.read(path, index=index, format=format)  # type: ignore[assignment]  # Atoms for an int index, made a list below
    except Exception as exc:  # ASE raises many types for unreadable files
        raise located(path, None, None, f"ASE could not read it ({type(exc).__name__}: {exc})") from exc
    if not isinstance(frames, list):
        frames = [frames]
    report = ReadReport()
    configs = []
    for k, atoms in enumerate(frames):
        try:
            configs.append(_configuration(atoms, path, k, energy_key, forces_key, stress_key, group))
        except DataError as exc:
            if on_error == "raise":
                raise
            report.drop(path, k, str(exc))
    report.warn()
    return configs


def _number(x: float) -> str:
    return repr(float(x))


def _info_value(key: str, value: Any, where: str) -> str:
    """One ``key=value`` item of an extxyz comment line (strings quoted, numbers at full precision)."""
    from ase.io.extxyz import key_val_dict_to_str

    if isinstance(value, (bool, np.bool_, str)) or isinstance(value, numbers.Real):
        return key_val_dict_to_str({key: value.item() if isinstance(value, np.generic) else value})
    raise ValueError(f"{where}: info entry {key!r} of type {type(value).__name__} cannot be written to extxyz "
                     "(only strings, numbers and booleans)")


def write_extxyz(configs: Sequence[Configuration], path: str | Path) -> None:
    """Write configurations to extended XYZ at full float precision, so that :func:`read_ase` gives
    identical records back (positions, cell, pbc, symbols, energy, forces, stress, group, weights, info).

    The comment line holds ``Lattice`` (omitted when the cell is all zero), ``Properties``, ``pbc``,
    ``energy`` (eV), ``stress`` (3×3, ASE convention eV/Å³), ``group``, the three weights and the scalar
    ``info`` entries; atom lines hold the symbol, position (Å) and forces (eV/Å).
    """
    lines: list[str] = []
    for c in configs:
        parts = []
        if np.any(c.cell != 0):
            parts.append('Lattice="' + " ".join(_number(x) for x in c.cell.reshape(-1)) + '"')
        props = "species:S:1:pos:R:3" + (":forces:R:3" if c.forces is not None else "")
        parts.append(f"Properties={props}")
        parts.append('pbc="' + " ".join("T" if p else "F" for p in c.pbc) + '"')
        if c.energy is not None:
            parts.append(f"energy={_number(c.energy)}")
        if c.stress is not None:
            parts.append('stress="' + " ".join(_number(x) for x in voigt_to_full(c.stress).reshape(-1)) + '"')
        items = {"group": c.group, "energy_weight": c.energy_weight, "force_weight": c.force_weight,
                 "stress_weight": c.stress_weight, **c.info}
        parts.extend(_info_value(k, v, c.where) for k, v in items.items())
        lines.append(str(c.num_atoms))
        lines.append(" ".join(parts))
        columns = [c.positions] + ([c.forces] if c.forces is not None else [])
        table = np.concatenate(columns, axis=1)
        lines.extend(f"{s} " + " ".join(_number(x) for x in row) for s, row in zip(c.symbols, table))
    Path(path).write_text("\n".join(lines) + "\n")
