"""Weighted linear least squares: streaming tall-skinny QR, distributed TSQR, and QR / SVD / ridge solves.

Every solver here works on the triangular factor of the *augmented* matrix ``[A | b]``: if
``[A | b] = Q R`` with R upper triangular (n+1)×(n+1), then ``R[:n, :n] x = R[:n, n]`` is the
least-squares solution, ``|R[n, n]|`` the residual norm ``‖A x − b‖``, and the singular values of
``R[:n, :n]`` are those of A. Rows can therefore be folded in chunk by chunk
(:class:`StreamingQR`, memory O(n²) whatever the number of rows), and factors computed on
different processes combine by one more QR of their stack (:func:`combine_r_factors`,
:func:`distributed_r_factor`: tall-skinny QR, TSQR).

Solvers (:func:`solve_r_factor`):

- ``"qr"`` (default): back substitution with ``R[:n, :n]``; when the matrix is numerically rank
  deficient (rank < n at ``rcond``) it falls back to the minimum-norm SVD solution and says so.
- ``"svd"``: minimum-norm solution with singular values below ``rcond · s_max`` discarded (as
  ``scipy.linalg.lstsq(A, b, cond=rcond)``, FitSNAP's ``SVD`` solver with ``rcond = 1e-13``).
- ``"ridge"``: ``min ‖A x − b‖² + α ‖x‖²`` (the factor of ``[A; √α I]``), or with per-column
  ``prior`` weights p_j ``min ‖A x − b‖² + α Σ_j p_j² x_j²`` (a smoothness prior: p_j grows with the
  polynomial degree of column j, ACEpotentials.jl's algebraic prior; p_j = 0 leaves a column free).

With ``scale_columns`` every solver works on ``A D`` instead, ``D = diag(1/‖A_j‖)`` (each column at unit
norm; Jacobi preconditioning), and returns ``x = D y``. The solution then does not depend on the units
of the columns: the ridge penalises ``Σ_j ‖A_j‖² x_j²`` (α relative to each column's own squared norm)
and the SVD cutoff sees collinearity, not columns of small scale.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

SOLVERS = ("qr", "svd", "ridge")


def _qr_r(m: torch.Tensor) -> torch.Tensor:
    """R factor (n×n, n = columns) of ``m``; zero-padded when ``m`` has fewer rows than columns."""
    r = torch.linalg.qr(m, mode="r").R
    n = m.shape[1]
    if r.shape[0] < n:
        r = torch.cat([r, r.new_zeros(n - r.shape[0], n)])
    return r


class StreamingQR:
    """Running R factor of ``[√w·A | √w·b]`` (weights applied to rows) built from chunks of rows.

    Memory is that of one chunk plus the (n+1)² factor: it does not grow with the number of rows.

    Args:
        num_columns: n, the number of unknowns.
        dtype: of the factor (float64 recommended for fits).
        device: of the factor.
    """

    def __init__(self, num_columns: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        self.num_columns = int(num_columns)
        self.r = torch.zeros((self.num_columns + 1, self.num_columns + 1), dtype=dtype, device=device)
        self.num_rows = 0

    def add(self, A: torch.Tensor, b: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Fold rows ``A`` (m, n) with targets ``b`` (m,) and row weights ``weights`` (m,) into R.

        FitSNAP's convention: the weights multiply the rows (``w·A x ≈ w·b``), they are not squared.
        """
        if A.shape[1] != self.num_columns:
            raise ValueError(f"StreamingQR: rows have {A.shape[1]} columns, expected {self.num_columns}")
        if A.shape[0] == 0:
            return
        rows = torch.cat([A, b[:, None]], dim=1).to(self.r)
        if weights is not None:
            rows = rows * weights.to(self.r)[:, None]
        self.r = _qr_r(torch.cat([self.r, rows]))
        self.num_rows += int(A.shape[0])


