"""Least-squares solvers against numpy/scipy, streaming QR memory, and TSQR across two gloo processes."""
from __future__ import annotations

import weakref

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mliap_torch.fitting.solvers import StreamingQR, combine_r_factors, lstsq, lstsq_r_factor, solve_r_factor


def _problem(m=300, n=12, seed=0, scale_columns=True):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, n))
    if scale_columns:
        A *= np.logspace(0, 4, n)  # condition number ~1e4-1e5
    b = A @ rng.normal(size=n) + 0.1 * rng.normal(size=m)
    w = rng.uniform(0.1, 10.0, size=m)
    return A, b, w


@pytest.mark.parametrize("method", ["qr", "svd"])
@pytest.mark.parametrize("chunk_rows", [None, 7, 64])
def test_weighted_lstsq_matches_numpy(method, chunk_rows):
    A, b, w = _problem()
    ref, res, rank, s = np.linalg.lstsq(w[:, None] * A, w * b, rcond=None)
    sol = lstsq(torch.tensor(A), torch.tensor(b), torch.tensor(w), method=method, chunk_rows=chunk_rows)
    np.testing.assert_allclose(sol.x.numpy(), ref, rtol=1e-10, atol=1e-12 * abs(ref).max())
    assert sol.rank == rank == A.shape[1]
    assert sol.cond == pytest.approx(np.linalg.cond(w[:, None] * A), rel=1e-8)
    np.testing.assert_allclose(sol.singular_values.numpy(), s, rtol=1e-10)
    assert sol.residual_norm == pytest.approx(np.sqrt(res[0]), rel=1e-8)
    assert sol.num_rows == A.shape[0]


def test_rank_deficient_matches_scipy_minimum_norm():
    A, b, w = _problem(n=8, scale_columns=False)
    A = np.concatenate([A, A[:, :3] @ np.array([[1.0], [2.0], [-1.0]]), A[:, :1]], axis=1)  # rank 8 of 10
    ref, _, rank, _ = scipy.linalg.lstsq(w[:, None] * A, w * b, cond=1e-13)
    assert rank == 8
    svd = lstsq(torch.tensor(A), torch.tensor(b), torch.tensor(w), method="svd", rcond=1e-13, chunk_rows=50)
    np.testing.assert_allclose(svd.x.numpy(), ref, rtol=1e-9, atol=1e-11)
    assert svd.rank == 8 and svd.cond == float("inf")
    with pytest.warns(UserWarning, match="rank deficient"):
        qr = lstsq(torch.tensor(A), torch.tensor(b), torch.tensor(w), method="qr")
    assert qr.method == "svd" and qr.rank == 8
    np.testing.assert_allclose(qr.x.numpy(), ref, rtol=1e-9, atol=1e-11)


def test_svd_cutoff_truncates_like_scipy():
    A, b, w = _problem(n=10, scale_columns=False)
    A[:, -1] = A[:, 0] + 1e-9 * A[:, 1]  # one singular value ~1e-9 relative
    for cond in (1e-13, 1e-6):
        ref, _, rank, _ = scipy.linalg.lstsq(A, b, cond=cond)
        sol = lstsq(torch.tensor(A), torch.tensor(b), method="svd", rcond=cond)
        assert sol.rank == rank
        np.testing.assert_allclose(sol.x.numpy(), ref, rtol=1e-6 if cond < 1e-10 else 1e-10, atol=1e-10)


def test_ridge_matches_normal_equations():
    A, b, w = _problem(scale_columns=False)
    Aw, bw = w[:, None] * A, w * b
    alpha = 3.7
    ref = np.linalg.solve(Aw.T @ Aw + alpha * np.eye(A.shape[1]), Aw.T @ bw)
    sol = lstsq(torch.tensor(A), torch.tensor(b), torch.tensor(w), method="ridge", alpha=alpha, chunk_rows=40)
    np.testing.assert_allclose(sol.x.numpy(), ref, rtol=1e-10)
    assert sol.residual_norm == pytest.approx(np.linalg.norm(Aw @ ref - bw), rel=1e-10)


