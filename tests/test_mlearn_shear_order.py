"""The per-element shear order of mlearn's ``virial_stress``, checked against the energies.

1. Strain path: for pairs of ``Elastic`` configurations with the same atoms (same fractional
   coordinates) and nearby cells, the energy difference follows from the stress by the trapezoid rule
   in the Green–Lagrange strain E of the deformation F (cell_b = cell_a Fᵀ):
   ΔE ≈ ½ (V_a σ_a + V_b F⁻¹ σ_b F⁻ᵀ) : E  (σ in ASE's tension-positive convention).
   With the reader's order the residual is several times smaller than with the other order.
2. Slot and sign: in a cell sheared only in yz (or xz), the stress of that slot is the large one and
   has the strain's sign (σ_ab = 2 C ε_ab in a cubic crystal near zero stress).

Li's 2-atom Elastic cells only tell the slot: their shear stresses are ≲ 1 kbar, not monotonic in
the strain (0.94 kbar at ε = 0.005, 0.40 kbar of the opposite sign at ε = 0.01) and energies differ
by < 0.5 meV, so neither the sign nor the energy path is resolved there.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from mliap_torch.data.configuration import Configuration, voigt_to_full
from mliap_torch.data.readers import read_mlearn

pytestmark = pytest.mark.shared_data

OTHER = {"Cu": "Si", "Ni": "Si", "Mo": "Si", "Li": "Cu", "Si": "Cu", "Ge": "Cu"}
"""An element with the other shear order: reading with ``element=OTHER[el]`` gives the wrong order."""

PATH_FILES = {"Ni": "training", "Cu": "test", "Mo": "training", "Si": "training", "Ge": "training"}
"""File with strain-path pairs that involve xz/yz shear (Cu training has no stresses)."""


def _pairs(configs: list[Configuration], max_strain: float = 0.06) -> list[tuple]:
    out = []
    for a, b in itertools.combinations(configs, 2):
        if a.num_atoms != b.num_atoms or not np.array_equal(a.symbols, b.symbols):
            continue
        d = b.positions @ np.linalg.inv(b.cell) - a.positions @ np.linalg.inv(a.cell)
        if np.abs(d - np.round(d)).max() > 2e-2:
            continue
        F = np.linalg.solve(a.cell, b.cell).T
        E = 0.5 * (F.T @ F - np.eye(3))
        if 1e-4 < np.abs(E).max() <= max_strain and abs(E[0, 2]) + abs(E[1, 2]) > 1e-3:
            out.append((a, b, F, E))
    return out


def _path_residual(pairs: list[tuple], stresses: dict[int, np.ndarray]) -> float:
    res = []
    for a, b, F, E in pairs:
        Fi = np.linalg.inv(F)
        pk2 = b.volume * Fi @ voigt_to_full(stresses[b.index]) @ Fi.T
        predicted = 0.5 * np.sum((a.volume * voigt_to_full(stresses[a.index]) + pk2) * E)
        res.append(predicted - (b.energy - a.energy))
    return float(np.sqrt(np.mean(np.square(res))))


@pytest.mark.parametrize("element", sorted(PATH_FILES))
def test_strain_path_energy_selects_reader_order(shared_data: Path, element: str) -> None:
    path = shared_data / "mlearn" / element / f"{PATH_FILES[element]}.json"
    right = [c for c in read_mlearn(path) if c.group == "Elastic" and c.stress is not None]
    wrong = {c.index: c.stress for c in read_mlearn(path, element=OTHER[element]) if c.group == "Elastic"}
    pairs = _pairs(right)
    assert len(pairs) >= 10
    dE = np.sqrt(np.mean([(b.energy - a.energy) ** 2 for a, b, _, _ in pairs]))
    r_right = _path_residual(pairs, {c.index: c.stress for c in right})
    r_wrong = _path_residual(pairs, wrong)
    assert r_right < 0.4 * r_wrong, (r_right, r_wrong)
    assert r_right < 0.5 * dE, (r_right, dE)


def _single_shear_cells(shared_data: Path, element: str, order_of: str) -> list[Configuration]:
    return [c for split in ("training", "test")
            for c in read_mlearn(shared_data / "mlearn" / element / f"{split}.json", element=order_of)
            if c.group == "Elastic" and c.stress is not None]


@pytest.mark.parametrize("element", sorted(OTHER))
def test_single_shear_slot_and_sign(shared_data: Path, element: str) -> None:
    checked = 0
    wrong_slot = 0
    for c, w in zip(_single_shear_cells(shared_data, element, element),
                    _single_shear_cells(shared_data, element, OTHER[element])):
        Ft = np.linalg.solve(np.diag(np.diag(c.cell)), c.cell)
        eps = 0.5 * (Ft + Ft.T) - np.eye(3)
        sigma = voigt_to_full(c.stress)
        for (a, b), other in (((1, 2), (0, 2)), ((0, 2), (1, 2))):
            if abs(eps[a, b]) < 0.004 or abs(eps[0, 1]) > 1e-6 or abs(eps[other]) > 1e-6:
                continue
            checked += 1
            assert abs(sigma[a, b]) > 3 * abs(sigma[other]), (c.where, eps, sigma)
            sigma_wrong = voigt_to_full(w.stress)
            wrong_slot += abs(sigma_wrong[a, b]) < abs(sigma_wrong[other])
            if element != "Li":
                assert np.sign(sigma[a, b]) == np.sign(eps[a, b]), (c.where, eps, sigma)
    assert checked >= 2 and wrong_slot == checked
