"""The configuration record: one atomic structure with its (optional) DFT labels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

VOIGT_ORDER = ("xx", "yy", "zz", "yz", "xz", "xy")
"""Order of the six stress components everywhere in mliap_torch (ASE's Voigt order)."""


@dataclass
class Configuration:
    """One atomic structure and its labels, in mliap_torch's internal units and conventions.

    Attributes:
        positions: (natoms, 3) Cartesian positions, Å.
        cell: (3, 3) cell vectors as rows, Å (zeros along non-periodic directions are allowed).
        pbc: (3,) periodic boundary flags.
        symbols: (natoms,) chemical symbols.
        energy: total energy, eV, or None when unlabelled.
        forces: (natoms, 3) forces, eV/Å, or None.
        stress: (6,) stress in ASE's convention (tension positive, eV/Å³) and Voigt order
            ``xx, yy, zz, yz, xz, xy``, or None.
        group: group name (FitSNAP: the folder; mlearn: the ``group`` field).
        source: the file the configuration was read from.
        index: the configuration's index within ``source``.
        energy_weight, force_weight, stress_weight: fit weights of this configuration's rows.
        info: free-form extra metadata (kept, never interpreted).
    """

    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    symbols: np.ndarray
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    group: str = "default"
    source: str = ""
    index: int = 0
    energy_weight: float = 1.0
    force_weight: float = 1.0
    stress_weight: float = 1.0
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        self.symbols = np.asarray(self.symbols, dtype=str).reshape(-1)
        n = len(self.positions)
        if len(self.symbols) != n:
            raise ValueError(f"{self.where}: {len(self.symbols)} symbols for {n} positions")
        if self.energy is not None:
            self.energy = float(self.energy)
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64)
            if self.forces.shape != (n, 3):
                raise ValueError(f"{self.where}: forces have shape {self.forces.shape}, expected ({n}, 3)")
        if self.stress is not None:
            self.stress = np.asarray(self.stress, dtype=np.float64)
            if self.stress.shape == (3, 3):
                self.stress = full_to_voigt(self.stress)
            if self.stress.shape != (6,):
                raise ValueError(f"{self.where}: stress has shape {self.stress.shape}, expected (6,) or (3, 3)")

    @property
    def where(self) -> str:
        """Human-readable location of this configuration, for error messages."""
        return f"{self.source or '<memory>'} [configuration {self.index}]"

    @property
    def num_atoms(self) -> int:
        return len(self.positions)

    @property
    def volume(self) -> float:
        """Cell volume, Å³ (absolute value of the determinant)."""
        return float(abs(np.linalg.det(self.cell)))

    def to_ase(self):
        """An ``ase.Atoms`` with the labels attached as a SinglePointCalculator."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = Atoms(symbols=list(self.symbols), positions=self.positions, cell=self.cell, pbc=self.pbc)
        results = {}
        if self.energy is not None:
            results["energy"] = self.energy
        if self.forces is not None:
            results["forces"] = self.forces
        if self.stress is not None:
            results["stress"] = self.stress
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info["group"] = self.group
        return atoms

    @classmethod
    def from_ase(cls, atoms, *, group: str = "default", source: str = "", index: int = 0) -> Configuration:
        """Configuration from an ``ase.Atoms``; labels are taken from its calculator when present."""
        energy = forces = stress = None
        calc = atoms.calc
        if calc is not None:
            res = getattr(calc, "results", {})
            energy = res.get("energy")
            forces = res.get("forces")
            stress = res.get("stress")
        return cls(positions=atoms.get_positions(), cell=np.asarray(atoms.get_cell()), pbc=atoms.get_pbc(),
                   symbols=atoms.get_chemical_symbols(), energy=energy, forces=forces, stress=stress,
                   group=group, source=source, index=index)


def full_to_voigt(tensor: np.ndarray) -> np.ndarray:
    """(3, 3) symmetric tensor → (6,) Voigt vector ``xx, yy, zz, yz, xz, xy``."""
    t = np.asarray(tensor)
    return np.array([t[0, 0], t[1, 1], t[2, 2], t[1, 2], t[0, 2], t[0, 1]], dtype=np.float64)


def voigt_to_full(voigt: np.ndarray) -> np.ndarray:
    """(6,) Voigt vector ``xx, yy, zz, yz, xz, xy`` → (3, 3) symmetric tensor."""
    xx, yy, zz, yz, xz, xy = np.asarray(voigt, dtype=np.float64)
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
