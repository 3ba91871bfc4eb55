"""ACE B-basis specification and its coupling tables (PACE's generalised Clebsch–Gordan coupling).

A B-basis function of rank r is identified, as in PACE's ``BBasisFunctionSpecification``, by the
central element and r neighbour elements ``mus``, radial indices ``ns`` (1-based), angular momenta
``ls`` and intermediate couplings ``LS``:

    B = Σ_{m_1..m_r} C^{ls,LS}_{m_1..m_r} Π_t A_{mu_t n_t l_t m_t}          (rank ≥ 2)
    B = A1_{mu_1 n_1} = Σ_j g_{n_1-1}(r_ij)                                  (rank 1)

``C`` is the product of Clebsch–Gordan coefficients along PACE's coupling tree
(``generate_coupling_tree`` in ``ace_couplings.cpp``): pairs (0,1), (2,3), … couple to the
intermediate ``LS`` in order, the intermediates couple pairwise, and the last node couples to
L = 0. This module carries ``C`` over to real spherical harmonics and merges the monomials that
are equal because factors commute, giving for each rank a table of (A-indices, coefficient,
function) rows that the descriptor evaluates with gathers and one ``index_add``.

:func:`generate_functions` builds a complete set of linearly independent functions from a
compact specification (``nradmax_by_orders``, ``lmax_by_orders``): for every multiset of
(element, n, l) it enumerates all orderings and couplings and keeps the first linearly
independent ones (the span equals that of pyace's precomputed white-list basis).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np

from .spherical_harmonics import complex_from_real

COEFFICIENT_TOLERANCE = 1e-12
#: weight of l against n in a function's total degree (:func:`function_degree`), ACEpotentials.jl's default wL
DEFAULT_L_WEIGHT = 1.5


@dataclass(frozen=True)
class BFunction:
    """One B-basis function: neighbour species ``mus``, 1-based radial ``ns``, ``ls`` and ``LS``.

    The central element is implicit (functions are listed per central element).
    """

    mus: tuple[int, ...]
    ns: tuple[int, ...]
    ls: tuple[int, ...]
    LS: tuple[int, ...] = ()
    #: explicit complex-harmonic coupling ((m_1 … m_r), c) instead of PACE's generalised CG of
    #: ``LS``: ``B = Re Σ c Π_t A_{l_t m_t}`` (C-tilde ``ms_combs``/``ctildes``, e.g. FitSNAP's ``.yace``)
    coupling: tuple[tuple[tuple[int, ...], float], ...] | None = None

    @property
    def rank(self) -> int:
        return len(self.mus)


@cache
def clebsch_gordan(j1: int, m1: int, j2: int, m2: int, J: int, M: int) -> float:
    """Clebsch–Gordan coefficient ⟨j1 m1 j2 m2 | J M⟩ (integer momenta, Condon–Shortley convention)."""
    if m1 + m2 != M or not (abs(j1 - j2) <= J <= j1 + j2) or abs(m1) > j1 or abs(m2) > j2 or abs(M) > J:
        return 0.0
    f = math.factorial
    pref = Fraction((2 * J + 1) * f(J + j1 - j2) * f(J - j1 + j2) * f(j1 + j2 - J), f(j1 + j2 + J + 1))
    pref *= f(J + M) * f(J - M) * f(j1 - m1) * f(j1 + m1) * f(j2 - m2) * f(j2 + m2)
    total = Fraction(0)
    for k in range(0, j1 + j2 - J + 1):
        d = [k, j1 + j2 - J - k, j1 - m1 - k, j2 + m2 - k, J - j2 + m1 + k, J - j1 - m2 + k]
        if min(d) < 0:
            continue
        total += Fraction((-1) ** k, math.prod(f(x) for x in d))
    return float(math.copysign(math.sqrt(pref * total * total), total))


@cache
def coupling_tree(rank: int) -> tuple[tuple[int, int, int], ...]:
    """PACE's coupling tree of a rank: (child, child, parent) nodes; node ``2·rank-2`` is the root (L=0).

    Leaves are 0 … rank-1, intermediates rank … 2·rank-3 (the order of ``LS``).
    """
    if rank < 2:
        return ()
    leaves = list(range(rank))
    free = list(range(rank, 2 * rank - 2))
    root = 2 * rank - 2
    nodes = []
    pending = []
    parent = root
    for _ in range(rank // 2):
        a, b = leaves.pop(0), leaves.pop(0)
        parent = free.pop(0) if free else root
        nodes.append((a, b, parent))
        pending.append(parent)
    while len(pending) > 1 and parent != root:
        a, b = pending.pop(0), pending.pop(0)
        parent = free.pop(0) if free else root
        nodes.append((a, b, parent))
        pending.append(parent)
    if parent != root:
        nodes.append((pending.pop(0), leaves.pop(0), root))
    return tuple(nodes)


def valid_LS(ls: Sequence[int]) -> list[tuple[int, ...]]:
    """All intermediate couplings ``LS`` allowed by the triangle rules of the coupling tree of ``ls``."""
    rank = len(ls)
    tree = coupling_tree(rank)
    out = []

    def assign(k: int, values: dict[int, int]) -> None:
        if k == len(tree):
            out.append(tuple(values[i] for i in range(rank, 2 * rank - 2)))
            return
        a, b, p = tree[k]
        la, lb = values[a], values[b]
        if p == 2 * rank - 2:
            if la == lb:
                assign(k + 1, values)
            return
        for L in range(abs(la - lb), la + lb + 1):
            assign(k + 1, {**values, p: L})

    assign(0, {i: l for i, l in enumerate(ls)})
    return out


@cache
def generalized_cg(ls: tuple[int, ...], LS: tuple[int, ...]) -> np.ndarray:
    """Dense complex-basis coupling tensor C[m_1+l_1, …, m_r+l_r] of PACE's B function (L = 0)."""
    rank = len(ls)
    tree = coupling_tree(rank)
    lsLS = list(ls) + list(LS) + [0]
    C = np.zeros([2 * l + 1 for l in ls])
    for ms in itertools.product(*[range(-l, l + 1) for l in ls]):
        if sum(ms) != 0:
            continue
        mM = list(ms) + [0] * (rank - 1)
        value = 1.0
        for a, b, p in tree:
            mM[p] = mM[a] + mM[b]
            if abs(mM[p]) > lsLS[p]:
                value = 0.0
                break
            value *= clebsch_gordan(lsLS[a], mM[a], lsLS[b], mM[b], lsLS[p], mM[p])
            if value == 0.0:
                break
        C[tuple(m + l for m, l in zip(ms, ls))] = value
    return C


