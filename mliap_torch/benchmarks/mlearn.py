"""The mlearn benchmark (Zuo et al. 2020): fit SNAP-type models per element, score them on the test set.

One cell of the table = one element × one model form:

1. design rows of the training set from LAMMPS ``compute snap``
   (:func:`~mliap_torch.benchmarks.snap_rows.snap_rows`), with the study's descriptor settings;
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

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase.build import bulk

from ..data.batch import make_batch
from ..data.configuration import Configuration
from ..fitting.solvers import combine_r_factors, lstsq_r_factor, solve_r_factor
from ..models.heads import LinearHead, QuadraticHead
from ..models.potential import Potential
from . import mlearn_published as published
from .snap_rows import SnapRows, snap_rows

EV_PER_A3_IN_GPA = 160.21766208
"""1 eV/Å³ in GPa (stress weights are per GPa)."""

LINEAR_MODELS = ("snap", "qsnap")
MODEL_LABELS = {"snap": "SNAP", "qsnap": "qSNAP", "snap_nn": "SNAP+NN", "ace": "ACE (linear)", "ace_nn": "ACE+NN"}

#: Candidate (energy, force, stress, ridge) settings: row weights of energy rows (eV/atom), force rows
#: (eV/Å) and stress rows (GPa) — the weights multiply the rows, FitSNAP's convention — and a ridge
#: parameter relative to the mean diagonal of the weighted normal matrix (0: plain least squares).
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
    from ..descriptors.bispectrum import Bispectrum

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

    @classmethod
    def build(cls, configs: Sequence[Configuration], rows: Sequence[SnapRows]) -> "RowSet":
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
        return cls(e, et, np.arange(len(configs)), f, ft, fc, s, st, sc)

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


def _mae(A: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    return float(np.abs(A @ x - b).mean()) if A.shape[0] else float("nan")


def _gram_solve(grams: Sequence[tuple[torch.Tensor, float]], ridge: float) -> np.ndarray:
    """Solve the weighted normal equations Σ w²·G (G = RᵀR of augmented factors; model selection only)
    with a ridge ``ridge · mean(diag)`` (at least 1e-12 of it, for numerical safety)."""
    g = sum(w * w * gram for gram, w in grams)
    n = g.shape[0] - 1
    a, b = g[:n, :n], g[:n, n]
    alpha = max(ridge, 1e-12) * torch.diagonal(a).mean()
    return torch.linalg.solve(a + alpha * torch.eye(n, dtype=a.dtype), b).numpy()


@dataclass
class WeightSelection:
    """Outcome of :func:`select_weights`: the chosen (energy, force, stress) weights, the relative ridge
    parameter and the CV table (one row per candidate: energy, force, stress weights, ridge, CV energy
    MAE meV/atom, CV force MAE eV/Å, score)."""

    weights: tuple[float, float, float]
    ridge: float
    table: list[tuple[float, ...]]
    folds: int


def select_weights(rowset: RowSet, num_configs: int, grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID,
                   folds: int = 5, seed: int = 0, reference: tuple[float, float] | None = None,
                   ) -> tuple[WeightSelection, dict[str, list[torch.Tensor]]]:
    """k-fold cross-validation (by configuration) of row weights and ridge on the training rows.

    Score of a candidate (lowest wins): with ``reference`` = (energy MAE meV/atom, force MAE eV/Å) of a
    published model, ``max(E_cv / E_ref, F_cv / F_ref)`` — the trade-off that comes closest to beating
    the reference on both; without, ``E_cv / min E_cv + F_cv / min F_cv`` over the grid.

    Returns:
        the selection and the R factors per kind and fold (reused for the final fit).
    """
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(num_configs) % max(1, folds)
    kinds = rowset.kinds()
    factors: dict[str, list[torch.Tensor]] = {k: [] for k in kinds}
    for f in range(folds):
        for kind, (A, b, cfg) in kinds.items():
            sel = fold_of[cfg] == f
            factors[kind].append(_factor(A[sel], b[sel]))
    if folds < 2 or len(grid) == 1:
        we, wf, ws, rr = grid[0]
        return WeightSelection((we, wf, ws), rr, [], folds), factors
    gram = {kind: [r.T @ r for r in rs] for kind, rs in factors.items()}
    results = []
    for we, wf, ws, rr in grid:
        err_e, err_f = [], []
        for f in range(folds):
            grams = [(gram[kind][g], w) for kind, w in (("energy", we), ("force", wf), ("stress", ws))
                     for g in range(folds) if g != f and w > 0]
            x = _gram_solve(grams, rr)
            A, b, cfg = kinds["energy"]
            sel = fold_of[cfg] == f
            err_e.append(np.abs(A[sel] @ x - b[sel]))
            A, b, cfg = kinds["force"]
            sel = fold_of[cfg] == f
            err_f.append(np.abs(A[sel] @ x - b[sel]))
        results.append((we, wf, ws, rr, 1000 * float(np.concatenate(err_e).mean()),
                        float(np.concatenate(err_f).mean())))
    if reference is not None:
        table = [(*r, max(r[4] / reference[0], r[5] / reference[1])) for r in results]
    else:
        best_e = min(r[4] for r in results)
        best_f = min(r[5] for r in results)
        table = [(*r, r[4] / best_e + r[5] / best_f) for r in results]
    chosen = min(table, key=lambda r: r[6])
    return WeightSelection((chosen[0], chosen[1], chosen[2]), chosen[3], table, folds), factors


def evaluate(potential: Potential, configs: Sequence[Configuration], chunk_atoms: int = 2000) -> dict[str, np.ndarray]:
    """Energies per atom (eV/atom) and forces (eV/Å) of ``configs`` from the torch potential.

    Returns ``{"energy": (nconfigs,), "energy_ref": (nconfigs,), "forces": (natoms, 3), "forces_ref": ...}``.
    """
    elements = potential.elements
    out: dict[str, list[np.ndarray]] = {"energy": [], "energy_ref": [], "forces": [], "forces_ref": []}
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
        start = stop
    return {k: np.concatenate(v) for k, v in out.items()}


def errors(pred: dict[str, np.ndarray]) -> tuple[float, float]:
    """(energy MAE meV/atom, force MAE eV/Å per component) of :func:`evaluate` output."""
    return (1000 * float(np.abs(pred["energy"] - pred["energy_ref"]).mean()),
            float(np.abs(pred["forces"] - pred["forces_ref"]).mean()))


@dataclass
class CellResult:
    """One cell of the benchmark table (element × model)."""

    element: str
    model: str
    energy_mae: float                  # test, meV/atom
    force_mae: float                   # test, eV/Å
    train_energy_mae: float            # meV/atom
    train_force_mae: float             # eV/Å
    settings: dict = field(default_factory=dict)
    weights: tuple[float, float, float] | None = None
    cv_table: list = field(default_factory=list)
    fit_seconds: float = 0.0
    num_parameters: int = 0
    cost_us: float | None = None       # LAMMPS MD µs per atom-step
    cost_route: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ExactFit:
    """Coefficients (1 + F,) of a cross-validated exact fit, with the selection and solver diagnostics."""

    x: np.ndarray
    selection: WeightSelection
    solution: object
    alpha: float


def exact_fit(rows: RowSet, num_configs: int, reference: tuple[float, float] | None,
              grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID, folds: int = 5,
              seed: int = 0) -> ExactFit:
    """Choose weights/ridge by cross-validation (:func:`select_weights`), then solve with all rows
    (fold factors combined by TSQR, QR or ridge solve)."""
    selection, factors = select_weights(rows, num_configs, grid, folds, seed, reference)
    we, wf, ws = selection.weights
    blocks = [w * r for kind, w in (("energy", we), ("force", wf), ("stress", ws)) if w > 0 for r in factors[kind]]
    r = combine_r_factors(blocks)
    n = r.shape[0] - 1
    alpha = selection.ridge * float((r[:n, :n] ** 2).sum()) / n     # ridge relative to the mean diagonal of RᵀR
    solution = solve_r_factor(r, method="ridge" if alpha > 0 else "qr", alpha=alpha,
                              num_rows=rows.energy.shape[0] + rows.force.shape[0] + rows.stress.shape[0])
    return ExactFit(solution.x.numpy(), selection, solution, alpha)


def _exact_cell(element: str, model: str, potential: Potential, rows: RowSet, fit: ExactFit,
                test: Sequence[Configuration], settings: dict, t0: float) -> CellResult:
    """Set the fitted coefficients, score on ``test`` with the torch potential, and build the table cell."""
    x = fit.x
    potential.head.set_coefficients(torch.from_numpy(x)[None, :])
    fit_seconds = time.perf_counter() - t0
    e_mae, f_mae = errors(evaluate(potential, test))
    settings = {**settings, "solver": fit.solution.method, "ridge_relative": fit.selection.ridge,
                "ridge_alpha": fit.alpha, "rank": fit.solution.rank, "cond": fit.solution.cond,
                "train_configs": int(rows.energy.shape[0]), "stress_configs": int(rows.stress.shape[0] // 6)}
    return CellResult(element=element, model=model, energy_mae=e_mae, force_mae=f_mae,
                      train_energy_mae=1000 * _mae(rows.energy, rows.energy_target, x),
                      train_force_mae=_mae(rows.force, rows.force_target, x), settings=settings,
                      weights=fit.selection.weights, cv_table=fit.selection.table, fit_seconds=fit_seconds,
                      num_parameters=int(x.shape[0]), notes=list(fit.solution.notes))


def fit_snap_cell(element: str, model: str, train: Sequence[Configuration], test: Sequence[Configuration], *,
                  rcut: float | None = None, twojmax: int | None = None,
                  grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID, folds: int = 5,
                  seed: int = 0, target_published: bool = True) -> tuple[CellResult, Potential]:
    """Fit SNAP (``model="snap"``) or qSNAP (``"qsnap"``) for ``element`` and score it on ``test``.

    ``rcut``/``twojmax`` default to the study's values. With ``target_published`` the cross-validation
    score measures the trade-off against the study's published errors of the same form
    (:func:`select_weights`); the test set is never used for any choice.
    Returns the table cell and the fitted potential.
    """
    if model not in LINEAR_MODELS:
        raise ValueError(f"fit_snap_cell fits {LINEAR_MODELS}, not {model!r}")
    t0 = time.perf_counter()
    rc0, tj0 = study_settings(element, model)
    rcut = rc0 if rcut is None else rcut
    twojmax = tj0 if twojmax is None else twojmax
    quadratic = model == "qsnap"
    descriptor = make_bispectrum(element, rcut, twojmax)
    potential = Potential(descriptor, (QuadraticHead if quadratic else LinearHead)(1, descriptor.num_descriptors))
    rows = RowSet.build(train, snap_rows(list(train), descriptor, quadratic))
    label = MODEL_LABELS[model]
    reference = ((published.ENERGY_MAE[label][element], published.FORCE_MAE[label][element])
                 if target_published else None)
    fit = exact_fit(rows, len(train), reference, grid, folds, seed)
    settings = {"rcut": rcut, "twojmax": twojmax, "rfac0": published.RFAC0, "rmin0": published.RMIN0,
                "radelem": published.RADELEM, "bzeroflag": 0, "quadratic": quadratic,
                "cv_score": "max(E/E_study, F/F_study)" if target_published else "E/min E + F/min F"}
    return _exact_cell(element, model, potential, rows, fit, test, settings, t0), potential


#: Learning rate of networks that start from the linear fit (small steps keep them near that start).
LINEAR_START_LR = 3e-4


def _linear_start(rows: RowSet, num_configs: int, folds: int, seed: int) -> torch.Tensor:
    """(1, 1 + K) coefficients of the cross-validated linear fit (score ``E/min E + F/min F``) of ``rows``."""
    return torch.from_numpy(exact_fit(rows, num_configs, None, WEIGHT_GRID, folds, seed).x)[None, :]


def _nn_cell(element: str, model: str, descriptor, train: Sequence[Configuration], jacobians, test, *,
             hidden: Sequence[int], minutes: float, energy_weight: float, val_fraction: float, seed: int,
             settings: dict, t0: float, linear_start: torch.Tensor | None = None) -> tuple[CellResult, Potential]:
    """Train an MLP head on precomputed descriptors/Jacobians (float32; float64 with ``linear_start``), score
    the torch potential on ``test``;
    with ``linear_start`` the head has a linear term started from those coefficients."""
    from .nn_fit import JacobianSet, predict, train_mlp_head

    # float64 with a linear start: nearly constant descriptors (tiny spread) standardised in float32
    # would carry rounding errors of the linear fit's size into its energies
    data = JacobianSet.build(train, jacobians, dtype=torch.float32 if linear_start is None else torch.float64)
    n = len(train)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    nval = max(1, int(round(val_fraction * n)))
    head, info = train_mlp_head(data.subset(perm[nval:]), data.subset(perm[:nval]), hidden=hidden,
                                energy_weight=energy_weight, minutes=minutes, seed=seed, linear_start=linear_start,
                                lr=LINEAR_START_LR if linear_start is not None else 3e-3)
    potential = Potential(descriptor, head)
    fit_seconds = time.perf_counter() - t0
    e_train, f_train = predict(head.to(data.B.dtype), data)
    head.to(torch.float64)
    e_mae, f_mae = errors(evaluate(potential, test))
    settings = {**settings, "hidden": list(info.hidden), "activation": "silu", "energy_weight": energy_weight,
                "lr": info.lr, "batch_configs": info.batch_configs, "epochs": info.epochs,
                "best_epoch": info.best_epoch, "train_seconds": info.seconds, "val_configs": nval,
                "train_configs": n - nval, "linear_term": linear_start is not None}
    cell = CellResult(element=element, model=model, energy_mae=e_mae, force_mae=f_mae,
                      train_energy_mae=1000 * float((e_train - data.energy).abs().mean()),
                      train_force_mae=float((f_train - data.forces).abs().mean()), settings=settings,
                      weights=None, fit_seconds=fit_seconds, num_parameters=sum(p.numel() for p in head.parameters()))
    return cell, potential


def fit_snap_nn_cell(element: str, train: Sequence[Configuration], test: Sequence[Configuration], *,
                     rcut: float | None = None, twojmax: int | None = None, hidden: Sequence[int] = (64, 64),
                     minutes: float = 3.0, energy_weight: float = 1000.0, val_fraction: float = 0.1,
                     seed: int = 0, linear_start: bool = True, folds: int = 5) -> tuple[CellResult, Potential]:
    """SNAP+NN: an MLP head on the study's SNAP bispectrum (``rcut``/``twojmax`` default to it), trained
    on energies and forces (:func:`~mliap_torch.benchmarks.nn_fit.train_mlp_head`, ``minutes`` of wall
    time) with descriptors and Jacobians from LAMMPS; ``val_fraction`` of the training configurations
    pick the best epoch. With ``linear_start`` the head has a linear term started from the
    cross-validated linear SNAP fit. Test errors come from the torch ``Potential(Bispectrum, MLPHead)``."""
    from .snap_rows import snap_jacobian

    t0 = time.perf_counter()
    rc0, tj0 = study_settings(element, "snap")
    rcut = rc0 if rcut is None else rcut
    twojmax = tj0 if twojmax is None else twojmax
    descriptor = make_bispectrum(element, rcut, twojmax)
    settings = {"rcut": rcut, "twojmax": twojmax, "rfac0": published.RFAC0, "rmin0": published.RMIN0,
                "radelem": published.RADELEM, "bzeroflag": 0}
    start = None
    if linear_start:
        start = _linear_start(RowSet.build(train, snap_rows(list(train), descriptor, False)), len(train), folds, seed)
    return _nn_cell(element, "snap_nn", descriptor, train, snap_jacobian(list(train), descriptor), test,
                    hidden=hidden, minutes=minutes, energy_weight=energy_weight, val_fraction=val_fraction,
                    seed=seed, settings=settings, t0=t0, linear_start=start)


#: ACE basis of the benchmark (ranks 1–4, 77 functions).
ACE_BASIS = {"nradmax_by_orders": [8, 4, 2, 1], "lmax_by_orders": [0, 3, 2, 1], "radial_basis": "ChebExpCos",
             "radial_parameters": 5.25, "dcut": 0.01}


def make_ace(element: str, rcut: float | None = None, basis: dict | None = None):
    """One-element ACE with :data:`ACE_BASIS` and cutoff ``rcut`` (default: the study's SNAP cutoff)."""
    from ..descriptors.ace import ACE

    rcut = study_settings(element, "snap")[0] if rcut is None else rcut
    return ACE([element], rcut=rcut, **(basis or ACE_BASIS))


@dataclass
class AceData:
    """ACE descriptor of an element with the rows and Jacobians of its training set (shared by ACE and
    ACE+NN); ``cutoff_scores`` maps each cutoff tried by :func:`select_ace_cutoff` to its CV score."""

    descriptor: object
    rows: list
    jacobians: list
    seconds: float
    cutoff_scores: dict[float, float] | None = None


#: Cutoffs tried for ACE, as offsets (Å) from the study's SNAP cutoff of the element.
ACE_CUTOFF_OFFSETS = (0.0, 0.35, 0.7)


def ace_data(element: str, train: Sequence[Configuration], rcut: float | None = None,
             basis: dict | None = None) -> AceData:
    """Rows and Jacobians of the training set from torch autograd (:mod:`~mliap_torch.benchmarks.torch_rows`)."""
    from .torch_rows import torch_rows_and_jacobians

    t0 = time.perf_counter()
    descriptor = make_ace(element, rcut, basis)
    rows, jacobians = torch_rows_and_jacobians(list(train), descriptor)
    return AceData(descriptor, rows, jacobians, time.perf_counter() - t0)


def select_ace_cutoff(element: str, train: Sequence[Configuration], cutoffs: Sequence[float],
                      basis: dict | None = None, grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID,
                      folds: int = 5, seed: int = 0) -> AceData:
    """The ACE data of the cutoff with the best cross-validated linear fit on the training set.

    Every (cutoff, weights, ridge) candidate gets the score ``E_cv / min E_cv + F_cv / min F_cv``, the
    minima taken over all candidates of all cutoffs; a cutoff's score is its best candidate's.
    The test set plays no part. Only the rows of the candidates are kept while scoring (the Jacobians
    of a large training set take gigabytes); the chosen cutoff's data are computed once more.
    """
    t0 = time.perf_counter()
    candidates = []
    for rcut in cutoffs:
        data = ace_data(element, train, rcut=rcut, basis=basis)
        data.jacobians = []                      # only the chosen cutoff's are kept (recomputed below)
        selection, _ = select_weights(RowSet.build(train, data.rows), len(train), grid, folds, seed, None)
        candidates.append((float(rcut), data, selection.table))
    pooled = [r for _, _, table in candidates for r in table]
    min_e, min_f = min(r[4] for r in pooled), min(r[5] for r in pooled)
    scores = {rcut: min(r[4] / min_e + r[5] / min_f for r in table) for rcut, _, table in candidates}
    chosen = min(scores, key=scores.get)
    candidates.clear()
    best = ace_data(element, train, rcut=chosen, basis=basis)
    best.cutoff_scores = scores
    best.seconds = time.perf_counter() - t0
    return best


def fit_ace_cell(element: str, train: Sequence[Configuration], test: Sequence[Configuration], data: AceData, *,
                 grid: Sequence[tuple[float, float, float, float]] = WEIGHT_GRID, folds: int = 5,
                 seed: int = 0) -> tuple[CellResult, Potential]:
    """Linear ACE: ``E_i = β0 + β·B_i`` by the same cross-validated exact fit as SNAP (no published
    reference: score ``E/min E + F/min F``)."""
    t0 = time.perf_counter() - data.seconds
    potential = Potential(data.descriptor, LinearHead(1, data.descriptor.num_descriptors))
    rows = RowSet.build(train, data.rows)
    fit = exact_fit(rows, len(train), None, grid, folds, seed)
    s = data.descriptor.settings()
    settings = {"rcut": float(np.max(s["rcut"])), "basis": {k: s.get(k) for k in ACE_BASIS},
                "num_functions": data.descriptor.num_descriptors, "cv_score": "E/min E + F/min F",
                "cutoff_cv_scores": data.cutoff_scores}
    return _exact_cell(element, "ace", potential, rows, fit, test, settings, t0), potential


def fit_ace_nn_cell(element: str, train: Sequence[Configuration], test: Sequence[Configuration], data: AceData, *,
                    hidden: Sequence[int] = (64, 64), minutes: float = 3.0, energy_weight: float = 1000.0,
                    val_fraction: float = 0.1, seed: int = 0, linear_start: bool = True,
                    folds: int = 5) -> tuple[CellResult, Potential]:
    """ACE+NN: an MLP head on the ACE descriptors, trained like SNAP+NN (with ``linear_start``, from the
    cross-validated linear ACE fit)."""
    t0 = time.perf_counter() - data.seconds
    s = data.descriptor.settings()
    settings = {"rcut": float(np.max(s["rcut"])), "basis": {k: s.get(k) for k in ACE_BASIS},
                "num_functions": data.descriptor.num_descriptors, "cutoff_cv_scores": data.cutoff_scores}
    start = _linear_start(RowSet.build(train, data.rows), len(train), folds, seed) if linear_start else None
    return _nn_cell(element, "ace_nn", data.descriptor, train, data.jacobians, test, hidden=hidden, minutes=minutes,
                    energy_weight=energy_weight, val_fraction=val_fraction, seed=seed, settings=settings, t0=t0,
                    linear_start=start)


def bulk_cell(element: str, atoms: int = 1500):
    """A cubic bulk supercell of ``element`` (ASE's reference lattice) with about ``atoms`` atoms, rattled."""
    unit = bulk(element, cubic=True)
    reps = max(1, round((atoms / len(unit)) ** (1 / 3)))
    structure = unit.repeat((reps, reps, reps))
    structure.rattle(0.02, seed=1)
    return structure


def deploy_route(potential: Potential) -> str:
    """The LAMMPS route a user deploys: native ``pair_style snap`` for linear/quadratic bispectrum
    models, ML-IAP unified otherwise."""
    from ..export.lammps_export import native_snap_supported

    return "snap" if native_snap_supported(potential) else "unified"


def md_cost(potential: Potential, structure, steps: int = 100, folder: str | Path | None = None,
            route: str | None = None) -> tuple[float, str]:
    """LAMMPS NVE MD cost (seconds per atom-step) of ``potential`` on ``structure`` through ``route``.

    The thread count follows ``OMP_NUM_THREADS``/``MLIAP_TORCH_NUM_THREADS`` of the environment (the
    benchmark script sets both to 1). Returns (seconds per atom-step, route).
    """
    from ..export.lammps_export import export_lammps
    from ..export.md_input import run_md, write_md_input

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
