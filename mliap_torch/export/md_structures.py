"""Starting structures for MD with an exported potential."""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk


def md_structure(elements: list[str], atoms: int = 1000, seed: int = 0, rattle: float = 0.02) -> Atoms:
    """A bulk cell of about ``atoms`` atoms: the first element's ground-state lattice (ASE's
    reference data), other elements substituted at random in equal shares, slightly rattled."""
    cell = bulk(elements[0], cubic=True)
    per_cell = len(cell)
    n = max(1, round((atoms / per_cell) ** (1 / 3)))
    structure = cell.repeat((n, n, n))
    rng = np.random.default_rng(seed)
    if len(elements) > 1:
        structure.set_chemical_symbols(rng.choice(elements, size=len(structure)).tolist())
    structure.rattle(rattle, seed=seed)
    return structure
