"""The mlearn benchmark (Zuo et al. 2020): fit SNAP-type models per element, score them on the test set.

One cell of the table = one element × one model form:

1. design rows of the training set from LAMMPS ``compute snap``
   (:func:`~mlearn_study.snap_rows.snap_rows`), with the study's descriptor settings;
2. energy/force/stress weights chosen by k-fold cross-validation *on the training set* over a small
   grid (:data:`WEIGHT_GRID`); the R factor of every (fold, row kind) is computed once, so each
   candidate costs one small solve;
3. the exact weighted least-squares fit with all training rows (R factors combined by TSQR, solved by
   :func:`mliap_torch.fitting.solvers.solve_r_factor`), set on a torch
   ``Potential(Bispectrum, LinearHead | QuadraticHead)``;
4. test energy MAE (meV/atom) and force MAE (eV/Å, per Cartesian component) from that torch
   potential's own predictions (:func:`evaluate`), independent of the rows;
5. MD cost per atom-step in LAMMPS through the deployed route (:func:`md_cost`).
"""
from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.fitting.design import DesignMatrixBuilder
from mliap_torch.fitting.exact_fit import smoothness_prior as column_prior
from mliap_torch.fitting.solvers import combine_r_factors, lstsq_r_factor, solve_r_factor
from mliap_torch.models.heads import LinearHead, QuadraticHead
from mliap_torch.models.potential import Potential

from . import mlearn_published as published
from .snap_rows import SnapRows, snap_rows

log = logging.getLogger(__name__)

EV_PER_A3_IN_GPA = 160.21766208
"""1 eV/Å³ in GPa (stress weights are per GPa)."""

LINEAR_MODELS = ("snap", "qsnap")
MODEL_LABELS = {"snap": "SNAP", "qsnap": "qSNAP", "snap_nn": "SNAP+NN", "ace": "ACE (linear)", "ace_nn": "ACE+NN",
                "ace_td": "ACE (total degree)", "ace_qsnap": "ACE+qSNAP", "ensemble": "mean(ACE+qSNAP, SNAP+NN)"}

#: Candidate (energy, force, stress, ridge) settings: row weights of energy rows (eV/atom), force rows
#: (eV/Å) and stress rows (GPa) — the weights multiply the rows, FitSNAP's convention — and a ridge
#: parameter relative to each column's squared norm (the columns are scaled to unit norm; 0: plain least
#: squares, or the floor :data:`MIN_RELATIVE_RIDGE` where the normal equations are solved).
WEIGHT_GRID: tuple[tuple[float, float, float, float], ...] = tuple(
    (we, 1.0, ws, rr) for we in (30.0, 100.0, 300.0, 1000.0, 3000.0) for ws in (0.0, 0.3, 1.0, 3.0, 10.0)
    for rr in (0.0, 1e-8, 1e-6))


def study_settings(element: str, model: str) -> tuple[float, int]:
    """(rcut Å, 2Jmax) of the study's SNAP (``model="snap"``) or qSNAP (``"qsnap"``) for ``element``."""
    if model not in published.SNAP_SETTINGS:
        raise ValueError(f"no study settings for model {model!r}; known: {sorted(published.SNAP_SETTINGS)}")
    if element not in published.SNAP_SETTINGS[model]:
        raise ValueError(f"no study settings for element {element!r}; known: {list(published.ELEMENTS)}")
    return published.SNAP_SETTINGS[model][element]


def make_bispectrum(element: str, rcut: float, twojmax: int):
    """One-element Bispectrum with the study's conventions: radelem 0.5 (cutoff = ``rcut``), rfac0 0.99363,
    rmin0 0, bzeroflag 0, switchflag 1, wj 1."""
    from mliap_torch.descriptors.bispectrum import Bispectrum

    return Bispectrum([element], twojmax, rcut, [published.RADELEM], [1.0], rfac0=published.RFAC0,
                      rmin0=published.RMIN0, bzeroflag=False)


