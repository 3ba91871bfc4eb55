"""Learning descriptor hyperparameters by gradient descent (SNAP ``wj``/``radelem``/``rfac0``, ACE
``crad``/cutoffs; see :mod:`mliap_torch.descriptors.trainable`).

Two modes:

- :func:`train_joint`: Adam on the head's and the descriptor's parameters together, loss
  ``w_E²·mean((ΔE/N)²) + w_F²·mean(ΔF²) + w_S²·mean(ΔS²)`` (forces and stress by a double backward
  through the descriptor). Any head.
- :func:`train_bilevel` (linear and quadratic heads): at every step the head is the exact weighted
  ridge least-squares solution on a training subset for the current descriptor parameters θ,
  ``β(θ) = (AᵀW²A + λI)⁻¹ AᵀW²b`` (by QR of the stacked weighted rows), and θ follows the gradient of the validation loss
  ``L(θ) = Σ_val q_r (A_r(θ)·β(θ) − b_r)²``. The gradient of the solve is the adjoint (implicit)
  one: with ``v = (AᵀW²A + λI)⁻¹ ∂L/∂β`` and ``ρ = Aβ − b`` (all held fixed),

      dL/dθ = ∂/∂θ [ Σ_val 2 q_r ρ_r (A_r(θ)·β) − Σ_train w_r² (ρ_r (A_r(θ)·v) + (A_r·v)(A_r(θ)·β)) ],

  and every ``A_r(θ)·c`` is the energy per atom or a force component of the linear-in-coefficients
  potential with coefficients c. So one step needs the numeric rows (fast path, no graph) and a
  double backward of two pseudo-potentials — never the θ-derivative of the whole design matrix.
  :func:`bilevel_objective` gives L(θ) by a plain solve (used to check this gradient by finite
  differences in the tests).

Rows are energy per atom (eV/atom) and force components (eV/Å) with row weights ``w_E``, ``w_F``
(FitSNAP's convention: weights multiply rows); the validation loss weights a row by ``w²`` divided
by the number of rows of its kind (its own weights, ``val_weights``, may differ from the fit's).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from ..data.batch import AtomsBatch, collate, process_configuration
from ..data.configuration import Configuration
from ..fitting.design import ENERGY, FORCE, DesignMatrixBuilder, DesignRows
from ..models.potential import Potential, forces_and_virial_from_pair_gradient


@dataclass
class HyperRecord:
    """One step of a hyperparameter run.

    Attributes:
        step: optimizer step (0 = before the first update).
        hyperparameters: current constrained values (``name -> list of floats``).
        loss: validation loss (bilevel) or training loss (joint).
        energy_mae, force_mae: validation MAE, meV/atom and eV/Å (bilevel; joint: of the batch).
        seconds: wall time since the start.
    """

    step: int
    hyperparameters: dict[str, list[float]]
    loss: float
    energy_mae: float
    force_mae: float
    seconds: float


@dataclass
class HyperResult:
    """History of a run; the potential passed in holds the final parameters."""

    history: list[HyperRecord] = field(default_factory=list)


def descriptor_parameters(potential: Potential) -> list[torch.nn.Parameter]:
    """The descriptor's trainable parameters (empty for a plain descriptor)."""
    return [p for p in potential.descriptor.parameters() if p.requires_grad]


def current_hyperparameters(potential: Potential) -> dict[str, list[float]]:
    """Current values of the learned hyperparameters as plain floats
    (:meth:`~mliap_torch.descriptors.base.Descriptor.hyperparameters`; ACE's ``crad`` is not among them)."""
    return {k: [float(x) for x in v.detach().reshape(-1)] for k, v in potential.descriptor.hyperparameters().items()}


def make_batches(potential: Potential, configs: Sequence[Configuration], chunk_atoms: int = 500,
                 dtype: torch.dtype = torch.float64) -> list[AtomsBatch]:
    """Neighbor-listed batches of whole configurations (about ``chunk_atoms`` atoms each), within the
    potential's neighbor-list radius (a trainable descriptor's ``max_cutoff``): built once, valid for
    every value of the hyperparameters."""
    out, items, atoms = [], [], 0
    for k, config in enumerate(configs):
        items.append(process_configuration(config, potential.elements, potential.cutoff, 0, k))
        atoms += config.num_atoms
        if atoms >= chunk_atoms:
            out.append(collate(items, dtype))
            items, atoms = [], 0
    if items:
        out.append(collate(items, dtype))
    return out


