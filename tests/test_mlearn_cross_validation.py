"""Cross-validation of weighted least-squares fits (the mlearn benchmark's weight and cutoff choice),
checked against a direct numpy solve of every fold on synthetic rows with groups."""
from __future__ import annotations

import numpy as np
import pytest

from mlearn_study import mlearn
from mlearn_study.mlearn import (
    MIN_RELATIVE_RIDGE,
    SEARCH_TOLERANCE,
    CrossValidation,
    RowSet,
    exact_fit,
    refine_group_weights,
    select_weights,
    uniform_weights,
)


def _rowset(seed: int = 0, configs: int = 24, ncol: int = 5) -> RowSet:
    """Random rows of ``configs`` configurations in three groups: one energy row, 3·n force rows and 6
    stress rows each (the last group without stress), targets from a noisy linear model."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=ncol)
    atoms = rng.integers(2, 5, size=configs)
    groups = np.arange(configs) % 3

    def rows(n: int, scale: float = 1.0):
        A = rng.normal(size=(n, ncol))
        A[:, 0] = 1.0
        return A, A @ truth + scale * rng.normal(size=n)

    e, et = rows(configs, 0.3)
    f, ft = rows(3 * int(atoms.sum()))
    fc = np.repeat(np.arange(configs), 3 * atoms)
    with_s = np.flatnonzero(groups != 2)
    s, st = rows(6 * len(with_s), 0.5)
    sc = np.repeat(with_s, 6)
    return RowSet(e, et, np.arange(configs), f, ft, fc, s, st, sc, groups, ("a", "b", "c"))


@pytest.fixture(params=["exact", "normal equations"])
def cv_path(request, monkeypatch):
    """Both solve paths of the cross-validation: exact (QR of each fold's factors) and, with the column
    limit at 0, the normal equations with the ridge floor."""
    if request.param == "normal equations":
        monkeypatch.setattr(mlearn, "EXACT_MAX_COLUMNS", 0)
    return request.param


def _floor(ridge: float, path: str) -> float:
    return ridge if path == "exact" else max(ridge, MIN_RELATIVE_RIDGE)


def _scaled_ridge(A: np.ndarray, b: np.ndarray, ridge: float) -> np.ndarray:
    """``x = D y`` with ``y = argmin ‖A D y − b‖² + ridge ‖y‖²`` and ``D = diag(1/‖A_j‖)``, by numpy lstsq of
    the augmented system (minimum-norm least squares for ``ridge`` 0)."""
    d = 1 / np.linalg.norm(A, axis=0)
    n = A.shape[1]
    y = np.linalg.lstsq(np.vstack([A * d, ridge ** 0.5 * np.eye(n)]), np.concatenate([b, np.zeros(n)]), rcond=None)[0]
    return d * y


def _direct_errors(rs: RowSet, fold_of: np.ndarray, weights: np.ndarray, ridge: float,
                   path: str = "exact") -> tuple[float, float]:
    """The same CV errors by a numpy least-squares solve of each fold's weighted training rows."""
    err_e, err_f = [], []
    kinds = [(rs.energy, rs.energy_target, rs.energy_config), (rs.force, rs.force_target, rs.force_config),
             (rs.stress, rs.stress_target, rs.stress_config)]
    for f in range(fold_of.max() + 1):
        blocks, targets = [], []
        for k, (A, b, cfg) in enumerate(kinds):
            keep = fold_of[cfg] != f
            w = weights[k, rs.config_group[cfg[keep]]]
            blocks.append(w[:, None] * A[keep])
            targets.append(w * b[keep])
        x = _scaled_ridge(np.concatenate(blocks), np.concatenate(targets), _floor(ridge, path))
        err_e.append(np.abs(rs.energy[fold_of[rs.energy_config] == f] @ x - rs.energy_target[fold_of[rs.energy_config] == f]))
        sel = fold_of[rs.force_config] == f
        err_f.append(np.abs(rs.force[sel] @ x - rs.force_target[sel]))
    return 1000 * float(np.concatenate(err_e).mean()), float(np.concatenate(err_f).mean())


@pytest.mark.parametrize("weights", [uniform_weights((30.0, 1.0, 0.5), 3),
                                     np.array([[30.0, 100.0, 10.0], [1.0, 0.5, 2.0], [0.5, 3.0, 1.0]])])
@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_cv_errors_equal_a_direct_solve_of_every_fold(weights, ridge, cv_path):
    rs = _rowset()
    cv = CrossValidation(rs, 24, folds=4, seed=3)
    assert cv.exact == (cv_path == "exact")
    ours = cv.errors(weights, ridge)
    np.testing.assert_allclose(ours, _direct_errors(rs, cv.fold_of, weights, ridge, cv_path), rtol=1e-9)


def test_candidates_scored_one_after_another_each_equal_a_direct_solve(cv_path):
    """The normal equations are summed into matrices kept between candidates (and solved in place): no
    candidate may see what the one before left there, so a sequence of candidates — uniform, per group,
    uniform again — scores each as a fresh solve does, and the repeat exactly as the first time."""
    rs = _rowset(7)
    cv = CrossValidation(rs, 24, folds=4, seed=5)
    candidates = [(uniform_weights((30.0, 1.0, 0.5), 3), 1e-3),
                  (np.array([[30.0, 100.0, 10.0], [1.0, 0.5, 2.0], [0.5, 3.0, 1.0]]), 1e-6),
                  (uniform_weights((30.0, 1.0, 0.5), 3), 1e-3)]
    scored = [cv.errors(w, r) for w, r in candidates]
    for (w, r), ours in zip(candidates, scored):
        np.testing.assert_allclose(ours, _direct_errors(rs, cv.fold_of, w, r, cv_path), rtol=1e-9)
    assert scored[2] == scored[0]


def test_exact_cv_scores_plain_least_squares_where_the_normal_equations_cannot():
    """Two columns equal to 1e-9: the normal equations (condition number ~1e18) need the ridge floor, which
    then regularises; the exact path scores the least-squares fit itself, as numpy's lstsq of every fold."""
    rs = _rowset(8)
    rng = np.random.default_rng(8)
    for A in (rs.energy, rs.force, rs.stress):
        A[:, 4] = A[:, 3] + 1e-9 * rng.normal(size=A.shape[0])
    weights = uniform_weights((30.0, 1.0, 0.5), 3)
    cv = CrossValidation(rs, 24, folds=4, seed=3)
    exact = cv.errors(weights, 0.0)
    np.testing.assert_allclose(exact, _direct_errors(rs, cv.fold_of, weights, 0.0), rtol=1e-6)
    floored = _direct_errors(rs, cv.fold_of, weights, MIN_RELATIVE_RIDGE)
    assert abs(floored[0] - exact[0]) > 1e-3 * exact[0]


def test_cv_errors_do_not_depend_on_the_units_of_a_column(cv_path):
    """The ridge is relative to each column's own norm: a column a million times smaller (a high-order
    descriptor) gets the same fit and CV errors, not a ridge that swamps it."""
    rs = _rowset(7)
    small = RowSet(**{k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in vars(rs).items()})
    for A in (small.energy, small.force, small.stress):
        A[:, 3] *= 1e-6
    weights = uniform_weights((30.0, 1.0, 0.5), 3)
    for ridge in (0.0, 1e-3):
        ours = CrossValidation(small, 24, folds=4, seed=3).errors(weights, ridge)
        np.testing.assert_allclose(ours, CrossValidation(rs, 24, folds=4, seed=3).errors(weights, ridge), rtol=1e-8)
    fit, fit_small = exact_fit(rs, 24, None, [(30.0, 1.0, 0.5, 1e-3)], folds=3), \
        exact_fit(small, 24, None, [(30.0, 1.0, 0.5, 1e-3)], folds=3)
    np.testing.assert_allclose(fit_small.x * np.array([1, 1, 1, 1e-6, 1]), fit.x, rtol=1e-8)


def test_r_factor_gives_the_weighted_fit_of_all_rows(cv_path):
    """Also where the normal equations score the candidates and the factors are kept merged over folds."""
    rs = _rowset(1)
    cv = CrossValidation(rs, 24, folds=3)
    assert len(cv.factors) == (27 if cv_path == "exact" else 9)
    weights = np.array([[30.0, 100.0, 10.0], [1.0, 0.5, 2.0], [0.5, 3.0, 1.0]])
    r = cv.r_factor(weights).numpy()
    gram = r.T @ r
    blocks = [(weights[k, rs.config_group[cfg]][:, None] * np.column_stack([A, b]))
              for k, (A, b, cfg) in enumerate(rs.kinds().values())]
    direct = np.concatenate(blocks)
    np.testing.assert_allclose(gram, direct.T @ direct, rtol=1e-10, atol=1e-8 * np.abs(gram).max())


def test_a_split_without_factors_scores_as_one_with_them(cv_path):
    """The second fold split of the per-group search only scores: beyond the exact path it computes no R
    factors (the exact path needs them to score), and its CV errors are those of a full cross-validation."""
    rs = _rowset(6)
    weights = np.array([[30.0, 100.0, 10.0], [1.0, 0.5, 2.0], [0.5, 3.0, 1.0]])
    scoring = CrossValidation(rs, 24, folds=4, seed=3, with_factors=False)
    assert (len(scoring.factors) == 0) == (cv_path != "exact")
    np.testing.assert_allclose(scoring.errors(weights, 1e-6), CrossValidation(rs, 24, folds=4, seed=3).errors(weights, 1e-6),
                               rtol=1e-12)
    np.testing.assert_allclose(scoring.errors(weights, 1e-6), _direct_errors(rs, scoring.fold_of, weights, 1e-6, cv_path),
                               rtol=1e-9)


def test_group_refinement_improves_the_search_split_and_is_checked_on_another():
    rs = _rowset(2, configs=40)
    grid = [(we, 1.0, ws, 0.0) for we in (3.0, 30.0) for ws in (0.0, 1.0)]
    plain, _ = select_weights(rs, 40, grid, folds=4, seed=0)
    refined, cv = select_weights(rs, 40, grid, folds=4, seed=0, group_weights=True)
    assert refined.weights == plain.weights and refined.table == plain.table
    search = refined.group_search
    chosen = min(plain.table, key=lambda r: r[6])
    assert search["search_split"][2] <= chosen[6] + 1e-12          # the search starts from the grid's choice
    kept = search["kept"]
    on_check = search["check_split"]
    assert (kept == "groups") == (on_check["groups"][2] < on_check["uniform"][2] * (1 - SEARCH_TOLERANCE))
    assert list(refined.group_cv) == search["check_split"][kept]
    # the kept weights' errors on the second split are a direct computation
    check = CrossValidation(rs, 40, folds=4, seed=1)
    weights = refined.weight_array(rs.group_names)
    np.testing.assert_allclose(refined.group_cv[:2], _direct_errors(rs, check.fold_of, weights, 0.0), rtol=1e-9)
    if kept == "uniform":
        np.testing.assert_array_equal(weights, uniform_weights(plain.weights, 3))


def test_pattern_search_never_returns_a_worse_score():
    rs = _rowset(4, configs=30)
    cv = CrossValidation(rs, 30, folds=3)
    start = (30.0, 1.0, 0.0)
    e0, f0 = cv.errors(uniform_weights(start, 3), 0.0)

    def score(e, f):
        return e / e0 + f / f0

    weights, (e, f, s) = refine_group_weights(cv, start, 0.0, score)
    assert s <= 2.0 and s == pytest.approx(score(*cv.errors(weights, 0.0)), rel=1e-12)
    assert np.all(weights[2] == 0.0) and np.all(weights[:2] > 0)
    factors = weights[:2] / np.array(start[:2])[:, None]
    assert np.all((factors >= 1 / 16 - 1e-12) & (factors <= 16 + 1e-12))


class _ScoredWeights:
    """A stand-in for :class:`CrossValidation` whose CV energy error is ``1 − gain`` once the first
    group's energy weight has doubled (``1`` otherwise) and whose force error is constant."""

    num_groups = 2

    def __init__(self, gain: float):
        self.gain = gain

    def errors(self, weights: np.ndarray, ridge: float) -> tuple[float, float]:
        return (1.0 - self.gain if weights[0, 0] >= 2 * weights[0, 1] else 1.0), 1.0


@pytest.mark.parametrize("gain, moves", [(1e-7, False), (1e-2, True)])
def test_pattern_search_takes_no_step_that_only_round_off_could_make(gain, moves):
    """A step is taken only for a relative gain above SEARCH_TOLERANCE: smaller differences of CV scores
    are what 1e-15 perturbations of ill-conditioned rows produce, and must not decide the weights."""
    weights, (e, _, s) = refine_group_weights(_ScoredWeights(gain), (10.0, 1.0, 0.0), 0.0, lambda e, f: e + f)
    assert (weights[0, 0] > 10.0) == moves
    assert s == pytest.approx(2.0 - (gain if moves else 0.0), rel=1e-15)


def test_released_cross_validation_refuses_to_score_but_still_fits():
    rs = _rowset(5)
    cv = CrossValidation(rs, 24, folds=3)
    weights = uniform_weights((30.0, 1.0, 0.5), 3)
    before = cv.r_factor(weights)
    cv.release_grams()
    with pytest.raises(RuntimeError, match="released"):
        cv.errors(weights, 0.0)
    np.testing.assert_array_equal(cv.r_factor(weights).numpy(), before.numpy())


def test_final_fit_is_the_estimator_the_cross_validation_scored(cv_path):
    """On nearly collinear rows the ridge floor of the normal equations is an active regulariser: where
    the CV solves them, the final fit keeps the floor; where the CV is exact, both are plain least squares."""
    rs = _rowset(6, configs=30)
    rng = np.random.default_rng(6)
    for A in (rs.energy, rs.force, rs.stress):
        A[:, 4] = A[:, 3] + 1e-9 * rng.normal(size=A.shape[0])
    weights = (30.0, 1.0, 0.5)
    fit = exact_fit(rs, 30, None, [(*weights, 0.0)], folds=3)
    w = uniform_weights(weights, 3)
    direct = np.concatenate([w[k, rs.config_group[cfg]][:, None] * np.column_stack([A, b])
                             for k, (A, b, cfg) in enumerate(rs.kinds().values())])
    A, b = direct[:, :-1], direct[:, -1]
    expected = _scaled_ridge(A, b, _floor(0.0, cv_path))
    assert fit.alpha == _floor(0.0, cv_path)
    np.testing.assert_allclose(fit.x, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    other = _scaled_ridge(A, b, MIN_RELATIVE_RIDGE if cv_path == "exact" else 0.0)
    assert np.abs(other - expected).max() > 1e-2 * np.abs(expected).max()
