"""Learned descriptor hyperparameters: the names that default to learning everything, and frozen copies.

:class:`~.bispectrum.Bispectrum` (``wj``, ``radelem``, ``rfac0``) and :class:`~.ace.ACE` (``crad``, per-element-pair
cutoffs ``rcut``) learn the hyperparameters named by their keyword ``trainable`` themselves: each is an
unconstrained parameter mapped to a physical value (:mod:`.constraints`), read by the computation through
one accessor, with the current values in ``settings()`` (see those classes). :class:`TrainableBispectrum` and
:class:`TrainableACE` are the same classes with ``trainable`` defaulting to all of their hyperparameters.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..registry import build
from .ace import ACE, ACE_TRAINABLE
from .base import Descriptor
from .bispectrum import BISPECTRUM_TRAINABLE, Bispectrum


class TrainableBispectrum(Bispectrum):
    """:class:`~.bispectrum.Bispectrum` with ``trainable`` defaulting to ``("wj", "radelem", "rfac0")``."""

    def __init__(self, *args: Any, trainable: Sequence[str] | str | None = BISPECTRUM_TRAINABLE, **kwargs: Any):
        super().__init__(*args, **{**kwargs, "trainable": trainable})


class TrainableACE(ACE):
    """:class:`~.ace.ACE` with ``trainable`` defaulting to ``("crad", "rcut")``."""

    def __init__(self, *args: Any, trainable: Sequence[str] | str | None = ACE_TRAINABLE, **kwargs: Any):
        super().__init__(*args, **{**kwargs, "trainable": trainable})


def trainable_descriptor(settings: dict[str, Any]) -> Descriptor:
    """A descriptor from plain settings (a registered ``type``) plus the keywords of its learned hyperparameters
    (``trainable``, ``max_cutoff``, ``radelem_min``/``rcut_min``: :meth:`~.base.Descriptor.trainable_settings`)."""
    return build("descriptor", settings)


def frozen_copy(potential):
    """A plain potential (no trainable hyperparameters) with the current values and weights, built
    exactly as :func:`mliap_torch.models.io.load` and the LAMMPS exports rebuild it."""
    from ..models.io import potential_from_settings

    plain = potential_from_settings(potential.settings())
    plain.load_state_dict({k: v.detach().clone() for k, v in potential.state_dict().items()})
    return plain.to(dtype=next(iter(potential.head.parameters())).dtype)