class _HyperFrozen:
    """Context: descriptor parameters do not require grad (the descriptor takes its fast path)."""

    def __init__(self, potential: Potential):
        self.params = descriptor_parameters(potential)

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)


# ---------------------------------------------------------------------------------------------- joint
def train_joint(potential: Potential, train: Sequence[AtomsBatch], steps: int, *, lr: float = 1e-2,
                hyper_lr: float | None = None, weights: tuple[float, float, float] = (100.0, 1.0, 0.0),
                callback: Callable[[HyperRecord], None] | None = None) -> HyperResult:
    """Adam on head and descriptor parameters together; one step per batch, cycling through ``train``.

    Args:
        potential: any head; a trainable descriptor (its parameters get ``hyper_lr``, default ``lr``).
        train: batches (:func:`make_batches`).
        steps: optimizer steps.
        weights: (w_E eV/atom⁻¹, w_F (eV/Å)⁻¹, w_S (eV/Å³)⁻¹) loss weights (squared in the loss).
    """
    we, wf, ws = weights
    hyper = descriptor_parameters(potential)
    hyper_ids = {id(p) for p in hyper}
    rest = [p for p in potential.parameters() if p.requires_grad and id(p) not in hyper_ids]
    groups = [{"params": rest, "lr": lr}]
    if hyper:
        groups.append({"params": hyper, "lr": lr if hyper_lr is None else hyper_lr})
    opt = torch.optim.Adam(groups)
    result = HyperResult()
    t0 = time.perf_counter()
    for step in range(steps + 1):
        batch = train[step % len(train)]
        out = potential(batch, forces=wf > 0, stress=ws > 0, create_graph=True)
        n = batch.num_atoms.to(out["energy"].dtype)
        de = ((out["energy"] - batch.energy) / n)[batch.energy_mask]
        loss = we ** 2 * (de ** 2).mean()
        fmae = float("nan")
        if wf > 0:
            df = (out["forces"] - batch.forces)[batch.forces_mask]
            loss = loss + wf ** 2 * (df ** 2).mean()
            fmae = float(df.detach().abs().mean())
        if ws > 0 and bool(batch.stress_mask.any()):
            dsig = (out["stress"] - batch.stress)[batch.stress_mask]
            loss = loss + ws ** 2 * (dsig ** 2).mean()
        record = HyperRecord(step, current_hyperparameters(potential), float(loss.detach()),
                             1000 * float(de.detach().abs().mean()), fmae, time.perf_counter() - t0)
        result.history.append(record)
        if callback is not None:
            callback(record)
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return result


# -------------------------------------------------------------------------------------------- bilevel
def _rows(builder: DesignMatrixBuilder, batches: Sequence[AtomsBatch], weights: tuple[float, float]) -> list[DesignRows]:
    """Numeric energy and force rows of every batch (no graph), row weights set to ``weights``."""
    out = []
    for batch in batches:
        rows = builder.rows(batch)
        rows.w = torch.where(rows.kind == ENERGY, weights[0], weights[1]).to(rows.A.dtype)
        out.append(rows)
    return out


def _loss_weights(rows: Sequence[DesignRows]) -> list[torch.Tensor]:
    """q_r = w_r² / (number of rows of the same kind in all of ``rows``)."""
    kinds = torch.cat([r.kind for r in rows])
    counts = {k: max(int((kinds == k).sum()), 1) for k in (ENERGY, FORCE)}
    return [r.w ** 2 / torch.where(r.kind == ENERGY, counts[ENERGY], counts[FORCE]).to(r.w.dtype) for r in rows]


