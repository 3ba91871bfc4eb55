"""Atomic cluster expansion (ACE) descriptors: PACE's B-basis as a torch module on the pair list.

For central atom i of element e and neighbours j (element μ_j, distance r_ij < r_c(e, μ_j)):

    A1_{μ n}(i)   = Σ_{j: μ_j = μ} g_{n-1}(r_ij)                              (rank-1 atomic base)
    A_{μ n l m}(i) = Σ_{j: μ_j = μ} R_{nl}(r_ij) Y_lm(r̂_ij),  R_nl = Σ_k c_{nlk}^{e μ} g_k
    B_f(i)        = Σ_{m} C^{ls, LS}_{m} Π_t A_{μ_t n_t l_t m_t}(i)               (rank ≥ 2)

with PACE's radial bases g_k (:mod:`.ace_radial`), radial coefficients ``crad`` c_{nlk} per element
pair, spherical harmonics normalised as in PACE (∫|Y_lm|² dΩ = 4π, so Y_00 = 1) and PACE's
generalised Clebsch–Gordan coupling (:mod:`.ace_basis`). The values equal pyace's
B-basis projections (``ACEBEvaluator``) for the same basis.

Output columns: the functions of each central element are listed in order (rank-1 first, as in
pyace's projections); column k of an atom of element e is function k of e, and atoms of elements
with fewer functions get zeros in the remaining columns (K = the largest per-element count).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as forward_ad
from torch import nn

from ..config_checks import at_least
from ..errors import ConfigError
from ..registry import register_descriptor
from .ace_basis import DEFAULT_L_WEIGHT, BFunction, coupling_tables, function_degree, generate_functions, product_tree
from .ace_radial import RadialBasis, pace_inner_cutoff
from .base import Descriptor
from .constraints import bounded, bounded_raw, trainable_names
from .spherical_harmonics import real_spherical_harmonics

# PACE normalises the spherical harmonics to 4π on the unit sphere (Y_00 = 1).
PACE_YLM_SCALE = math.sqrt(4.0 * math.pi)

PairValue = float | Sequence[Sequence[float]]


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


ACE_TRAINABLE = ("crad", "rcut")
"""The hyperparameters an :class:`ACE` can learn (its ``trainable`` keyword)."""


def _compact(table: list[list[Any]]) -> Any:
    """A per-pair table as plain data: the scalar when all pairs share it, else the nested list."""
    values = {v for row in table for v in row}
    return next(iter(values)) if len(values) == 1 else [list(row) for row in table]


def _save_current_rcut(module: ACE, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any]) -> None:
    """State-dict hook of an ACE with learned cutoffs: ``radial.rcut`` holds their current values, and θ
    (``rcut_raw``) is left out, so that a plain ACE rebuilt from :meth:`ACE.settings` loads the state dict."""
    state_dict.pop(f"{prefix}rcut_raw", None)
    state_dict[f"{prefix}radial.rcut"] = module.current_rcut().detach().clone()


def _pair_table(value: Any, nelements: int, name: str) -> list[list[Any]]:
    """A scalar or (nelements, nelements) nested list → (nelements, nelements) nested list."""
    if _is_sequence(value):
        rows = [list(r) if _is_sequence(r) else [r] for r in value]
        if len(rows) != nelements or any(len(r) != nelements for r in rows):
            raise ValueError(f"ACE: {name} must be a scalar or a {nelements}x{nelements} nested list "
                             f"(one value per element pair), got {value!r}")
        return rows
    return [[value] * nelements for _ in range(nelements)]


@register_descriptor("ace")
class ACE(Descriptor):
    """PACE B-basis descriptors (any body order) with PACE's radial bases.

    Args:
        elements: element symbols; the species index of an atom is its position here.
        nradmax_by_orders: per rank (body order - 1), the largest radial index n; rank 1 uses the
            radial basis g_k directly (n ≤ nradmax_by_orders[0]). Default: a body-order-5 basis
            ``(15, 3, 2, 1)`` (68 functions for one element).
        lmax_by_orders: per rank, the largest l (the rank-1 entry is ignored; l = 0 there).
            Default ``(0, 3, 2, 1)``. Both are ignored when ``functions`` is given.
        max_degree_by_orders: optional, per rank, the largest total degree ``Σ_t (n_t + l_weight·l_t)``
            of a function within the box above (a total-degree basis; see
            :func:`~.ace_basis.generate_functions`).
        l_weight: weight of l in the total degree (default 1.5).
        radial_basis: ``"ChebExpCos"``, ``"ChebPow"``, ``"ChebLinear"`` or ``"SBessel"``, or a
            (nelements, nelements) nested list of names.
        radial_parameters: λ of ``ChebExpCos``/``ChebPow`` (scalar or per element pair).
        rcut: outer cutoff, Å (scalar or per element pair ``[e_i][e_j]``).
        dcut: width of the ``ChebExpCos`` cutoff switch, Å.
        r_in: inner cutoff, Å (PACE's ``inner_cutoff_type: distance``); ``r_in = 0`` disables it.
        delta_in: width of the inner cutoff, Å.
        nradbase: size of the radial basis; defaults to what the functions need.
        nradmax: number of radial functions R_nl; defaults to what the functions need.
        lmax: largest l; defaults to what the functions need.
        functions: explicit B functions instead of the generated ones: a list of dicts with keys
            ``elements`` (central element first, then one per factor), ``ns``, ``ls`` and ``LS``
            (PACE's ``BBasisFunctionSpecification``), listed per central element in column order;
            optional ``ms_combs`` (one m per factor) and ``ctildes`` give an explicit complex-harmonic
            coupling ``B = Re Σ c Π A_{l m}`` instead of ``LS`` (C-tilde files, see :mod:`.ace_files`).
        trainable_radial: make ``crad`` an ``nn.Parameter`` (otherwise a buffer).
        trainable: hyperparameters to learn, among ``"crad"`` and ``"rcut"`` (see below).
        max_cutoff: neighbor-list radius, Å, the upper bound of learned cutoffs.
        rcut_min: lower bound of learned cutoffs, Å.

    Learned hyperparameters (keyword ``trainable``): ``"crad"`` (unconstrained, the same as
    ``trainable_radial``) and ``"rcut"``, every (e_i, e_j) cutoff its own parameter ``rcut_raw`` θ with
    ``rcut = lo + (max_cutoff - lo)·sigmoid(θ)`` (:mod:`.constraints`); ``max_cutoff`` (default 1.05 × the
    starting largest cutoff) is the neighbor-list radius ``cutoff`` returns, ``rcut_min`` (``lo``, default
    half of it, raised above the largest ``r_in`` and ``dcut``) the lower bound. The radial basis reads
    the cutoffs through :meth:`current_rcut`; :meth:`settings` and the state dict carry the current values
    (θ is left out), so model files rebuild a plain ACE with the learned cutoffs.

    ``crad`` (nelements, nelements, nradmax, lmax+1, nradbase) starts as PACE's "delta"
    initialisation (c_{nlk} = δ_{n k}) and is saved in the state dict. As in pyace, ``nradbase``
    defaults to ``nradmax_by_orders[0]``, so with the delta initialisation R_nl vanishes for
    n > nradbase until ``crad`` is set or trained (pass a larger ``nradbase`` to avoid that).
    """

    # a buffer or a parameter (trainable_radial), and a buffer registered in __init__
    crad: torch.Tensor
    l_of_lm: torch.Tensor

    rcut_raw: nn.Parameter  # with "rcut" in trainable

    def __init__(self, elements: Sequence[str], nradmax_by_orders: Sequence[int] = (15, 3, 2, 1),
                 lmax_by_orders: Sequence[int] = (0, 3, 2, 1), radial_basis: str | Sequence[Sequence[str]] = "ChebExpCos",
                 radial_parameters: PairValue = 5.25, rcut: PairValue = 5.0, dcut: PairValue = 0.01,
                 r_in: PairValue = 0.0, delta_in: PairValue = 0.0, nradbase: int | None = None,
                 nradmax: int | None = None, lmax: int | None = None,
                 functions: Sequence[dict[str, Any]] | None = None, trainable_radial: bool = False,
                 trainable: Sequence[str] | str | None = None, max_cutoff: float | None = None,
                 rcut_min: float | None = None, max_degree_by_orders: Sequence[float] | None = None,
                 l_weight: float = DEFAULT_L_WEIGHT):
        super().__init__()
        self.trainable = trainable_names(trainable, ACE_TRAINABLE, "ACE")
        trainable_radial = trainable_radial or "crad" in self.trainable
        self.elements = [str(e) for e in elements]
        if len(set(self.elements)) != len(self.elements) or not self.elements:
            raise ValueError(f"ACE: elements must be a non-empty list of distinct symbols, got {list(elements)}")
        nel = len(self.elements)
        self.nradmax_by_orders = [int(n) for n in nradmax_by_orders]
        self.lmax_by_orders = [int(n) for n in lmax_by_orders]
        self.max_degree_by_orders = None if max_degree_by_orders is None else [float(d) for d in max_degree_by_orders]
        self.l_weight = float(l_weight)
        if functions is None:
            if not self.nradmax_by_orders:
                raise ValueError("ACE: nradmax_by_orders/lmax_by_orders are empty; give at least one rank "
                                 "or an explicit functions list")
            per_element = [generate_functions(nel, e, self.nradmax_by_orders, self.lmax_by_orders,
                                              self.max_degree_by_orders, self.l_weight) for e in range(nel)]
        else:
            per_element = self._functions_from_spec([_plain_function(f) for f in functions])
        self.functions: list[list[BFunction]] = per_element

        rank1_n = [f.ns[0] for fs in per_element for f in fs if f.rank == 1]
        high = [f for fs in per_element for f in fs if f.rank > 1]
        spec_nradbase = self.nradmax_by_orders[:1] if functions is None else []
        self.nradbase = int(nradbase) if nradbase is not None else max(rank1_n + spec_nradbase + [1])
        self.nradmax = int(nradmax) if nradmax is not None else max([n for f in high for n in f.ns] + [1])
        self.lmax = int(lmax) if lmax is not None else max([l for f in high for l in f.ls] + [0])
        if rank1_n and max(rank1_n) > self.nradbase:
            raise ValueError(f"ACE: rank-1 functions use n up to {max(rank1_n)} > nradbase={self.nradbase}")
        if high and (max(n for f in high for n in f.ns) > self.nradmax or max(l for f in high for l in f.ls) > self.lmax):
            raise ValueError(f"ACE: functions exceed nradmax={self.nradmax} or lmax={self.lmax}")

        self.radial_basis = _pair_table(radial_basis, nel, "radial_basis")
        self.pair_settings = {name: _pair_table(value, nel, name) for name, value in
                              (("radial_parameters", radial_parameters), ("rcut", rcut), ("dcut", dcut),
                               ("r_in", r_in), ("delta_in", delta_in))}
        t = {k: torch.tensor(v, dtype=torch.float64) for k, v in self.pair_settings.items()}
        self.radial = RadialBasis(self.nradbase, self.radial_basis, t["radial_parameters"], t["rcut"], t["dcut"],
                                  t["r_in"], t["delta_in"])

        crad = torch.zeros(nel, nel, self.nradmax, self.lmax + 1, self.nradbase, dtype=torch.float64)
        for n in range(min(self.nradmax, self.nradbase)):
            crad[:, :, n, :, n] = 1.0
        self.trainable_radial = bool(trainable_radial)
        if self.trainable_radial:
            self.crad = nn.Parameter(crad)
        else:
            self.register_buffer("crad", crad)

        nlm = (self.lmax + 1) ** 2
        l_of_lm = torch.tensor([l for l in range(self.lmax + 1) for _ in range(2 * l + 1)], dtype=torch.int64)
        self.register_buffer("l_of_lm", l_of_lm)
        self._num_descriptors = max(len(fs) for fs in per_element)
        self._ranks: list[list[int]] = []  # per element: ranks ≥ 2 present
        self._levels: list[list[int]] = []  # per element: product-tree levels present
        for e, fs in enumerate(per_element):
            rank1 = [(c, f.mus[0] * self.nradbase + f.ns[0] - 1) for c, f in enumerate(fs) if f.rank == 1]
            self.register_buffer(f"rank1_{e}_column", torch.tensor([c for c, _ in rank1], dtype=torch.int64))
            self.register_buffer(f"rank1_{e}_index", torch.tensor([i for _, i in rank1], dtype=torch.int64))
            # an explicit coupling of a rank-1 function is one number: B = c·A1 (generated ones have c = 1)
            scale = [sum(c for _, c in f.coupling) if f.coupling is not None else 1.0 for f in fs if f.rank == 1]
            self.register_buffer(f"rank1_{e}_coefficient", torch.tensor(scale, dtype=torch.float64)[:, None],
                                 persistent=False)
            tables = coupling_tables(fs, self.nradmax, self.lmax)
            tree = product_tree(tables)
            for k in tree.left:
                self.register_buffer(f"tree_{e}_{k}_left", torch.as_tensor(tree.left[k]))
                self.register_buffer(f"tree_{e}_{k}_right", torch.as_tensor(tree.right[k]))
            self._levels.append(sorted(tree.left))
            for rank, table in tables.items():
                self.register_buffer(f"table_{e}_{rank}_node", torch.as_tensor(tree.node[rank]))
                self.register_buffer(f"table_{e}_{rank}_coefficient", torch.as_tensor(table.coefficient)[:, None])
                self.register_buffer(f"table_{e}_{rank}_column", torch.as_tensor(table.column))
            self._ranks.append(sorted(tables))
        self._a_width = nel * self.nradmax * nlm
        self._learned_cutoffs(max_cutoff, rcut_min)

    def _learned_cutoffs(self, max_cutoff: float | None, rcut_min: float | None) -> None:
        """The θ of learned cutoffs (with ``"rcut"`` in ``trainable``) and their bounds."""
        rcut0 = self.radial.rcut.clone()
        self.max_cutoff = float(max_cutoff) if max_cutoff is not None else 1.05 * float(rcut0.max())
        floor = max(float(self.radial.r_in.max()), float(self.radial.dcut.max()))
        lo = max(0.5 * self.max_cutoff if rcut_min is None else float(rcut_min), floor)
        self.rcut_bounds = (lo, self.max_cutoff)
        if "rcut" in self.trainable:
            self.rcut_raw = nn.Parameter(bounded_raw(rcut0, lo, self.max_cutoff, "ACE rcut"))
            self.register_state_dict_post_hook(_save_current_rcut)
        elif self.trainable and float(rcut0.max()) > self.max_cutoff:
            raise ValueError(f"ACE: cutoff {float(rcut0.max())} exceeds max_cutoff {self.max_cutoff}")

    def current_rcut(self) -> torch.Tensor:
        """(nelements, nelements) cutoffs, Å: the learned ones (differentiable) or the fixed table."""
        if "rcut" not in self.trainable:
            return self.radial.rcut
        return bounded(self.rcut_raw, *self.rcut_bounds)

    def hyperparameters(self) -> dict[str, torch.Tensor]:
        """Current learned cutoffs ``rcut`` (nelements, nelements), Å (differentiable), when they are
        trainable; ``crad`` (many values) is left out."""
        return {"rcut": self.current_rcut()} if "rcut" in self.trainable else {}

    def trainable_settings(self) -> dict[str, Any]:
        if not self.trainable:
            return {}
        return {"trainable": list(self.trainable), "max_cutoff": self.max_cutoff, "rcut_min": self.rcut_bounds[0]}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if f"{prefix}rcut_raw" in missing_keys:  # θ travels as the value radial.rcut
            missing_keys.remove(f"{prefix}rcut_raw")

    def _functions_from_spec(self, specs: list[dict[str, Any]]) -> list[list[BFunction]]:
        index = {e: k for k, e in enumerate(self.elements)}
        per_element: list[list[BFunction]] = [[] for _ in self.elements]
        for spec in specs:
            unknown = [e for e in spec["elements"] if e not in index]
            if unknown:
                raise ValueError(f"ACE: function {spec} uses element(s) {unknown} not in {self.elements}")
            mus = tuple(index[e] for e in spec["elements"][1:])
            if not (len(mus) == len(spec["ns"]) == len(spec["ls"])):
                raise ValueError(f"ACE: function {spec}: elements (after the central one), ns and ls differ in length")
            coupling = None
            if "ms_combs" in spec:
                coupling = tuple((tuple(ms), c) for ms, c in zip(spec["ms_combs"], spec["ctildes"]))
            per_element[index[spec["elements"][0]]].append(
                BFunction(mus, tuple(spec["ns"]), tuple(spec["ls"]), tuple(spec.get("LS", ())), coupling))
        if any(not fs for fs in per_element):
            missing = [e for e, fs in zip(self.elements, per_element) if not fs]
            raise ValueError(f"ACE: no functions for central element(s) {missing}")
        return per_element

    @property
    def num_descriptors(self) -> int:
        return self._num_descriptors

    @property
    def cutoff(self) -> float:
        return self.max_cutoff if self.trainable else float(self.radial.rcut.max())

    def pair_cutoffs(self) -> torch.Tensor:
        return self.current_rcut().detach().clone()

    def function_degrees(self) -> torch.Tensor:
        """(nelements, num_descriptors) total degree of each column (:func:`~.ace_basis.function_degree`
        with this basis' ``l_weight``; 0 for padding columns of elements with fewer functions), the
        weights of a smoothness prior."""
        out = torch.zeros(len(self.functions), self._num_descriptors, dtype=torch.float64)
        for e, fs in enumerate(self.functions):
            out[e, :len(fs)] = torch.tensor([function_degree(f, self.l_weight) for f in fs], dtype=torch.float64)
        return out

    def function_specifications(self) -> list[dict[str, Any]]:
        """All B functions as PACE-style dicts (``elements`` with the central one first, ``ns``, ``ls``,
        ``LS``, and ``ms_combs``/``ctildes`` for functions with an explicit coupling)."""
        out = []
        for e, fs in enumerate(self.functions):
            for f in fs:
                spec = {"elements": [self.elements[e]] + [self.elements[m] for m in f.mus], "ns": list(f.ns),
                        "ls": list(f.ls), "LS": list(f.LS)}
                if f.coupling is not None:
                    spec["ms_combs"] = [list(ms) for ms, _ in f.coupling]
                    spec["ctildes"] = [c for _, c in f.coupling]
                out.append(spec)
        return out

    @classmethod
    def check_config(cls, settings: dict[str, Any]) -> None:
        if isinstance(settings.get("rcut"), (int, float)):
            at_least("descriptor.rcut", settings["rcut"], 0.0, strict=True)
        for key in ("dcut", "r_in", "delta_in"):
            value = settings.get(key)
            if isinstance(value, (int, float)):
                at_least(f"descriptor.{key}", value, 0.0)
        for key in ("nradmax_by_orders", "lmax_by_orders"):
            for value in settings.get(key) or []:
                if not isinstance(value, int) or value < 0:
                    raise ConfigError(f"Configuration error: 'descriptor.{key}' is {settings[key]!r}; it must be a "
                                      "list of integers of at least 0 (one per rank).")

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "elements": list(self.elements), "nradmax_by_orders": list(self.nradmax_by_orders),
            "lmax_by_orders": list(self.lmax_by_orders), "max_degree_by_orders": self.max_degree_by_orders,
            "l_weight": self.l_weight, "radial_basis": _compact(self.radial_basis),
            **{k: _compact(v) for k, v in self.pair_settings.items()},
            "nradbase": self.nradbase, "nradmax": self.nradmax, "lmax": self.lmax,
            "trainable_radial": self.trainable_radial,
            # the explicit list makes the rebuild independent of the basis generator's version
            "functions": self.function_specifications(),
        }
        if "rcut" in self.trainable:
            rcut = self.current_rcut().detach().cpu().to(torch.float64)
            out["rcut"] = _compact([[float(v) for v in row] for row in rcut])
        return out

    @torch.no_grad()
    def set_radial_coefficients(self, crad: torch.Tensor) -> None:
        """Set ``crad`` (nelements, nelements, nradmax, lmax+1, nradbase), indexed [e_i, e_j, n-1, l, k]."""
        crad = torch.as_tensor(crad, dtype=self.crad.dtype, device=self.crad.device)
        if crad.shape != self.crad.shape:
            raise ValueError(f"ACE: crad has shape {tuple(crad.shape)}, expected {tuple(self.crad.shape)}")
        self.crad.copy_(crad)

    def atomic_base(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                    num_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Atomic bases: A1 (num_atoms, nelements·nradbase) and real A (num_atoms, nelements·nradmax·(lmax+1)²).

        Column of ``A1[μ, n-1]`` is ``μ·nradbase + n-1``; of ``A[μ, n-1, l, m]`` it is
        ``(μ·nradmax + n-1)·(lmax+1)² + l² + l + m`` (real harmonics, see :mod:`.spherical_harmonics`).
        """
        nel = len(self.elements)
        si, sj = species[pair_i], species[pair_j]
        g, values = self._pair_features(rij, si, sj)
        target = pair_i * nel + sj
        A1 = _scatter_rows(g, target, num_atoms * nel).reshape(num_atoms, nel * g.shape[1])
        if values is None:
            return A1, rij.new_zeros((num_atoms, self._a_width))
        A = _scatter_rows(values, target, num_atoms * nel).reshape(num_atoms, nel * values.shape[1])
        return A1, A

    def _pair_features(self, rij: torch.Tensor, si: torch.Tensor, sj: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One pair's terms of the atomic bases: g (npairs, nradbase) and R_nl·Y_lm (npairs, nradmax·(lmax+1)²),
        the latter None when the basis has no rank ≥ 2. They add to the central atom's columns of the
        neighbour's element block."""
        nel = len(self.elements)
        r = torch.linalg.vector_norm(rij, dim=1)
        g = self.radial(r, si, sj, self.current_rcut())
        if not any(self._ranks):
            return g, None
        nlm = (self.lmax + 1) ** 2
        width = self.nradmax * (self.lmax + 1)
        crad = self.crad.to(rij.dtype).reshape(nel * nel, width, self.nradbase)
        if nel == 1:
            R = g @ crad[0].T
        else:
            R_all = torch.einsum("pk,twk->ptw", g, crad)
            R = torch.gather(R_all, 1, (si * nel + sj)[:, None, None].expand(-1, 1, width)).squeeze(1)
        R = R.reshape(-1, self.nradmax, self.lmax + 1)[:, :, self.l_of_lm]
        unit = rij / torch.where(r > 0, r, torch.ones_like(r))[:, None]
        Y = real_spherical_harmonics(unit, self.lmax) * PACE_YLM_SCALE
        return g, (R * Y[:, None, :]).reshape(-1, self.nradmax * nlm)

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        A1, A = self.atomic_base(rij, pair_i, pair_j, species, num_atoms)
        return self._b_from_base(A1, A, species[:num_atoms])

    def _b_from_base(self, A1: torch.Tensor, A: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """B (natoms, K) from the atomic bases A1 (natoms, nel·nradbase), A (natoms, nel·nradmax·(lmax+1)²)
        and the central atoms' species (natoms,)."""
        nel, num_atoms = len(self.elements), A1.shape[0]
        dtype, device = A1.dtype, A1.device
        # descriptor-major layout: gathers and scatters act on contiguous rows of (columns, atoms)
        A1t, At = A1.T.contiguous(), A.T.contiguous()
        out = torch.zeros((self._num_descriptors, num_atoms), dtype=dtype, device=device)
        for e in range(nel):
            rows = None if nel == 1 else torch.nonzero(centers == e).squeeze(1)
            A1e, Ae = (A1t, At) if rows is None else (A1t[:, rows], At[:, rows])
            Be = torch.zeros((self._num_descriptors, A1e.shape[1]), dtype=dtype, device=device)
            rank1 = A1e.index_select(0, getattr(self, f"rank1_{e}_index")) * getattr(self, f"rank1_{e}_coefficient").to(dtype)
            Be = Be.index_add(0, getattr(self, f"rank1_{e}_column"), rank1)
            level = self._tree_levels(e, Ae)
            for k in self._ranks[e]:
                terms = level[k].index_select(0, getattr(self, f"table_{e}_{k}_node"))
                coefficient = getattr(self, f"table_{e}_{k}_coefficient").to(dtype)
                Be = Be.index_add(0, getattr(self, f"table_{e}_{k}_column"), terms * coefficient)
            out = Be if rows is None else out.index_copy(1, rows, Be)
        return out.T

    def _tree_levels(self, e: int, Ae: torch.Tensor) -> dict[int, torch.Tensor]:
        """The product-tree nodes of central element ``e``: level k (nodes_k, n) from level 1 = Ae
        (nel·nradmax·(lmax+1)², n), descriptor-major (one column per atom or pair)."""
        level = {1: Ae}
        for k in self._levels[e]:
            level[k] = (level[k // 2].index_select(0, getattr(self, f"tree_{e}_{k}_left")) *
                        level[k - k // 2].index_select(0, getattr(self, f"tree_{e}_{k}_right")))
        return level

    def _b_tangent(self, e: int, level: dict[int, torch.Tensor], tangent1: torch.Tensor,
                   tangent: torch.Tensor) -> torch.Tensor:
        """(K, n, 3) derivatives of the B functions of central element ``e`` along the tangents of A1
        (nel·nradbase, n, 3) and A (nel·nradmax·(lmax+1)², n, 3), at the product-tree nodes ``level``
        (:meth:`_tree_levels`, level k (nodes_k, n)): the product rule, node by node."""
        out = tangent1.new_zeros((self._num_descriptors,) + tuple(tangent1.shape[1:]))
        coefficient1 = getattr(self, f"rank1_{e}_coefficient").to(tangent1.dtype)[:, :, None]
        out.index_add_(0, getattr(self, f"rank1_{e}_column"),
                       tangent1.index_select(0, getattr(self, f"rank1_{e}_index")) * coefficient1)
        slope = {1: tangent}
        for k in self._levels[e]:
            left, right = getattr(self, f"tree_{e}_{k}_left"), getattr(self, f"tree_{e}_{k}_right")
            a, b = k // 2, k - k // 2
            slope[k] = torch.addcmul(slope[a].index_select(0, left) * level[b].index_select(0, right)[:, :, None],
                                     level[a].index_select(0, left)[:, :, None], slope[b].index_select(0, right))
            if k in self._ranks[e]:
                coefficient = getattr(self, f"table_{e}_{k}_coefficient").to(tangent.dtype)[:, :, None]
                out.index_add_(0, getattr(self, f"table_{e}_{k}_column"),
                               slope[k].index_select(0, getattr(self, f"table_{e}_{k}_node")) * coefficient)
        return out

    @torch.no_grad()
    def pair_jacobian(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                      num_atoms: int, pair_chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptors B (num_atoms, K) and their per-pair Jacobian dB (npairs, 3, K), ``dB[p, :, k] =
        ∂B_k(pair_i[p]) / ∂rij[p]``, in forward mode through the atomic bases.

        A pair enters B only through its own terms of A: ``∂B_i/∂r_p = ∂B_i/∂A_i · ∂A_p/∂r_p``. For each
        pair, the three tangents ``∂A_p/∂r_p`` (forward mode over the pair's terms, nonzero only in the
        neighbour's element block) go through the product tree of its central atom (:meth:`_b_tangent`),
        ``pair_chunk`` pairs at a time. The cost grows with the number of pairs and tree nodes, not with K.
        """
        nel, num_atoms = len(self.elements), int(num_atoms)
        centers = species[:num_atoms]
        si, sj = species[pair_i], species[pair_j]
        A1, A = self.atomic_base(rij, pair_i, pair_j, species, num_atoms)
        B = self._b_from_base(A1, A, centers)
        nb, nv = A1.shape[1] // nel, A.shape[1] // nel
        At = A.T.contiguous()
        dB = rij.new_zeros((rij.shape[0], 3, B.shape[1]))
        for e in range(nel):
            atoms = torch.nonzero(centers == e).squeeze(1)
            local = torch.full((num_atoms,), -1, dtype=torch.int64, device=rij.device)
            local[atoms] = torch.arange(atoms.shape[0], device=rij.device)
            level = self._tree_levels(e, At.index_select(1, atoms))
            pairs = torch.nonzero(si == e).squeeze(1)
            slopes = self._pair_features_jacobian(rij[pairs], si[pairs], sj[pairs])          # (pairs, nb + nv, 3)
            for start in range(0, pairs.shape[0], pair_chunk):
                chunk = pairs[start:start + pair_chunk]
                centre, neighbour, n = local[pair_i[chunk]], sj[chunk], chunk.shape[0]
                dphi = slopes[start:start + n]
                rows = torch.arange(n, device=rij.device)
                tangent1 = rij.new_zeros((n, nel, nb, 3))
                tangent1[rows, neighbour] = dphi[:, :nb]
                tangent = rij.new_zeros((n, nel, nv, 3))
                if any(self._ranks):  # else A is zero and has no per-pair terms
                    tangent[rows, neighbour] = dphi[:, nb:]
                values = {k: v.index_select(1, centre) for k, v in level.items()}
                out = self._b_tangent(e, values, tangent1.permute(1, 2, 0, 3).reshape(nel * nb, n, 3),
                                      tangent.permute(1, 2, 0, 3).reshape(nel * nv, n, 3))
                dB[chunk] = out.permute(1, 2, 0)
        return B, dB

    def _pair_features_jacobian(self, rij: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> torch.Tensor:
        """(npairs, width, 3) derivatives of the per-pair terms ``[g, R·Y]`` of :meth:`_pair_features` by
        ``rij``, three forward-mode passes."""
        unit = torch.eye(3, dtype=rij.dtype, device=rij.device)
        tangents = []
        for d in range(3):
            with forward_ad.dual_level():
                g, values = self._pair_features(forward_ad.make_dual(rij, unit[d].expand_as(rij).contiguous()), si, sj)
                phi = g if values is None else torch.cat([g, values], dim=1)
                tangents.append(forward_ad.unpack_dual(phi).tangent)
        return torch.stack(tangents, dim=2)

    @classmethod
    def from_pyace(cls, basis: Any, trainable_radial: bool = False) -> ACE:
        """The descriptor of a pyace/PACE B-basis: a ``.yaml`` potential path, ``BBasisConfiguration``
        or ``ACEBBasisSet`` (needs ``pyace``). Columns follow pyace's projections; ``crad`` is copied."""
        bbasis = pyace_bbasis(basis)
        rf = bbasis.radial_functions
        elements = list(bbasis.elements_name)
        nel = len(elements)
        def table(x: Any) -> list[list[float]]:
            return [[float(v) for v in row] for row in x]

        kind = str(rf.inner_cutoff_type)
        try:
            inner = [[pace_inner_cutoff(kind, r, d) for r, d in zip(rows, drows)]
                     for rows, drows in zip(table(rf.cut_in), table(rf.dcut_in))]
        except ValueError as exc:
            raise ValueError(f"ACE.from_pyace: {exc}") from None

        functions = []
        for e in range(nel):
            for f in list(bbasis.basis_rank1[e]) + list(bbasis.basis[e]):
                functions.append({"elements": [elements[e]] + [elements[m] for m in f.mus], "ns": list(f.ns),
                                  "ls": list(f.ls), "LS": list(f.LS)})
        ace = cls(elements, radial_basis=[[str(v) for v in row] for row in rf.radbasenameij],
                  radial_parameters=table(rf.lamb), rcut=table(rf.cut), dcut=table(rf.dcut),
                  r_in=[[r for r, _ in row] for row in inner], delta_in=[[d for _, d in row] for row in inner],
                  nradbase=int(bbasis.nradbase), nradmax=int(bbasis.nradmax), lmax=int(bbasis.lmax),
                  functions=functions, trainable_radial=trainable_radial)
        crad = np.array(rf.crad, dtype=np.float64).reshape(tuple(ace.crad.shape))
        ace.set_radial_coefficients(torch.as_tensor(crad))
        return ace


def _scatter_rows(values: torch.Tensor, target: torch.Tensor, num_rows: int) -> torch.Tensor:
    """(num_rows, W) sums of the rows of ``values`` (n, W) into rows ``target`` (n,).

    ``index_put`` with accumulation: on CPU the row-wise 2-D ``index_add`` launches one kernel per
    source row, which is several times slower for the ~10⁵ pairs of a neighbour list.
    """
    out = torch.zeros((num_rows, values.shape[1]), dtype=values.dtype, device=values.device)
    return out.index_put((target,), values, accumulate=True)


LINEAR_EMBEDDINGS = ("FinnisSinclair", "FinnisSinclairShiftedScaled")
"""PACE embeddings that are F(ρ) = ρ with ``fs_parameters: [1, 1]`` and one density."""


def pyace_linear_coefficients(basis: Any, descriptor: ACE) -> torch.Tensor:
    """(nelements, 1 + K) ``[0, c_1 … c_K]`` linear coefficients of a pyace basis, in the column order of
    ``descriptor`` (built by :meth:`ACE.from_pyace` from the same basis).

    Only a linear PACE potential is a linear model on the B functions: one density with a linear
    embedding (``ndensity: 1``, ``FinnisSinclair``/``FinnisSinclairShiftedScaled`` with ``fs_parameters:
    [1, 1]``) and no core repulsion; anything else raises ``ValueError`` (its energy is not c·B).
    """
    bbasis = pyace_bbasis(basis)
    _require_linear_embedding(bbasis)
    out = torch.zeros(len(descriptor.elements), 1 + descriptor.num_descriptors, dtype=torch.float64)
    for e in range(len(descriptor.elements)):
        fs = list(bbasis.basis_rank1[e]) + list(bbasis.basis[e])
        out[e, 1:1 + len(fs)] = torch.tensor([float(f.coeffs[0]) for f in fs], dtype=torch.float64)
    return out


def _require_linear_embedding(bbasis: Any) -> None:
    """Raise ``ValueError`` unless every element of the pyace basis has PACE's linear embedding."""
    for block in bbasis.to_BBasisConfiguration().funcspecs_blocks:
        if block.number_of_species != 1:
            continue
        element = block.elements_vec[0]
        fs = [float(v) for v in block.fs_parameters]
        problems = []
        if block.ndensityi != 1:
            problems.append(f"ndensity {block.ndensityi}")
        if block.npoti not in LINEAR_EMBEDDINGS or fs != [1.0, 1.0]:
            problems.append(f"embedding {block.npoti} with fs_parameters {fs}")
        if float(block.core_rep_parameters[0]) != 0.0:
            problems.append(f"core repulsion {list(block.core_rep_parameters)}")
        if problems:
            raise ValueError(f"the PACE potential of {element} is not linear in its B functions "
                             f"({', '.join(problems)}): its energy is not one coefficient vector times B, so "
                             "pyace_linear_coefficients would give a different potential; only ndensity 1 "
                             f"with {' or '.join(LINEAR_EMBEDDINGS)} and fs_parameters [1, 1] and no core "
                             "repulsion is read as a linear model")


def pyace_bbasis(basis: Any) -> Any:
    """pyace's ``ACEBBasisSet`` of a B-basis ``.yaml`` path, ``BBasisConfiguration`` or ``ACEBBasisSet`` (needs
    ``pyace``); ``FileNotFoundError``/``ValueError``/``TypeError`` for a missing file, another suffix or type."""
    try:
        from pyace import ACEBBasisSet, BBasisConfiguration
    except ImportError as exc:  # pragma: no cover - pyace is an optional dependency
        raise ImportError("reading a PACE B-basis (ACE.from_pyace, read_pace of a .yaml) needs the 'pyace' package "
                          "(python-ace); C-tilde .yace files are read without it") from exc
    if isinstance(basis, (str, Path)):
        path = Path(basis)
        if not path.is_file():
            raise FileNotFoundError(f"no PACE basis file at {path}")
        if path.suffix.lower() not in (".yaml", ".yml"):
            raise ValueError(f"{path}: ACE.from_pyace reads PACE B-basis potentials (.yaml); {path.suffix} files "
                             "(C-tilde .yace/.ace) hold no B functions")
        return ACEBBasisSet(str(path))
    if isinstance(basis, BBasisConfiguration):
        return ACEBBasisSet(basis)
    if isinstance(basis, ACEBBasisSet):
        return basis
    raise TypeError(f"expected a .yaml path, BBasisConfiguration or ACEBBasisSet, got {type(basis).__name__}")


def _plain_function(spec: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in ("elements", "ns", "ls") if k not in spec]
    if missing:
        raise ValueError(f"ACE: function specification {spec!r} lacks {missing}")
    out: dict[str, Any] = {"elements": [str(e) for e in spec["elements"]], "ns": [int(n) for n in spec["ns"]],
           "ls": [int(l) for l in spec["ls"]], "LS": [int(L) for L in spec.get("LS", [])]}
    if "ms_combs" in spec or "ctildes" in spec:
        ms_combs = [[int(m) for m in ms] for ms in spec.get("ms_combs", [])]
        ctildes = [float(c) for c in spec.get("ctildes", [])]
        if len(ms_combs) != len(ctildes) or any(len(ms) != len(out["ls"]) for ms in ms_combs):
            raise ValueError(f"ACE: function specification {spec!r}: ms_combs must be one m per l for each of "
                             "the ctildes")
        out["ms_combs"], out["ctildes"] = ms_combs, ctildes
    return out
