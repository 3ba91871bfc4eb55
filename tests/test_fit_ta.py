"""Exact Ta fits against FitSNAP's reference outputs (design matrix, targets, weights, coefficients, metrics).

Reference: ``../shared/data/fitsnap/Ta_Linear_JCP2014/reference`` (FitSNAP, SVD solver, its
``Descriptors.npy``/``Truth-Ref.npy``/``Weights.npy`` dumps) and ``Ta_Quadratic_JCP2018/reference``.

Row mapping: FitSNAP's rows are all energy rows, then all force rows (3 per atom), then all stress
rows (6 per configuration), configurations in FitSNAP's read order (directory order on its
machine). Ours follow sorted file names; each of our configurations is matched to FitSNAP's by its
energy target (E − E_ZBL)/N (unique to 1e-9 eV/atom among the 363), which fixes every row's index.
Entries are compared to 1e-8 relative to the largest entry of their row, with a floor of 1e-12
of the largest entry of their column among rows of the same kind: perfect-lattice force rows are
zero by symmetry and both sides are round-off there (≈1e-12 of entries up to 100). Targets agree
to 1e-10 relative, with a floor of 1e-3 of the largest target of their kind (labels of perfect
lattices are ~1e-11 and their ZBL parts differ in the last bits).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from mliap_torch.data.batch import make_batch
from mliap_torch.fitsnap.setup import FitSNAPSetup, fitsnap_setup
from mliap_torch.fitting.design import DesignMatrixBuilder, DesignRows, fitsnap_stress_target_scale
from mliap_torch.fitting.metrics import read_fitsnap_metrics

pytestmark = pytest.mark.shared_data


def read_snapcoeff(path: Path) -> np.ndarray:
    """Coefficients of a one-element ``.snapcoeff`` file."""
    lines = [ln.split("#")[0].split() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    ncoeff = int(lines[0][1])
    return np.array([float(ln[0]) for ln in lines[2:2 + ncoeff]])


def reference_layout(setup: FitSNAPSetup, ref_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference configuration index of each of ours, first force row offset of each reference configuration)."""
    configs = setup.configurations
    zbl = setup.potential.reference
    batch = make_batch(configs, setup.potential.elements, zbl.cutoff)
    with torch.no_grad():
        e_zbl = torch.zeros(batch.num_configs).index_add_(
            0, batch.atom_config, zbl(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms))
    natoms = np.array([c.num_atoms for c in configs])
    ours = (np.array([c.energy for c in configs]) - e_zbl.numpy()) / natoms
    nconf = len(configs)
    diff = np.abs(ours[:, None] - ref_truth[None, :nconf])
    match = diff.argmin(1)
    assert np.all(diff[np.arange(nconf), match] < 1e-9), "a configuration has no FitSNAP energy row"
    assert len(set(match.tolist())) == nconf, "energy targets do not identify the configurations uniquely"
    natoms_ref = np.zeros(nconf, int)
    natoms_ref[match] = natoms
    return match, np.concatenate([[0], np.cumsum(natoms_ref)[:-1]])


def reference_index(rows: DesignRows, match: np.ndarray, force_offset: np.ndarray, n_force: int) -> np.ndarray:
    """FitSNAP row index of each of our rows (``n_force``: number of force rows of the whole data set)."""
    kind, cfg = rows.kind.numpy(), rows.config.numpy()
    nconf = len(match)
    within = np.zeros(len(kind), int)
    for k in range(3):
        for c in np.unique(cfg[kind == k]):
            sel = np.flatnonzero((kind == k) & (cfg == c))
            within[sel] = np.arange(len(sel))
    ref = match[cfg]
    first = np.select([kind == 0, kind == 1], [ref, nconf + 3 * force_offset[ref]], nconf + n_force + 6 * ref)
    return first + np.where(kind == 0, 0, within)


