"""Pair lists from ``neighbor_pairs`` agree with ASE's ``neighbor_list``; ``pair_vectors`` is differentiable."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from mliap_torch.data.neighbors import neighbor_pairs, pair_vectors


def _pair_set(i, j, s) -> set[tuple]:
    return {(int(a), int(b), *map(int, c)) for a, b, c in zip(i, j, np.asarray(s).reshape(-1, 3))}


def _check(positions: np.ndarray, cell: np.ndarray, pbc, cutoff: float) -> int:
    atoms = Atoms("H" * len(positions), positions=positions, cell=cell, pbc=pbc)
    ia, ja, sa = neighbor_list("ijS", atoms, cutoff)
    i, j, s = neighbor_pairs(positions, cell, pbc, cutoff)
    assert i.dtype == j.dtype == s.dtype == torch.int64
    ours, ref = _pair_set(i, j, s), _pair_set(ia, ja, sa)
    assert len(ours) == len(i), "duplicate pairs"
    assert ours == ref, f"missing {sorted(ref - ours)[:5]}, extra {sorted(ours - ref)[:5]}"
    rij = pair_vectors(torch.as_tensor(positions), torch.as_tensor(cell), i, j, s)
    assert torch.all(rij.norm(dim=1) < cutoff)
    return len(i)


def _random_cell(rng: np.random.Generator, scale: float) -> np.ndarray:
    return scale * (np.eye(3) + rng.uniform(-0.3, 0.3, (3, 3)))


@pytest.mark.parametrize("seed", range(4))
def test_random_triclinic_periodic(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cell = _random_cell(rng, 6.0)
    positions = rng.uniform(0, 1, (12, 3)) @ cell
    assert _check(positions, cell, True, 3.5) > 0


@pytest.mark.parametrize("seed", range(3))
def test_small_cell_cutoff_larger_than_cell(seed: int) -> None:
    rng = np.random.default_rng(10 + seed)
    cell = _random_cell(rng, 2.2)
    positions = rng.uniform(0, 1, (2, 3)) @ cell
    n = _check(positions, cell, True, 5.0)
    assert n > 50, "many periodic images, including an atom's own images"


def test_single_atom_sees_its_own_images() -> None:
    cell = np.diag([2.0, 2.5, 3.0])
    _check(np.zeros((1, 3)), cell, True, 3.1)
    i, j, s = neighbor_pairs(np.zeros((1, 3)), cell, True, 3.1)
    assert torch.all(i == 0) and torch.all(j == 0) and not torch.any(torch.all(s == 0, dim=1))


@pytest.mark.parametrize("pbc", [(False, False, False), (True, True, False), (True, False, True), (False, True, False)])
def test_mixed_and_non_periodic(pbc) -> None:
    rng = np.random.default_rng(7)
    cell = _random_cell(rng, 5.0)
    positions = rng.uniform(0, 1, (10, 3)) @ cell
    _check(positions, cell, pbc, 3.0)


def test_non_periodic_with_zero_cell_and_isolated_atoms() -> None:
    positions = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [20.0, 0.0, 0.0], [0.0, 30.0, 0.0]])
    n = _check(positions, np.zeros((3, 3)), False, 2.0)
    assert n == 2
    i, _, _ = neighbor_pairs(positions[2:3], np.zeros((3, 3)), False, 2.0)
    assert len(i) == 0
    i, _, _ = neighbor_pairs(np.zeros((0, 3)), np.eye(3), True, 2.0)
    assert len(i) == 0


def test_zero_periodic_cell_vector_is_an_error() -> None:
    with pytest.raises(ValueError, match="zero cell vector"):
        neighbor_pairs(np.zeros((2, 3)), np.diag([3.0, 3.0, 0.0]), True, 2.0)


def test_pair_vectors_gradients() -> None:
    rng = np.random.default_rng(3)
    cell0 = _random_cell(rng, 4.0)
    pos0 = rng.uniform(0, 1, (5, 3)) @ cell0
    i, j, s = neighbor_pairs(pos0, cell0, True, 3.0)
    positions = torch.tensor(pos0, requires_grad=True)
    cell = torch.tensor(cell0, requires_grad=True)

    def energy(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r = pair_vectors(x, h, i, j, s).norm(dim=1)
        return torch.sum(torch.exp(-r) * torch.cos(r))

    assert torch.autograd.gradcheck(energy, (positions, cell))
    # batched cells with a per-pair configuration index give the same vectors and gradients
    x2 = torch.cat([positions, positions])
    cells = torch.stack([cell, cell])
    n = len(pos0)
    rij = pair_vectors(x2, cells, torch.cat([i, i + n]), torch.cat([j, j + n]), torch.cat([s, s]),
                       torch.cat([torch.zeros_like(i), torch.ones_like(i)]))
    torch.testing.assert_close(rij[:len(i)], rij[len(i):])
    torch.testing.assert_close(rij[:len(i)], pair_vectors(positions, cell, i, j, s))
    # float32 works
    r32 = pair_vectors(positions.detach().float(), cell.detach().float(), i, j, s)
    assert r32.dtype == torch.float32


def test_slab_with_zero_non_periodic_cell_vector() -> None:
    rng = np.random.default_rng(5)
    cell = np.array([[4.0, 0.0, 0.0], [1.0, 4.5, 0.0], [0.0, 0.0, 0.0]])
    positions = rng.uniform(0, 1, (8, 3)) * [4.0, 4.0, 6.0]
    assert _check(positions, cell, (True, True, False), 3.0) > 0


def test_positions_outside_the_cell() -> None:
    rng = np.random.default_rng(11)
    cell = _random_cell(rng, 5.0)
    positions = rng.uniform(-1.5, 2.5, (10, 3)) @ cell
    assert _check(positions, cell, True, 3.2) > 0
    _check(positions, cell, (True, False, True), 3.2)
