"""Index and coefficient tables of the SNAP bispectrum, built exactly as LAMMPS' ``SNA`` class builds them.

Everything here is plain numpy, computed once per :class:`~mliap_torch.descriptors.bispectrum.Bispectrum`
and then registered as torch buffers. Notation follows ``src/ML-SNAP/sna.cpp``: angular momenta are
doubled (``j = 2J``), magnetic indices are offsets ``0 ≤ ma, mb ≤ j``, and the Wigner matrix of level
``j`` is stored row ``mb``, column ``ma`` at flat index ``idxu_block[j] + (j + 1)·mb + ma``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from math import factorial, sqrt

import numpy as np


def bispectrum_triples(twojmax: int) -> list[tuple[int, int, int]]:
    """The (j1, j2, j) of every bispectrum component, in LAMMPS ``SNA::build_indexlist`` (``idxb``) order."""
    out = []
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                if j >= j1:
                    out.append((j1, j2, j))
    return out


def idxu_block(twojmax: int) -> np.ndarray:
    """(twojmax + 1,) offset of level j in the flat U list; the list has Σ (j+1)² entries."""
    return np.concatenate([[0], np.cumsum([(j + 1) ** 2 for j in range(twojmax)])]).astype(np.int64)


def _deltacg(j1: int, j2: int, j: int) -> float:
    sfaccg = float(factorial((j1 + j2 + j) // 2 + 1))
    return sqrt(factorial((j1 + j2 - j) // 2) * factorial((j1 - j2 + j) // 2) * factorial((-j1 + j2 + j) // 2)
                / sfaccg)


@cache
def clebsch_gordan_block(j1: int, j2: int, j: int) -> np.ndarray:
    """(j1 + 1, j2 + 1) Clebsch–Gordan coefficients ``cg[m1, m2]`` coupling to level j (VMK 8.2.1(3)).

    Same formula and evaluation order as ``SNA::init_clebsch_gordan`` (entries with ``m`` outside
    ``[0, j]`` are zero).
    """
    f = lambda n: float(factorial(n))  # noqa: E731 - LAMMPS' factorial() returns doubles
    cg = np.zeros((j1 + 1, j2 + 1))
    for m1 in range(j1 + 1):
        aa2 = 2 * m1 - j1
        for m2 in range(j2 + 1):
            bb2 = 2 * m2 - j2
            m = (aa2 + bb2 + j) // 2
            if m < 0 or m > j:
                continue
            total = 0.0
            # all numerators below are even (j1 + j2 + j is even), so // is exact division
            zmin = max(0, -(j - j2 + aa2) // 2, -(j - j1 - bb2) // 2)
            zmax = min((j1 + j2 - j) // 2, min((j1 - aa2) // 2, (j2 + bb2) // 2))
            for z in range(zmin, zmax + 1):
                ifac = -1 if z % 2 else 1
                total += ifac / (f(z) * f((j1 + j2 - j) // 2 - z) * f((j1 - aa2) // 2 - z) * f((j2 + bb2) // 2 - z)
                                 * f((j - j2 + aa2) // 2 + z) * f((j - j1 - bb2) // 2 + z))
            cc2 = 2 * m - j
            dcg = _deltacg(j1, j2, j)
            sfaccg = sqrt(f((j1 + aa2) // 2) * f((j1 - aa2) // 2) * f((j2 + bb2) // 2) * f((j2 - bb2) // 2)
                          * f((j + cc2) // 2) * f((j - cc2) // 2) * (j + 1))
            cg[m1, m2] = total * dcg * sfaccg
    return cg


@dataclass
class SNATables:
    """Flat tables for the vectorised bispectrum.

    Attributes:
        twojmax: 2·Jmax.
        num_u: length of the flat U list, Σ_j (j+1)².
        u_block: (twojmax+1,) offsets of each level in the U list.
        triples: (nB, 3) (j1, j2, j) per bispectrum component, LAMMPS order.
        rec_a, rec_b: per level j ≥ 1, ((j//2)+1, j+1) coefficients of the U recursion
            ``u_j[mb, ma] = rec_a·conj(a)·u_{j-1}[mb, ma] - rec_b·conj(b)·u_{j-1}[mb, ma-1]``.
        mirror_sign: per level j ≥ 1, (j+1,) signs of the row ``j//2 + 1`` obtained from row ``j//2``
            by the inversion symmetry ``u[j-mb, j-ma] = (-1)^(ma-mb) conj(u[mb, ma])`` (used for odd j,
            whose next level needs that row), indexed by the new row's column.
        num_u_half: length of the half list: rows ``mb ≤ j//2`` of every level.
        half_block: (twojmax+1,) offsets of each level in the half list.
        full_from_half: (num_u,) half-list index of every full-list entry.
        full_sign_re, full_sign_im: (num_u,) signs such that a full entry is
            ``(sign_re·Re h, sign_im·Im h)`` of its half entry ``h`` (conjugated for the mirrored rows).
        term_u1, term_u2: (nterms,) flat U indices of the two factors of each Z term.
        term_coeff: (nterms,) Clebsch–Gordan product of each Z term.
        term_z: (nterms,) the Z entry each term adds to (sorted ascending).
        z_u: (nz,) flat U index paired with each Z entry in B.
        z_weight: (nz,) weight of each Z entry in B (2, or 1 for the centre of an even level;
            the half-counted entries of LAMMPS' ``compute_bi`` are folded in).
        z_b: (nz,) bispectrum component each Z entry belongs to.
        z_j: (nz,) level j of each Z entry (for ``bnormflag``).
    """

    twojmax: int
    num_u: int
    u_block: np.ndarray
    triples: np.ndarray
    rec_a: list[np.ndarray]
    rec_b: list[np.ndarray]
    mirror_sign: list[np.ndarray]
    num_u_half: int
    half_block: np.ndarray
    full_from_half: np.ndarray
    full_sign_re: np.ndarray
    full_sign_im: np.ndarray
    term_u1: np.ndarray
    term_u2: np.ndarray
    term_coeff: np.ndarray
    term_z: np.ndarray
    z_u: np.ndarray
    z_weight: np.ndarray
    z_b: np.ndarray
    z_j: np.ndarray

    @property
    def num_b(self) -> int:
        return len(self.triples)


def _z_entry_terms(j1: int, j2: int, j: int, mb: int, ma: int, cg: np.ndarray, ublock: np.ndarray):
    """(u1, u2, cg·cg) of every term of Z_{j1 j2 j}[mb, ma] (the loops of ``SNA::compute_zi``)."""
    out = []
    ma1min = max(0, (2 * ma - j - j2 + j1) // 2)
    ma2max = (2 * ma - j - (2 * ma1min - j1) + j2) // 2
    na = min(j1, (2 * ma - j + j2 + j1) // 2) - ma1min + 1
    mb1min = max(0, (2 * mb - j - j2 + j1) // 2)
    mb2max = (2 * mb - j - (2 * mb1min - j1) + j2) // 2
    nb = min(j1, (2 * mb - j + j2 + j1) // 2) - mb1min + 1
    jju1 = ublock[j1] + (j1 + 1) * mb1min
    jju2 = ublock[j2] + (j2 + 1) * mb2max
    icgb = mb1min * (j2 + 1) + mb2max
    for _ in range(nb):
        ma1, ma2 = ma1min, ma2max
        icga = ma1min * (j2 + 1) + ma2max
        for _ in range(na):
            out.append((int(jju1 + ma1), int(jju2 + ma2), cg[icga] * cg[icgb]))
            ma1 += 1
            ma2 -= 1
            icga += j2
        jju1 += j1 + 1
        jju2 -= j2 + 1
        icgb += j2
    return out


@cache
def sna_tables(twojmax: int) -> SNATables:
    """Build (and cache) the tables for ``twojmax``."""
    if twojmax < 0:
        raise ValueError(f"twojmax must be ≥ 0, got {twojmax}")
    ublock = idxu_block(twojmax)
    num_u = int(sum((j + 1) ** 2 for j in range(twojmax + 1)))
    triples = bispectrum_triples(twojmax)

    # U recursion (SNA::compute_uarray): rootpq[p][q] = sqrt(p/q)
    rec_a, rec_b, mirror_sign = [], [], []
    for j in range(1, twojmax + 1):
        h = j // 2
        ca = np.zeros((h + 1, j + 1))
        cb = np.zeros((h + 1, j + 1))
        for mb in range(h + 1):
            for ma in range(j + 1):
                if ma < j:
                    ca[mb, ma] = sqrt((j - ma) / (j - mb))
                if ma >= 1:
                    cb[mb, ma] = sqrt(ma / (j - mb))
        rec_a.append(ca)
        rec_b.append(cb)
        # row h+1 from row h: u[h+1, c] = (-1)^(j-c-h) conj(u[h, j-c])
        mirror_sign.append(np.array([1.0 if (j - c - h) % 2 == 0 else -1.0 for c in range(j + 1)]))

    half_block = np.concatenate([[0], np.cumsum([(j // 2 + 1) * (j + 1) for j in range(twojmax)])]).astype(np.int64)
    num_u_half = int(sum((j // 2 + 1) * (j + 1) for j in range(twojmax + 1)))
    src = np.empty(num_u, dtype=np.int64)
    sgn_re = np.empty(num_u)
    sgn_im = np.empty(num_u)
    for j in range(twojmax + 1):
        h = j // 2
        for mb in range(j + 1):
            for ma in range(j + 1):
                k = ublock[j] + (j + 1) * mb + ma
                if mb <= h:
                    src[k] = half_block[j] + (j + 1) * mb + ma
                    sgn_re[k] = sgn_im[k] = 1.0
                else:
                    mb2, ma2 = j - mb, j - ma
                    src[k] = half_block[j] + (j + 1) * mb2 + ma2
                    sgn_re[k] = 1.0 if (ma2 - mb2) % 2 == 0 else -1.0
                    sgn_im[k] = -sgn_re[k]

    # Z terms, half of each Z block (SNA::compute_zi), only for the blocks and entries B needs.
    t_u1, t_u2, t_c, t_z = [], [], [], []
    z_u, z_w, z_b, z_j = [], [], [], []
    nz = 0
    for ib, (j1, j2, j) in enumerate(triples):
        cg = clebsch_gordan_block(j1, j2, j).reshape(-1)  # cgblock, index m1*(j2+1)+m2
        for mb in range(j // 2 + 1):
            for ma in range(j + 1):
                # weight in compute_bi: 2 for mb < j/2; middle row of even j: 2 (ma < mb), 1 (ma == mb), 0
                if 2 * mb < j:
                    w = 2.0
                elif ma < mb:
                    w = 2.0
                elif ma == mb:
                    w = 1.0
                else:
                    continue
                for u1, u2, c in _z_entry_terms(j1, j2, j, mb, ma, cg, ublock):
                    t_u1.append(u1)
                    t_u2.append(u2)
                    t_c.append(c)
                    t_z.append(nz)
                z_u.append(ublock[j] + (j + 1) * mb + ma)
                z_w.append(w)
                z_b.append(ib)
                z_j.append(j)
                nz += 1

    i64 = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
    return SNATables(
        twojmax=twojmax, num_u=num_u, u_block=ublock, triples=i64(triples).reshape(-1, 3),
        rec_a=rec_a, rec_b=rec_b, mirror_sign=mirror_sign, num_u_half=num_u_half, half_block=half_block,
        full_from_half=src, full_sign_re=sgn_re, full_sign_im=sgn_im,
        term_u1=i64(t_u1), term_u2=i64(t_u2), term_coeff=np.asarray(t_c, dtype=np.float64), term_z=i64(t_z),
        z_u=i64(z_u), z_weight=np.asarray(z_w, dtype=np.float64), z_b=i64(z_b), z_j=i64(z_j),
    )


def z_terms(tables: SNATables, merge_swapped: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Z terms ``Z[z] += c · U[u1] · U[u2]`` with vanishing coefficients removed.

    With ``merge_swapped`` (valid when both factors come from the same U list, i.e. without
    chemflag), terms that differ only by the order of the two factors are merged into one with
    ``u1 ≤ u2`` (in blocks with j1 = j2 every term has such a partner), which removes about a
    quarter of the work.

    Returns:
        (u1, u2, coeff, z), sorted by z, then u1, u2.
    """
    u1, u2, c, z = tables.term_u1, tables.term_u2, tables.term_coeff, tables.term_z
    if merge_swapped:
        u1, u2 = np.minimum(u1, u2), np.maximum(u1, u2)
    keys = np.stack([z, u1, u2], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    coeff = np.zeros(len(uniq))
    np.add.at(coeff, inverse.reshape(-1), c)
    keep = np.abs(coeff) > 1e-13 * np.abs(coeff).max()
    uniq, coeff = uniq[keep], coeff[keep]
    return uniq[:, 1].copy(), uniq[:, 2].copy(), coeff, uniq[:, 0].copy()


def generator_matrices(twojmax: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Lie-algebra representation matrices ρ_j(X) of the U recursion, for X = Z, E1, E2.

    With ``M(a, b) = [[a, b], [-conj(b), conj(a)]]`` the level-j matrices ``u_j`` (row mb, column ma)
    satisfy ``∂u_j = u_j · ρ_j(M⁻¹ ∂M)``, and ``M⁻¹ ∂M = θ·Z + Re γ·E1 + Im γ·E2`` with
    ``Z = diag(i, -i)``, ``E1 = [[0, 1], [-1, 0]]``, ``E2 = [[0, i], [i, 0]]``. The matrices follow from
    the first-order expansion of the recursion at the identity (``a = 1 + ε X00``, ``b = ε X01``).

    Returns:
        per level j: (ρ_j(Z), ρ_j(E1), ρ_j(E2)), complex (j+1, j+1).
    """
    basis = [(1j, 0.0), (0.0, 1.0), (0.0, 1j)]          # (X00, X01) of Z, E1, E2
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    prev: list[np.ndarray] = [np.zeros((1, 1), dtype=complex) for _ in basis]
    out.append((prev[0], prev[1], prev[2]))
    for j in range(1, twojmax + 1):
        cur: list[np.ndarray] = []
        for (x00, x01), rp in zip(basis, prev):
            rho = np.zeros((j + 1, j + 1), dtype=complex)
            ca, cb = np.conj(x00), np.conj(x01)           # first-order parts of conj(a), conj(b)
            for mb in range(j):
                for ma in range(j + 1):
                    v = 0.0
                    if ma < j:
                        v += sqrt((j - ma) / (j - mb)) * ((ca if mb == ma else 0.0) + (rp[mb, ma] if mb < j and ma < j else 0.0))
                    if ma >= 1:
                        v -= sqrt(ma / (j - mb)) * (cb if mb == ma - 1 else 0.0)
                    rho[mb, ma] = v
            for ma in range(j + 1):                       # row j: u[j, j-ma] = (-1)^ma conj(u[0, ma])
                rho[j, j - ma] = (-1) ** ma * np.conj(rho[0, ma])
            cur.append(rho)
        out.append((cur[0], cur[1], cur[2]))
        prev = cur
    return out


def half_gradient_tables(tables: SNATables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse maps ``Φ_s = conj(R_s)·Λ`` on the half U list, s = identity, Z, E1, E2.

    ``R_s[e', e] = ρ_s[m', ma]`` for half entries ``e' = (j, mb, m')``, ``e = (j, mb, ma)``, so that
    ``Re Σ_e conj(Λ_e)·(u ρ_s)_e = Re Σ_e' conj(Φ_s[e'])·u_e'``.

    Returns:
        (dst, src, coeff): ``Φ[dst] += coeff·Λ[src]``, dst in ``[0, 4·num_u_half)``, coeff complex.
    """
    gens = generator_matrices(tables.twojmax)
    hb = tables.half_block
    dst, src, coeff = [], [], []
    nuh = tables.num_u_half
    for e in range(nuh):
        dst.append(e)
        src.append(e)
        coeff.append(1.0 + 0j)
    for s in range(3):
        for j in range(tables.twojmax + 1):
            rho = gens[j][s]
            for mb in range(j // 2 + 1):
                for mp in range(j + 1):
                    for ma in range(j + 1):
                        if abs(rho[mp, ma]) > 0:
                            dst.append((s + 1) * nuh + hb[j] + (j + 1) * mb + mp)
                            src.append(hb[j] + (j + 1) * mb + ma)
                            coeff.append(np.conj(rho[mp, ma]))
    return np.array(dst, dtype=np.int64), np.array(src, dtype=np.int64), np.array(coeff, dtype=complex)


def _half_weight(j: int, mb: int, ma: int) -> float:
    """Weight of a half-list entry in ``2·Re Σ conj(U)·Z`` (``SNA::compute_bi``/``compute_dbidrj``)."""
    if 2 * mb < j or ma < mb:
        return 2.0
    return 1.0 if ma == mb else 0.0


@cache
def jacobian_tables(twojmax: int, bnorm: bool):
    """Tables for ∂B/∂U of a single-element bispectrum, as LAMMPS' ``SNA::compute_dbidrj`` uses them.

    ``dB_{j1 j2 j} = 2 Re Σ' conj(dU_j)·Z_{j1 j2 j} + f1·2 Re Σ' conj(dU_{j1})·Z_{j j2 j1}
    + f2·2 Re Σ' conj(dU_{j2})·Z_{j j1 j2}`` (Σ' over half rows with the middle-row weights,
    ``f1 = (j+1)/(j1+1)``, ``f2 = (j+1)/(j2+1)``, both 1 with bnormflag), valid for variations dU that
    keep U's inversion symmetry — as every pair's U does.

    Returns:
        dict with the Z terms ``u1, u2, coeff, entry`` of the needed Z entries (merged like
        :func:`z_terms`), ``entry_half`` (half-list index of each entry), and the sparse map
        ``Λ[k, entry_half[e]] += lam_coeff·Z[e]`` as ``lam_k, lam_e, lam_coeff``.
    """
    t = sna_tables(twojmax)
    ublock, hb = t.u_block, t.half_block
    entries: dict[tuple, int] = {}
    t_u1, t_u2, t_c, t_e = [], [], [], []
    entry_half = []
    lam_k, lam_e, lam_c = [], [], []
    for k, (j1, j2, j) in enumerate(t.triples.tolist()):
        f1 = 1.0 if bnorm else (j + 1) / (j1 + 1)
        f2 = 1.0 if bnorm else (j + 1) / (j2 + 1)
        for (a, b, c), factor in (((j1, j2, j), 1.0), ((j, j2, j1), f1), ((j, j1, j2), f2)):
            cg = clebsch_gordan_block(a, b, c).reshape(-1)
            for mb in range(c // 2 + 1):
                for ma in range(c + 1):
                    w = _half_weight(c, mb, ma)
                    if w == 0.0:
                        continue
                    key = (a, b, c, mb, ma)
                    if key not in entries:
                        e = entries[key] = len(entries)
                        scale = 1.0 / (c + 1) if bnorm else 1.0
                        for u1, u2, cc in _z_entry_terms(a, b, c, mb, ma, cg, ublock):
                            t_u1.append(u1)
                            t_u2.append(u2)
                            t_c.append(cc * scale)
                            t_e.append(e)
                        entry_half.append(hb[c] + (c + 1) * mb + ma)
                    lam_k.append(k)
                    lam_e.append(entries[key])
                    lam_c.append(w * factor)
    u1, u2 = np.minimum(t_u1, t_u2), np.maximum(t_u1, t_u2)
    keys = np.stack([np.asarray(t_e), u1, u2], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    coeff = np.zeros(len(uniq))
    np.add.at(coeff, inverse.reshape(-1), np.asarray(t_c))
    keep = np.abs(coeff) > 1e-13 * np.abs(coeff).max()
    uniq, coeff = uniq[keep], coeff[keep]
    i64 = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
    return {"u1": i64(uniq[:, 1]), "u2": i64(uniq[:, 2]), "coeff": coeff, "entry": i64(uniq[:, 0]),
            "num_entries": len(entries), "entry_half": i64(entry_half), "lam_k": i64(lam_k), "lam_e": i64(lam_e),
            "lam_coeff": np.asarray(lam_c, dtype=np.float64)}
