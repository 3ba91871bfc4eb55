"""Force and virial design rows of linear and quadratic SNAP features from per-pair descriptor Jacobians.

A pair ``p = (i, j)`` with vector ``r_p`` changes only ``B_i``; with ``dB_p = ∂B_i/∂r_p`` (3, K) the
features ``f(B_i)`` change by ``J(B_i)·dB_p``, where for a quadratic head ``J(B)v = [v, q(B, v)]`` and
``q(B, v)_ab = s_ab (B_a v_b + v_a B_b)`` (``s`` = ½ on the diagonal, the ``.snapcoeff`` order of
:func:`~mliap_torch.models.heads.quadratic_features`). Rows are sums of these over pairs, and
because ``J`` is linear in ``v`` every sum is taken on the K-sized quantities first:

- central atom x: ``J(B_x)·Σ_{p: i=x} dB_p``;
- neighbour x: ``Σ_{p: j=x} J(B_i)·dB_p = [Σ dB_p, q-part of Σ B_i ⊗ dB_p]``;
- virial of a cell: the same with ``sym(r_p ⊗ dB_p)`` in place of ``dB_p``.

The outer-product sums ``Σ B_i ⊗ v_p`` over the pairs of each atom or cell are padded batched
matrix products (:func:`segment_outer`), so no (npairs, 3, M) array of per-pair feature
derivatives is ever formed (M ≈ K²/2 for quadratic heads).
"""
from __future__ import annotations

import torch

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def segment_outer(keys: torch.Tensor, left: torch.Tensor, right: torch.Tensor, num_segments: int,
                  block_rows: int = 2 ** 16) -> torch.Tensor:
    """``out[s] = Σ_{p: keys[p] = s} left[p] ⊗ right[p]``, (num_segments, L, R) from left (P, L), right (P, R).

    Pairs are sorted by key and each block of segments is padded to its longest segment, at most
    about ``block_rows`` padded rows per block, then reduced by one ``bmm``.
    """
    out = left.new_zeros((num_segments, left.shape[1], right.shape[1]))
    if keys.numel() == 0:
        return out
    order = torch.argsort(keys, stable=True)
    sorted_keys = keys[order]
    starts = torch.searchsorted(sorted_keys, torch.arange(num_segments + 1, device=keys.device))
    counts = (starts[1:] - starts[:-1]).tolist()
    slot = torch.arange(keys.shape[0], device=keys.device) - starts[sorted_keys]
    bounds = starts.tolist()
    s0 = 0
    while s0 < num_segments:
        n, longest = 1, counts[s0]
        while s0 + n < num_segments and (n + 1) * max(longest, counts[s0 + n]) <= block_rows:
            longest = max(longest, counts[s0 + n])
            n += 1
        p0, p1 = bounds[s0], bounds[s0 + n]
        if p1 > p0:
            sel = order[p0:p1]
            seg, pos = sorted_keys[p0:p1] - s0, slot[p0:p1]
            lpad = left.new_zeros((n, longest, left.shape[1]))
            rpad = right.new_zeros((n, longest, right.shape[1]))
            lpad[seg, pos] = left[sel]
            rpad[seg, pos] = right[sel]
            out[s0:s0 + n] = torch.bmm(lpad.transpose(1, 2), rpad)
        s0 += n
    return out


