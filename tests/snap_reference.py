"""LAMMPS reference values for the SNAP tests: ``compute sna/atom`` descriptors and ``pair_style snap`` /
``pair_style mliap`` energies, forces and virials of arbitrary (triclinic) periodic structures."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mliap_torch.data.neighbors import neighbor_pairs, pair_vectors
from mliap_torch.lammps import atom_order, create_atoms_in_lammps, start


def random_structure(rng: np.random.Generator, natoms: int, cell: np.ndarray, min_dist: float = 1.6,
                     nelements: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random positions (no two closer than ``min_dist`` Å, periodic) and random species."""
    cell = np.asarray(cell, dtype=np.float64)
    pos: list[np.ndarray] = []
    inv = np.linalg.inv(cell)
    tries = 0
    while len(pos) < natoms:
        tries += 1
        if tries > 200000:
            raise RuntimeError("could not place atoms; lower min_dist")
        x = rng.uniform(0, 1, 3) @ cell
        ok = True
        for p in pos:
            d = (x - p) @ inv
            d -= np.round(d)
            if np.linalg.norm(d @ cell) < min_dist:
                ok = False
                break
        if ok:
            pos.append(x)
    species = rng.integers(0, nelements, natoms) if nelements > 1 else np.zeros(natoms, dtype=np.int64)
    if nelements > 1:
        species[:nelements] = np.arange(nelements)  # every element present
    return np.array(pos), species.astype(np.int64)


def triclinic_cell(rng: np.random.Generator, lengths: Sequence[float], tilt: float = 0.25) -> np.ndarray:
    """A right-handed cell with the given diagonal, random tilts and a random rotation (not lower-triangular)."""
    lx, ly, lz = lengths
    cell = np.array([[lx, 0, 0], [rng.uniform(-tilt, tilt) * lx, ly, 0],
                     [rng.uniform(-tilt, tilt) * lx, rng.uniform(-tilt, tilt) * ly, lz]])
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return cell @ q


def pair_list(positions, cell, cutoff):
    """(rij, pair_i, pair_j) of a periodic structure, torch float64."""
    i, j, s = neighbor_pairs(positions, cell, [True, True, True], cutoff)
    rij = pair_vectors(torch.as_tensor(positions, dtype=torch.float64), torch.as_tensor(cell, dtype=torch.float64),
                       i, j, s)
    return rij, i, j


def lammps_sna_atom(positions, cell, species, nelements: int, compute_args: str, cutoff: float) -> np.ndarray:
    """Per-atom ``compute sna/atom`` (in input atom order); ``compute_args`` is everything after ``sna/atom``.

    One LAMMPS atom type per element (type = species + 1).
    """
    lmp = start()
    try:
        create_atoms_in_lammps(lmp, positions, cell, np.asarray(species) + 1, [1.0] * nelements)
        lmp.commands_list([f"pair_style zero {cutoff + 0.01!r}", "pair_coeff * *",
                           f"compute sna all sna/atom {compute_args}", "run 0"])
        nlocal = lmp.extract_global("nlocal")
        values = np.array(lmp.numpy.extract_compute("sna", 1, 2)[:nlocal], dtype=np.float64)
        return values[atom_order(lmp)]
    finally:
        lmp.close()


def lammps_energy_forces_virial(positions, cell, species, elements: Sequence[str], pair_style: str,
                                pair_coeff: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (eV), forces (natoms, 3) eV/Å and virial W_ab = Σ r_a f_b (3, 3) eV in the input frame.

    ``pair_coeff`` is the text after ``pair_coeff * *`` without the element list (appended here).
    """
    lmp = start()
    try:
        rot = create_atoms_in_lammps(lmp, positions, cell, np.asarray(species) + 1, [1.0] * len(elements))
        lmp.commands_list([
            f"pair_style {pair_style}", f"pair_coeff * * {pair_coeff} {' '.join(elements)}",
            "compute vir all pressure NULL virial", "thermo_style custom step pe c_vir[*]", "run 0",
        ])
        energy = float(lmp.get_thermo("pe"))
        nlocal = lmp.extract_global("nlocal")
        forces = np.array(lmp.numpy.extract_atom("f")[:nlocal], dtype=np.float64)[atom_order(lmp)]
        p = np.array(lmp.numpy.extract_compute("vir", 0, 1), dtype=np.float64)  # xx yy zz xy xz yz, bar
        volume = abs(np.linalg.det(np.asarray(cell)))
        w = p * volume / lmp.extract_global("nktv2p")
        virial = np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]])
        return energy, forces @ rot.T, rot @ virial @ rot.T
    finally:
        lmp.close()


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
