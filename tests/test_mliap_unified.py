"""MLIAPUnifiedTorch.evaluate on LAMMPS-like pair lists: ghost atoms and any order of the listed atoms."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lammps_models import random_potential, random_structures
from mliap_torch.data.batch import make_batch
from mliap_torch.export.mliap_unified import MLIAPUnifiedTorch


@pytest.mark.parametrize("head,ace", [("linear", False), ("mlp", False), ("linear", True)])
def test_evaluate_with_ghosts_and_shuffled_atoms(head, ace):
    """Number the atoms as LAMMPS might (listed atoms shuffled among neighbour-only 'ghosts'); the
    per-atom energies and pair forces must equal the torch batch evaluation."""
    if ace:
        from mliap_torch.descriptors.ace import ACE
        from mliap_torch.models.heads import LinearHead
        from mliap_torch.models.potential import Potential

        torch.manual_seed(1)
        descriptor = ACE(["Cu", "Ni"], nradmax_by_orders=[4, 2, 1], lmax_by_orders=[0, 2, 1], rcut=4.6)
        head_module = LinearHead(2, descriptor.num_descriptors)
        head_module.set_coefficients(0.01 * torch.randn(2, 1 + descriptor.num_descriptors, dtype=torch.float64))
        potential = Potential(descriptor, head_module)
    else:
        potential = random_potential(["Cu", "Ni"], head, zbl=True, seed=4)
    config = random_structures(["Cu", "Ni"], 1, seed=2)[0]
    batch = make_batch([config], potential.elements, potential.cutoff)
    reference = potential(batch)
    rij = batch.rij().detach()
    with torch.enable_grad():
        r = rij.clone().requires_grad_(True)
        energies = potential.atomic_energies(r, batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        (fij_reference,) = torch.autograd.grad(energies.sum(), r)

    natoms, nghosts = batch.total_atoms, 7
    rng = np.random.default_rng(0)
    position = rng.permutation(natoms + nghosts)[:natoms]       # where atom k sits in the LAMMPS numbering
    elems = rng.integers(0, 2, natoms + nghosts)
    elems[position] = batch.species.numpy()
    listed = position[rng.permutation(natoms)]                 # LAMMPS' iatoms, in its own order
    eatoms, energy, fij = MLIAPUnifiedTorch(potential).evaluate(
        rij.numpy(), position[batch.pair_i.numpy()], position[batch.pair_j.numpy()], elems, listed)

    by_position = np.empty(natoms + nghosts)
    by_position[position] = reference["atomic_energies"].detach().numpy()
    np.testing.assert_allclose(eatoms, by_position[listed], rtol=1e-12, atol=1e-12)
    assert energy == pytest.approx(float(reference["energy"][0].detach()), rel=1e-12)
    np.testing.assert_allclose(fij, fij_reference.numpy(), rtol=1e-10, atol=1e-12)


def test_evaluate_without_pairs():
    potential = random_potential(["Ta"], "mlp", zbl=False, seed=1)
    eatoms, energy, fij = MLIAPUnifiedTorch(potential).evaluate(
        np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(3, np.int64), np.arange(2))
    isolated = potential.atomic_energies(torch.zeros((0, 3), dtype=torch.float64), torch.zeros(0, dtype=torch.long),
                                         torch.zeros(0, dtype=torch.long), torch.zeros(2, dtype=torch.long), 2)
    np.testing.assert_allclose(eatoms, isolated.detach().numpy(), rtol=1e-12)
    assert energy == pytest.approx(float(isolated.sum()), rel=1e-12)
    assert fij.shape == (0, 3)
