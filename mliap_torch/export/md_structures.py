"""Starting structures for MD with an exported potential."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.io import write


def md_structure(elements: list[str], atoms: int = 1000, seed: int = 0, rattle: float = 0.02) -> Atoms:
    """A bulk cell of about ``atoms`` atoms: the first element's ground-state lattice (ASE's
    reference data), other elements substituted at random in equal shares, slightly rattled."""
    cell = bulk(elements[0], cubic=True)
    structure = cell.repeat(repetitions(atoms / len(cell)))
    rng = np.random.default_rng(seed)
    if len(elements) > 1:
        structure.set_chemical_symbols(rng.choice(elements, size=len(structure)).tolist())
    structure.rattle(rattle, seed=seed)
    return structure


def repetitions(cells: float) -> tuple[int, int, int]:
    """Near-cubic repetitions (a, a, b) whose product is closest to ``cells`` (e.g. 250 → 5×5×10)."""
    candidates = []
    for a in range(1, int(round(cells ** (1 / 3))) + 2):
        b = max(a, round(cells / (a * a)))
        candidates.append((abs(a * a * b - cells), b / a, (a, a, b)))
    return min(candidates)[2]


def sheared(structure: Atoms, shear: tuple[float, float, float] = (0.11, -0.07, 0.05)) -> Atoms:
    """A triclinic copy of ``structure``: its cell and atoms sheared by the strain (xy, xz, yz) (dimensionless)."""
    strain = np.eye(3)
    strain[1, 0], strain[2, 0], strain[2, 1] = shear
    out = structure.copy()
    out.set_cell(structure.cell.array @ strain, scale_atoms=True)
    return out


def vacuum_slab(elements: list[str], repeat: tuple[int, int, int] = (3, 4, 4), vacuum_factor: float = 5.0,
                seed: int = 0, rattle: float = 0.02) -> Atoms:
    """A slab of ``repeat`` cubic cells of the first element's lattice (other elements substituted at
    random), periodic in y and z, with vacuum along x: the cell's x length is ``vacuum_factor`` times
    the slab's thickness and the slab sits in the first ``1/vacuum_factor`` of it. With LAMMPS'
    ``processors * 1 1`` on up to ``vacuum_factor`` ranks only the first rank then owns atoms; the next
    and the last see its ghosts, those between see nothing."""
    structure = bulk(elements[0], cubic=True).repeat(repeat)
    rng = np.random.default_rng(seed)
    if len(elements) > 1:
        structure.set_chemical_symbols(rng.choice(elements, size=len(structure)).tolist())
    structure.rattle(rattle, seed=seed)
    thickness = structure.cell.array[0, 0]
    cell = structure.cell.array.copy()
    cell[0] *= vacuum_factor
    structure.set_cell(cell, scale_atoms=False)
    structure.positions[:, 0] += 0.1 * thickness
    return structure


def write_lammps_data(path: str | Path, structure: Atoms, elements: list[str]) -> Path:
    """``structure`` as a LAMMPS data file (atom_style atomic, masses, types in the order of ``elements``)."""
    path = Path(path)
    write(path, structure, format="lammps-data", specorder=list(elements), masses=True, units="metal",
          atom_style="atomic")
    return path
