"""The mlearn benchmark's large ACE (total-degree basis, smoothness prior chosen by cross-validation) on a
small Li subset: the fit is the prior-weighted ridge solution of its rows with its per-group row weights, its
power is the one the cross-validation preferred, and the package's exact fit (the Hydra route) reproduces it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mlearn_study.mlearn import (
    EV_PER_A3_IN_GPA,
    RowSet,
    fit_ace_td_cell,
    smoothness_prior,
)
from mlearn_study.torch_rows import torch_rows
from mliap_torch.descriptors.ace import ACE
from mliap_torch.fitting.exact_fit import fit_exact
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.potential import Potential

pytestmark = [pytest.mark.shared_data]

BASIS = {"nradmax_by_orders": [6, 4, 3], "lmax_by_orders": [0, 3, 2], "max_degree_by_orders": [6.0, 7.0, 7.0],
         "l_weight": 1.5, "radial_basis": "ChebExpCos", "radial_parameters": 5.25, "dcut": 0.01}
GRID = ((300.0, 1.0, 0.3, 1e-6), (300.0, 1.0, 0.3, 1e-3), (30.0, 1.0, 0.0, 1e-2))


@pytest.fixture(scope="module")
def li_cell():
    from conftest import SHARED_DATA as shared_data
    from mliap_torch.data.readers import read_mlearn

    folder = shared_data / "mlearn" / "Li"
    full = read_mlearn(folder / "training.json")
    train = [c for g in sorted({c.group for c in full}) for c in [x for x in full if x.group == g][:3]]
    test = read_mlearn(folder / "test.json")[:4]
    cell, potential = fit_ace_td_cell("Li", train, test, 5.1, basis=BASIS, powers=(0.0, 2.0, 6.0), grid=GRID, folds=3)
    # on these 12 configurations (3 per group) the per-group weights win on both fold splits
    assert cell.settings["group_search"]["kept"] == "groups"
    return train, cell, potential


def weights_of(cell, group: str) -> list[float]:
    """The cell's (energy, force, stress GPa) row weights of a group: per group when the search kept them."""
    return list((cell.settings.get("group_weights") or {}).get(group, cell.weights))


def test_large_ace_fit_is_the_prior_weighted_ridge_solution_of_its_rows(li_cell):
    train, cell, potential = li_cell
    s = cell.settings
    scores = {float(k): v for k, v in s["prior_cv_scores"].items()}
    assert set(scores) == {0.0, 2.0, 6.0} and s["prior_power"] == min(scores, key=scores.get)
    assert min(scores.values()) >= 2.0 - 1e-12                 # E/min E + F/min F over all candidates
    rows = RowSet.build(train, torch_rows(train, potential.descriptor))
    weights = np.array([weights_of(cell, g) for g in rows.group_names]).T                # (3, ngroups)
    we, wf, ws = (weights[k][rows.config_group[c]][:, None] for k, c in
                  enumerate((rows.energy_config, rows.force_config, rows.stress_config)))
    A = np.concatenate([we * rows.energy, wf * rows.force, ws * rows.stress])
    b = np.concatenate([we[:, 0] * rows.energy_target, wf[:, 0] * rows.force_target, ws[:, 0] * rows.stress_target])
    scale = 1 / np.linalg.norm(A, axis=0)
    n = A.shape[1]
    prior = smoothness_prior(potential.descriptor, s["prior_power"])
    weights = np.ones(n) if prior is None else prior
    alpha = s["ridge_alpha"]
    y = np.linalg.lstsq(np.concatenate([A * scale, np.sqrt(alpha) * np.diag(weights)]),
                        np.concatenate([b, np.zeros(n)]), rcond=None)[0]
    ours = potential.head.coefficients().detach().numpy()[0]
    np.testing.assert_allclose(A @ ours, A @ (scale * y), rtol=0, atol=1e-8 * np.abs(A @ (scale * y)).max())
    assert potential.descriptor.num_descriptors == len(potential.descriptor.functions[0]) < 60


def test_package_exact_fit_reproduces_the_large_ace_cell(li_cell):
    """What ``python train.py experiment=mlearn_<el>_ace_td`` runs: fit_exact with the cell's row weights
    (stress per eV/Å³), ridge, prior power and unit-norm columns, on the package's own design rows."""
    train, cell, potential = li_cell
    s = cell.settings
    weighted = []
    for c in train:
        we, wf, ws = weights_of(cell, c.group)
        weighted.append(dataclasses.replace(c, energy_weight=we, force_weight=wf, stress_weight=ws * EV_PER_A3_IN_GPA))
    descriptor = ACE(["Li"], rcut=s["rcut"], **s["basis"])
    model = Potential(descriptor, LinearHead(1, descriptor.num_descriptors))
    options = {"solver": "ridge", "alpha": s["ridge_alpha"], "scale_columns": True}
    if s["prior_power"]:
        options["prior_power"] = s["prior_power"]
    fit_exact(model, weighted, **options)
    ours = potential.head.coefficients().detach().numpy()
    theirs = model.head.coefficients().detach().numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-6 * np.abs(ours).max())


def test_torch_rows_are_the_linear_potentials_energies_forces_and_stresses(li_cell):
    """The study's ACE rows (``torch_rows``) times any coefficients are the torch potential's own energy per
    atom, forces and stress (ASE convention) with those coefficients: the rows the fits solve are the model."""
    import torch

    from mliap_torch.data.batch import make_batch

    train = li_cell[0][:3]
    descriptor = ACE(["Li"], rcut=5.1, **{k: v for k, v in BASIS.items()})
    potential = Potential(descriptor, LinearHead(1, descriptor.num_descriptors)).to(torch.float64)
    x = np.random.default_rng(0).normal(size=1 + descriptor.num_descriptors)
    potential.head.set_coefficients(torch.from_numpy(x)[None, :])
    pred = potential(make_batch(train, ["Li"], potential.cutoff, dtype=torch.float64), forces=True, stress=True)
    start = 0
    for k, (config, rows) in enumerate(zip(train, torch_rows(train, descriptor))):
        n = config.num_atoms
        forces = pred["forces"][start:start + n].detach().numpy().reshape(-1)
        start += n
        assert rows.energy @ x == pytest.approx(float(pred["energy"][k]) / n, rel=1e-12)
        np.testing.assert_allclose(rows.forces @ x, forces, rtol=0, atol=1e-12 * np.abs(forces).max())
        stress = pred["stress"][k].detach().numpy()
        np.testing.assert_allclose(rows.stress @ x, stress, rtol=0, atol=1e-12 * np.abs(stress).max())
        assert np.abs(forces).max() > 1e-3 and np.abs(stress).max() > 1e-5


def test_torch_rows_are_reused_only_for_the_same_configurations_and_descriptor(li_cell):
    """A lane asks for the large ACE's rows twice (its own fit, then ACE+qSNAP's): the second call returns
    the first's rows; other configurations or another descriptor get rows of their own, equal to a fresh
    computation."""
    train = li_cell[0][:3]
    descriptor = ACE(["Li"], rcut=5.1, **BASIS)
    first = torch_rows(train, descriptor)
    assert torch_rows(list(train), ACE(["Li"], rcut=5.1, **BASIS)) is first
    other = torch_rows(train[:2], descriptor)
    assert other is not first and len(other) == 2
    np.testing.assert_array_equal(other[1].forces, first[1].forces)
    shorter = ACE(["Li"], rcut=4.6, **BASIS)
    rows = torch_rows(train, shorter)
    assert rows is not first and not np.allclose(rows[0].forces, first[0].forces)