def assert_rows_match(rows: DesignRows, setup: FitSNAPSetup, ref_dir: Path) -> None:
    """A, b, w of ``rows`` equal FitSNAP's dump row for row (module docstring for the tolerance)."""
    A_ref, b_ref, w_ref = (np.load(ref_dir / f) for f in ("Descriptors.npy", "Truth-Ref.npy", "Weights.npy"))
    match, force_offset = reference_layout(setup, b_ref)
    nconf = len(match)
    n_force = 3 * sum(c.num_atoms for c in setup.configurations)
    assert A_ref.shape == (nconf + n_force + 6 * nconf, rows.A.shape[1])
    index = reference_index(rows, match, force_offset, n_force)
    ref_kind = np.repeat([0, 1, 2], [nconf, n_force, 6 * nconf])
    A, b, w, kind = rows.A.numpy(), rows.b.numpy(), rows.w.numpy(), rows.kind.numpy()
    assert np.array_equal(ref_kind[index], kind)
    for k in range(3):
        m = kind == k
        Ar = A_ref[index[m]]
        col_scale = np.abs(A_ref[ref_kind == k]).max(0)
        tol = 1e-8 * np.maximum(np.abs(Ar).max(1, keepdims=True), 1e-4 * col_scale[None, :])
        bad = np.abs(A[m] - Ar) > tol
        assert not bad.any(), f"kind {k}: {bad.sum()} entries differ, worst {np.abs(A[m] - Ar).max()}"
        b_scale = np.maximum(np.abs(b_ref[index[m]]), 1e-3 * np.abs(b_ref[ref_kind == k]).max())
        assert np.all(np.abs(b[m] - b_ref[index[m]]) <= 1e-10 * b_scale), \
            f"targets of kind {k}: worst relative {np.max(np.abs(b[m] - b_ref[index[m]]) / b_scale)}"
        np.testing.assert_array_equal(w[m], w_ref[index[m]])


@pytest.fixture(scope="module")
def ta_linear():
    data = SHARED_DATA / "fitsnap" / "Ta_Linear_JCP2014"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    return data, fitsnap_setup(data / "Ta-example.in")


def test_ta_linear_rows_of_small_configurations(ta_linear):
    """Rows of the smallest configuration of every group with ≤ 24-atom cells equal FitSNAP's.

    A fast subset (7 groups, 68 atoms: elastic, volume, GSF-110 and surface cells) of the full check.
    """
    data, setup = ta_linear
    smallest = {}
    for k, c in enumerate(setup.configurations):
        if c.num_atoms <= 24 and (c.group not in smallest or c.num_atoms < setup.configurations[smallest[c.group]].num_atoms):
            smallest[c.group] = k
    builder = DesignMatrixBuilder(setup.potential, stress_scale=setup.stress_scale,
                                  stress_target_scale=fitsnap_stress_target_scale())
    picked = sorted(smallest.values())
    batches = builder.batches([setup.configurations[k] for k in picked], chunk_atoms=10 ** 6)
    rows = DesignRows.cat([builder.rows(b) for b in batches])
    rows.config = torch.tensor(picked)[rows.config]
    assert len(picked) == 7
    assert_rows_match(rows, setup, data / "reference")


@pytest.mark.slow
def test_ta_linear_fit_matches_fitsnap(ta_linear):
    """Whole data set: every design row, target and weight; SVD coefficients; metrics to 3 significant figures."""
    data, setup = ta_linear
    result = setup.fit()
    assert_rows_match(result.rows, setup, data / "reference")
    ref = read_snapcoeff(data / "reference" / "Ta_pot.snapcoeff")
    np.testing.assert_allclose(result.coefficients[0].numpy(), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    check_metrics(result, data / "reference" / "Ta_metrics.md", rel=1e-3)


def check_metrics(result, path: Path, rel: float) -> None:
    ref = read_fitsnap_metrics(path)
    assert len(ref) == 78
    for (group, weighting, split, quantity), values in ref.items():
        assert result.metrics.value(group, weighting, split, quantity, "ncount") == values["ncount"]
        roundoff = quantity == "Force" and values["rmse"] < 1e-10  # perfect lattices: both sides are round-off
        for metric in ("mae", "rmse", "rsq"):
            got = result.metrics.value(group, weighting, split, quantity, metric)
            if roundoff:
                assert got < 1e-10 or metric == "rsq", (group, weighting, quantity, metric, got)
                continue
            assert got == pytest.approx(values[metric], rel=rel), (group, weighting, quantity, metric)


@pytest.mark.slow
def test_ta_quadratic_fit_matches_fitsnap():
    data = SHARED_DATA / "fitsnap" / "Ta_Quadratic_JCP2018"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    setup = fitsnap_setup(data / "Ta-example.in")
    result = setup.fit()
    assert result.coefficients.shape == (1, 1596) and result.rows.A.shape[1] == 1595
    ref = read_snapcoeff(data / "reference" / "Ta_pot.snapcoeff")
    np.testing.assert_allclose(result.coefficients[0].numpy(), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    check_metrics(result, data / "reference" / "Ta_metrics.md", rel=1e-2)