class QuadraticIndex:
    """Upper-triangle pairs (a ≤ b) of K descriptors and their scale s_ab (½ on the diagonal)."""

    def __init__(self, K: int, like: torch.Tensor):
        self.a, self.b = torch.triu_indices(K, K, device=like.device)
        self.scale = torch.where(self.a == self.b, 0.5, 1.0).to(like.dtype)

    def of_outer(self, outer: torch.Tensor) -> torch.Tensor:
        """q-part from outer sums ``O[s, a, d, b] = Σ B_a v_db`` (S, K, d, K): (S, d, K(K+1)/2)."""
        o = outer.transpose(1, 2)                                                  # (S, d, K, K)
        return (o[..., self.a, self.b] + o[..., self.b, self.a]) * self.scale

    def of_vectors(self, B: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q(B, v) for B (n, K) and v (n, d, K): (n, d, K(K+1)/2)."""
        return self.scale * (B[:, None, self.a] * v[:, :, self.b] + v[:, :, self.a] * B[:, None, self.b])


def virial_sums(dB: torch.Tensor, rij: torch.Tensor, elem: torch.Tensor, pair_config: torch.Tensor,
                num_configs: int, num_elements: int) -> torch.Tensor:
    """``Σ_{p ∈ c, e_i = e} sym(r_p ⊗ dB_p)`` in Voigt order: (num_configs, num_elements, 6, K).

    Args:
        dB: (P, 3, K) ``∂B_{i(p)}/∂r_p``.  rij: (P, 3) Å.  elem: (P,) element of each pair's central atom.
        pair_config: (P,) configuration of each pair, non-decreasing (pairs of a batch come configuration by
            configuration; otherwise the pairs are sorted first).
    One ``(3·nel × P_c) @ (P_c × 3K)`` product per configuration on the pairs as they lie, so no (P, 6, K)
    array of per-pair virials is formed (on large data sets that array, not the arithmetic, is the cost).
    """
    P, _, K = dB.shape
    if P and bool((pair_config[1:] < pair_config[:-1]).any()):
        order = torch.argsort(pair_config, stable=True)
        dB, rij, elem, pair_config = dB[order], rij[order], elem[order], pair_config[order]
    onehot = torch.nn.functional.one_hot(elem, num_elements).to(rij.dtype)                # (P, nel)
    weighted = (rij[:, :, None] * onehot[:, None, :]).reshape(P, 3 * num_elements)      # (P, 3·nel)
    flat = dB.reshape(P, 3 * K)
    bounds = torch.searchsorted(pair_config, torch.arange(num_configs + 1, device=dB.device)).tolist()
    outer = dB.new_zeros((num_configs, 3 * num_elements, 3 * K))
    for c in range(num_configs):
        p0, p1 = bounds[c], bounds[c + 1]
        if p1 > p0:
            torch.mm(weighted[p0:p1].T, flat[p0:p1], out=outer[c])
    o = outer.view(num_configs, 3, num_elements, 3, K)                                 # [c, a, e, b, k]
    return torch.stack([0.5 * (o[:, a, :, b] + o[:, b, :, a]) for a, b in VOIGT], dim=2)


def feature_gradient_rows(B: torch.Tensor, dB: torch.Tensor, rij: torch.Tensor, pair_i: torch.Tensor,
                          pair_j: torch.Tensor, species: torch.Tensor, pair_config: torch.Tensor,
                          num_configs: int, num_elements: int, quadratic: bool
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-element blocks of ``Σ_p (±) ∂f(B_i)/∂r_p``: forces (natoms, 3, nel, M), virial (nconfigs, 6, nel, M).

    Args:
        B: (natoms, K) descriptors.  dB: (npairs, 3, K) ``∂B_{i(p)}/∂r_p``.  rij: (npairs, 3) Å.
        pair_i: (npairs,) first atom of each pair.
        pair_j: (npairs,) second atom of each pair.
        species: (natoms,).
        pair_config: (npairs,) configuration.
        quadratic: features ``[B, quadratic_features(B)]`` (M = K + K(K+1)/2), else ``B`` (M = K).
    Returns:
        forces[x, :, e] = Σ_{p: i=x, e_i=e} ∂f/∂r_p − Σ_{p: j=x, e_i=e} ∂f/∂r_p (the force rows up to sign
        convention of :class:`~mliap_torch.fitting.design.DesignMatrixBuilder`), and
        virial[c, v, e] = Σ_{p∈c, e_i=e} sym(r_p ⊗ ∂f/∂r_p)_v in Voigt order.
    """
    natoms, K = B.shape
    nel = num_elements
    elem = species[pair_i]
    center = B.new_zeros((natoms, 3, K)).index_add_(0, pair_i, dB)
    neighbour_key = pair_j * nel + elem
    neighbour = B.new_zeros((natoms * nel, 3, K)).index_add_(0, neighbour_key, dB)
    virial_key = pair_config * nel + elem
    virial = virial_sums(dB, rij, elem, pair_config, num_configs, nel).reshape(num_configs * nel, 6, K)
    own = torch.arange(natoms, device=B.device) * nel + species
    if quadratic:
        va, vb = torch.tensor(VOIGT, device=B.device).T
        W = 0.5 * (rij[:, va, None] * dB[:, vb, :] + rij[:, vb, None] * dB[:, va, :])      # (P, 6, K)
        qi = QuadraticIndex(K, B)
        Bp = B[pair_i]
        outer_n = segment_outer(neighbour_key, Bp, dB.reshape(-1, 3 * K), natoms * nel).view(-1, K, 3, K)
        outer_v = segment_outer(virial_key, Bp, W.reshape(-1, 6 * K), num_configs * nel).view(-1, K, 6, K)
        center = torch.cat([center, qi.of_vectors(B, center)], dim=2)
        neighbour = torch.cat([neighbour, qi.of_outer(outer_n)], dim=2)
        virial = torch.cat([virial, qi.of_outer(outer_v)], dim=2)
    forces = (-neighbour).index_add_(0, own, center)
    M = forces.shape[-1]
    return (forces.view(natoms, nel, 3, M).permute(0, 2, 1, 3),
            virial.view(num_configs, nel, 6, M).permute(0, 2, 1, 3))