@cache
def real_coupling(ls: tuple[int, ...], LS: tuple[int, ...]) -> np.ndarray:
    """Coupling tensor for real harmonics: ``B = Σ C_real[m'...] Π A^real_{l_t m'_t}`` (real-valued)."""
    return _to_real_harmonics(generalized_cg(ls, LS), ls)


@cache
def explicit_real_coupling(ls: tuple[int, ...], coupling: tuple[tuple[tuple[int, ...], float], ...]) -> np.ndarray:
    """Real-harmonic coupling tensor of ``B = Re Σ_(ms, c) c Π_t A_{l_t m_t}`` (complex harmonics)."""
    C = np.zeros([2 * l + 1 for l in ls])
    for ms, c in coupling:
        if len(ms) != len(ls) or any(abs(m) > l for m, l in zip(ms, ls)):
            raise ValueError(f"coupling entry m = {ms} does not fit ls = {ls}")
        C[tuple(m + l for m, l in zip(ms, ls))] += c
    return _to_real_harmonics(C, ls)


def _to_real_harmonics(C: np.ndarray, ls: tuple[int, ...]) -> np.ndarray:
    C = C.astype(complex)
    for axis, l in enumerate(ls):
        C = np.moveaxis(np.tensordot(C, complex_from_real(l), axes=([axis], [0])), -1, axis)
    return np.ascontiguousarray(C.real)