def combine_r_factors(factors: list[torch.Tensor]) -> torch.Tensor:
    """R factor of the row-stack of the matrices whose R factors are ``factors`` (each (n, n))."""
    return _qr_r(torch.cat(factors))


def distributed_r_factor(r: torch.Tensor) -> torch.Tensor:
    """TSQR across ``torch.distributed`` ranks: the R factor of all ranks' rows, on every rank.

    Each rank passes the (n+1)×(n+1) factor of its own rows; the factors are all-gathered (gloo on
    CPU, nccl on GPU) and reduced by one QR of their stack, done identically on every rank.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return r
    gathered = [torch.empty_like(r) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, r.contiguous())
    return combine_r_factors(gathered)


@dataclass
class LstsqSolution:
    """A least-squares solution and its diagnostics.

    Attributes:
        x: (n,) coefficients.
        rank: numerical rank of A at ``rcond``.
        cond: 2-norm condition number s_max / s_min of A (inf when rank deficient).
        singular_values: (n,) singular values of A, descending.
        residual_norm: ‖A x − b‖ of the (weighted) rows (ridge: without the penalty term).
        method: the solver that produced ``x`` (``"qr"`` may report ``"svd"`` after a fallback).
        num_rows: number of rows folded in.
    """

    x: torch.Tensor
    rank: int
    cond: float
    singular_values: torch.Tensor
    residual_norm: float
    method: str
    num_rows: int = 0
    notes: list[str] = field(default_factory=list)


def _svd_solve(rA: torch.Tensor, rb: torch.Tensor, rcond: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    u, s, vh = torch.linalg.svd(rA)
    keep = s > rcond * s[0] if s.numel() and s[0] > 0 else torch.zeros_like(s, dtype=torch.bool)
    coef = (u.T @ rb) / torch.where(keep, s, torch.ones_like(s))
    x = vh.T @ torch.where(keep, coef, torch.zeros_like(coef))
    return x, s, int(keep.sum())


def column_scales(r: torch.Tensor) -> torch.Tensor:
    """(n,) ``1/‖A_j‖`` of the columns of A from the factor of ``[A | b]`` (1 for all-zero columns)."""
    norms = torch.linalg.vector_norm(r[:-1, :-1], dim=0)
    return torch.where(norms > 0, 1 / torch.where(norms > 0, norms, torch.ones_like(norms)), torch.ones_like(norms))


def solve_r_factor(r: torch.Tensor, method: str = "qr", rcond: float | None = None, alpha: float = 0.0,
                   num_rows: int = 0, scale_columns: bool = False, prior: torch.Tensor | None = None) -> LstsqSolution:
    """Solve from the (n+1)×(n+1) factor of ``[A | b]`` (see the module docstring).

    Args:
        r: the factor (from :class:`StreamingQR`, :func:`distributed_r_factor` or :func:`lstsq_r_factor`).
        method: ``"qr"``, ``"svd"`` or ``"ridge"``.
        rcond: relative singular-value cutoff for the rank (and for ``"svd"`` the truncation);
            default ``n · eps``.
        alpha: ridge parameter (``"ridge"`` only), in the units of the weighted rows squared; with
            ``scale_columns`` relative to each column's squared norm (dimensionless).
        scale_columns: solve for the coefficients of the columns scaled to unit norm (the rank,
            condition number and singular values reported are those of the scaled matrix).
        prior: (n,) per-column weights p_j ≥ 0 of the ridge penalty ``α Σ_j p_j² x_j²`` (``"ridge"``
            only; with ``scale_columns`` on the unit-norm columns' coefficients); None: all 1.
    """
    if method not in SOLVERS:
        raise ValueError(f"unknown least-squares solver {method!r}; choose one of {SOLVERS}")
    if scale_columns:
        scales = column_scales(r)
        scaled = r.clone()
        scaled[:, :-1] *= scales
        solution = solve_r_factor(scaled, method, rcond, alpha, num_rows, prior=prior)
        solution.x = solution.x * scales
        return solution
    n = r.shape[0] - 1
    rA, rb = r[:n, :n], r[:n, n]
    eps = torch.finfo(r.dtype).eps
    rcond = float(n * eps) if rcond is None else float(rcond)
    notes: list[str] = []
    if prior is not None and method != "ridge":
        raise ValueError(f"a prior weights the ridge penalty: it needs the ridge solver, not {method!r}")
    if method == "ridge":
        if alpha <= 0:
            raise ValueError(f"ridge solver needs alpha > 0, got {alpha}")
        weights = torch.ones(n, dtype=r.dtype, device=r.device) if prior is None else \
            torch.as_tensor(prior, dtype=r.dtype, device=r.device)
        if weights.shape != (n,) or bool((weights < 0).any()):
            raise ValueError(f"prior must be {n} weights of at least 0 (one per column), got shape {tuple(weights.shape)}")
        reg = torch.cat([r[:n], torch.cat([alpha ** 0.5 * torch.diag(weights), r.new_zeros(n, 1)], dim=1)])
        rr = _qr_r(reg)
        x = torch.linalg.solve_triangular(rr[:n, :n], rr[:n, n:], upper=True)[:, 0]
        s = torch.linalg.svdvals(rA)
        rank = int((s > rcond * s[0]).sum()) if s[0] > 0 else 0
    elif method == "svd":
        x, s, rank = _svd_solve(rA, rb, rcond)
    else:
        s = torch.linalg.svdvals(rA)
        rank = int((s > rcond * s[0]).sum()) if s[0] > 0 else 0
        if rank == n:
            x = torch.linalg.solve_triangular(rA, rb[:, None], upper=True)[:, 0]
        else:
            msg = f"matrix is rank deficient (rank {rank} < {n} at rcond={rcond:.3g}): minimum-norm SVD solution used"
            warnings.warn(msg, stacklevel=2)
            notes.append(msg)
            x, s, rank = _svd_solve(rA, rb, rcond)
            method = "svd"
    full = torch.cat([r[:n], r[n:]])
    residual = float(torch.linalg.vector_norm(full[:, :n] @ x - full[:, n]))
    cond = float(s[0] / s[-1]) if s.numel() and s[-1] > 0 and rank == n else float("inf")
    return LstsqSolution(x=x, rank=rank, cond=cond, singular_values=s, residual_norm=residual, method=method,
                         num_rows=num_rows, notes=notes)


def lstsq_r_factor(A: torch.Tensor, b: torch.Tensor, weights: torch.Tensor | None = None,
                   chunk_rows: int | None = None) -> tuple[torch.Tensor, int]:
    """Factor of ``[w·A | w·b]`` for in-memory rows, folded ``chunk_rows`` at a time (all at once when None)."""
    acc = StreamingQR(A.shape[1], dtype=A.dtype, device=A.device)
    step = A.shape[0] if chunk_rows is None else int(chunk_rows)
    for start in range(0, A.shape[0], max(step, 1)):
        stop = start + step
        acc.add(A[start:stop], b[start:stop], None if weights is None else weights[start:stop])
    return acc.r, acc.num_rows


def lstsq(A: torch.Tensor, b: torch.Tensor, weights: torch.Tensor | None = None, method: str = "qr",
          rcond: float | None = None, alpha: float = 0.0, chunk_rows: int | None = None,
          scale_columns: bool = False) -> LstsqSolution:
    """Weighted least squares ``min ‖w·(A x − b)‖`` for in-memory A (m, n), b (m,), w (m,)
    (``scale_columns``: see :func:`solve_r_factor`)."""
    r, m = lstsq_r_factor(A, b, weights, chunk_rows)
    return solve_r_factor(r, method=method, rcond=rcond, alpha=alpha, num_rows=m, scale_columns=scale_columns)
