"""The SNAP bispectrum descriptor (Thompson et al. 2015), identical to LAMMPS ``compute sna/atom``.

Computation (notation of ``src/ML-SNAP/sna.cpp``, see :mod:`.sna_tables`):

1. every pair inside its element-pair cutoff gets its Wigner U-functions ``u_j(r)``: a recursion over
   the levels j that computes only the rows ``mb ≤ j/2`` (the rest follows from the inversion
   symmetry ``u[j-mb, j-ma] = (-1)^(ma-mb) conj(u[mb, ma])``), scaled by the switching function and
   the neighbor's weight;
2. ``U_i = self term + Σ_pairs u`` per atom (per neighbor element with ``chemflag``), still half rows;
3. ``Z_{j1 j2 j} = Σ cg·cg·U_{j1}·U_{j2}`` for the half of Z that B needs, as one flat list of terms
   (terms that differ only by the order of the factors merged);
4. ``B_{j1 j2 j} = Σ w·Re(conj(U_j)·Z_{j1 j2 j})``, minus the isolated-atom value with ``bzeroflag``.

Two implementations share these tables:

* the fast path (:class:`_BispectrumFunction`), used for descriptors, energies and forces: atoms in
  chunks (workspace buffers reused so large intermediates stay in cache), an explicit
  vector-Jacobian product for steps 3–4, and for steps 1–2 the identity ``∂u_j = u_j·ρ_j(M⁻¹∂M)``
  (ρ_j: the Lie-algebra representation, three tridiagonal matrices per level), which reduces the
  per-pair gradient to four inner products and a backward pass through ``a(r), b(r), w(r)`` — no
  autograd through the recursion. ``compile_kernels = True`` runs the Z kernels through
  ``torch.compile`` (fused gather-multiply-scatter, several times faster on CPU);
* the reference path (:meth:`Bispectrum.reference_forward`): plain differentiable (complex) torch ops.
  When a backward pass must itself be differentiable (``create_graph=True``, e.g. training on
  forces), the fast path's backward recomputes through the reference path, so double backward works.

:meth:`Bispectrum.pair_jacobian` gives B and the per-pair Jacobian ∂B_i/∂r_ij in one pass for the
least-squares fits: through LAMMPS' own ``SNA`` class when the project's LAMMPS is built
(:mod:`.sna_backend`, ``compute snap``'s speed), else in torch (∂B/∂U from Z lists as LAMMPS'
``compute_dbidrj``, then the same ρ contraction).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import torch
from torch import nn
from torch.nn import functional as F

from ..config_checks import at_least, per_element_values
from ..errors import ConfigError
from ..registry import register_descriptor
from . import sna_backend
from .base import Descriptor
from .constraints import bounded, bounded_raw, softplus_inverse, trainable_names
from .sna_tables import half_gradient_tables, jacobian_tables, sna_tables, z_terms


@overload
def _floats(values: Sequence[float], n: int, name: str) -> list[float]: ...
@overload
def _floats(values: Sequence[float] | None, n: int, name: str) -> list[float] | None: ...
def _floats(values: Sequence[float] | None, n: int, name: str) -> list[float] | None:
    if values is None:
        return None
    out = [float(v) for v in values]
    if len(out) != n:
        raise ValueError(f"{name} needs one value per element ({n}), got {len(out)}")
    return out


def _z_kernel(ur1, ui1, ur2, ui2, u1, u2, tz, coeff, nz: int):
    """Z entries of one element pair: ``Z[z] = Σ_terms c·U1[u1]·U2[u2]`` (fused when compiled)."""
    ar, ai = ur1.index_select(0, u1), ui1.index_select(0, u1)
    br, bi = ur2.index_select(0, u2), ui2.index_select(0, u2)
    c = coeff[:, None]
    zr = torch.zeros((nz, ur1.shape[1]), dtype=ur1.dtype, device=ur1.device).index_add(0, tz, (ar * br - ai * bi) * c)
    zi = torch.zeros((nz, ur1.shape[1]), dtype=ur1.dtype, device=ur1.device).index_add(0, tz, (ar * bi + ai * br) * c)
    return zr, zi


def _z_vjp_kernel(ur1, ui1, ur2, ui2, gzr, gzi, u1, u2, tz, coeff):
    """Gradients w.r.t. U1 and U2 of ``Σ Re(conj(gZ)·Z)`` for the Z of :func:`_z_kernel`."""
    c = coeff[:, None]
    gr, gi = gzr.index_select(0, tz) * c, gzi.index_select(0, tz) * c
    ar, ai = ur1.index_select(0, u1), ui1.index_select(0, u1)
    br, bi = ur2.index_select(0, u2), ui2.index_select(0, u2)
    g1r = torch.zeros_like(ur1).index_add(0, u1, gr * br + gi * bi)
    g1i = torch.zeros_like(ui1).index_add(0, u1, gi * br - gr * bi)
    g2r = torch.zeros_like(ur2).index_add(0, u2, gr * ar + gi * ai)
    g2i = torch.zeros_like(ui2).index_add(0, u2, gi * ar - gr * ai)
    return g1r, g1i, g2r, g2i


_COMPILED: dict[str, Any] = {}


def _compiled(name: str):
    """``torch.compile`` of a kernel (static shapes), created once per process."""
    if name not in _COMPILED:
        kernels: dict[str, Callable[..., Any]] = {"z": _z_kernel, "z_vjp": _z_vjp_kernel}
        fn = kernels[name]
        _COMPILED[name] = torch.compile(fn, dynamic=False)
    return _COMPILED[name]


BISPECTRUM_TRAINABLE = ("wj", "radelem", "rfac0")
"""The hyperparameters a :class:`Bispectrum` can learn (its ``trainable`` keyword)."""


@dataclass
class BispectrumConfig:
    """The training configuration's ``descriptor`` section of a bispectrum (keywords of :class:`Bispectrum`;
    ``radelem``, ``wj``: one value for all elements or one per element; ``options``: extra keywords)."""

    type: str = "bispectrum"
    elements: list | None = None
    twojmax: int = 6
    rcutfac: float = 4.1
    radelem: Any = 0.5
    wj: Any = 1.0
    rfac0: float = 0.99363
    rmin0: float = 0.0
    switchflag: bool = True
    bzeroflag: bool = True
    bnormflag: bool = False
    wselfallflag: bool = False
    chemflag: bool = False
    switchinnerflag: bool = False
    sinner: Any | None = None
    dinner: Any | None = None
    options: dict = field(default_factory=dict)


@register_descriptor("bispectrum")
class Bispectrum(Descriptor):
    """Bispectrum components B_{j1 j2 j} of every atom, in LAMMPS' order and conventions.

    Keywords mirror LAMMPS ``compute sna/atom`` and the ``.snapparam`` file:

    Args:
        elements: element symbols; species index k means ``elements[k]``.
        twojmax: 2·Jmax (band limit).
        rcutfac: cutoff scale; the cutoff of an (i, j) pair is ``rcutfac·(radelem_i + radelem_j)``.
        radelem: per-element radii.
        wj: per-element neighbor weights (a neighbor contributes with the weight of its element).
        rfac0: angular mapping ``θ0 = rfac0·π·(r - rmin0)/(rcut - rmin0)``.
        rmin0: angular mapping (see ``rfac0``), Å.
        switchflag: smooth cosine switching function at the outer cutoff.
        bzeroflag: subtract the bispectrum of an isolated atom.
        bnormflag: divide Z (hence B) by ``j + 1`` (2J+1).
        wselfallflag: self contribution on every element's U (chemflag), not only the atom's own.
        chemflag: explicit multi-element bispectrum, ``nelements³`` blocks of components, block
            ``(e1·n + e2)·n + e3`` as in LAMMPS.
        switchinnerflag: inner switching function; a pair uses the averages of its two elements'
            ``sinner``/``dinner``, as LAMMPS does.
        sinner: per-element inner switching centres, Å.
        dinner: per-element inner switching half-widths, Å.
        trainable: hyperparameters to learn, among ``"wj"``, ``"radelem"``, ``"rfac0"`` (see below).
        max_cutoff: neighbor-list radius, Å, that learned pair cutoffs stay below.
        radelem_min: lower bound of learned radii, Å.

    ``num_descriptors`` is ``nB`` (times ``nelements³`` with chemflag). All tables are buffers, so
    ``.to(device, dtype)`` moves everything; float64 and float32 both work, on CPU and CUDA.

    Learned hyperparameters (keyword ``trainable``, names among ``"wj"``, ``"radelem"``, ``"rfac0"``): each is
    an unconstrained parameter θ (``wj_raw``, ``radelem_raw``, ``rfac0_raw``) mapped to a physical value
    (:mod:`.constraints`): ``wj = softplus(θ)``, ``rfac0 = sigmoid(θ)``, ``radelem = lo + (hi - lo)·sigmoid(θ)``
    with ``hi = max_cutoff / (2·rcutfac)``, so every pair cutoff stays below ``max_cutoff``, the neighbor-list
    radius fixed at construction (``cutoff`` returns it, so neighbor lists built once stay valid).
    ``max_cutoff`` defaults to 1.05 × the starting largest cutoff, ``radelem_min`` (``lo``) to ``hi/2``,
    raised if needed so that the smallest cutoff stays above ``rmin0``. Every computation reads the values
    through one accessor (:meth:`hyperparameter_tables`); ``radelem``, ``wj``, ``rfac0`` and :meth:`settings`
    give the current values, so model files and the LAMMPS exports describe a plain bispectrum with the
    learned values, and the θ are left out of the state dict. Gradients with respect to θ need the
    differentiable reference path (slower): :meth:`forward` takes it while a θ requires grad and grad
    mode is on.
    """

    # buffers registered in __init__ (declared for the type checker; sinner_pair/dinner_pair only with switchinnerflag)
    rcut: torch.Tensor
    wjelem: torch.Tensor
    sinner_pair: torch.Tensor
    dinner_pair: torch.Tensor
    u_half_diag: torch.Tensor
    full_from_half: torch.Tensor
    full_sign_re: torch.Tensor
    full_sign_im: torch.Tensor
    phi_dst: torch.Tensor
    phi_src: torch.Tensor
    phi_coeff_re: torch.Tensor
    phi_coeff_im: torch.Tensor
    term_u1: torch.Tensor
    term_u2: torch.Tensor
    term_z: torch.Tensor
    term_coeff: torch.Tensor
    z_u: torch.Tensor
    z_b: torch.Tensor
    z_weight: torch.Tensor
    bzero: torch.Tensor

    # learned hyperparameters, present for the names in ``trainable``
    wj_raw: nn.Parameter
    radelem_raw: nn.Parameter
    rfac0_raw: nn.Parameter

    config_schema = BispectrumConfig

    def __init__(self, elements: Sequence[str], twojmax: int, rcutfac: float, radelem: Sequence[float],
                 wj: Sequence[float], rfac0: float = 0.99363, rmin0: float = 0.0, switchflag: bool = True,
                 bzeroflag: bool = True, bnormflag: bool = False, wselfallflag: bool = False,
                 chemflag: bool = False, switchinnerflag: bool = False, sinner: Sequence[float] | None = None,
                 dinner: Sequence[float] | None = None, trainable: Sequence[str] | str | None = None,
                 max_cutoff: float | None = None, radelem_min: float | None = None):
        super().__init__()
        self.elements = [str(e) for e in elements]
        ne = len(self.elements)
        if ne == 0:
            raise ValueError("Bispectrum needs at least one element")
        if len(set(self.elements)) != ne:
            raise ValueError(f"duplicate element symbols in {self.elements}")
        if int(twojmax) != twojmax or twojmax < 0:
            raise ValueError(f"twojmax must be a non-negative integer, got {twojmax}")
        self.twojmax = int(twojmax)
        self.rcutfac = float(rcutfac)
        self.trainable = trainable_names(trainable, BISPECTRUM_TRAINABLE, "Bispectrum")
        self._radelem = _floats(radelem, ne, "radelem")
        self._wj = _floats(wj, ne, "wj")
        self._rfac0 = float(rfac0)
        self.rmin0 = float(rmin0)
        self.switchflag = bool(switchflag)
        self.bzeroflag = bool(bzeroflag)
        self.bnormflag = bool(bnormflag)
        self.wselfallflag = bool(wselfallflag)
        self.chemflag = bool(chemflag)
        self.switchinnerflag = bool(switchinnerflag)
        self.sinner = _floats(sinner, ne, "sinner")
        self.dinner = _floats(dinner, ne, "dinner")
        if self.switchinnerflag and (self.sinner is None or self.dinner is None):
            raise ValueError("switchinnerflag needs sinner and dinner (one value per element)")
        if not self.switchinnerflag and (self.sinner is not None or self.dinner is not None):
            raise ValueError("sinner/dinner are given but switchinnerflag is off (LAMMPS rejects this too)")
        if self.rcutfac <= 0 or any(r <= 0 for r in self._radelem):
            raise ValueError("rcutfac and radelem must be positive")
        if not 0 < self._rfac0 <= 1:
            raise ValueError(f"rfac0 must be in (0, 1], got {self._rfac0}")
        if self.rmin0 < 0 or self.rmin0 >= self.rcutfac * 2 * min(self._radelem):
            raise ValueError(f"rmin0 must be in [0, smallest cutoff), got {self.rmin0}")

        tables = sna_tables(self.twojmax)
        self.num_u = tables.num_u
        self.num_u_half = tables.num_u_half
        self.num_b = tables.num_b
        self.num_chem = ne if self.chemflag else 1
        #: atoms per chunk of the fast path (None: chosen from the table size and device)
        self.atoms_per_chunk: int | None = None
        #: pairs per chunk of the fast path's per-pair work (None: chosen automatically)
        self.pairs_per_chunk: int | None = None
        #: the fast path keeps the per-pair U for the backward pass when it takes at most this many bytes
        self.max_saved_bytes: int = 1 << 29
        #: run the Z kernels through ``torch.compile`` (fused, several times faster; the first call on a
        #: new shape compiles for tens of seconds, later processes reuse Inductor's on-disk cache)
        self.compile_kernels: bool = False
        #: :meth:`pair_jacobian` through LAMMPS' own SNA when the project's LAMMPS is built (:mod:`.sna_backend`;
        #: ``False``, or ``MLIAP_TORCH_SNA_JACOBIAN=0``, keeps it in torch)
        self.sna_jacobian: bool = True

        # All tables derive from the settings: non-persistent buffers (moved by .to(), not saved).
        def buf(name: str, value) -> None:
            self.register_buffer(name, value, persistent=False)

        dt = f64 = torch.float64  # tables are exact in float64; ``.to(torch.float32)`` casts them
        rad = torch.tensor(self._radelem, dtype=f64)
        buf("rcut", (self.rcutfac * (rad[:, None] + rad[None, :])).to(dt))
        buf("wjelem", torch.tensor(self._wj, dtype=dt))
        if self.switchinnerflag:
            s = torch.tensor(self.sinner, dtype=f64)
            d = torch.tensor(self.dinner, dtype=f64)
            buf("sinner_pair", (0.5 * (s[:, None] + s[None, :])).to(dt))
            buf("dinner_pair", (0.5 * (d[:, None] + d[None, :])).to(dt))
        for j in range(1, self.twojmax + 1):
            buf(f"rec_a{j}", torch.tensor(tables.rec_a[j - 1], dtype=dt))
            buf(f"rec_b{j}", torch.tensor(tables.rec_b[j - 1], dtype=dt))
            buf(f"mirror{j}", torch.tensor(tables.mirror_sign[j - 1], dtype=dt))
        diag = torch.cat([torch.eye(j + 1, dtype=dt)[: j // 2 + 1].reshape(-1) for j in range(self.twojmax + 1)])
        buf("u_half_diag", diag)
        buf("full_from_half", torch.as_tensor(tables.full_from_half))
        buf("full_sign_re", torch.as_tensor(tables.full_sign_re, dtype=dt))
        buf("full_sign_im", torch.as_tensor(tables.full_sign_im, dtype=dt))
        pdst, psrc, pcoeff = half_gradient_tables(tables)
        buf("phi_dst", torch.as_tensor(pdst))
        buf("phi_src", torch.as_tensor(psrc))
        buf("phi_coeff_re", torch.as_tensor(pcoeff.real.copy(), dtype=dt))
        buf("phi_coeff_im", torch.as_tensor(pcoeff.imag.copy(), dtype=dt))
        zscale = (1.0 / (tables.z_j + 1.0)) if self.bnormflag else (tables.z_j * 0.0 + 1.0)
        u1, u2, coeff, tz = z_terms(tables, merge_swapped=not self.chemflag)
        coeff = coeff * zscale[tz]
        self.num_terms = len(coeff)
        self.num_z = len(tables.z_u)
        buf("term_u1", torch.as_tensor(u1))
        buf("term_u2", torch.as_tensor(u2))
        buf("term_z", torch.as_tensor(tz))
        buf("term_coeff", torch.as_tensor(coeff, dtype=dt))
        buf("z_u", torch.as_tensor(tables.z_u))
        buf("z_b", torch.as_tensor(tables.z_b))
        buf("z_weight", torch.as_tensor(tables.z_weight, dtype=dt))
        bz = torch.as_tensor(tables.triples[:, 2] + 1.0, dtype=dt)
        buf("bzero", torch.ones_like(bz) if self.bnormflag else bz)
        self._learned_parameters(max_cutoff, radelem_min)

    def _learned_parameters(self, max_cutoff: float | None, radelem_min: float | None) -> None:
        """The θ of the ``trainable`` hyperparameters (float64 parameters) and the bounds of ``radelem``."""
        start = float(self.rcut.max())
        self.max_cutoff = float(max_cutoff) if max_cutoff is not None else 1.05 * start
        hi = self.max_cutoff / (2.0 * self.rcutfac)
        lo = 0.5 * hi if radelem_min is None else float(radelem_min)
        if 2.0 * self.rcutfac * lo <= self.rmin0:
            lo = 0.5 * (self.rmin0 / (2.0 * self.rcutfac) + hi)
        self.radelem_bounds = (lo, hi)
        if not self.trainable:
            return
        f64 = torch.float64
        if "wj" in self.trainable:
            self.wj_raw = nn.Parameter(softplus_inverse(torch.tensor(self._wj, dtype=f64)))
        if "radelem" in self.trainable:
            self.radelem_raw = nn.Parameter(bounded_raw(torch.tensor(self._radelem, dtype=f64), lo, hi,
                                                        "Bispectrum radelem"))
        elif start > self.max_cutoff:
            raise ValueError(f"Bispectrum: cutoff {start} exceeds max_cutoff {self.max_cutoff}")
        if "rfac0" in self.trainable:
            self.rfac0_raw = nn.Parameter(bounded_raw(torch.tensor([self._rfac0], dtype=f64), 0.0, 1.0,
                                                      "Bispectrum rfac0"))

    # ------------------------------------------------------------------ hyperparameters
    def hyperparameters(self) -> dict[str, torch.Tensor]:
        """Current learned values (differentiable), for the ``trainable`` names only: ``wj`` (nelements,),
        ``radelem`` (nelements,) Å, ``rfac0`` ()."""
        out: dict[str, torch.Tensor] = {}
        if "wj" in self.trainable:
            out["wj"] = F.softplus(self.wj_raw)
        if "radelem" in self.trainable:
            out["radelem"] = bounded(self.radelem_raw, *self.radelem_bounds)
        if "rfac0" in self.trainable:
            out["rfac0"] = torch.sigmoid(self.rfac0_raw)[0]
        return out

    def hyperparameter_tables(self) -> tuple[torch.Tensor, torch.Tensor, float | torch.Tensor]:
        """What every computation reads: ``rcut`` (nelements, nelements) pair cutoffs, Å, ``wjelem``
        (nelements,) weights and ``rfac0``; the fixed tables, or for learned ones the values of their
        parameters (differentiable with respect to them)."""
        if not self.trainable:
            return self.rcut, self.wjelem, self._rfac0
        h = self.hyperparameters()
        rcut, wjelem, rfac0 = self.rcut, self.wjelem, self._rfac0
        if "radelem" in h:
            rad = h["radelem"].to(rcut.dtype)
            rcut = self.rcutfac * (rad[:, None] + rad[None, :])
        if "wj" in h:
            wjelem = h["wj"].to(wjelem.dtype)
        return rcut, wjelem, h["rfac0"].to(rcut.dtype) if "rfac0" in h else rfac0

    def _needs_hypergradient(self) -> bool:
        return torch.is_grad_enabled() and any(getattr(self, f"{n}_raw").requires_grad for n in self.trainable)

    @property
    def radelem(self) -> list[float]:
        """Per-element radii (the current values when learned)."""
        if "radelem" in self.trainable:
            return [float(v) for v in self.hyperparameters()["radelem"].detach().cpu()]
        return list(self._radelem)

    @property
    def wj(self) -> list[float]:
        """Per-element neighbor weights (the current values when learned)."""
        if "wj" in self.trainable:
            return [float(v) for v in self.hyperparameters()["wj"].detach().cpu()]
        return list(self._wj)

    @property
    def rfac0(self) -> float:
        """The angle scale rfac0 (the current value when learned)."""
        if "rfac0" in self.trainable:
            return float(self.hyperparameters()["rfac0"].detach())
        return self._rfac0

    def trainable_settings(self) -> dict[str, Any]:
        if not self.trainable:
            return {}
        return {"trainable": list(self.trainable), "max_cutoff": self.max_cutoff,
                "radelem_min": self.radelem_bounds[0]}

    # the θ travel as values in settings(), not in the state dict (a plain Bispectrum loads it)
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name in self.trainable:
            destination.pop(f"{prefix}{name}_raw", None)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        for name in self.trainable:
            if f"{prefix}{name}_raw" in missing_keys:
                missing_keys.remove(f"{prefix}{name}_raw")

    # ------------------------------------------------------------------ interface
    per_element_keys = ("radelem", "wj")

    @classmethod
    def check_config(cls, settings: dict[str, Any]) -> None:
        if not isinstance(settings["twojmax"], int) or settings["twojmax"] < 0:
            raise ConfigError(f"Configuration error: 'descriptor.twojmax' is {settings['twojmax']!r}; it must be "
                              "an integer of at least 0 (2·Jmax, e.g. 6 or 8).")
        at_least("descriptor.rcutfac", settings["rcutfac"], 0.0, strict=True)
        at_least("descriptor.rmin0", settings["rmin0"], 0.0)
        at_least("descriptor.rfac0", settings["rfac0"], 0.0, strict=True)
        if settings["rfac0"] > 1.0:
            raise ConfigError(f"Configuration error: 'descriptor.rfac0' is {settings['rfac0']}; it must be in "
                              "(0, 1] (LAMMPS' default 0.99363).")
        for value in per_element_values(settings["radelem"]):
            at_least("descriptor.radelem", value, 0.0, strict=True)
        for key in ("sinner", "dinner"):
            for value in per_element_values(settings.get(key)):
                at_least(f"descriptor.{key}", value, 0.0, strict=True, optional=True)

    @property
    def num_descriptors(self) -> int:
        return self.num_b * self.num_chem ** 3

    @property
    def cutoff(self) -> float:
        return self.max_cutoff if self.trainable else float(self.rcut.max())

    def pair_cutoffs(self) -> torch.Tensor:
        with torch.no_grad():
            return self.hyperparameter_tables()[0].clone()

    def settings(self) -> dict[str, Any]:
        return {
            "elements": list(self.elements), "twojmax": self.twojmax, "rcutfac": self.rcutfac,
            "radelem": list(self.radelem), "wj": list(self.wj), "rfac0": self.rfac0, "rmin0": self.rmin0,
            "switchflag": self.switchflag, "bzeroflag": self.bzeroflag, "bnormflag": self.bnormflag,
            "wselfallflag": self.wselfallflag, "chemflag": self.chemflag,
            "switchinnerflag": self.switchinnerflag,
            "sinner": None if self.sinner is None else list(self.sinner),
            "dinner": None if self.dinner is None else list(self.dinner),
        }

    def extra_repr(self) -> str:
        return (f"elements={self.elements}, twojmax={self.twojmax}, rcutfac={self.rcutfac}, "
                f"num_descriptors={self.num_descriptors}")

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        """(num_atoms, num_descriptors) bispectrum components, computed in the dtype of the module's tables."""
        if self._needs_hypergradient():
            return self.reference_forward(rij, pair_i, pair_j, species, num_atoms)
        if rij.dtype != self.term_coeff.dtype:
            rij = rij.to(self.term_coeff.dtype)
        r, pi, si, sj = self._inside(rij, pair_i, pair_j, species)
        centers = species[: int(num_atoms)]
        if torch.is_grad_enabled() and r.requires_grad:
            return _BispectrumFunction.apply(r, pi, si, sj, centers, int(num_atoms), self)
        with torch.no_grad():
            utot = self._utot_half(r, pi, si, sj, centers, int(num_atoms))
            return self._b_from_utot(utot, centers)[0]

    @torch.no_grad()
    def pair_jacobian(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                      num_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptors and their per-pair Jacobian in one pass (what LAMMPS' ``compute snap`` provides).

        Returns:
            B (num_atoms, K) and dB (npairs, 3, K) with ``dB[p, :, k] = ∂B_k(pair_i[p]) / ∂rij[p]``
            (zero for pairs outside their cutoff). Through LAMMPS' SNA when available (:mod:`.sna_backend`);
            otherwise in torch: without chemflag, ∂B/∂U comes from Z lists as in
            ``SNA::compute_dbidrj`` (one pass) and ``∂u = u·ρ(M⁻¹∂M)`` turns it into dB with one small
            matrix product per atom; with chemflag it falls back to K batched backward passes.
        """
        if rij.dtype != self.term_coeff.dtype:
            rij = rij.to(self.term_coeff.dtype)
        num_atoms = int(num_atoms)
        if self._sna_route(rij):
            keep = self._pairs_inside(rij.detach(), pair_i, pair_j, species)
            return sna_backend.pair_jacobian(self.settings(), rij.detach(), keep, pair_i, pair_j, species, num_atoms)
        if self.chemflag:
            return self._pair_jacobian_autograd(rij, pair_i, pair_j, species, num_atoms)
        nuh, device = self.num_u_half, rij.device
        K = self.num_descriptors
        jt = self._jacobian_tables()
        si_all, sj_all = species[pair_i], species[pair_j]
        keep = self._pairs_inside(rij, pair_i, pair_j, species)
        r, pi, si, sj = rij[keep], pair_i[keep], si_all[keep], sj_all[keep]
        centers = species[:num_atoms]
        utot, upairs = self._utot_half(r, pi, si, sj, centers, num_atoms, keep_u=True)
        b, _ = self._b_from_utot(utot, centers)
        dB = torch.zeros((rij.shape[0], 3, K), dtype=rij.dtype, device=device)
        if r.shape[0] == 0:
            return b, dB
        starts = torch.searchsorted(pi, torch.arange(num_atoms + 1, device=device))
        counts = starts[1:] - starts[:-1]
        slot = torch.arange(r.shape[0], device=device) - starts[pi]
        step = max(1, min(num_atoms, 32 if device.type == "cpu" else 4096))
        nent = jt["num_entries"]
        for a0 in range(0, num_atoms, step):
            n = min(step, num_atoms - a0)
            p0, p1 = int(starts[a0]), int(starts[a0 + n])
            if p1 == p0:
                continue
            if self.compile_kernels:
                u = self._expand(self._padded(utot[a0:a0 + n], step))
                ur, ui = self._parts(u)
                zr, zi = _compiled("z")(ur, ui, ur, ui, jt["u1"], jt["u2"], jt["entry"], jt["coeff"], nent)
                u, z = u[:, :n], torch.complex(zr, zi)[:, :n]
            else:
                u = self._expand(utot[a0:a0 + n])                               # (nu, n) complex
                z = torch.zeros((nent, n), dtype=u.dtype, device=device)
                prod = u.index_select(0, jt["u1"]) * u.index_select(0, jt["u2"]) * jt["coeff"][:, None]
                torch.view_as_real(z).index_add_(0, jt["entry"], torch.view_as_real(prod))
                del prod
            lam = torch.zeros((K * nuh, n), dtype=u.dtype, device=device)       # ∂B_k/∂U_half
            torch.view_as_real(lam).index_add_(0, jt["lam_row"],
                                               torch.view_as_real(z.index_select(0, jt["lam_e"]) * jt["lam_coeff"]))
            lam = torch.view_as_real(lam.view(K, nuh, n).permute(2, 0, 1).contiguous()).reshape(n, K, 2 * nuh)
            sl = slice(p0, p1)
            u_p = upairs[sl] if upairs is not None else self._u_half(r[sl], si[sl], sj[sl])[0]
            v = self._generator_images(u_p)                                     # (p, 4, nuh) complex
            nmax = int(counts[a0:a0 + n].max())
            vpad = torch.zeros((n * nmax, 4, 2 * nuh), dtype=rij.dtype, device=device)
            vpad[(pi[sl] - a0) * nmax + slot[sl]] = torch.view_as_real(v).reshape(p1 - p0, 4, 2 * nuh)
            cc = torch.bmm(lam, vpad.view(n, nmax * 4, 2 * nuh).transpose(1, 2))   # (n, K, nmax·4)
            cc = cc.view(n, K, nmax, 4).permute(0, 2, 1, 3).reshape(n * nmax, K, 4)
            c = cc[(pi[sl] - a0) * nmax + slot[sl]]                              # (p, K, 4)
            dB[keep[sl]] = self._pair_frame_jacobian(r[sl], si[sl], sj[sl], c)
        return b, dB

    def _jacobian_tables(self) -> dict[str, Any]:
        """:func:`jacobian_tables` as tensors on this module's device and dtype (built on first use)."""
        key = (self.term_coeff.device, self.term_coeff.dtype)
        cache = self.__dict__.setdefault("_jac_cache", {})
        if key not in cache:
            t = jacobian_tables(self.twojmax, self.bnormflag)
            dev, dt = key
            cache.clear()
            cache[key] = {
                "u1": torch.as_tensor(t["u1"], device=dev), "u2": torch.as_tensor(t["u2"], device=dev),
                "coeff": torch.as_tensor(t["coeff"], dtype=dt, device=dev),
                "entry": torch.as_tensor(t["entry"], device=dev), "num_entries": t["num_entries"],
                "lam_row": torch.as_tensor(t["lam_k"] * self.num_u_half + t["entry_half"][t["lam_e"]], device=dev),
                "lam_e": torch.as_tensor(t["lam_e"], device=dev),
                "lam_coeff": torch.as_tensor(t["lam_coeff"], dtype=dt, device=dev)[:, None],
            }
        return cache[key]

    def _generator_images(self, u: torch.Tensor) -> torch.Tensor:
        """(p, 4, num_u_half) complex: u and u·ρ_s (s = Z, E1, E2) restricted to the half rows, per pair."""
        nuh = self.num_u_half
        ut = torch.view_as_real(u).permute(1, 2, 0).contiguous()              # (nuh, 2, p)
        src = self.phi_dst % nuh                                              # V_s[e] += conj(c)·u[e']
        dst = (self.phi_dst // nuh) * nuh + self.phi_src
        gr, gi = ut[:, 0].index_select(0, src), ut[:, 1].index_select(0, src)
        cr, ci = self.phi_coeff_re[:, None], -self.phi_coeff_im[:, None]
        out = torch.zeros((4 * nuh, 2, u.shape[0]), dtype=ut.dtype, device=u.device)
        out[:, 0].index_add_(0, dst, gr * cr - gi * ci)
        out[:, 1].index_add_(0, dst, gi * cr + gr * ci)
        return torch.view_as_complex(out.permute(2, 0, 1).contiguous()).view(u.shape[0], 4, nuh)

    def _pairs_inside(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor,
                      species: torch.Tensor) -> torch.Tensor:
        """Indices of the pairs inside their cutoff (and not at zero distance), grouped by central atom."""
        rc = self.hyperparameter_tables()[0][species[pair_i], species[pair_j]]
        r2 = (rij * rij).sum(-1)
        keep = torch.nonzero((r2 < rc * rc) & (r2 > 1e-20)).squeeze(1)
        return keep[torch.argsort(pair_i[keep], stable=True)]

    def _sna_route(self, rij: torch.Tensor) -> bool:
        """True when :meth:`pair_jacobian` runs through LAMMPS' SNA (:mod:`.sna_backend`): float64 on the CPU,
        nothing to differentiate, ``sna_jacobian`` on and the extension available."""
        if not self.sna_jacobian or rij.device.type != "cpu" or rij.dtype != torch.float64:
            return False
        if torch.is_grad_enabled() and (rij.requires_grad or any(p.requires_grad for p in self.parameters())):
            return False
        return sna_backend.available()

    def _pair_jacobian_autograd(self, rij, pair_i, pair_j, species, num_atoms):
        """B and dB by K batched backward passes (chemflag)."""
        K = self.num_descriptors
        with torch.enable_grad():
            r = rij.detach().requires_grad_(True)
            b = self(r, pair_i, pair_j, species, num_atoms)
            total = b.sum(0)
            grads = [torch.autograd.grad(total[k], r, retain_graph=k < K - 1)[0] for k in range(K)]
        return b.detach(), torch.stack(grads, dim=2)

    def _pair_frame_jacobian(self, rij, si, sj, c: torch.Tensor) -> torch.Tensor:
        """(p, 3, K) from the per-pair numbers ``c`` (p, K, 4) of :meth:`_pair_grad`, one column per k."""
        with torch.enable_grad():
            r = rij.detach().requires_grad_(True)
            frame = self._pair_frame(r, si, sj)
            # w does not depend on r without switching (it may still require grad through learned weights)
            jac = torch.stack([torch.autograd.grad(q.sum(), r, retain_graph=True, allow_unused=True,
                                                   materialize_grads=True)[0] if q.requires_grad
                               else torch.zeros_like(r) for q in frame], dim=1)
        a_r, a_i, b_r, b_i, w = (q.detach()[:, None] for q in frame)
        c0, cz, c1, c2 = c.unbind(2)                                          # (p, K)
        cot = torch.stack([w * (-a_i * cz - b_r * c1 - b_i * c2), w * (a_r * cz - b_i * c1 + b_r * c2),
                           w * (b_i * cz + a_r * c1 - a_i * c2), w * (-b_r * cz + a_i * c1 + a_r * c2), c0],
                          dim=2)                                              # (p, K, 5)
        return torch.einsum("pqx,pkq->pxk", jac, cot)

    def reference_forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor,
                          species: torch.Tensor, num_atoms: int) -> torch.Tensor:
        """Same result as :meth:`forward`, computed with plain (complex) differentiable torch ops.

        Slower and memory hungry; differentiable to any order. The fast path uses it for double backward.
        """
        if rij.dtype != self.term_coeff.dtype:
            rij = rij.to(self.term_coeff.dtype)
        r, pi, si, sj = self._inside(rij, pair_i, pair_j, species)
        return self._reference(r, pi, si, sj, species[: int(num_atoms)], int(num_atoms))

    # ------------------------------------------------------------------ per-pair work
    def _inside(self, rij, pair_i, pair_j, species):
        """Pairs strictly inside their element-pair cutoff (and not coincident), as LAMMPS selects them."""
        si = species[pair_i]
        sj = species[pair_j]
        rc = self.hyperparameter_tables()[0][si, sj]
        r2 = (rij * rij).sum(-1)
        keep = torch.nonzero((r2 < rc * rc) & (r2 > 1e-20)).squeeze(1)
        return rij[keep], pair_i[keep], si[keep], sj[keep]

    def _switch(self, r: torch.Tensor, rc: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> torch.Tensor:
        """``SNA::compute_sfac`` for pairs inside their cutoff."""
        if self.switchflag:
            sfac = 0.5 * (torch.cos((r - self.rmin0) * (math.pi / (rc - self.rmin0))) + 1.0)
            if self.rmin0 > 0:
                sfac = torch.where(r <= self.rmin0, torch.ones_like(sfac), sfac)
        else:
            sfac = torch.ones_like(r)
        if self.switchinnerflag:
            sin = self.sinner_pair[si, sj]
            din = self.dinner_pair[si, sj]
            inner = 0.5 * (1.0 - torch.cos(math.pi / 2 + (r - sin) * (math.pi / 2) / din))
            inner = torch.where(r > sin - din, inner, torch.zeros_like(inner))
            sfac = torch.where(r < sin + din, sfac * inner, sfac)
        return sfac

    def _pair_frame(self, rij: torch.Tensor, si: torch.Tensor, sj: torch.Tensor):
        """Cayley–Klein parameters ``a = (z0 - i z)/r0``, ``b = (y - i x)/r0`` and weight ``sfac·wj`` per pair.

        Returns:
            (Re a, Im a, Re b, Im b, weight), each (npairs,).
        """
        x, y, z = rij.unbind(-1)
        rcut, wjelem, rfac0 = self.hyperparameter_tables()
        rc = rcut[si, sj]
        r = torch.sqrt(x * x + y * y + z * z)
        theta0 = (r - self.rmin0) * (rfac0 * math.pi) / (rc - self.rmin0)
        z0 = r / torch.tan(theta0)
        r0inv = 1.0 / torch.sqrt(r * r + z0 * z0)
        weight = self._switch(r, rc, si, sj) * wjelem[sj]
        return z0 * r0inv, -z * r0inv, y * r0inv, -x * r0inv, weight

    def _u_from_frame(self, ar, ai, br, bi) -> torch.Tensor:
        """(npairs, num_u_half) complex: rows ``mb ≤ j//2`` of every level of u (``SNA::compute_uarray``)."""
        npairs = ar.shape[0]
        cdt = torch.complex128 if ar.dtype == torch.float64 else torch.complex64
        # the recursion multiplies by conj(a) and conj(b)
        ca = torch.complex(ar, -ai).view(-1, 1, 1)
        cb = torch.complex(br, -bi).view(-1, 1, 1)
        out = torch.empty((npairs, self.num_u_half), dtype=cdt, device=ar.device)
        out[:, 0] = 1.0
        rows = torch.ones((npairs, 1, 1), dtype=cdt, device=ar.device)   # rows 0..j//2 of level 0
        offset = 1
        for j in range(1, self.twojmax + 1):
            h = j // 2
            ra, rb = getattr(self, f"rec_a{j}"), getattr(self, f"rec_b{j}")
            up = torch.empty((npairs, h + 1, j + 1), dtype=cdt, device=ar.device)
            up[:, :, :j] = (ca * rows) * ra[:, :j]
            up[:, :, j] = 0.0
            up[:, :, 1:] -= (cb * rows) * rb[:, 1:]
            size = (h + 1) * (j + 1)
            out[:, offset:offset + size] = up.view(npairs, size)
            offset += size
            if j % 2 == 1 and j < self.twojmax:  # level j+1 needs row j//2 + 1 as well: mirror of row j//2
                mirror = torch.flip(up[:, -1:, :], dims=(2,)).conj() * getattr(self, f"mirror{j}")
                up = torch.cat([up, mirror], dim=1)
            rows = up
        return out

    @torch.no_grad()
    def _u_from_frame_into(self, ar, ai, br, bi, out: torch.Tensor) -> torch.Tensor:
        """:meth:`_u_from_frame` without autograd, written level by level into ``out`` (npairs, num_u_half)."""
        npairs = ar.shape[0]
        ca = torch.complex(ar, -ai).view(-1, 1, 1)
        cb = torch.complex(br, -bi).view(-1, 1, 1)
        out[:, 0] = 1.0
        rows = torch.ones((npairs, 1, 1), dtype=out.dtype, device=out.device)
        offset = 1
        for j in range(1, self.twojmax + 1):
            h = j // 2
            ra, rb = getattr(self, f"rec_a{j}"), getattr(self, f"rec_b{j}")
            size = (h + 1) * (j + 1)
            up = out[:, offset:offset + size].view(npairs, h + 1, j + 1)
            torch.mul(rows, ca, out=up[:, :, :j]).mul_(ra[:, :j])
            up[:, :, j] = 0.0
            up[:, :, 1:].addcmul_(rows * cb, rb[:, 1:], value=-1.0)
            offset += size
            if j % 2 == 1 and j < self.twojmax:
                mirror = torch.flip(up[:, -1:, :], dims=(2,)).conj() * getattr(self, f"mirror{j}")
                up = torch.cat([up, mirror], dim=1)
            rows = up
        return out

    def _u_half(self, rij: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Half U of each pair (npairs, num_u_half) complex and its weight (npairs,)."""
        ar, ai, br, bi, weight = self._pair_frame(rij, si, sj)
        return self._u_from_frame(ar, ai, br, bi), weight

    def _pair_chunk(self, device: torch.device) -> int:
        if self.pairs_per_chunk is not None:
            return int(self.pairs_per_chunk)
        return 4096 if device.type == "cpu" else 1 << 18

    def _atom_chunk(self, device: torch.device) -> int:
        if self.atoms_per_chunk is not None:
            return int(self.atoms_per_chunk)
        per_atom = self.num_terms * self.num_chem
        if device.type != "cpu":
            return max(1, (1 << 24) // per_atom)      # (terms × atoms) intermediates of ~128 MB
        if self.compile_kernels:
            return 64                                  # fused kernels: no large intermediates
        # eager: a (terms × atoms) float64 intermediate of about 1 MB stays in cache
        return max(8, min(512, (1 << 17) // per_atom))

    def _utot_half(self, rij, pi, si, sj, species, num_atoms, keep_u: bool = False):
        """Half U of every atom, (num_atoms, nchem, num_u_half, 2) real/imag: self term + Σ over its pairs.

        No autograd graph. With ``keep_u`` also returns the per-pair half U (npairs, num_u_half)
        complex, or None when that would exceed :attr:`max_saved_bytes` (backward then recomputes it).
        """
        nc, nuh = self.num_chem, self.num_u_half
        dtype, device = rij.dtype, rij.device
        npairs = rij.shape[0]
        target = pi * nc + sj if self.chemflag else pi
        utot = torch.zeros((num_atoms * nc, 2 * nuh), dtype=dtype, device=device)
        saved = None
        if keep_u and npairs * 2 * nuh * rij.element_size() <= self.max_saved_bytes:
            saved = torch.empty((npairs, nuh), dtype=torch.complex128 if dtype == torch.float64 else torch.complex64,
                                device=device)
        step = self._pair_chunk(device)
        cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
        for p0 in range(0, npairs, step):
            sl = slice(p0, p0 + step)
            ar, ai, br, bi, w = self._pair_frame(rij[sl], si[sl], sj[sl])
            buf = saved[sl] if saved is not None else torch.empty((ar.shape[0], nuh), dtype=cdt, device=device)
            u = self._u_from_frame_into(ar, ai, br, bi, buf)
            utot.index_add_(0, target[sl], torch.view_as_real(u * w[:, None]).reshape(u.shape[0], -1))
        utot = utot.view(num_atoms, nc, nuh, 2)
        if self.chemflag and not self.wselfallflag:
            own = F.one_hot(species, nc).to(dtype)
        else:
            own = torch.ones((num_atoms, nc), dtype=dtype, device=device)
        utot[..., 0] += own[:, :, None] * self.u_half_diag
        return (utot, saved) if keep_u else utot

    def _phi(self, gu: torch.Tensor) -> torch.Tensor:
        """Φ_s = conj(R_s)·Λ for s = identity, Z, E1, E2: (rows, num_u_half, 2) → (rows, 4, num_u_half, 2)."""
        rows, nuh = gu.shape[0], self.num_u_half
        out = torch.empty((rows, 4, nuh, 2), dtype=gu.dtype, device=gu.device)
        cr, ci = self.phi_coeff_re[:, None], self.phi_coeff_im[:, None]
        step = 256 if gu.device.type == "cpu" else max(rows, 1)    # keep temporaries in cache
        for r0 in range(0, rows, step):
            lam = gu[r0:r0 + step].permute(2, 1, 0).contiguous()     # (2, nuh, r): row operations
            lr, li = lam[0].index_select(0, self.phi_src), lam[1].index_select(0, self.phi_src)
            acc = torch.zeros((2, 4 * nuh, lam.shape[2]), dtype=gu.dtype, device=gu.device)
            acc[0].index_add_(0, self.phi_dst, lr * cr - li * ci)
            acc[1].index_add_(0, self.phi_dst, li * cr + lr * ci)
            out[r0:r0 + step] = acc.permute(2, 1, 0).view(-1, 4, nuh, 2)
        return out

    def _pair_grad(self, rij, si, sj, u, phi) -> torch.Tensor:
        """∂L/∂rij of a chunk of pairs from their half U (p, num_u_half) complex and Φ (p, 4, num_u_half, 2).

        ``∂u = u·ρ(M⁻¹∂M)`` turns the gradient into four numbers per pair, ``c_s = Re Σ conj(Φ_s)·u``,
        followed by a backward pass through the pair's frame (a, b, weight) only.
        """
        npairs = u.shape[0]
        c = torch.bmm(phi.reshape(npairs, 4, -1), torch.view_as_real(u).reshape(npairs, -1, 1)).view(npairs, 4)
        c0, cz, c1, c2 = c.unbind(1)
        with torch.enable_grad():
            r = rij.detach().requires_grad_(True)
            ar, ai, br, bi, w = self._pair_frame(r, si, sj)
            a_r, a_i, b_r, b_i, wd = ar.detach(), ai.detach(), br.detach(), bi.detach(), w.detach()
            # dL = w·(θ cz + Re γ c1 + Im γ c2) + c0·dw with θ = Im(a* da + b db*), γ = a* db - b da*
            cot_ar = wd * (-a_i * cz - b_r * c1 - b_i * c2)
            cot_ai = wd * (a_r * cz - b_i * c1 + b_r * c2)
            cot_br = wd * (b_i * cz + a_r * c1 - a_i * c2)
            cot_bi = wd * (-b_r * cz + a_i * c1 + a_r * c2)
            # without switching functions the weight does not depend on r
            terms = [(out, cot) for out, cot in zip((ar, ai, br, bi, w), (cot_ar, cot_ai, cot_br, cot_bi, c0))
                     if out.requires_grad]
            (g,) = torch.autograd.grad([t[0] for t in terms], r, [t[1] for t in terms])
        return g

    # ------------------------------------------------------------------ Z and B, chunks of atoms
    #
    # A chunk holds n atoms. Its U is "features first": (num_u, nc·n) complex, column e·n + a for
    # element block e of atom a. The eager kernels keep their (terms × n) intermediates in a workspace
    # allocated once per call and reused by every chunk (fresh large allocations cost page faults);
    # the compiled kernels (real arithmetic, fused by Inductor) have no such intermediates.

    def _workspace(self, n: int, like: torch.Tensor, backward: bool) -> dict[str, torch.Tensor] | None:
        if self.compile_kernels:
            return None
        nc, nt = self.num_chem, self.num_terms
        cdt = torch.complex128 if like.dtype == torch.float64 else torch.complex64
        new = lambda *shape: torch.empty(shape, dtype=cdt, device=like.device)  # noqa: E731
        return {"a": new(nt, nc * n), "b": new(nt, nc * n), "t": new(nt, n), **({"g": new(nt, n)} if backward else {})}

    def _expand(self, half: torch.Tensor) -> torch.Tensor:
        """Full U (num_u, nc·n) complex of a chunk from its half U (n, nc, num_u_half, 2)."""
        h = half.permute(3, 2, 1, 0).reshape(2, self.num_u_half, -1)
        return torch.complex(h[0].index_select(0, self.full_from_half) * self.full_sign_re[:, None],
                             h[1].index_select(0, self.full_from_half) * self.full_sign_im[:, None])

    def _fold(self, gu: torch.Tensor) -> torch.Tensor:
        """Gradient w.r.t. the half U (2, num_u_half, nc·n) from the gradient w.r.t. the full U (complex)."""
        out = torch.zeros((2, self.num_u_half, gu.shape[1]), dtype=gu.real.dtype, device=gu.device)
        out[0].index_add_(0, self.full_from_half, gu.real * self.full_sign_re[:, None])
        out[1].index_add_(0, self.full_from_half, gu.imag * self.full_sign_im[:, None])
        return out

    @staticmethod
    def _parts(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return u.real.contiguous(), u.imag.contiguous()

    def _zb_chunk(self, u: torch.Tensor, ws) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Z and B of a chunk of n atoms from its U (num_u, nc·n) complex.

        Returns:
            Z: list over element pairs (e1, e2) of (nz, n) complex; B: (nB, nc³·n), columns ``(e1, e2, e3, atom)``.
        """
        nc = self.num_chem
        n = u.shape[1] // nc
        coeff = self.term_coeff[:, None]
        zs = []
        if ws is None:
            ur, ui = self._parts(u)
        else:
            a, b, t = ws["a"], ws["b"], ws["t"]
            torch.index_select(u, 0, self.term_u1, out=a)
            torch.index_select(u, 0, self.term_u2, out=b)
        for e1 in range(nc):
            c1 = slice(e1 * n, (e1 + 1) * n)
            for e2 in range(nc):
                c2 = slice(e2 * n, (e2 + 1) * n)
                if ws is None:
                    zr, zi = _compiled("z")(ur[:, c1], ui[:, c1], ur[:, c2], ui[:, c2], self.term_u1, self.term_u2,
                                            self.term_z, self.term_coeff, self.num_z)
                    z = torch.complex(zr, zi)
                else:
                    torch.mul(a[:, c1], b[:, c2], out=t).mul_(coeff)
                    z = torch.zeros((self.num_z, n), dtype=u.dtype, device=u.device)
                    torch.view_as_real(z).index_add_(0, self.term_z, torch.view_as_real(t))
                zs.append(z)
        uz = u.index_select(0, self.z_u)                              # (nz, nc·n)
        q = torch.empty((self.num_z, nc ** 3 * n), dtype=u.real.dtype, device=u.device)
        for k, z in enumerate(zs):
            for e3 in range(nc):
                c3 = slice(e3 * n, (e3 + 1) * n)
                blk = q[:, (k * nc + e3) * n:(k * nc + e3 + 1) * n]
                torch.mul(z.real, uz.real[:, c3], out=blk).addcmul_(z.imag, uz.imag[:, c3])
        q.mul_(self.z_weight[:, None])
        bl = torch.zeros((self.num_b, q.shape[1]), dtype=q.dtype, device=u.device).index_add_(0, self.z_b, q)
        return zs, bl

    def _zb_vjp_chunk(self, u: torch.Tensor, zs, gb: torch.Tensor, ws) -> torch.Tensor:
        """∂(Σ gb·B)/∂U of a chunk; ``gb`` (nB, nc³·n) → (num_u, nc·n) complex (∂/∂Re + i ∂/∂Im)."""
        nc = self.num_chem
        n = u.shape[1] // nc
        coeff = self.term_coeff[:, None]
        gbz = gb.index_select(0, self.z_b).mul_(self.z_weight[:, None])   # (nz, nc³·n)
        uz = u.index_select(0, self.z_u)
        guz = torch.zeros_like(uz)
        gu = torch.zeros_like(u)
        if ws is None:
            ur, ui = self._parts(u)
        else:
            # the first factor's gradient is G·conj(B), the second's G·conj(A)
            uc = u.conj_physical()
            ac, bc, t, g = ws["a"], ws["b"], ws["t"], ws["g"]
            torch.index_select(uc, 0, self.term_u1, out=ac)
            torch.index_select(uc, 0, self.term_u2, out=bc)
        for k, z in enumerate(zs):
            e1, e2 = divmod(k, nc)
            c1 = slice(e1 * n, (e1 + 1) * n)
            c2 = slice(e2 * n, (e2 + 1) * n)
            gz = torch.zeros_like(z)
            for e3 in range(nc):
                c3 = slice(e3 * n, (e3 + 1) * n)
                gblk = gbz[:, (k * nc + e3) * n:(k * nc + e3 + 1) * n]
                gz += gblk * uz[:, c3]
                guz[:, c3] += gblk * z
            if ws is None:
                g1r, g1i, g2r, g2i = _compiled("z_vjp")(ur[:, c1], ui[:, c1], ur[:, c2], ui[:, c2], gz.real.contiguous(),
                                                        gz.imag.contiguous(), self.term_u1, self.term_u2, self.term_z,
                                                        self.term_coeff)
                gu[:, c1] += torch.complex(g1r, g1i)
                gu[:, c2] += torch.complex(g2r, g2i)
                continue
            torch.index_select(gz, 0, self.term_z, out=g).mul_(coeff)
            torch.view_as_real(gu[:, c1]).index_add_(0, self.term_u1,
                                                     torch.view_as_real(torch.mul(g, bc[:, c2], out=t)))
            torch.view_as_real(gu[:, c2]).index_add_(0, self.term_u2,
                                                     torch.view_as_real(torch.mul(g, ac[:, c1], out=t)))
        torch.view_as_real(gu).index_add_(0, self.z_u, torch.view_as_real(guz))
        return gu

    def _b_from_utot(self, utot: torch.Tensor, species: torch.Tensor, keep_z: bool = False):
        """B (num_atoms, K) from the half U (num_atoms, nc, num_u_half, 2), in chunks of atoms.

        With ``keep_z`` also returns the per-chunk Z lists (for the backward pass).
        """
        natoms, nc = utot.shape[0], self.num_chem
        out = torch.empty((natoms, nc ** 3, self.num_b), dtype=utot.dtype, device=utot.device)
        zchunks = []
        step = min(self._atom_chunk(utot.device), max(natoms, 1))
        compiled = self.compile_kernels
        ws = self._workspace(step, utot, backward=False)
        for a0 in range(0, natoms, step):
            n = min(step, natoms - a0)
            m = step if compiled else n                 # compiled kernels: static shapes, last chunk padded
            w = ws if n == step else self._workspace(n, utot, backward=False)
            zs, b = self._zb_chunk(self._expand(self._padded(utot[a0:a0 + n], m)), w)
            out[a0:a0 + n] = b.view(self.num_b, nc ** 3, m)[:, :, :n].permute(2, 1, 0)
            if keep_z:
                zchunks.append(zs)
        out = out.view(natoms, nc, nc, nc, self.num_b)
        if self.bzeroflag:
            if self.chemflag and not self.wselfallflag:
                oh = F.one_hot(species, nc).to(utot.dtype)
                mask = oh[:, :, None, None] * oh[:, None, :, None] * oh[:, None, None, :]
                out -= mask[..., None] * self.bzero
            else:
                out -= self.bzero
        return out.reshape(natoms, nc ** 3 * self.num_b), zchunks

    def _utot_vjp(self, utot: torch.Tensor, zchunks, grad_b: torch.Tensor) -> torch.Tensor:
        """∂(Σ grad_b·B)/∂U for the half U, (num_atoms, nc, num_u_half, 2)."""
        natoms, nc = utot.shape[0], self.num_chem
        gb_all = grad_b.reshape(natoms, nc ** 3, self.num_b)
        gu = torch.empty_like(utot)
        step = min(self._atom_chunk(utot.device), max(natoms, 1))
        compiled = self.compile_kernels
        ws = self._workspace(step, utot, backward=True)
        for k, a0 in enumerate(range(0, natoms, step)):
            n = min(step, natoms - a0)
            m = step if compiled else n
            w = ws if n == step else self._workspace(n, utot, backward=True)
            u = self._expand(self._padded(utot[a0:a0 + n], m))
            gb = self._padded(gb_all[a0:a0 + n], m).permute(2, 1, 0).reshape(self.num_b, -1)
            g = self._zb_vjp_chunk(u, zchunks[k], gb, w)
            gu[a0:a0 + n] = self._fold(g).view(2, self.num_u_half, nc, m)[..., :n].permute(3, 2, 1, 0)
        return gu

    @staticmethod
    def _padded(t: torch.Tensor, n: int) -> torch.Tensor:
        """``t`` with zero rows appended up to ``n`` rows (static shapes for the compiled kernels)."""
        if t.shape[0] == n:
            return t
        return torch.cat([t, t.new_zeros((n - t.shape[0],) + tuple(t.shape[1:]))])

    # ------------------------------------------------------------------ reference implementation
    def _reference(self, rij, pi, si, sj, species, num_atoms) -> torch.Tensor:
        dtype, device = rij.dtype, rij.device
        nc = self.num_chem
        uh, w = self._u_half(rij, si, sj)
        uh = uh * w[:, None]
        target = pi * nc + sj if self.chemflag else pi
        utot = torch.zeros((num_atoms * nc, self.num_u_half), dtype=uh.dtype, device=device).index_add(0, target, uh)
        utot = utot.reshape(num_atoms, nc, self.num_u_half)
        if self.chemflag and not self.wselfallflag:
            own = F.one_hot(species, nc).to(dtype)
        else:
            own = torch.ones((num_atoms, nc), dtype=dtype, device=device)
        utot = utot + own[:, :, None] * self.u_half_diag
        utot = torch.complex(utot.real[:, :, self.full_from_half] * self.full_sign_re,
                             utot.imag[:, :, self.full_from_half] * self.full_sign_im)   # (N, nc, num_u)
        g1 = utot[:, :, self.term_u1] * self.term_coeff
        g2 = utot[:, :, self.term_u2]
        prod = g1[:, :, None, :] * g2[:, None, :, :]           # (N, e1, e2, T)
        zlist = torch.zeros(prod.shape[:-1] + (self.num_z,), dtype=prod.dtype, device=device)
        zlist = zlist.index_add(-1, self.term_z, prod)
        uz = utot[:, :, self.z_u]                              # (N, e3, nz)
        bz = (uz.real[:, None, None, :, :] * zlist.real[:, :, :, None, :]
              + uz.imag[:, None, None, :, :] * zlist.imag[:, :, :, None, :]) * self.z_weight
        blist = torch.zeros(bz.shape[:-1] + (self.num_b,), dtype=dtype, device=device).index_add(-1, self.z_b, bz)
        if self.bzeroflag:
            if self.chemflag and not self.wselfallflag:
                oh = F.one_hot(species, nc).to(dtype)
                mask = oh[:, :, None, None] * oh[:, None, :, None] * oh[:, None, None, :]
                blist = blist - mask[..., None] * self.bzero
            else:
                blist = blist - self.bzero
        return blist.reshape(num_atoms, nc ** 3 * self.num_b)


class _BispectrumFunction(torch.autograd.Function):
    """B(rij) with a hand-written, chunked backward; double backward goes through the reference path."""

    @staticmethod
    def forward(ctx, rij, pi, si, sj, species, num_atoms, desc: Bispectrum):
        with torch.no_grad():
            utot, upairs = desc._utot_half(rij, pi, si, sj, species, num_atoms, keep_u=True)
            b, zchunks = desc._b_from_utot(utot, species, keep_z=True)
        ctx.desc = desc
        ctx.num_atoms = num_atoms
        ctx.zchunks = zchunks
        ctx.upairs = upairs
        ctx.save_for_backward(rij, pi, si, sj, species, utot)
        return b

    @staticmethod
    def backward(ctx, grad_b):
        rij, pi, si, sj, species, utot = ctx.saved_tensors
        desc: Bispectrum = ctx.desc
        if torch.is_grad_enabled():
            # create_graph=True: recompute with plain differentiable ops so the gradient is differentiable
            with torch.enable_grad():
                b = desc._reference(rij, pi, si, sj, species, ctx.num_atoms)
                (grad_r,) = torch.autograd.grad(b, rij, grad_b, create_graph=True)
            return grad_r, None, None, None, None, None, None
        with torch.no_grad():
            gu_atoms = desc._utot_vjp(utot, ctx.zchunks, grad_b.contiguous())   # (N, nc, nuh, 2)
            phi = desc._phi(gu_atoms.reshape(-1, desc.num_u_half, 2))           # (N·nc, 4, nuh, 2)
        nc = desc.num_chem
        target = pi * nc + sj if desc.chemflag else pi
        grad_r = torch.empty_like(rij)
        step = max(1, desc._pair_chunk(rij.device) // 4)
        for p0 in range(0, rij.shape[0], step):
            sl = slice(p0, p0 + step)
            with torch.no_grad():
                u = ctx.upairs[sl] if ctx.upairs is not None else desc._u_half(rij[sl], si[sl], sj[sl])[0]
                ph = phi.index_select(0, target[sl])
            grad_r[sl] = desc._pair_grad(rij[sl], si[sl], sj[sl], u, ph)
        return grad_r, None, None, None, None, None, None
