"""MaxVol: the rows of a tall matrix that span a submatrix of (locally) maximal volume.

Goreinov, Oseledets, Savostyanov, Tyrtyshnikov, Zamarashkin, "How to find a good submatrix" (2010): for a
tall ``A`` (n × r) of full column rank, rows ``I`` (r of them) such that every row of ``A`` is a combination
``A[k] = c_k · A[I]`` with all ``|c_k| ≤ tol`` (tol ≥ 1). Starting rows come from Gaussian elimination with
partial pivoting; each step swaps in the row with the largest ``|c|`` (the volume grows by that factor) and updates
``C = A · A[I]⁻¹`` by a rank-one correction. :func:`reduced_basis` first maps rank-deficient or
short matrices onto their column space, so that MaxVol always sees full column rank.
"""
from __future__ import annotations

import numpy as np

TOLERANCE = 1.01
"""Stop when every coefficient satisfies ``|c| ≤ TOLERANCE`` (pacemaker's default for its active sets)."""


def maxvol(A: np.ndarray, tol: float = TOLERANCE, max_iters: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a dominant (quasi-maximal volume) r × r submatrix of ``A``.

    Args:
        A: (n, r) with n ≥ r and full column rank (see :func:`reduced_basis`).
        tol: ≥ 1; iterate until ``max |C| ≤ tol``.
        max_iters: row swaps at most (default ``100·r``); each swap multiplies the volume by ``> tol``,
            so the iteration ends well before on real data.

    Returns:
        rows: (r,) row indices ``I`` (distinct); C: (n, r) ``A · A[I]⁻¹`` (``C[I]`` is the identity).
    """
    n, r = A.shape
    if n < r:
        raise ValueError(f"maxvol needs at least as many rows as columns, got {n} × {r}")
    if tol < 1.0:
        raise ValueError(f"maxvol tolerance must be at least 1, got {tol}")
    if r == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((n, 0))
    rows = _pivot_rows(A)
    C = np.linalg.solve(A[rows].T, A.T).T
    for _ in range(100 * r if max_iters is None else max_iters):
        i, j = np.unravel_index(np.argmax(np.abs(C)), C.shape)
        if abs(C[i, j]) <= tol:
            break
        # Row i replaces row rows[j]: C ← C − C[:, j] (C[i] − e_j) / C[i, j].
        update = C[i].copy()
        update[j] -= 1.0
        C -= np.outer(C[:, j] / C[i, j], update)
        rows[j] = i
    return rows, C


def _pivot_rows(A: np.ndarray) -> np.ndarray:
    """(r,) rows chosen by Gaussian elimination with partial pivoting on A (n, r): a well-conditioned start."""
    work = np.array(A, dtype=np.float64)
    rows = np.zeros(A.shape[1], dtype=np.int64)
    for j in range(A.shape[1]):
        i = int(np.argmax(np.abs(work[:, j])))
        rows[j] = i
        work -= np.outer(work[:, j] / work[i, j], work[i])
    return rows


def reduced_basis(X: np.ndarray, rcond: float = 1e-10) -> np.ndarray:
    """(F, r) map ``P`` onto the column space of ``X`` (n, F): ``X · P`` has full column rank r.

    Columns are scaled by their root mean square (γ does not depend on it, the SVD's threshold does), then
    the right singular vectors whose singular values exceed ``rcond`` times the largest are kept. So constant
    or repeated columns, and fewer rows than columns (r ≤ n), leave r < F; with full column rank ``P`` is
    invertible and changes no coefficient of :func:`maxvol`.
    """
    n, F = X.shape
    if n == 0 or F == 0:
        return np.zeros((F, 0))
    scale = np.sqrt(np.mean(X * X, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    _, s, vt = np.linalg.svd(X / scale, full_matrices=False)
    rank = int(np.sum(s > rcond * s[0])) if s[0] > 0 else 0
    return vt[:rank].T / scale[:, None]


def active_set_inverse(X: np.ndarray, tol: float = TOLERANCE, rcond: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """The active set of feature rows ``X`` (n, F) and the matrix that grades any row against it.

    Returns:
        rows: (r,) indices of the active set in ``X`` (r = rank of ``X``, at most min(n, F));
        M: (F, r) with ``c = x · M`` the coefficients of a feature row x in the active set's basis
        (``M = P · (X[rows] · P)⁻¹``, :func:`reduced_basis` ``P``; for full column rank ``M = X[rows]⁻¹``),
        so that ``γ = max |x · M|`` and ``γ ≤ tol`` for every row of ``X``.
    """
    P = reduced_basis(X, rcond)
    Z = X @ P
    rows, _ = maxvol(Z, tol)
    return rows, P @ np.linalg.inv(Z[rows])