def _solve(rows: Sequence[DesignRows], ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(β, R): ridge least squares ``min Σ w²(Aβ − b)² + ridge·|β|²`` by QR of the stacked weighted rows
    ``[W A; √ridge I]`` (R is the triangular factor, ``RᵀR = AᵀW²A + ridge·I``)."""
    ncol = rows[0].A.shape[1]
    A = torch.cat([r.A * r.w[:, None] for r in rows])
    b = torch.cat([r.b * r.w for r in rows])
    if ridge > 0:
        A = torch.cat([A, ridge ** 0.5 * torch.eye(ncol, dtype=A.dtype, device=A.device)])
        b = torch.cat([b, b.new_zeros(ncol)])
    Q, R = torch.linalg.qr(A)
    beta = torch.linalg.solve_triangular(R, (Q.T @ b)[:, None], upper=True)[:, 0]
    return beta, R


def _normal_solve(R: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(RᵀR)⁻¹ g by two triangular solves."""
    y = torch.linalg.solve_triangular(R.T, g[:, None], upper=False)
    return torch.linalg.solve_triangular(R, y, upper=True)[:, 0]


def _maes(rows: Sequence[DesignRows], beta: torch.Tensor) -> tuple[float, float]:
    """(energy MAE meV/atom, force MAE eV/Å) of the rows with coefficients β."""
    res = torch.cat([r.A @ beta - r.b for r in rows]).abs()
    kind = torch.cat([r.kind for r in rows])
    return 1000 * float(res[kind == ENERGY].mean()), float(res[kind == FORCE].mean())


def _pseudo_rows(potential: Potential, builder: DesignMatrixBuilder, batch: AtomsBatch,
                 coefficients: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each solution vector c: (energy per atom (nconfigs,), forces (natoms, 3)) of the potential
    ``E_i = c_{s_i}·[1, f(B_i)]``, differentiable with respect to the descriptor's parameters."""
    rij = batch.rij().detach().requires_grad_(True)
    B = potential.descriptor(rij, batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    feats = potential.head.features(B)
    feats = torch.cat([torch.ones_like(feats[:, :1]), feats], dim=1)
    n = batch.num_atoms.to(B.dtype)
    out = []
    for c in coefficients:
        blocks = builder.coefficients(c)                       # (nelements, 1 + M)
        atomic = (feats * blocks[batch.species]).sum(1)
        energy = torch.zeros(batch.num_configs, dtype=B.dtype, device=B.device).index_add(0, batch.atom_config, atomic)
        (g,) = torch.autograd.grad(energy.sum(), rij, create_graph=True)
        forces, _ = forces_and_virial_from_pair_gradient(g, rij, batch.pair_i, batch.pair_j, batch.total_atoms,
                                                         batch.pair_config, batch.num_configs)
        out.append((energy / n, forces))
    return out


def _scatter_row_values(rows: DesignRows, values: torch.Tensor, batch: AtomsBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Row values back to (nconfigs,) energy and (natoms, 3) force layouts (zeros where no row)."""
    e = values.new_zeros(batch.num_configs)
    e[batch.energy_mask] = values[rows.kind == ENERGY]
    f = values.new_zeros(batch.total_atoms * 3)
    f[batch.forces_mask.repeat_interleave(3)] = values[rows.kind == FORCE]
    return e, f.reshape(-1, 3)


def bilevel_objective(potential: Potential, train: Sequence[AtomsBatch], val: Sequence[AtomsBatch], *,
                      weights: tuple[float, float] = (100.0, 1.0), ridge: float = 0.0,
                      val_weights: tuple[float, float] | None = None) -> float:
    """L(θ) for the current descriptor parameters: exact solve on ``train``, loss on ``val``."""
    builder = DesignMatrixBuilder(potential, stress=False)
    with _HyperFrozen(potential):
        rows_t = _rows(builder, train, weights)
        rows_v = _rows(builder, val, weights if val_weights is None else val_weights)
    beta, _ = _solve(rows_t, ridge)
    q = _loss_weights(rows_v)
    return float(sum((qv * (r.A @ beta - r.b) ** 2).sum() for qv, r in zip(q, rows_v)))


def bilevel_gradient(potential: Potential, train: Sequence[AtomsBatch], val: Sequence[AtomsBatch], *,
                     weights: tuple[float, float] = (100.0, 1.0), ridge: float = 0.0,
                     val_weights: tuple[float, float] | None = None) -> tuple[float, torch.Tensor, tuple[float, float]]:
    """One bilevel evaluation: accumulates dL/dθ into the descriptor parameters' ``.grad``.

    Returns (L, β, validation (energy MAE meV/atom, force MAE eV/Å)); β is the exact solution
    (``builder.coefficients(β)`` gives ``.snapcoeff`` order).
    """
    builder = DesignMatrixBuilder(potential, stress=False)
    with _HyperFrozen(potential):
        rows_t = _rows(builder, train, weights)
        rows_v = _rows(builder, val, weights if val_weights is None else val_weights)
    beta, R = _solve(rows_t, ridge)
    q = _loss_weights(rows_v)
    res_v = [r.A @ beta - r.b for r in rows_v]
    loss = float(sum((qv * rv ** 2).sum() for qv, rv in zip(q, res_v)))
    g = cast(torch.Tensor, sum(r.A.T @ (2 * qv * rv) for r, qv, rv in zip(rows_v, q, res_v)))  # rows_v: not empty
    v = _normal_solve(R, g)
    for batch, r, qv, rv in zip(val, rows_v, q, res_v):
        ((e, f),) = _pseudo_rows(potential, builder, batch, [beta])
        ae, af = _scatter_row_values(r, 2 * qv * rv, batch)
        ((ae * e).sum() + (af * f).sum()).backward()
    for batch, r in zip(train, rows_t):
        w2 = r.w ** 2
        rho = r.A @ beta - r.b
        av = r.A @ v
        (e_b, f_b), (e_v, f_v) = _pseudo_rows(potential, builder, batch, [beta, v])
        ae_b, af_b = _scatter_row_values(r, w2 * av, batch)
        ae_v, af_v = _scatter_row_values(r, w2 * rho, batch)
        (-((ae_b * e_b).sum() + (af_b * f_b).sum() + (ae_v * e_v).sum() + (af_v * f_v).sum())).backward()
    return loss, beta, _maes(rows_v, beta)


def train_bilevel(potential: Potential, train: Sequence[AtomsBatch], val: Sequence[AtomsBatch], steps: int, *,
                  lr: float = 0.05, weights: tuple[float, float] = (100.0, 1.0), ridge: float = 0.0,
                  val_weights: tuple[float, float] | None = None, callback: Callable[[HyperRecord], None] | None = None) -> HyperResult:
    """Bilevel descent of the descriptor parameters (Adam, ``lr`` on the unconstrained parameters); the
    head is set to the exact solution of the best step seen (lowest validation loss) and so are θ.

    Args:
        potential: trainable descriptor + :class:`~mliap_torch.models.heads.LinearHead` or
            :class:`~mliap_torch.models.heads.QuadraticHead`.
        train: batches (:func:`make_batches`) of the inner fit.
        val: batches (:func:`make_batches`) of the validation loss.
        weights: (w_E, w_F) row weights of energy (eV/atom) and force (eV/Å) rows.
        ridge: λ added to the diagonal of the normal matrix.
        val_weights: row weights of the validation loss (default ``weights``), e.g. the inverse RMS
            errors at the start so that energies and forces count equally.
    """
    params = descriptor_parameters(potential)
    if not params:
        raise ValueError("train_bilevel: the descriptor has no trainable parameters "
                         "(build the Bispectrum or ACE with trainable=[...])")
    opt = torch.optim.Adam(params, lr=lr)
    builder = DesignMatrixBuilder(potential, stress=False)
    result = HyperResult()
    best: tuple[float, list[torch.Tensor], torch.Tensor] | None = None
    t0 = time.perf_counter()
    for step in range(steps + 1):
        opt.zero_grad()
        loss, beta, (emae, fmae) = bilevel_gradient(potential, train, val, weights=weights, ridge=ridge,
                                                    val_weights=val_weights)
        record = HyperRecord(step, current_hyperparameters(potential), loss, emae, fmae, time.perf_counter() - t0)
        result.history.append(record)
        if callback is not None:
            callback(record)
        if best is None or loss < best[0]:
            best = (loss, [p.detach().clone() for p in params], beta.detach().clone())
        if step < steps:
            opt.step()
    assert best is not None  # set in the first step
    with torch.no_grad():
        for p, value in zip(params, best[1]):
            p.copy_(value)
    potential.head.set_coefficients(builder.coefficients(best[2]))
    return result


def result_table(result: HyperResult) -> list[dict[str, Any]]:
    """The history as plain dicts (for JSON)."""
    return [{"step": r.step, "hyperparameters": r.hyperparameters, "loss": r.loss, "energy_mae": r.energy_mae,
             "force_mae": r.force_mae, "seconds": r.seconds} for r in result.history]