def monomial_arrays(func: BFunction, nradmax: int, lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Function ``func`` as a polynomial in the flattened real A: (U, rank) sorted A indices of each
    distinct monomial and their (U,) coefficients.

    The flat index of ``A[mu, n, l, m]`` is ``(mu·nradmax + n-1)·(lmax+1)² + l² + l + m``.
    """
    if func.coupling is None:
        C = real_coupling(tuple(func.ls), tuple(func.LS))
    else:
        C = explicit_real_coupling(tuple(func.ls), func.coupling)
    nlm = (lmax + 1) ** 2
    ls = np.array(func.ls, dtype=np.int64)
    bases = np.array([(mu * nradmax + n - 1) * nlm for mu, n in zip(func.mus, func.ns)], dtype=np.int64)
    pos = np.argwhere(np.abs(C) > COEFFICIENT_TOLERANCE)  # entries m + l
    if len(pos) == 0:
        return np.zeros((0, func.rank), dtype=np.int64), np.zeros(0)
    index = np.sort(bases + ls * ls + pos, axis=1)  # l² + l + m = l² + (m + l)
    _, first, inverse = np.unique(_row_codes(index), return_index=True, return_inverse=True)
    coefficient = np.zeros(len(first))
    np.add.at(coefficient, inverse.reshape(-1), C[tuple(pos.T)])
    keep = np.abs(coefficient) > COEFFICIENT_TOLERANCE
    return index[first][keep], coefficient[keep]


def _row_codes(index: np.ndarray) -> np.ndarray:
    """One integer per row of a (T, r) non-negative index array, equal exactly for equal rows."""
    width = int(index.max()) + 1 if index.size else 1
    if width ** index.shape[1] >= 2 ** 62:
        return np.unique(index, axis=0, return_inverse=True)[1].reshape(-1)
    return index @ (width ** np.arange(index.shape[1] - 1, -1, -1, dtype=np.int64))


def monomials(func: BFunction, nradmax: int, lmax: int) -> dict[tuple[int, ...], float]:
    """:func:`monomial_arrays` as ``{sorted A indices: coefficient}``."""
    keys, coefficient = monomial_arrays(func, nradmax, lmax)
    return dict(zip(map(tuple, keys.tolist()), coefficient.tolist()))


@dataclass
class CouplingTable:
    """Rows of one rank: ``B[:, column[t]] += coefficient[t] · Π_k A[:, index[t, k]]``."""

    index: np.ndarray  # (T, rank) int64
    coefficient: np.ndarray  # (T,) float64
    column: np.ndarray  # (T,) int64


def coupling_tables(functions: Sequence[BFunction], nradmax: int, lmax: int) -> dict[int, CouplingTable]:
    """Coupling tables of ``functions`` (rank ≥ 2) by rank; columns are positions in ``functions``."""
    parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for col, func in enumerate(functions):
        if func.rank < 2:
            continue
        keys, coefficient = monomial_arrays(func, nradmax, lmax)
        parts.setdefault(func.rank, []).append((keys, coefficient, np.full(len(keys), col, dtype=np.int64)))
    return {rank: CouplingTable(np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps]),
                                np.concatenate([p[2] for p in ps])) for rank, ps in sorted(parts.items())}


@dataclass
class ProductTree:
    """Shared evaluation of the monomials of all ranks (PACE's recursive idea, on gather tables).

    Level k (k ≥ 2) holds distinct sorted k-tuples of A indices, each the product of a level-⌊k/2⌋
    node (``left``) and a level-⌈k/2⌉ node (``right``); level 1 is A itself. Balanced splits
    share the pair products between ranks 2–6 (rank 4 = pair × pair) and need fewer products than
    growing one factor at a time. ``node[rank]`` points the rows of ``tables[rank]`` at their
    level-``rank`` node.
    """

    left: dict[int, np.ndarray]
    right: dict[int, np.ndarray]
    node: dict[int, np.ndarray]


def product_tree(tables: dict[int, CouplingTable]) -> ProductTree:
    """The :class:`ProductTree` of the monomials in ``tables``."""
    max_rank = max(tables, default=1)
    needed: dict[int, set[tuple[int, ...]]] = {k: set() for k in range(1, max_rank + 1)}
    for r, t in tables.items():
        needed[r].update(tuple(row) for row in t.index.tolist())
    for k in range(max_rank, 1, -1):
        h = k // 2
        for tup in needed[k]:
            needed[h].add(tup[:h])
            needed[k - h].add(tup[h:])
    position = {k: {tup: i for i, tup in enumerate(sorted(needed[k]))} for k in range(2, max_rank + 1)}
    position[1] = {(i,): i for tup in needed[1] for i in tup}
    left, right, node = {}, {}, {}
    for k in range(2, max_rank + 1):
        if not position[k]:
            continue
        h = k // 2
        left[k] = np.array([position[h][tup[:h]] for tup in position[k]], dtype=np.int64)
        right[k] = np.array([position[k - h][tup[h:]] for tup in position[k]], dtype=np.int64)
    for r, t in tables.items():
        node[r] = np.array([position[r][tuple(row)] for row in t.index.tolist()], dtype=np.int64)
    return ProductTree(left, right, node)


def function_degree(func: BFunction, l_weight: float = DEFAULT_L_WEIGHT) -> float:
    """Total degree ``Σ_t (n_t + l_weight·l_t)`` of a B function (1-based n; rank 1: n), the measure
    of radial and angular resolution that total-degree bases and smoothness priors use
    (ACEpotentials.jl's ``totaldegree`` with weight ``wL`` on l)."""
    return float(sum(n + l_weight * l for n, l in zip(func.ns, func.ls)))


def generate_functions(nelements: int, central: int, nradmax_by_orders: Sequence[int],
                       lmax_by_orders: Sequence[int], max_degree_by_orders: Sequence[float] | None = None,
                       l_weight: float = DEFAULT_L_WEIGHT) -> list[BFunction]:
    """A complete, linearly independent B-basis for one central element.

    Rank 1: ``(mu, n)`` for every neighbour element and n ≤ nradmax_by_orders[0]. Rank r ≥ 2: for
    every multiset of (mu, n ≤ nradmax_by_orders[r-1], l ≤ lmax_by_orders[r-1]) with even Σl, all
    orderings and intermediate couplings are enumerated (canonical ordering first) and those whose
    polynomial in A is linearly independent of the ones kept are kept. ``central`` does not change
    the set (all neighbour-element combinations are included) but is part of the signature so the
    generator can later restrict per central element.

    ``max_degree_by_orders`` (optional, one entry per rank) keeps, within that box, only the
    multisets of total degree ``Σ_t (n_t + l_weight·l_t) ≤ max_degree_by_orders[r-1]``
    (:func:`function_degree`): a total-degree basis, which grows far more slowly with the rank than
    the box does.
    """
    del central
    if len(nradmax_by_orders) != len(lmax_by_orders):
        raise ValueError(f"nradmax_by_orders {list(nradmax_by_orders)} and lmax_by_orders "
                         f"{list(lmax_by_orders)} must have the same length (one entry per rank)")
    if max_degree_by_orders is not None and len(max_degree_by_orders) != len(nradmax_by_orders):
        raise ValueError(f"max_degree_by_orders {list(max_degree_by_orders)} needs one entry per rank, like "
                         f"nradmax_by_orders {list(nradmax_by_orders)}")
    degree_cap = [math.inf] * len(nradmax_by_orders) if max_degree_by_orders is None else \
        [float(d) for d in max_degree_by_orders]
    funcs: list[BFunction] = []
    if nradmax_by_orders:
        funcs += [BFunction((mu,), (n,), (0,)) for mu in range(nelements) for n in range(1, nradmax_by_orders[0] + 1)
                  if n <= degree_cap[0]]
    nradmax = max(list(nradmax_by_orders[1:]) + [1])
    lmax = max(list(lmax_by_orders[1:]) + [0])
    for rank in range(2, len(nradmax_by_orders) + 1):
        triples = [(mu, n, l) for mu in range(nelements) for n in range(1, nradmax_by_orders[rank - 1] + 1)
                   for l in range(lmax_by_orders[rank - 1] + 1)]
        for multiset in itertools.combinations_with_replacement(triples, rank):
            if sum(t[2] for t in multiset) % 2 or sum(t[1] + l_weight * t[2] for t in multiset) > degree_cap[rank - 1]:
                continue
            funcs += _independent_functions(multiset, nradmax, lmax)
    return funcs


def _canonical_order(order: Sequence[tuple[int, int, int]]) -> bool:
    """Whether ``order`` is the representative of its class under the symmetries of PACE's coupling
    tree: swapping the two factors of a leaf pair ((0,1), (2,3), (4,5)) or the pairs (0,1) and
    (2,3) of ranks ≥ 4 changes a function at most by a sign (Clebsch–Gordan symmetry), so the
    other orderings add nothing to the span."""
    r = len(order)
    pairs = [(k, k + 1) for k in range(0, r - 1, 2) if not (r in (3, 5) and k + 1 == r - 1)]
    if any(order[a] > order[b] for a, b in pairs):
        return False
    return r < 4 or tuple(order[0:2]) <= tuple(order[2:4])


def _independent_functions(multiset: tuple[tuple[int, int, int], ...], nradmax: int, lmax: int) -> list[BFunction]:
    candidates: list[tuple[BFunction, np.ndarray, np.ndarray]] = []
    for order in dict.fromkeys(itertools.permutations(multiset)):
        if not _canonical_order(order):
            continue
        ls = tuple(t[2] for t in order)
        for LS in valid_LS(ls):
            func = BFunction(tuple(t[0] for t in order), tuple(t[1] for t in order), ls, LS)
            keys, coefficient = monomial_arrays(func, nradmax, lmax)
            if len(keys):
                candidates.append((func, keys, coefficient))
    if not candidates:
        return []
    _, column = np.unique(_row_codes(np.concatenate([k for _, k, _ in candidates])), return_inverse=True)
    column = column.reshape(-1)
    matrix = np.zeros((len(candidates), int(column.max()) + 1))
    start = 0
    for row, (_, keys, coefficient) in enumerate(candidates):
        matrix[row, column[start:start + len(keys)]] = coefficient
        start += len(keys)
    # keep, in order, the candidates that are linearly independent of those kept before
    kept: list[BFunction] = []
    basis = np.zeros((0, matrix.shape[1]))
    for (func, _, _), vec in zip(candidates, matrix):
        residual = vec - basis.T @ (basis @ vec)
        residual -= basis.T @ (basis @ residual)  # re-orthogonalise once for stability
        norm = np.linalg.norm(residual)
        if norm > 1e-8 * np.linalg.norm(vec):
            basis = np.vstack([basis, residual / norm])
            kept.append(func)
    return kept