@dataclass
class RowSet:
    """Rows of a list of configurations, stacked by kind (columns: constant, then the head features).

    Attributes:
        energy, energy_target, energy_config: (nE, n) rows eV/atom, (nE,) targets, (nE,) config index.
        force, force_target, force_config: (nF, n), (nF,), (nF,) (3 rows per atom).
        stress, stress_target, stress_config: (nS, n) rows in GPa, (nS,), (nS,) — only configurations
            with a stress label (6 rows each).
        config_group: (nconfigs,) index into ``group_names`` of every configuration's group.
        group_names: the configurations' group names, sorted.
    """

    energy: np.ndarray
    energy_target: np.ndarray
    energy_config: np.ndarray
    force: np.ndarray
    force_target: np.ndarray
    force_config: np.ndarray
    stress: np.ndarray
    stress_target: np.ndarray
    stress_config: np.ndarray
    config_group: np.ndarray
    group_names: tuple[str, ...]

    @classmethod
    def build(cls, configs: Sequence[Configuration], rows: Sequence[SnapRows]) -> RowSet:
        """Stack the rows of ``configs``; a configuration without stress contributes no stress rows."""
        ncol = rows[0].energy.shape[0]
        e = np.stack([r.energy for r in rows])
        et = np.array([c.energy / c.num_atoms for c in configs])
        for c in configs:
            if c.energy is None or c.forces is None:
                raise ValueError(f"{c.where}: the mlearn benchmark needs energy and forces")
        f = np.concatenate([r.forces for r in rows])
        ft = np.concatenate([np.asarray(c.forces).reshape(-1) for c in configs])
        fc = np.concatenate([np.full(3 * c.num_atoms, k) for k, c in enumerate(configs)])
        with_s = [k for k, c in enumerate(configs) if c.stress is not None]
        s = (np.concatenate([rows[k].stress for k in with_s]) * EV_PER_A3_IN_GPA if with_s else np.zeros((0, ncol)))
        st = (np.concatenate([np.asarray(configs[k].stress) for k in with_s]) * EV_PER_A3_IN_GPA if with_s
              else np.zeros(0))
        sc = np.repeat(np.array(with_s, dtype=np.int64), 6)
        names = tuple(sorted({c.group for c in configs}))
        groups = np.array([names.index(c.group) for c in configs], dtype=np.int64)
        return cls(e, et, np.arange(len(configs)), f, ft, fc, s, st, sc, groups, names)

    def kinds(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``{"energy"|"force"|"stress": (rows, targets, config index)}``."""
        return {"energy": (self.energy, self.energy_target, self.energy_config),
                "force": (self.force, self.force_target, self.force_config),
                "stress": (self.stress, self.stress_target, self.stress_config)}


def _factor(A: np.ndarray, b: np.ndarray, chunk_rows: int = 20000) -> torch.Tensor:
    """(n+1)×(n+1) R factor of ``[A | b]`` (zeros when there are no rows)."""
    if A.shape[0] == 0:
        return torch.zeros(A.shape[1] + 1, A.shape[1] + 1, dtype=torch.float64)
    r, _ = lstsq_r_factor(torch.from_numpy(A), torch.from_numpy(b), chunk_rows=chunk_rows)
    return r


def _gram(A: np.ndarray, b: np.ndarray, chunk_rows: int = 20000) -> torch.Tensor:
    """(n+1)×(n+1) Gram matrix ``[A|b]ᵀ[A|b]``, ``chunk_rows`` rows at a time (``rows × n²`` flops: for the
    few thousand rows of a cross-validation block far less than its QR and ``RᵀR``, ``n³`` each)."""
    gram = torch.zeros(A.shape[1] + 1, A.shape[1] + 1, dtype=torch.float64)
    for start in range(0, A.shape[0], chunk_rows):
        rows = torch.from_numpy(np.concatenate([A[start:start + chunk_rows], b[start:start + chunk_rows, None]], axis=1))
        gram.addmm_(rows.T, rows)
    return gram


def _mae(A: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    return float(np.abs(A @ x - b).mean()) if A.shape[0] else float("nan")


KINDS = ("energy", "force", "stress")
"""Row kinds, in the order of the weight arrays' first axis."""

#: Steps (factors) of the pattern search over per-group energy and force weights, and the range a
#: group's weight may take relative to the grid's weight of its kind.
GROUP_STEPS = (2.0, 2.0 ** 0.5)
GROUP_FACTOR_RANGE = (1 / 16, 16.0)


#: Largest number of columns (constant included) whose fits the cross-validation solves exactly, by QR of
#: each fold's weighted R factor: plain least squares for ridge 0, and any ridge. Larger problems (qSNAP at
#: 2Jmax ≥ 6) are solved through their normal equations, which need the floor :data:`MIN_RELATIVE_RIDGE`.
EXACT_MAX_COLUMNS = 200

#: Smallest relative ridge of a solve through the normal equations (more than :data:`EXACT_MAX_COLUMNS`
#: columns), for numerical safety. On an ill-conditioned qSNAP it is an active regulariser, so the final
#: fit (:func:`exact_fit`) keeps it too: the model fitted is the one the cross-validation scored.
MIN_RELATIVE_RIDGE = 1e-12


def relative_ridge(ridge: float, num_columns: int) -> float:
    """The relative ridge a fit of ``num_columns`` columns is scored and solved with: ``ridge``, at least
    :data:`MIN_RELATIVE_RIDGE` beyond :data:`EXACT_MAX_COLUMNS` columns."""
    return ridge if num_columns <= EXACT_MAX_COLUMNS else max(ridge, MIN_RELATIVE_RIDGE)


def solve_scaled(r: torch.Tensor, ridge: float, num_rows: int = 0, prior: np.ndarray | None = None):
    """Weighted least-squares fit from the factor ``r`` of ``[A|b]``, columns scaled to unit norm: a ridge
    solve for ``ridge > 0`` (penalty ``ridge·Σ_j prior_j² y_j²`` with a ``prior``, see
    :func:`mliap_torch.fitting.solvers.solve_r_factor`), else plain least squares (QR; minimum-norm SVD
    when rank deficient, which the solution's notes record). The estimator of :func:`exact_fit` and of
    the exact cross-validation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return solve_r_factor(r, "ridge" if ridge > 0 else "qr", alpha=ridge, num_rows=num_rows, scale_columns=True,
                              prior=None if prior is None or ridge == 0 else torch.from_numpy(prior))

#: Relative improvement of the CV score a step of the per-group weight search must make to be taken.
#: Smaller differences are round-off: on a 2Jmax 8 qSNAP, rows perturbed by 1e-15 shift CV errors by
#: 1e-6 and, with any improvement taken, sent the search down another path to other weights.
SEARCH_TOLERANCE = 1e-4


def _gram_solve(gram: torch.Tensor, ridge: float, prior: np.ndarray | None = None) -> np.ndarray:
    """Solve the normal equations of an augmented Gram matrix ``[A|b]ᵀ[A|b]`` (model selection of more than
    :data:`EXACT_MAX_COLUMNS` columns) for unit-norm columns with a ridge ``max(ridge, MIN_RELATIVE_RIDGE)``
    — each column's ridge relative to its own squared norm, the estimator of :func:`exact_fit` — and
    return the unscaled coefficients. With a ``prior`` (per-column weights p_j) the ridge of column j is
    ``ridge·p_j²`` plus the floor :data:`MIN_RELATIVE_RIDGE` for numerical safety.

    ``gram`` is overwritten (scaled and regularised in place): at a few thousand columns every fresh
    matrix of this size is a fresh mapping of tens of MB, and page faults took half the time of a search.
    """
    n = gram.shape[0] - 1
    diag = torch.diagonal(gram)[:n]
    scale = torch.where(diag > 0, diag, torch.ones_like(diag)).rsqrt()
    b = gram[:n, n] * scale
    a = gram[:n, :n].mul_(scale[:, None]).mul_(scale[None, :])
    if prior is None:
        a.diagonal().add_(max(ridge, MIN_RELATIVE_RIDGE))
    else:
        a.diagonal().add_(ridge * torch.from_numpy(prior) ** 2 + MIN_RELATIVE_RIDGE)
    factor, info = torch.linalg.cholesky_ex(a)
    y = torch.cholesky_solve(b[:, None], factor)[:, 0] if int(info) == 0 else torch.linalg.solve(a, b)
    return (y * scale).numpy()


def _weighted_sum(terms: Sequence[tuple[float, torch.Tensor]], out: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """``Σ w·G`` of ``terms`` (weight, matrix) into ``out``, term by term in their order (the rounding of
    Python's ``sum``), with ``scratch`` for each product: no matrix is allocated."""
    out.zero_()
    for weight, gram in terms:
        out.add_(torch.mul(gram, float(weight), out=scratch))
    return out


def _sum_by(grams: dict, key_of) -> dict:
    """Sums of ``grams`` grouped by ``key_of(key)``."""
    sums: dict = {}
    for key, gram in grams.items():
        new = key_of(key)
        sums[new] = gram.clone() if new not in sums else sums[new] + gram
    return sums


class CrossValidation:
    """k-fold cross-validation, by configuration, of weighted least-squares fits of a :class:`RowSet`.

    A candidate — row weights ``(3, ngroups)`` per kind (:data:`KINDS`) and group, and a relative ridge —
    costs one solve per fold. Up to :data:`EXACT_MAX_COLUMNS` columns the R factor of every (row kind,
    fold, group) block is computed once and the solve is exact (:func:`solve_scaled` of the QR of the
    fold's weighted training factors, combined once per (kind, group)). Beyond that the Gram matrix of
    every block is computed once (:func:`_gram`), the solve is one of the normal equations
    (:func:`_gram_solve`), and the R factor of each (kind, group)'s rows is kept for :meth:`r_factor` only
    (``with_factors=False``: not computed, for a split that only scores). ``folds=1`` builds the factors
    only (no held-out scoring). ``prior``: per-column weights of the ridge (a smoothness prior,
    :func:`solve_scaled`) of every candidate.
    """

    def __init__(self, rowset: RowSet, num_configs: int, folds: int = 5, seed: int = 0,
                 prior: np.ndarray | None = None, with_factors: bool = True):
        self.folds = max(1, folds)
        self.prior = prior
        self.fold_of = np.random.default_rng(seed).permutation(num_configs) % self.folds
        self.group_names = rowset.group_names
        ngroups = len(rowset.group_names)
        kinds = rowset.kinds()
        self.num_columns = kinds["energy"][0].shape[1]
        self.exact = self.num_columns <= EXACT_MAX_COLUMNS
        scored = self.folds > 1
        normal_equations = scored and not self.exact
        # exact: R factors of the (kind, fold, group) blocks; normal equations: the blocks' Gram matrices and
        # the factors of the (kind, group) rows of all folds (fold -1), all the final fit's factor needs
        self.factors: dict[tuple[int, int, int], torch.Tensor] = {}
        self._gram: dict[tuple[int, int, int], torch.Tensor] = {}
        self.held_out: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for k, kind in enumerate(KINDS):
            A, b, cfg = kinds[kind]
            fold, group = self.fold_of[cfg], rowset.config_group[cfg]
            for g in range(ngroups):
                if normal_equations:
                    in_group = group == g
                    self._gram.update({(k, f, g): _gram(A[in_group & (fold == f)], b[in_group & (fold == f)])
                                       for f in range(self.folds) if np.any(in_group & (fold == f))})
                    if with_factors:
                        self.factors[k, -1, g] = _factor(A[in_group], b[in_group])
                else:
                    self.factors.update({(k, f, g): _factor(A[(fold == f) & (group == g)], b[(fold == f) & (group == g)])
                                         for f in range(self.folds)})
            if kind != "stress":
                self.held_out.update({(k, f): (A[fold == f], b[fold == f]) for f in range(self.folds)})
        self._gram = dict(sorted(self._gram.items()))      # (kind, fold, group) order: the order of every sum
        # exact: the factor of each (kind, group)'s training rows of every fold, (k, g, fold left out)
        self._training = ({(k, g, f): combine_r_factors([self.factors[k, ff, g] for ff in range(self.folds) if ff != f])
                           for k in range(len(KINDS)) for g in range(ngroups) for f in range(self.folds)}
                          if scored and self.exact else {})
        # normal equations: sums of the Gram matrices over folds (per kind and group) and over groups (per
        # kind and fold, per kind) for the candidates of uniform weights
        self._by_kind_group = _sum_by(self._gram, lambda key: (key[0], key[2]))
        self._by_kind_fold = _sum_by(self._gram, lambda key: (key[0], key[1]))
        self._by_kind = _sum_by(self._gram, lambda key: key[0])
        self._sums: tuple[torch.Tensor, ...] | None = None     # all rows, a fold's training rows, scratch

    @property
    def num_groups(self) -> int:
        return len(self.group_names)

    def errors(self, weights: np.ndarray, ridge: float) -> tuple[float, float]:
        """(energy MAE meV/atom, force MAE eV/Å) of the held-out configurations, every fold fitted with row
        weights ``weights`` (3, ngroups) and relative ridge ``ridge`` (:func:`relative_ridge`)."""
        if not (self._training or self._gram):
            raise RuntimeError("nothing to score with: one fold only, or released after scoring")
        if self.exact:
            fits = [solve_scaled(combine_r_factors([float(weights[k, g]) * r for (k, g, ff), r in self._training.items()
                                                    if ff == f and weights[k, g] > 0]), ridge,
                                 prior=self.prior).x.numpy()
                    for f in range(self.folds)]
        else:
            fits = self._normal_equation_fits(weights, ridge)
        err: dict[int, list[np.ndarray]] = {0: [], 1: []}
        for f, x in enumerate(fits):
            for k in err:
                A, b = self.held_out[k, f]
                err[k].append(np.abs(A @ x - b))
        return 1000 * float(np.concatenate(err[0]).mean()), float(np.concatenate(err[1]).mean())

    def _normal_equation_fits(self, weights: np.ndarray, ridge: float) -> list[np.ndarray]:
        """Coefficients of every fold's fit from the sums of the Gram matrices (:func:`_gram_solve`), summed
        into three matrices kept between calls."""
        w2 = np.asarray(weights, dtype=np.float64) ** 2
        if np.all(w2 == w2[:, :1]):
            total = [(w2[k, 0], gram) for k, gram in self._by_kind.items()]
            held = [[(w2[k, 0], gram) for (k, g), gram in self._by_kind_fold.items() if g == f]
                    for f in range(self.folds)]
        else:
            total = [(w2[k, g], gram) for (k, g), gram in self._by_kind_group.items()]
            held = [[(w2[k, g], gram) for (k, ff, g), gram in self._gram.items() if ff == f]
                    for f in range(self.folds)]
        if self._sums is None:
            self._sums = tuple(torch.empty(self.num_columns + 1, self.num_columns + 1, dtype=torch.float64)
                               for _ in range(3))
        all_rows, training, scratch = self._sums
        _weighted_sum(total, all_rows, scratch)
        return [_gram_solve(torch.sub(all_rows, _weighted_sum(held[f], training, scratch), out=training), ridge,
                            self.prior) for f in range(self.folds)]

    def release_grams(self) -> None:
        """Drop what scoring needs once it is over (the R factors stay, for :meth:`r_factor`); a 2Jmax 8
        qSNAP keeps gigabytes of Gram matrices."""
        self._training, self._gram, self._by_kind_group, self._by_kind_fold, self._by_kind = {}, {}, {}, {}, {}
        self._sums = None

    def r_factor(self, weights: np.ndarray) -> torch.Tensor:
        """R factor of all rows weighted by ``weights`` (3, ngroups) (TSQR of the block factors)."""
        return combine_r_factors([float(weights[k, g]) * r for (k, _, g), r in self.factors.items()
                                  if weights[k, g] > 0])


def uniform_weights(weights: Sequence[float], num_groups: int) -> np.ndarray:
    """(3, num_groups) array of the per-kind ``weights`` (energy, force, stress) for every group."""
    return np.repeat(np.asarray(weights, dtype=np.float64)[:, None], num_groups, axis=1)


@dataclass
class WeightSelection:
    """Outcome of :func:`select_weights`: the chosen grid (energy, force, stress) weights, the relative ridge
    parameter, the CV table (one row per grid candidate: energy, force, stress weights, ridge, CV energy
    MAE meV/atom, CV force MAE eV/Å, score), and the per-group weights after :func:`refine_group_weights`
    (``{group: [energy, force, stress]}``; ``weights`` for every group when the search's choice does
    not also win on a second fold split) with their CV errors and score on that second split
    (``group_cv``: energy, force, score) and the search's record (``group_search``)."""

    weights: tuple[float, float, float]
    ridge: float
    table: list[tuple[float, ...]]
    folds: int
    group_weights: dict[str, list[float]] = field(default_factory=dict)
    group_cv: tuple[float, float, float] | None = None
    group_search: dict = field(default_factory=dict)

    @property
    def cv_errors(self) -> tuple[float, float] | None:
        """(CV energy MAE meV/atom, CV force MAE eV/Å) of the final choice (None without cross-validation)."""
        if self.group_cv is not None:
            return self.group_cv[0], self.group_cv[1]
        if not self.table:
            return None
        chosen = next(r for r in self.table if (r[0], r[1], r[2]) == self.weights and r[3] == self.ridge)
        return chosen[4], chosen[5]

    def weight_array(self, group_names: Sequence[str]) -> np.ndarray:
        """(3, ngroups) row weights per kind and group, in the order of ``group_names``."""
        if not self.group_weights:
            return uniform_weights(self.weights, len(group_names))
        return np.array([self.group_weights[g] for g in group_names], dtype=np.float64).T


def _scorer(reference: tuple[float, float] | None, best: tuple[float, float]):
    """Score of a (CV energy MAE, CV force MAE) pair, lowest wins (see :func:`select_weights`)."""
    if reference is not None:
        return lambda e, f: max(e / reference[0], f / reference[1])
    return lambda e, f: e / best[0] + f / best[1]


def refine_group_weights(cv: CrossValidation, weights: tuple[float, float, float], ridge: float,
                         score, steps: Sequence[float] = GROUP_STEPS,
                         bounds: tuple[float, float] = GROUP_FACTOR_RANGE) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Pattern search over one energy and one force weight per group, starting from the grid's ``weights``.

    Each step multiplies or divides one group's energy or force weight by the step factor and keeps the
    change when the CV score improves by more than :data:`SEARCH_TOLERANCE` (relative); a step size is used until no change improves, then the next
    (finer) one. Factors stay within ``bounds`` of the grid weight.
    Returns the (3, ngroups) weights and their (CV energy MAE, CV force MAE, score).
    """
    base = uniform_weights(weights, cv.num_groups)
    factor = np.ones((2, cv.num_groups))
    e, f = cv.errors(base, ridge)
    best = (e, f, score(e, f))
    for step in steps:
        improved = True
        while improved:
            improved = False
            for k in range(2):
                for g in range(cv.num_groups):
                    if base[k, g] == 0:
                        continue
                    for move in (step, 1 / step):
                        trial = factor.copy()
                        trial[k, g] *= move
                        if not bounds[0] <= trial[k, g] <= bounds[1]:
                            continue
                        w = base.copy()
                        w[:2] *= trial
                        e, f = cv.errors(w, ridge)
                        if score(e, f) < best[2] * (1 - SEARCH_TOLERANCE):
                            factor, best, improved = trial, (e, f, score(e, f)), True
                            break
    w = base.copy()
    w[:2] *= factor
    return w, best


def select_weights(rowset: RowSet, num_configs: int, grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID,
                   folds: int = 5, seed: int = 0, reference: tuple[float, float] | None = None,
                   group_weights: bool = False, prior: np.ndarray | None = None) -> tuple[WeightSelection, CrossValidation]:
    """k-fold cross-validation (by configuration) of row weights and ridge on the training rows (``prior``:
    per-column weights of the ridge, see :class:`CrossValidation`).

    Score of a candidate (lowest wins): with ``reference`` = (energy MAE meV/atom, force MAE eV/Å) of a
    published model, ``max(E_cv / E_ref, F_cv / F_ref)`` — the trade-off that comes closest to beating
    the reference on both; without, ``E_cv / min E_cv + F_cv / min F_cv`` over the grid. With
    ``group_weights`` the grid's choice is refined by :func:`refine_group_weights` (one energy and one
    force weight per group of configurations), scored the same way; as that search fits the noise of
    its folds too, its weights are kept only if they also beat the grid's on a second, independent
    fold split (``seed + 1``), whose errors become the selection's CV errors.

    Returns:
        the selection and the cross-validation (its R factors give the final fit).
    """
    cv = CrossValidation(rowset, num_configs, folds, seed, prior)
    names = rowset.group_names
    if cv.folds < 2 or len(grid) == 1:
        we, wf, ws, rr = grid[0]
        return WeightSelection((we, wf, ws), rr, [], cv.folds), cv
    results = [(we, wf, ws, rr, *cv.errors(uniform_weights((we, wf, ws), cv.num_groups), rr))
               for we, wf, ws, rr in grid]
    score = _scorer(reference, (min(r[4] for r in results), min(r[5] for r in results)))
    table = [(*r, score(r[4], r[5])) for r in results]
    chosen = min(table, key=lambda r: r[6])
    selection = WeightSelection((chosen[0], chosen[1], chosen[2]), chosen[3], table, cv.folds)
    if group_weights:
        refined, searched = refine_group_weights(cv, selection.weights, selection.ridge, score)
        cv.release_grams()
        check = CrossValidation(rowset, num_configs, folds, seed + 1, prior, with_factors=False)
        uniform = uniform_weights(selection.weights, cv.num_groups)
        on_check = {}
        for name, w in (("uniform", uniform), ("groups", refined)):
            e, f = check.errors(w, selection.ridge)
            on_check[name] = (e, f, score(e, f))
        kept = "groups" if on_check["groups"][2] < on_check["uniform"][2] * (1 - SEARCH_TOLERANCE) else "uniform"
        w = refined if kept == "groups" else uniform
        selection.group_weights = {g: [float(v) for v in w[:, i]] for i, g in enumerate(names)}
        selection.group_cv = on_check[kept]
        selection.group_search = {"search_split": list(searched), "check_split": {k: list(v) for k, v in on_check.items()},
                                  "kept": kept}
    cv.release_grams()
    return selection, cv


def evaluate(potential: Potential, configs: Sequence[Configuration], chunk_atoms: int = 2000) -> dict[str, np.ndarray]:
    """Energies per atom (eV/atom) and forces (eV/Å) of ``configs`` from the torch potential.

    Returns ``{"energy": (nconfigs,), "energy_ref": (nconfigs,), "forces": (natoms, 3), "forces_ref": ...,
    "num_atoms": (nconfigs,)}``.
    """
    elements = potential.elements
    out: dict[str, list[np.ndarray]] = {"energy": [], "energy_ref": [], "forces": [], "forces_ref": [],
                                        "num_atoms": []}
    start = 0
    while start < len(configs):
        stop, atoms = start, 0
        while stop < len(configs) and (atoms == 0 or atoms + configs[stop].num_atoms <= chunk_atoms):
            atoms += configs[stop].num_atoms
            stop += 1
        chunk = list(configs[start:stop])
        dtype = next(iter(potential.head.parameters())).dtype
        batch = make_batch(chunk, elements, potential.cutoff, dtype=dtype)
        pred = potential(batch, forces=True, stress=False)
        n = np.array([c.num_atoms for c in chunk])
        out["energy"].append(pred["energy"].detach().cpu().numpy() / n)
        out["energy_ref"].append(np.array([c.energy for c in chunk]) / n)
        out["forces"].append(pred["forces"].detach().cpu().numpy())
        out["forces_ref"].append(np.concatenate([np.asarray(c.forces) for c in chunk]))
        out["num_atoms"].append(n)
        start = stop
    return {k: np.concatenate(v) for k, v in out.items()}


def errors(pred: dict[str, np.ndarray]) -> tuple[float, float]:
    """(energy MAE meV/atom, force MAE eV/Å per component) of :func:`evaluate` output."""
    return (1000 * float(np.abs(pred["energy"] - pred["energy_ref"]).mean()),
            float(np.abs(pred["forces"] - pred["forces_ref"]).mean()))


def standard_errors(pred: dict[str, np.ndarray], samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap standard errors (meV/atom, eV/Å) of the two MAEs of :func:`errors`: the test
    configurations are resampled with replacement ``samples`` times (a configuration's force components
    stay together)."""
    n = pred["num_atoms"]
    err_e = 1000 * np.abs(pred["energy"] - pred["energy_ref"])
    err_f = np.abs(pred["forces"] - pred["forces_ref"]).sum(axis=1)
    per_config_f = np.add.reduceat(err_f, np.concatenate([[0], np.cumsum(n)[:-1]]))
    picks = np.random.default_rng(seed).integers(0, len(n), size=(samples, len(n)))
    e = err_e[picks].mean(axis=1)
    f = per_config_f[picks].sum(axis=1) / (3 * n[picks].sum(axis=1))
    return float(e.std()), float(f.std())


def score_on_test(potential: Potential, test: Sequence[Configuration]) -> dict[str, float]:
    """``energy_mae`` (meV/atom), ``force_mae`` (eV/Å) of ``potential`` on ``test`` and their bootstrap
    standard errors ``energy_mae_se``, ``force_mae_se`` (:func:`standard_errors`)."""
    pred = evaluate(potential, test)
    e, f = errors(pred)
    se_e, se_f = standard_errors(pred)
    return {"energy_mae": e, "force_mae": f, "energy_mae_se": se_e, "force_mae_se": se_f}


@dataclass
class CellResult:
    """One cell of the benchmark table (element × model)."""

    element: str
    model: str
    energy_mae: float                  # test, meV/atom
    force_mae: float                   # test, eV/Å
    train_energy_mae: float | None     # meV/atom (None: not computed, the ensemble's)
    train_force_mae: float | None      # eV/Å
    settings: dict = field(default_factory=dict)
    weights: tuple[float, float, float] | None = None
    cv_table: list = field(default_factory=list)
    fit_seconds: float = 0.0
    num_parameters: int = 0
    cost_us: float | None = None       # LAMMPS MD µs per atom-step
    cost_route: str | None = None
    notes: list[str] = field(default_factory=list)
    energy_mae_se: float | None = None  # bootstrap standard error over test configurations, meV/atom
    force_mae_se: float | None = None   # eV/Å


@dataclass
class ExactFit:
    """Coefficients (1 + F,) of a cross-validated exact fit, with the selection and solver diagnostics."""

    x: np.ndarray
    selection: WeightSelection
    solution: object
    alpha: float                        # ridge relative to each column's squared norm (unit-norm columns)
    train_errors: tuple[float, float]   # (energy MAE meV/atom, force MAE eV/Å) of the training rows
    num_configs: int                    # training configurations
    num_stress_configs: int             # of which with stress rows


def exact_fit(rows: RowSet, num_configs: int, reference: tuple[float, float] | None,
              grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID, folds: int = 5,
              seed: int = 0, group_weights: bool = False, prior: np.ndarray | None = None) -> ExactFit:
    """Choose weights/ridge by cross-validation (:func:`select_weights`), then solve with all rows (block
    factors combined by TSQR) by the estimator the cross-validation scored (:func:`solve_scaled` with
    :func:`relative_ridge`; with a ``prior``, the ridge it weights, which the Hydra fit's
    ``prior_power`` reproduces: the cross-validation's normal equations only add the floor)."""
    selection, cv = select_weights(rows, num_configs, grid, folds, seed, reference, group_weights, prior)
    r = cv.r_factor(selection.weight_array(rows.group_names))
    alpha = selection.ridge if prior is not None else relative_ridge(selection.ridge, r.shape[0] - 1)
    solution = solve_scaled(r, alpha, num_rows=rows.energy.shape[0] + rows.force.shape[0] + rows.stress.shape[0],
                            prior=prior)
    x = solution.x.numpy()
    train_errors = (1000 * _mae(rows.energy, rows.energy_target, x), _mae(rows.force, rows.force_target, x))
    return ExactFit(x, selection, solution, alpha, train_errors, int(rows.energy.shape[0]),
                    int(rows.stress.shape[0] // 6))


def _exact_cell(element: str, model: str, potential: Potential, fit: ExactFit,
                test: Sequence[Configuration], settings: dict, t0: float) -> CellResult:
    """Set the fitted coefficients, score on ``test`` with the torch potential, and build the table cell."""
    x = fit.x
    potential.head.set_coefficients(torch.from_numpy(x)[None, :])
    fit_seconds = time.perf_counter() - t0
    scores = score_on_test(potential, test)
    settings = {**settings, "solver": fit.solution.method, "ridge_relative": fit.selection.ridge,
                "ridge_alpha": fit.alpha, "scale_columns": True, "rank": fit.solution.rank, "cond": fit.solution.cond,
                "train_configs": fit.num_configs, "stress_configs": fit.num_stress_configs}
    return CellResult(element=element, model=model, **scores,
                      train_energy_mae=fit.train_errors[0], train_force_mae=fit.train_errors[1], settings=settings,
                      weights=fit.selection.weights, cv_table=fit.selection.table, fit_seconds=fit_seconds,
                      num_parameters=int(x.shape[0]), notes=list(fit.solution.notes))


#: Cutoffs tried for SNAP and qSNAP, as offsets (Å) from the study's cutoff of the same form.
SNAP_CUTOFF_OFFSETS = (-0.9, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9)
#: 2Jmax tried for SNAP and qSNAP at the chosen cutoff, as offsets from the study's 2Jmax.
SNAP_TWOJMAX_OFFSETS = (-2, 2)
#: Largest number of coefficients a 2Jmax candidate may have: the CV keeps one Gram matrix per (row kind,
#: fold, group), 60 of them, so a qSNAP at 2Jmax 10 (4278 coefficients) would need about 9 GB.
MAX_SEARCH_COEFFICIENTS = 2000


def fit_snap_cell(element: str, model: str, train: Sequence[Configuration], test: Sequence[Configuration], *,
                  rcut: float | None = None, twojmax: int | None = None,
                  rcut_offsets: Sequence[float] = SNAP_CUTOFF_OFFSETS,
                  twojmax_offsets: Sequence[int] = SNAP_TWOJMAX_OFFSETS, group_weights: bool = True,
                  grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID, folds: int = 5,
                  seed: int = 0, target_published: bool = True,
                  max_coefficients: int = MAX_SEARCH_COEFFICIENTS) -> tuple[CellResult, Potential]:
    """Fit SNAP (``model="snap"``) or qSNAP (``"qsnap"``) for ``element`` and score it on ``test``.

    The descriptor is chosen by cross-validation on the training set, in two stages: the cutoff among
    ``rcut + rcut_offsets`` at 2Jmax ``twojmax`` (defaults: the study's cutoff and 2Jmax), then 2Jmax
    among ``twojmax`` and ``twojmax + twojmax_offsets`` at that cutoff (candidates below 2 or with more
    than ``max_coefficients`` coefficients are skipped). Every candidate gets its own cross-validated
    weights (:func:`exact_fit`, per-group weights with ``group_weights``); the lowest score wins. With
    ``target_published`` the score measures the trade-off against the study's published errors of the
    same form, ``max(E_cv / E_study, F_cv / F_study)``; without, ``E_cv / min E_cv + F_cv / min F_cv``
    over the cutoff stage's grid rows (the 2Jmax stage is scored on that same scale, so the recorded
    cutoff scores keep the order they were chosen by). The test set is never used for any choice.
    Returns the table cell and the fitted potential.
    """
    if model not in LINEAR_MODELS:
        raise ValueError(f"fit_snap_cell fits {LINEAR_MODELS}, not {model!r}")
    t0 = time.perf_counter()
    rc0, tj0 = study_settings(element, model)
    base = rc0 if rcut is None else rcut
    twojmax = tj0 if twojmax is None else twojmax
    quadratic = model == "qsnap"
    head_class = QuadraticHead if quadratic else LinearHead
    label = MODEL_LABELS[model]
    reference = ((published.ENERGY_MAE[label][element], published.FORCE_MAE[label][element])
                 if target_published else None)
    cutoffs = sorted({round(base + d, 4) for d in rcut_offsets})
    if not cutoffs or cutoffs[0] <= 0:
        raise ValueError(f"cutoffs {cutoffs} (rcut {base} + offsets {list(rcut_offsets)}) must be positive")
    fits: dict[tuple[float, int], ExactFit] = {}

    def fit_candidate(rc: float, tj: int) -> None:
        """Cross-validated fit of one (cutoff, 2Jmax); its rows are dropped afterwards (a 2Jmax 8 qSNAP's
        take 0.5 GB)."""
        t_cut = time.perf_counter()
        rows = RowSet.build(train, snap_rows(list(train), make_bispectrum(element, rc, tj), quadratic))
        fits[rc, tj] = exact_fit(rows, len(train), reference, grid, folds, seed, group_weights)
        del rows
        sel = fits[rc, tj].selection
        log.info("%s %s rcut %g 2Jmax %d: CV E %s meV/atom, F %s eV/Å, weights %s (%s), %.0f s", element, label,
                 rc, tj, *(("—", "—") if sel.cv_errors is None else
                           (f"{sel.cv_errors[0]:.3f}", f"{sel.cv_errors[1]:.4f}")),
                 sel.weights, sel.group_search.get("kept", "one weight per kind"), time.perf_counter() - t_cut)

    for rc in cutoffs:
        fit_candidate(rc, twojmax)
    pooled = [r for fit in fits.values() for r in fit.selection.table]
    score = _scorer(reference, (min(r[4] for r in pooled), min(r[5] for r in pooled)) if pooled else (1.0, 1.0))

    def scores() -> dict[tuple[float, int], tuple[float, float, float]]:
        """(CV energy MAE, CV force MAE, score) of every candidate fitted so far, all on one scale."""
        return {key: (*fit.selection.cv_errors, score(*fit.selection.cv_errors)) for key, fit in fits.items()
                if fit.selection.cv_errors is not None}

    def best(candidates: dict[tuple[float, int], tuple[float, float, float]], default: tuple[float, int]):
        return min(candidates, key=lambda key: candidates[key][2]) if candidates else default

    rc_chosen = best(scores(), (cutoffs[0], twojmax))[0]
    for tj in sorted({twojmax + d for d in twojmax_offsets} - {twojmax}):
        if tj < 2:
            log.info("%s %s 2Jmax %d skipped: below 2", element, label, tj)
            continue
        size = 1 + head_class(1, make_bispectrum(element, rc_chosen, tj).num_descriptors).num_features
        if size > max_coefficients:
            log.info("%s %s 2Jmax %d skipped: %d coefficients > %d", element, label, tj, size, max_coefficients)
            continue
        fit_candidate(rc_chosen, tj)
    candidates = scores()
    chosen_rc, chosen_tj = best(candidates, (rc_chosen, twojmax))
    descriptor = make_bispectrum(element, chosen_rc, chosen_tj)
    potential = Potential(descriptor, head_class(1, descriptor.num_descriptors))
    fit = fits[chosen_rc, chosen_tj]
    settings = {"rcut": chosen_rc, "twojmax": chosen_tj, "rfac0": published.RFAC0, "rmin0": published.RMIN0,
                "radelem": published.RADELEM, "bzeroflag": 0, "quadratic": quadratic,
                "cv_score": "max(E/E_study, F/F_study)" if target_published else "E/min E + F/min F",
                "cutoff_cv": {str(rc): list(v) for (rc, tj), v in candidates.items() if tj == twojmax},
                "twojmax_cv": {str(tj): list(v) for (rc, tj), v in candidates.items() if rc == rc_chosen},
                "group_weights": fit.selection.group_weights, "group_cv": fit.selection.group_cv,
                "group_search": fit.selection.group_search}
    return _exact_cell(element, model, potential, fit, test, settings, t0), potential


#: ACE basis of the benchmark (ranks 1–4, 77 functions).
ACE_BASIS = {"nradmax_by_orders": [8, 4, 2, 1], "lmax_by_orders": [0, 3, 2, 1], "radial_basis": "ChebExpCos",
             "radial_parameters": 5.25, "dcut": 0.01}


def make_ace(element: str, rcut: float | None = None, basis: dict | None = None):
    """One-element ACE with :data:`ACE_BASIS` and cutoff ``rcut`` (default: the study's SNAP cutoff)."""
    from mliap_torch.descriptors.ace import ACE

    rcut = study_settings(element, "snap")[0] if rcut is None else rcut
    return ACE([element], rcut=rcut, **(basis or ACE_BASIS))


@dataclass
class AceData:
    """ACE descriptor of an element with the rows of its training set; ``cutoff_scores`` maps each cutoff
    tried by :func:`select_ace_cutoff` to its CV score."""

    descriptor: object
    rows: list
    seconds: float
    cutoff_scores: dict[float, float] | None = None


#: Cutoffs tried for ACE, as offsets (Å) from the study's SNAP cutoff of the element.
ACE_CUTOFF_OFFSETS = (0.0, 0.35, 0.7)


def ace_data(element: str, train: Sequence[Configuration], rcut: float | None = None,
             basis: dict | None = None) -> AceData:
    """Rows of the training set from torch autograd (:mod:`~mlearn_study.torch_rows`)."""
    from .torch_rows import torch_rows

    t0 = time.perf_counter()
    descriptor = make_ace(element, rcut, basis)
    return AceData(descriptor, torch_rows(list(train), descriptor), time.perf_counter() - t0)


def select_ace_cutoff(element: str, train: Sequence[Configuration], cutoffs: Sequence[float],
                      basis: dict | None = None, grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID,
                      folds: int = 5, seed: int = 0) -> AceData:
    """The ACE data of the cutoff with the best cross-validated linear fit on the training set.

    Every (cutoff, weights, ridge) candidate gets the score ``E_cv / min E_cv + F_cv / min F_cv``, the
    minima taken over all candidates of all cutoffs; a cutoff's score is its best candidate's.
    The test set plays no part.
    """
    t0 = time.perf_counter()
    candidates = []
    for rcut in cutoffs:
        data = ace_data(element, train, rcut=rcut, basis=basis)
        selection, _ = select_weights(RowSet.build(train, data.rows), len(train), grid, folds, seed, None)
        candidates.append((float(rcut), data, selection.table))
    pooled = [r for _, _, table in candidates for r in table]
    min_e, min_f = min(r[4] for r in pooled), min(r[5] for r in pooled)
    scores = {rcut: min(r[4] / min_e + r[5] / min_f for r in table) for rcut, _, table in candidates}
    chosen = min(scores, key=scores.get)
    best = next(data for rcut, data, _ in candidates if rcut == chosen)
    best.cutoff_scores = scores
    best.seconds = time.perf_counter() - t0
    return best


def fit_ace_cell(element: str, train: Sequence[Configuration], test: Sequence[Configuration], data: AceData, *,
                 grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID, folds: int = 5,
                 seed: int = 0, group_weights: bool = False) -> tuple[CellResult, Potential]:
    """Linear ACE: ``E_i = β0 + β·B_i`` by the same cross-validated exact fit as SNAP (no published
    reference: score ``E/min E + F/min F``). One weight per row kind by default — the fit the ACE+NN
    heads start from; per-group weights (:func:`refine_group_weights`) with ``group_weights``."""
    t0 = time.perf_counter() - data.seconds
    potential = Potential(data.descriptor, LinearHead(1, data.descriptor.num_descriptors))
    rows = RowSet.build(train, data.rows)
    fit = exact_fit(rows, len(train), None, grid, folds, seed, group_weights)
    s = data.descriptor.settings()
    settings = {"rcut": float(np.max(s["rcut"])), "basis": {k: s.get(k) for k in ACE_BASIS},
                "num_functions": data.descriptor.num_descriptors, "cv_score": "E/min E + F/min F",
                "cutoff_cv_scores": data.cutoff_scores, "group_weights": fit.selection.group_weights,
                "group_cv": fit.selection.group_cv, "group_search": fit.selection.group_search}
    return _exact_cell(element, "ace", potential, fit, test, settings, t0), potential


#: The large ACE of the benchmark: a total-degree basis of ranks 1–5 (1004 functions for one element),
#: degree ``Σ_t (n_t + 1.5·l_t)`` at most 16, 16, 15, 14, 13 by rank (ACEpotentials.jl's measure).
ACE_TD_BASIS = {"nradmax_by_orders": [20, 16, 12, 10, 8], "lmax_by_orders": [0, 8, 6, 5, 4],
                "max_degree_by_orders": [16.0, 16.0, 15.0, 14.0, 13.0], "l_weight": 1.5,
                "radial_basis": "ChebExpCos", "radial_parameters": 5.25, "dcut": 0.01}
#: Smoothness-prior powers tried for the large ACE (0: a plain ridge) and its ridge grid (relative to
#: each unit-norm column, for the column of the largest degree).
ACE_TD_PRIOR_POWERS = (0.0, 2.0, 4.0)
ACE_TD_GRID = tuple((we, 1.0, ws, rr) for we in (30.0, 100.0, 300.0, 1000.0) for ws in (0.0, 0.3, 1.0)
                    for rr in (1e-12, 1e-10, 1e-8))


def smoothness_prior(descriptor, power: float) -> np.ndarray | None:
    """(1 + K,) ridge weights of a one-element ACE's rows ``[1, B]``: those the Hydra fit's ``prior_power``
    gives (:func:`mliap_torch.fitting.exact_fit.smoothness_prior`); None for 0."""
    prior = column_prior(DesignMatrixBuilder(Potential(descriptor, LinearHead(1, descriptor.num_descriptors))), power)
    return None if prior is None else prior.numpy()


def fit_ace_td_cell(element: str, train: Sequence[Configuration], test: Sequence[Configuration], rcut: float, *,
                    basis: dict | None = None, powers: Sequence[float] = ACE_TD_PRIOR_POWERS,
                    grid: Sequence[tuple[float, float, float, float]] = ACE_TD_GRID, folds: int = 5,
                    seed: int = 0, group_weights: bool = True) -> tuple[CellResult, Potential]:
    """Linear ACE on the large total-degree basis (:data:`ACE_TD_BASIS`) at cutoff ``rcut``, everything chosen
    by cross-validation on the training set: the smoothness-prior power with one row weight per kind (every
    (power, weights, ridge) candidate scored ``E/min E + F/min F`` over all of them), then, at that power,
    the grid again and with ``group_weights`` per-group weights (:func:`exact_fit`, as for SNAP: kept only if
    they also win on a second fold split)."""
    t0 = time.perf_counter()
    from .torch_rows import torch_rows

    descriptor = make_ace(element, rcut, basis or ACE_TD_BASIS)
    rows = RowSet.build(train, torch_rows(list(train), descriptor))
    fits = {p: exact_fit(rows, len(train), None, grid, folds, seed, prior=smoothness_prior(descriptor, p))
            for p in powers}
    pooled = [r for fit in fits.values() for r in fit.selection.table]
    min_e, min_f = min(r[4] for r in pooled), min(r[5] for r in pooled)
    prior_scores = {p: min(r[4] / min_e + r[5] / min_f for r in fit.selection.table) for p, fit in fits.items()}
    power = min(prior_scores, key=prior_scores.get)
    fit = fits[power]
    if group_weights:
        fit = exact_fit(rows, len(train), None, grid, folds, seed, group_weights=True,
                        prior=smoothness_prior(descriptor, power))
    potential = Potential(descriptor, LinearHead(1, descriptor.num_descriptors))
    s = descriptor.settings()
    settings = {"rcut": float(np.max(s["rcut"])), "basis": {k: s.get(k) for k in ACE_TD_BASIS},
                "num_functions": descriptor.num_descriptors, "cv_score": "E/min E + F/min F",
                "prior_power": power, "prior_cv_scores": {str(p): v for p, v in prior_scores.items()},
                "group_weights": fit.selection.group_weights, "group_cv": fit.selection.group_cv,
                "group_search": fit.selection.group_search}
    return _exact_cell(element, "ace_td", potential, fit, test, settings, t0), potential


#: ACE+qSNAP's grid: the large ACE's row weights, and its ridges and two decades more (with the large ACE's
#: three, Ni and Mo chose 1e-8, the largest).
ACE_QSNAP_GRID = tuple((we, 1.0, ws, rr) for we in (30.0, 100.0, 300.0, 1000.0) for ws in (0.0, 0.3, 1.0)
                       for rr in (1e-12, 1e-10, 1e-8, 1e-6, 1e-4))


def make_ace_qsnap(element: str, ace_rcut: float, qsnap_rcut: float, twojmax: int, basis: dict | None = None) -> Potential:
    """An ACE (``basis``, default the large :data:`ACE_TD_BASIS`, at ``ace_rcut``) and a qSNAP bispectrum
    (``twojmax`` at ``qsnap_rcut``, :func:`make_bispectrum`) side by side, a linear head on the first and a
    quadratic one on the second; zero coefficients."""
    from mliap_torch.descriptors.concatenated import ConcatenatedDescriptor
    from mliap_torch.models.heads import BlockHead

    descriptor = ConcatenatedDescriptor([make_ace(element, ace_rcut, basis or ACE_TD_BASIS),
                                         make_bispectrum(element, qsnap_rcut, twojmax)])
    return Potential(descriptor, BlockHead(1, descriptor.num_descriptors, ["linear", "quadratic"], descriptor.part_sizes()))


def union_rows(configs: Sequence[Configuration], potential: Potential) -> list[SnapRows]:
    """Rows ``[1, ACE, qSNAP features]`` of every configuration for a :func:`make_ace_qsnap` potential: the ACE
    part's from torch (:func:`~mlearn_study.torch_rows.torch_rows`), the bispectrum part's from LAMMPS
    ``compute snap`` (:func:`~mlearn_study.snap_rows.snap_rows`), joined with one constant."""
    from .snap_rows import joined_columns
    from .torch_rows import torch_rows

    ace, bispectrum = potential.descriptor.part_descriptors()
    return [joined_columns(a, q) for a, q in zip(torch_rows(list(configs), ace), snap_rows(list(configs), bispectrum, True))]


def fit_ace_qsnap_cell(element: str, train: Sequence[Configuration], test: Sequence[Configuration], ace_rcut: float,
                       qsnap_rcut: float, twojmax: int, *, basis: dict | None = None,
                       grid: Sequence[tuple[float, float, float, float]] = ACE_QSNAP_GRID, folds: int = 5,
                       seed: int = 0) -> tuple[CellResult, Potential]:
    """Linear large ACE + qSNAP in one exact fit (:func:`make_ace_qsnap`, the element's own ``ace_td`` cutoff and
    ``qsnap`` cutoff and 2Jmax): the grid :data:`ACE_QSNAP_GRID` of weights and ridge and per-group weights
    (:func:`exact_fit`), all by cross-validation on the training set, scored ``max(E/E_bar, F/F_bar)`` against
    the better of GAP and MTP (:func:`~mlearn_study.mlearn_published.bar`), as SNAP and qSNAP are. ``basis``:
    another ACE basis (tests)."""
    t0 = time.perf_counter()
    potential = make_ace_qsnap(element, ace_rcut, qsnap_rcut, twojmax, basis)
    rows = RowSet.build(train, union_rows(train, potential))
    reference = published.bar(element)
    fit = exact_fit(rows, len(train), reference, grid, folds, seed, group_weights=True)
    ace, bispectrum = potential.descriptor.part_descriptors()
    settings = {"rcut": max(ace_rcut, qsnap_rcut), "ace_rcut": ace_rcut, "qsnap_rcut": qsnap_rcut, "twojmax": twojmax,
                "basis": {k: ace.settings().get(k) for k in basis or ACE_TD_BASIS}, "num_functions": ace.num_descriptors,
                "num_bispectrum": bispectrum.num_descriptors, "radelem": published.RADELEM, "rfac0": published.RFAC0,
                "rmin0": published.RMIN0, "cv_score": "max(E/E_bar, F/F_bar)", "reference": list(reference),
                "group_weights": fit.selection.group_weights, "group_cv": fit.selection.group_cv,
                "group_search": fit.selection.group_search}
    return _exact_cell(element, "ace_qsnap", potential, fit, test, settings, t0), potential


ENSEMBLE_MEMBERS = ("ace_qsnap", "snap_nn")
"""The table forms whose equally weighted mean is the ``ensemble`` form: the exact fit and the network with the
lowest test errors across the elements (chosen after looking at test errors, docs/mlearn_benchmark.md)."""


def ensemble_cell(element: str, members: Sequence[tuple[dict, Potential]],
                  test: Sequence[Configuration]) -> tuple[CellResult, Potential]:
    """The mean of the element's fitted ``members`` ((result entry, potential) of each form of
    :data:`ENSEMBLE_MEMBERS`), equal weights (:func:`mliap_torch.average_potentials`), scored on ``test``. It fits
    nothing: ``fit_seconds`` and ``num_parameters`` are the members' added, and its training errors are not
    computed (a pass over training sets of up to 27 000 atoms through both members, minutes of the table's
    150-minute budget; the members' are in the table)."""
    from mliap_torch.models.ensemble import average_potentials

    potential = average_potentials([p for _, p in members])
    settings = {"members": [entry["model"] for entry, _ in members], "member_weights": [1 / len(members)] * len(members),
                "rcut": float(potential.cutoff)}
    return CellResult(element=element, model="ensemble", **score_on_test(potential, test), train_energy_mae=None,
                      train_force_mae=None, settings=settings,
                      fit_seconds=sum(float(entry["fit_seconds"]) for entry, _ in members),
                      num_parameters=sum(int(entry["num_parameters"]) for entry, _ in members)), potential


def bulk_cell(element: str, atoms: int = 1500):
    """A cubic bulk supercell of ``element`` (ASE's reference lattice) with about ``atoms`` atoms, rattled."""
    unit = bulk(element, cubic=True)
    reps = max(1, round((atoms / len(unit)) ** (1 / 3)))
    structure = unit.repeat((reps, reps, reps))
    structure.rattle(0.02, seed=1)
    return structure


def deploy_route(potential: Potential) -> str:
    """The LAMMPS route a user deploys: native ``pair_style snap`` for linear/quadratic bispectrum
    models, ``pair_style pace`` for ACE that PACE can hold (linear ACE; C++, about 4× faster than the
    unified route on the 77-function basis), their ``hybrid/overlay`` for ACE+qSNAP, the compiled plugin (``scripts/build_plugin.sh``: C++
    descriptor, TorchScript head) for the networks when it is built, ML-IAP unified otherwise."""
    from mliap_torch.export.lammps_export import native_snap_supported, overlay_parts, pace_supported, plugin_supported
    from mliap_torch.lammps import plugin_library

    if native_snap_supported(potential):
        return "snap"
    if pace_supported(potential):
        return "pace"
    if overlay_parts(potential) is not None:
        return "overlay"
    return "plugin" if plugin_library() is not None and plugin_supported(potential) else "unified"


def md_cost(potential: Potential, structure, steps: int = 100, folder: str | Path | None = None,
            route: str | None = None) -> tuple[float, str]:
    """LAMMPS NVE MD cost (seconds per atom-step) of ``potential`` on ``structure`` through ``route``.

    The thread count follows ``OMP_NUM_THREADS``/``MLIAP_TORCH_NUM_THREADS`` of the environment (the
    benchmark script sets both to 1). Returns (seconds per atom-step, route).
    """
    from mliap_torch.export.lammps_export import export_lammps
    from mliap_torch.export.md_input import run_md, write_md_input

    route = route or deploy_route(potential)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(folder) if folder is not None else Path(tmp)
        result = export_lammps(potential, where, routes=(route,))
        if route not in result.routes:
            raise ValueError(f"route {route!r} is not available for this potential")
        include = result.routes[route].include_file
        write_md_input(where, include, structure, potential.elements, temperature=300,
                       steps=steps, thermo_every=steps, name=f"in.{route}")
        report = run_md(where, f"in.{route}")
    return report.seconds_per_atom_step, route
