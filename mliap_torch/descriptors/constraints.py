"""Smooth maps from unconstrained parameters θ to physical hyperparameter values, and their inverses
(learned descriptor hyperparameters: SNAP ``wj``/``radelem``/``rfac0``, ACE per-element-pair cutoffs).

- weights ``softplus(θ)`` (> 0);
- values in an interval ``lo + (hi - lo)·sigmoid(θ)`` (``rfac0`` in (0, 1), radii and cutoffs below the
  neighbor-list radius).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def logit(p: torch.Tensor) -> torch.Tensor:
    """Inverse of ``sigmoid`` for ``0 < p < 1``."""
    return torch.log(p) - torch.log1p(-p)


def softplus_inverse(y: torch.Tensor) -> torch.Tensor:
    """Inverse of ``softplus`` for ``y > 0``."""
    return y + torch.log(-torch.expm1(-y))


def bounded(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``lo + (hi - lo)·sigmoid(raw)``, in the open interval (lo, hi)."""
    return lo + (hi - lo) * torch.sigmoid(raw)


def bounded_raw(value: torch.Tensor, lo: float, hi: float, what: str) -> torch.Tensor:
    """The θ with ``bounded(θ, lo, hi) == value``; ValueError naming ``what`` unless ``lo < value < hi``."""
    if not (lo < hi):
        raise ValueError(f"{what}: empty bounds ({lo}, {hi})")
    if bool(((value <= lo) | (value >= hi)).any()):
        raise ValueError(f"{what}: initial value(s) {value.tolist()} must lie strictly inside the bounds "
                         f"({lo}, {hi}) of its sigmoid parametrisation (raise max_cutoff or move the start)")
    return logit((value - lo) / (hi - lo))


def trainable_names(trainable: Sequence[str] | str | None, allowed: Sequence[str], owner: str) -> list[str]:
    """The names in ``trainable`` (one name, a list, or None for none) in the order of ``allowed``;
    ValueError naming ``owner`` for a name not in ``allowed``."""
    if trainable is None:
        return []
    names = [trainable] if isinstance(trainable, str) else [str(t) for t in trainable]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"{owner}: cannot train {unknown}; trainable hyperparameters are {list(allowed)}")
    return [n for n in allowed if n in names]
