"""Descriptor hyperparameters as constrained trainable parameters (SNAP ``wj``/``radelem``/``rfac0``,
ACE ``crad`` and per-element-pair cutoffs).

The modules here are thin subclasses of :class:`~.bispectrum.Bispectrum` and :class:`~.ace.ACE`:
the base classes keep their hyperparameters in buffers and attributes (``rcut``, ``wjelem``,
``rfac0``; ``radial.rcut``), and each call recomputes those from unconstrained parameters through
smooth maps that keep them physical:

- weights ``wj = softplus(θ)`` (> 0);
- ``rfac0 = sigmoid(θ)`` (0 < rfac0 < 1);
- radii ``radelem = lo + (hi - lo)·sigmoid(θ)`` with ``hi = max_cutoff / (2·rcutfac)``, so every pair
  cutoff ``rcutfac·(radelem_i + radelem_j)`` stays below ``max_cutoff``, the neighbor-list radius
  fixed at construction (``cutoff`` returns it, so neighbor lists built once stay valid);
- ACE cutoffs ``rcut_ij = lo + (max_cutoff - lo)·sigmoid(θ_ij)``.

:meth:`settings` returns the CURRENT values in the base class's keywords, without the trainable
extras, so :func:`mliap_torch.models.io.load`, the ML-IAP unified pickle and the SNAP file writers
rebuild a plain, frozen descriptor carrying the learned values. The unconstrained parameters are
left out of the state dict for the same reason (the values travel in the settings);
:meth:`trainable_settings` gives the extra keywords needed to rebuild the trainable module itself.

Gradients with respect to the hyperparameters need the bispectrum's differentiable reference
path (slower than its fast path); it is used only while a hyperparameter requires grad and grad
mode is on, otherwise the fast path runs with the current (detached) values.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .ace import ACE, _compact
from .bispectrum import Bispectrum

BISPECTRUM_TRAINABLE = ("wj", "radelem", "rfac0")
ACE_TRAINABLE = ("crad", "rcut")


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def _softplus_inverse(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def _names(trainable: Sequence[str] | str | None, allowed: Sequence[str], owner: str) -> list[str]:
    if trainable is None:
        return []
    names = [trainable] if isinstance(trainable, str) else [str(t) for t in trainable]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"{owner}: cannot train {unknown}; trainable hyperparameters are {list(allowed)}")
    return [n for n in allowed if n in names]


def _bounded_raw(value: torch.Tensor, lo: float, hi: float, what: str) -> torch.Tensor:
    if not (lo < hi):
        raise ValueError(f"{what}: empty bounds ({lo}, {hi})")
    if bool(((value <= lo) | (value >= hi)).any()):
        raise ValueError(f"{what}: initial value(s) {value.tolist()} must lie strictly inside the bounds "
                         f"({lo}, {hi}) of its sigmoid parametrisation (raise max_cutoff or move the start)")
    return _logit((value - lo) / (hi - lo))


class TrainableBispectrum(Bispectrum):
    """:class:`Bispectrum` whose ``wj``, ``radelem`` and/or ``rfac0`` are learned.

    Args:
        *args: as :class:`Bispectrum` (the values are the starting point).
        **kwargs: as :class:`Bispectrum` (the values are the starting point).
        trainable: names among ``"wj"``, ``"radelem"``, ``"rfac0"`` (others stay fixed).
        max_cutoff: neighbor-list radius, Å, that every learned pair cutoff stays below
            (default: 1.05 × the starting largest cutoff).
        radelem_min: lower bound of the radii (default: half the upper bound ``max_cutoff/(2·rcutfac)``,
            raised if needed so that the smallest cutoff stays above ``rmin0``).

    ``type_name`` is ``"bispectrum"``: settings and exports describe a plain bispectrum with the
    current values.
    """

    type_name = "bispectrum"

    def __init__(self, *args: Any, trainable: Sequence[str] | str | None = BISPECTRUM_TRAINABLE,
                 max_cutoff: float | None = None, radelem_min: float | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.trainable = _names(trainable, BISPECTRUM_TRAINABLE, "TrainableBispectrum")
        self.max_cutoff = float(max_cutoff) if max_cutoff is not None else 1.05 * float(self.rcut.max())
        hi = self.max_cutoff / (2.0 * self.rcutfac)
        lo = 0.5 * hi if radelem_min is None else float(radelem_min)
        if 2.0 * self.rcutfac * lo <= self.rmin0:
            lo = 0.5 * (self.rmin0 / (2.0 * self.rcutfac) + hi)
        self.radelem_bounds = (lo, hi)
        f64 = torch.float64
        if "wj" in self.trainable:
            self.wj_raw = nn.Parameter(_softplus_inverse(torch.tensor(self.wj, dtype=f64)))
        if "radelem" in self.trainable:
            self.radelem_raw = nn.Parameter(_bounded_raw(torch.tensor(self.radelem, dtype=f64), lo, hi,
                                                         "TrainableBispectrum radelem"))
        elif float(self.rcut.max()) > self.max_cutoff:
            raise ValueError(f"TrainableBispectrum: cutoff {float(self.rcut.max())} exceeds max_cutoff {self.max_cutoff}")
        if "rfac0" in self.trainable:
            self.rfac0_raw = nn.Parameter(_bounded_raw(torch.tensor([self.rfac0], dtype=f64), 0.0, 1.0,
                                                       "TrainableBispectrum rfac0"))

    # ------------------------------------------------------------------ current values
    # The base class's attributes read the current values, so code that reads ``radelem``, ``wj`` or
    # ``rfac0`` directly (file writers) sees the learned ones; the base __init__ sets the start values.
    def _trained(self, name: str) -> bool:
        return name in self.__dict__.get("trainable", ()) and f"{name}_raw" in self._parameters

    @property
    def radelem(self) -> list[float]:
        if self._trained("radelem"):
            return [float(v) for v in self.hyperparameters()["radelem"].detach().cpu()]
        return self._radelem_value

    @radelem.setter
    def radelem(self, value: list[float]) -> None:
        self._radelem_value = value

    @property
    def wj(self) -> list[float]:
        if self._trained("wj"):
            return [float(v) for v in self.hyperparameters()["wj"].detach().cpu()]
        return self._wj_value

    @wj.setter
    def wj(self, value: list[float]) -> None:
        self._wj_value = value

    @property
    def rfac0(self) -> Any:
        """Current rfac0: a float, or during a differentiable call the tensor the graph uses."""
        live = self.__dict__.get("_rfac0_live")
        if live is not None:
            return live
        if self._trained("rfac0"):
            return float(self.hyperparameters()["rfac0"].detach())
        return self._rfac0_value

    @rfac0.setter
    def rfac0(self, value: float) -> None:
        self._rfac0_value = value

    def hyperparameters(self) -> dict[str, torch.Tensor]:
        """Current constrained values (differentiable): ``wj`` (nelements,), ``radelem`` (nelements,),
        ``rfac0`` (), for the trainable names only."""
        out: dict[str, torch.Tensor] = {}
        if "wj" in self.trainable:
            out["wj"] = F.softplus(self.wj_raw)
        if "radelem" in self.trainable:
            lo, hi = self.radelem_bounds
            out["radelem"] = lo + (hi - lo) * torch.sigmoid(self.radelem_raw)
        if "rfac0" in self.trainable:
            out["rfac0"] = torch.sigmoid(self.rfac0_raw)[0]
        return out

    def _derived(self) -> dict[str, Any]:
        """The base class's buffers/attributes computed from the parameters."""
        h = self.hyperparameters()
        out: dict[str, Any] = {}
        if "wj" in h:
            out["wjelem"] = h["wj"]
        if "radelem" in h:
            rad = h["radelem"]
            out["rcut"] = self.rcutfac * (rad[:, None] + rad[None, :])
        if "rfac0" in h:
            out["rfac0"] = h["rfac0"]
        return out

    @contextmanager
    def _live(self, differentiable: bool) -> Iterator[None]:
        """Install the derived values for one call; afterwards keep only detached copies."""
        derived = self._derived()
        if not differentiable:
            derived = {k: v.detach() for k, v in derived.items()}
        try:
            for k, v in derived.items():
                setattr(self, "_rfac0_live" if k == "rfac0" else k, v)
            yield
        finally:
            for k, v in derived.items():
                setattr(self, "_rfac0_live" if k == "rfac0" else k, None if k == "rfac0" else v.detach())

    def _needs_hypergradient(self) -> bool:
        return torch.is_grad_enabled() and any(p.requires_grad for p in self._raw_parameters())

    def _raw_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, f"{n}_raw") for n in self.trainable]

    # ------------------------------------------------------------------ interface
    @property
    def cutoff(self) -> float:
        return self.max_cutoff

    def pair_cutoffs(self) -> torch.Tensor:
        with torch.no_grad(), self._live(False):
            return self.rcut.clone()

    def trainable_settings(self) -> dict[str, Any]:
        """Extra keywords that, with :meth:`settings`, rebuild this trainable module."""
        return {"trainable": list(self.trainable), "max_cutoff": self.max_cutoff,
                "radelem_min": self.radelem_bounds[0]}

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        if self._needs_hypergradient():
            with self._live(True):
                return self.reference_forward(rij, pair_i, pair_j, species, num_atoms)
        with self._live(False):
            return super().forward(rij, pair_i, pair_j, species, num_atoms)

    def pair_jacobian(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                      num_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The base class's analytic (B, ∂B/∂r) at the current hyperparameter values (no hypergradient)."""
        with self._live(False):
            return super().pair_jacobian(rij, pair_i, pair_j, species, num_atoms)

    # the raw parameters travel as values in settings(), not in the state dict
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for n in self.trainable:
            destination.pop(f"{prefix}{n}_raw", None)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        for n in self.trainable:
            if f"{prefix}{n}_raw" in missing_keys:
                missing_keys.remove(f"{prefix}{n}_raw")


class TrainableACE(ACE):
    """:class:`ACE` whose radial coefficients ``crad`` and/or per-element-pair cutoffs are learned.

    Args:
        *args: as :class:`ACE` (the values are the starting point).
        **kwargs: as :class:`ACE` (the values are the starting point).
        trainable: names among ``"crad"`` (unconstrained; the same as ``trainable_radial``) and
            ``"rcut"`` (every (e_i, e_j) entry its own parameter).
        max_cutoff: neighbor-list radius, Å, the upper bound of the cutoffs (default: 1.05 × the
            starting largest cutoff).
        rcut_min: lower bound of the cutoffs, Å (default: half of ``max_cutoff``, raised above the
            largest ``r_in`` and ``dcut``).
    """

    type_name = "ace"

    def __init__(self, *args: Any, trainable: Sequence[str] | str | None = ACE_TRAINABLE,
                 max_cutoff: float | None = None, rcut_min: float | None = None, **kwargs: Any):
        names = _names(trainable, ACE_TRAINABLE, "TrainableACE")
        if "crad" in names:
            kwargs["trainable_radial"] = True
        super().__init__(*args, **kwargs)
        self.trainable = names
        rcut0 = self.radial.rcut.clone()
        self.max_cutoff = float(max_cutoff) if max_cutoff is not None else 1.05 * float(rcut0.max())
        floor = max(float(self.radial.r_in.max()), float(self.radial.dcut.max()))
        lo = 0.5 * self.max_cutoff if rcut_min is None else float(rcut_min)
        lo = max(lo, floor)
        self.rcut_bounds = (lo, self.max_cutoff)
        if "rcut" in names:
            self.rcut_raw = nn.Parameter(_bounded_raw(rcut0, lo, self.max_cutoff, "TrainableACE rcut"))
        elif float(rcut0.max()) > self.max_cutoff:
            raise ValueError(f"TrainableACE: cutoff {float(rcut0.max())} exceeds max_cutoff {self.max_cutoff}")

    def state_dict(self, *args: Any, **kwargs: Any):
        with torch.no_grad():
            self.radial.rcut = self.current_rcut().detach().clone()
        return super().state_dict(*args, **kwargs)

    def hyperparameters(self) -> dict[str, torch.Tensor]:
        """Current learned cutoffs ``rcut`` (nelements, nelements), Å (differentiable), when they are trainable;
        ``crad`` (many values) is left out."""
        return {"rcut": self.current_rcut()} if "rcut" in self.trainable else {}

    def current_rcut(self) -> torch.Tensor:
        """(nelements, nelements) current cutoffs, Å (differentiable)."""
        if "rcut" not in self.trainable:
            return self.radial.rcut
        lo, hi = self.rcut_bounds
        return lo + (hi - lo) * torch.sigmoid(self.rcut_raw)

    @contextmanager
    def _live(self) -> Iterator[None]:
        if "rcut" not in self.trainable:
            yield
            return
        try:
            self.radial.rcut = self.current_rcut()
            yield
        finally:
            self.radial.rcut = self.current_rcut().detach()

    @property
    def cutoff(self) -> float:
        return self.max_cutoff

    def pair_cutoffs(self) -> torch.Tensor:
        return self.current_rcut().detach().clone()

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        rc = self.current_rcut().detach().cpu().to(torch.float64)
        out["rcut"] = _compact([[float(v) for v in row] for row in rc])
        return out

    def trainable_settings(self) -> dict[str, Any]:
        """Extra keywords that, with :meth:`settings`, rebuild this trainable module."""
        return {"trainable": list(self.trainable), "max_cutoff": self.max_cutoff, "rcut_min": self.rcut_bounds[0]}

    def atomic_base(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                    num_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
        with self._live():
            return super().atomic_base(rij, pair_i, pair_j, species, num_atoms)

    def pair_jacobian(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                      num_atoms: int, atom_chunk: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """The base class's (B, ∂B/∂r) at the current ``crad``/``rcut`` values (no hypergradient)."""
        with self._live():
            return super().pair_jacobian(rij, pair_i, pair_j, species, num_atoms, atom_chunk)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination.pop(f"{prefix}rcut_raw", None)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if f"{prefix}rcut_raw" in missing_keys:
            missing_keys.remove(f"{prefix}rcut_raw")


def trainable_descriptor(settings: dict[str, Any]) -> Bispectrum | ACE:
    """A trainable descriptor from plain settings (``type`` ``bispectrum`` or ``ace``) plus the keywords
    ``trainable``, ``max_cutoff`` and ``radelem_min``/``rcut_min``."""
    s = dict(settings)
    kind = s.pop("type")
    if kind == "bispectrum":
        return TrainableBispectrum(**s)
    if kind == "ace":
        return TrainableACE(**s)
    raise ValueError(f"no trainable version of descriptor type {kind!r}; choose bispectrum or ace")


def frozen_copy(potential):
    """A plain potential (no trainable hyperparameters) with the current values and weights, built
    exactly as :func:`mliap_torch.models.io.load` and the LAMMPS exports rebuild it."""
    from ..models.io import potential_from_settings

    plain = potential_from_settings(potential.settings())
    plain.load_state_dict({k: v.detach().clone() for k, v in potential.state_dict().items()})
    return plain.to(dtype=next(iter(potential.head.parameters())).dtype)
