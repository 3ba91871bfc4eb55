"""FitSNAP's Ta ACE fit reproduced by mliap_torch's ACE descriptor.

Reference: ``../shared/data/fitsnap/Ta_PACE`` — FitSNAP's ACE descriptors (LAMMPS ``compute pace``)
defined by ``reference/coupling_coefficients.yace``, its fitted ``reference/Ta_pot.acecoeff`` and the
errors of that fit on the training data (``reference/Ta_metrics.md``, ZBL reference 4.0–4.8 Å).
Evaluating the same model with our descriptor must give FitSNAP's per-group energy and force
errors (printed to 6 significant digits), which is only possible if every descriptor agrees.
Tolerance: 2e-5 relative (the printed digits), or 1e-7 absolute for errors that are themselves
round-off (perfect-lattice forces, ~1e-8) or spline-limited (LAMMPS tabulates the radial functions
with deltaSplineBins = 1e-3; the largest deviation seen is 1.5e-6 eV/Å on an RMSE of 0.11).

Fitting (``fitsnap_setup`` with ``[ACE]``, :mod:`mliap_torch.fitsnap.ace`): FitSNAP's own 68
functions fitted with FitSNAP's weights, ZBL and SVD solver give FitSNAP's coefficients and metrics;
the basis generated from an ``[ACE]`` section spans FitSNAP's functions (reference: the ``.yace``
files); ``[SOLVER] RIDGE`` is sklearn's ridge on the weighted rows, as in FitSNAP.
"""
from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from mliap_torch.data.batch import make_batch
from mliap_torch.data.readers.fitsnap_json import read_fitsnap_json
from mliap_torch.descriptors.ace_files import ace_from_yace, read_acecoeff
from mliap_torch.fitsnap.ace import ace_from_fitsnap, fitsnap_basis_from_potential
from mliap_torch.fitsnap.data import read_fitsnap_data
from mliap_torch.fitsnap.input import read_fitsnap_input
from mliap_torch.fitsnap.setup import fitsnap_setup, fitsnap_solver
from mliap_torch.fitting.metrics import read_fitsnap_metrics
from mliap_torch.fitting.solvers import lstsq
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL

pytestmark = pytest.mark.shared_data


def test_fitsnap_ta_ace_fit_errors_are_reproduced(shared_data) -> None:
    folder = shared_data / "fitsnap" / "Ta_PACE"
    ace = ace_from_yace(folder / "reference" / "coupling_coefficients.yace")
    assert ace.num_descriptors == 68 and ace.cutoff == pytest.approx(4.604694451)
    head = LinearHead(1, ace.num_descriptors)
    head.set_coefficients(read_acecoeff(folder / "reference" / "Ta_pot.acecoeff", ace))
    potential = Potential(ace, head, ZBL(["Ta"], [73.0], 4.0, 4.8))
    configs = read_fitsnap_data(folder / "Ta.in")
    batch = make_batch(configs, ["Ta"], potential.cutoff)
    out = potential(batch, stress=False)
    energy = out["energy"].detach().numpy()
    forces = out["forces"].detach().numpy()

    errors: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    start = 0
    for k, config in enumerate(configs):
        n = config.num_atoms
        e_err = np.array([(energy[k] - config.energy) / n])
        f_err = (forces[start:start + n] - config.forces).ravel()
        start += n
        for group in (config.group, "*ALL"):
            errors[(group, "Energy")].append(e_err)
            errors[(group, "Force")].append(f_err)

    reference = read_fitsnap_metrics(folder / "reference" / "Ta_metrics.md")
    checked = 0
    for (group, weighting, _, quantity), ref in reference.items():
        if weighting != "Unweighted":
            continue
        err = np.concatenate(errors[(group, quantity)])
        assert len(err) == ref["ncount"], (group, quantity)
        assert np.abs(err).mean() == pytest.approx(ref["mae"], rel=2e-5, abs=1e-7), (group, quantity, "mae")
        assert np.sqrt((err ** 2).mean()) == pytest.approx(ref["rmse"], rel=2e-5, abs=1e-7), (group, quantity, "rmse")
        checked += 1
    assert checked == 26  # 12 groups and *ALL, energy and force


def test_yace_descriptor_settings_round_trip(shared_data) -> None:
    from mliap_torch.descriptors.ace import ACE

    ace = ace_from_yace(shared_data / "fitsnap" / "Ta_PACE" / "reference" / "coupling_coefficients.yace")
    rebuilt = ACE(**ace.settings())
    rebuilt.load_state_dict(ace.state_dict())
    rij = torch.tensor([[2.1, 1.0, -0.3], [-1.2, 2.0, 1.5], [0.4, -3.3, 1.9]], dtype=torch.float64)
    pair_i, pair_j = torch.zeros(3, dtype=torch.int64), torch.tensor([1, 2, 3])
    species = torch.zeros(4, dtype=torch.int64)
    B = ace(rij, pair_i, pair_j, species, 4)
    assert B[0].abs().max() > 0
    assert torch.equal(rebuilt(rij, pair_i, pair_j, species, 4), B)


