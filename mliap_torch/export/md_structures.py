"""Starting structures for MD with an exported potential."""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk


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