def test_scaled_columns_ridge_matches_normal_equations_and_ignores_column_units():
    """``scale_columns``: the ridge of column j is ``alpha·‖A_j‖²`` (normal equations with that diagonal),
    so rescaling a column rescales only its coefficient; an all-zero column gets coefficient 0."""
    A, b, w = _problem()                                  # columns spanning four decades
    Aw, bw = w[:, None] * A, w * b
    alpha = 1e-3
    norms2 = np.sum(Aw * Aw, axis=0)
    ref = np.linalg.solve(Aw.T @ Aw + alpha * np.diag(norms2), Aw.T @ bw)
    sol = lstsq(torch.tensor(A), torch.tensor(b), torch.tensor(w), method="ridge", alpha=alpha, chunk_rows=40,
                scale_columns=True)
    np.testing.assert_allclose(sol.x.numpy(), ref, rtol=1e-9)
    assert sol.residual_norm == pytest.approx(np.linalg.norm(Aw @ ref - bw), rel=1e-10)
    assert sol.cond == pytest.approx(np.linalg.cond(Aw / np.sqrt(norms2)), rel=1e-8)
    units = np.logspace(-8, 3, A.shape[1])
    again = lstsq(torch.tensor(A * units), torch.tensor(b), torch.tensor(w), method="ridge", alpha=alpha,
                  scale_columns=True)
    np.testing.assert_allclose(again.x.numpy() * units, ref, rtol=1e-8)
    plain = lstsq(torch.tensor(A * units), torch.tensor(b), torch.tensor(w), method="ridge", alpha=alpha)
    assert np.abs(plain.x.numpy() * units - ref).max() > 1e-3 * np.abs(ref).max()
    padded = lstsq(torch.tensor(np.column_stack([A, np.zeros(len(b))])), torch.tensor(b), torch.tensor(w),
                   method="ridge", alpha=alpha, scale_columns=True)
    np.testing.assert_allclose(padded.x.numpy(), np.append(ref, 0.0), rtol=1e-9, atol=1e-12)


def test_bad_solver_arguments():
    r, _ = lstsq_r_factor(torch.eye(3), torch.ones(3))
    with pytest.raises(ValueError, match="unknown least-squares solver"):
        solve_r_factor(r, method="cholesky")
    with pytest.raises(ValueError, match="alpha"):
        solve_r_factor(r, method="ridge", alpha=0.0)
    with pytest.raises(ValueError, match="columns"):
        StreamingQR(4).add(torch.ones(2, 3), torch.ones(2))


def test_combined_factors_equal_single_factor():
    A, b, w = _problem(m=500)
    At, bt, wt = map(torch.tensor, (A, b, w))
    parts = [lstsq_r_factor(At[s], bt[s], wt[s])[0] for s in (slice(0, 5), slice(5, 230), slice(230, 500))]
    x_combined = solve_r_factor(combine_r_factors(parts)).x
    x_single = lstsq(At, bt, wt).x
    np.testing.assert_allclose(x_combined.numpy(), x_single.numpy(), rtol=1e-10)


class _LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of live tensors created by torch operations; ``peak`` is the largest total seen."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    weakref.finalize(t, self._release, key)
        self.peak = max(self.peak, self.current)
        return out


def _stream_fit(num_chunks: int, chunk_rows: int = 200, n: int = 20) -> tuple[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x_true = torch.randn(n, generator=gen, dtype=torch.float64)
    with _LiveTensorBytes() as tracker:
        acc = StreamingQR(n)
        for _ in range(num_chunks):
            A = torch.randn(chunk_rows, n, generator=gen, dtype=torch.float64)
            acc.add(A, A @ x_true)
            del A
        x = solve_r_factor(acc.r).x
    return tracker.peak, (x - x_true).abs().max()


def test_streaming_qr_memory_is_flat_when_data_grows():
    peak_small, err_small = _stream_fit(10)
    peak_large, err_large = _stream_fit(40)
    assert err_small < 1e-10 and err_large < 1e-10
    in_memory_bytes = 40 * 200 * 21 * 8
    assert peak_large <= 1.05 * peak_small, (peak_small, peak_large)
    assert peak_large < in_memory_bytes / 4