def test_fitsnap_ta_ace_fit_with_fitsnap_basis_reproduces_fitsnap(shared_data, one_thread) -> None:
    """Our fit pipeline (data, group weights, ZBL, SVD at rcond 1e-13, no stress rows) on FitSNAP's own
    68 functions gives FitSNAP's fit.

    Tolerances: our descriptors use the exact radial functions, LAMMPS' are splined (1e-3 Å bins),
    ~1e-6 relative apart. The predictions of the two coefficient vectors then agree to ~1.5e-7 of
    their norm and every metric to < 7e-4 relative (1e-3 asserted; 2e-7 absolute for the round-off
    forces of perfect lattices, ~1e-8 eV/Å). The coefficients themselves are fixed less tightly:
    the minimum-norm solution keeps singular values down to 1e-13·s_max, and those directions turn
    the 1e-6 descriptor differences into coefficient differences of ~4e-3 relative (2e-2 asserted).
    """
    folder = shared_data / "fitsnap" / "Ta_PACE"
    setup = fitsnap_setup(folder / "Ta.in")
    ace = ace_from_yace(folder / "reference" / "coupling_coefficients.yace")
    potential = Potential(ace, LinearHead(1, ace.num_descriptors), setup.potential.reference)
    result = dataclasses.replace(setup, potential=potential).fit()
    assert (setup.solver, setup.rcond, setup.energy, setup.forces, setup.stress) == ("svd", 1e-13, True, True, False)
    zbl = setup.potential.reference
    assert (zbl.inner, zbl.outer) == (4.0, 4.8)

    reference = read_fitsnap_metrics(folder / "reference" / "Ta_metrics.md")
    for (group, weighting, split, quantity), ref in reference.items():
        assert result.metrics.value(group, weighting, split, quantity, "ncount") == ref["ncount"]
        rel = 1e-5 if group == "*ALL" else 1e-3
        for metric in ("mae", "rmse"):
            assert result.metrics.value(group, weighting, split, quantity, metric) == pytest.approx(
                ref[metric], rel=rel, abs=2e-7), (group, weighting, quantity, metric)
    assert len(reference) == 52

    rows = result.rows
    x = result.coefficients.reshape(-1)
    x_ref = read_acecoeff(folder / "reference" / "Ta_pot.acecoeff", ace).reshape(-1)
    weighted = rows.w[:, None] * rows.A
    ours, theirs = weighted @ x, weighted @ x_ref
    assert float((ours - theirs).norm() / theirs.norm()) < 1e-6
    residual, residual_ref = float((ours - rows.w * rows.b).norm()), float((theirs - rows.w * rows.b).norm())
    assert residual == pytest.approx(residual_ref, rel=1e-6)
    assert float((x - x_ref).norm() / x_ref.norm()) < 2e-2


def _descriptor_matrix(ace, configs):
    batch = make_batch(configs, ace.elements, ace.cutoff)
    return ace(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms).detach()


def _span_residual(X, Y) -> float:
    """Largest relative residual of a column of Y projected onto the span of the columns of X."""
    q, _ = torch.linalg.qr(X / X.norm(dim=0))
    return float(((Y - q @ (q.T @ Y)).norm(dim=0) / Y.norm(dim=0)).max())


def _ranks(ace) -> Counter:
    return Counter(len(f["ns"]) for f in ace.function_specifications())


@pytest.mark.parametrize("case, yace, extra", [("Ta_PACE_RIDGE", "Ta_pot.yace", {}),
                                               ("Ta_PACE", "coupling_coefficients.yace", {4: 3})])
def test_ace_basis_from_fitsnap_input_spans_fitsnap_basis(shared_data, one_thread, case, yace, extra) -> None:
    """The [ACE] section gives FitSNAP's radial settings and a basis spanning FitSNAP's functions.

    Ta_PACE_RIDGE: the same number of functions per rank and the same span. Ta_PACE (FitSNAP's
    ``b_basis = minsub``): 3 more rank-4 functions than FitSNAP's 29, and FitSNAP's 68 lie in our span.
    Span residuals: round-off ~1e-8 (the normalised columns are conditioned to ~1e-9); a function
    outside the span leaves > 1e-3.
    """
    folder = shared_data / "fitsnap" / case
    ours = ace_from_fitsnap(read_fitsnap_input(folder / "Ta.in")["ACE"], case)
    theirs = ace_from_yace(folder / "reference" / yace)
    for name in ("rcut", "dcut", "lam", "r_in", "delta_in"):
        torch.testing.assert_close(getattr(ours.radial, name), getattr(theirs.radial, name), rtol=0, atol=0)
    assert ours.radial_basis == theirs.radial_basis and ours.nradbase == theirs.nradbase
    assert _ranks(ours) == _ranks(theirs) + Counter(extra)

    configs = read_fitsnap_json(shared_data / "fitsnap" / "Ta_Linear_JCP2014" / "JSON", groups=["Liquid", "GSF_110"])
    X, Y = _descriptor_matrix(ours, configs), _descriptor_matrix(theirs, configs)
    assert _span_residual(X, Y) < 1e-6
    if extra:
        assert _span_residual(Y, X) > 1e-3
    else:
        assert _span_residual(Y, X) < 1e-6


def test_fitsnap_ridge_solver_is_sklearn_ridge_on_weighted_rows(shared_data) -> None:
    """[SOLVER] RIDGE maps to our ridge solver with FitSNAP's semantics: sklearn's
    ``Ridge(alpha, fit_intercept=False)`` on the weighted rows, constant column included."""
    from sklearn.linear_model import Ridge

    settings = read_fitsnap_input(shared_data / "fitsnap" / "Ta_PACE_RIDGE" / "Ta.in")
    solver, rcond, alpha = fitsnap_solver(settings)
    assert (solver, rcond, alpha) == ("ridge", None, float(settings["RIDGE"]["alpha"]))
    generator = torch.Generator().manual_seed(0)
    A = torch.cat([torch.ones(200, 1), torch.randn(200, 7, generator=generator)], dim=1)
    A[:, 7] = A[:, 6] + 1e-4 * A[:, 7]  # nearly collinear: the penalty matters
    b, w = torch.randn(200, generator=generator), torch.rand(200, generator=generator)
    x = lstsq(A, b, w, method=solver, alpha=alpha).x
    expected = Ridge(alpha=alpha, fit_intercept=False, solver="svd").fit((w[:, None] * A).numpy(), (w * b).numpy()).coef_
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("change, message", [
    ({"foo": 1}, "not supported"),
    ({"bzeroflag": 1}, "bzeroflag"),
    ({"mumax": 2}, "mumax"),
    ({"lmax": [0, 2]}, "lmax has 2 values for 3 ranks"),
    ({"nmax": [30, 2, 1]}, "exceeds nmaxbase"),
    ({"rcutfac": [4.0, 4.5]}, "one per bond"),
    ({"lmin": [0, 3, 1]}, "lmin > lmax"),
])
def test_ace_section_errors(change, message) -> None:
    section = {"type": ["Ta"], "numTypes": 1, "ranks": [1, 2, 3], "nmax": [8, 2, 1], "lmax": [0, 2, 1],
               "nmaxbase": 8, "rcutfac": 4.5, "lambda": 1.3}
    assert ace_from_fitsnap(section, "x.in").num_descriptors > 0
    with pytest.raises(ValueError, match=message):
        ace_from_fitsnap({**section, **change}, "x.in")


def test_unsupported_fitsnap_solver_is_an_error() -> None:
    with pytest.raises(ValueError, match="PYTORCH is not supported"):
        fitsnap_solver({"SOLVER": {"solver": "PYTORCH"}})
    with pytest.raises(ValueError, match=r"\[RIDGE\] key\(s\) \['method'\]"):
        fitsnap_solver({"SOLVER": {"solver": "RIDGE"}, "RIDGE": {"alpha": 1e-3, "method": "SVD"}})


def test_fitsnap_ta_ace_ridge_fit_with_fitsnap_basis_reproduces_fitsnap(shared_data, one_thread) -> None:
    """``Ta_PACE_RIDGE/Ta.in`` (RIDGE α = 1e-4, smartweights, inner cutoff 1.2 Å, no ZBL) on FitSNAP's
    own 141 functions (recovered from its fitted ``Ta_pot.yace``) gives FitSNAP's ridge fit.

    Tolerances: the ridge problem is well conditioned, so the ~1e-6 relative difference between our
    exact radial functions and LAMMPS' splines stays small in the coefficients (measured: 1.6e-7
    in norm, 2.3e-5 for the worst single coefficient; 1e-4 asserted) and the metrics agree to the
    printed digits (measured 3.8e-6, 2e-5 relative asserted; 2e-7 absolute for the ~1e-15
    round-off forces of perfect lattices).
    """
    folder = shared_data / "fitsnap" / "Ta_PACE_RIDGE"
    setup = fitsnap_setup(folder / "Ta.in")
    assert (setup.solver, setup.stress, setup.potential.reference) == ("ridge", False, None)
    ace, reference_coefficients = fitsnap_basis_from_potential(folder / "reference" / "Ta_pot.yace",
                                                               folder / "reference" / "Ta_pot.acecoeff")
    potential = Potential(ace, LinearHead(1, ace.num_descriptors), None)
    result = dataclasses.replace(setup, potential=potential).fit()
    reference = read_fitsnap_metrics(folder / "reference" / "Ta_metrics.md")
    for (group, weighting, split, quantity), ref in reference.items():
        assert result.metrics.value(group, weighting, split, quantity, "ncount") == ref["ncount"]
        for metric in ("mae", "rmse"):
            assert result.metrics.value(group, weighting, split, quantity, metric) == pytest.approx(
                ref[metric], rel=2e-5, abs=2e-7), (group, weighting, quantity, metric)
    assert len(reference) == 52
    torch.testing.assert_close(result.coefficients, reference_coefficients, rtol=1e-4, atol=0)
