"""The interface every descriptor implements: per-atom features from a pair list."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from ..config_checks import per_element

_NOT_VMAPPABLE: set[type] = set()
"""Descriptor classes whose backward cannot run under ``vmap`` (their VJPs are then done one by one)."""


class Descriptor(nn.Module, ABC):
    """Per-atom descriptors from the pair-list representation shared with LAMMPS' ML-IAP.

    Subclasses set ``elements`` (element symbols, index = species index), implement
    :meth:`forward`, :attr:`num_descriptors`, :attr:`cutoff`, :meth:`pair_cutoffs` and :meth:`settings`,
    and are registered with :func:`~mliap_torch.registry.register_descriptor` (which sets ``type_name``).
    Pairs beyond their element-pair cutoff must contribute exactly zero (LAMMPS passes pairs up to
    the neighbor-list radius plus skin).

    Optional capabilities have working defaults that a subclass may override: :meth:`pair_jacobian`
    (autograd; override with an analytic one), :meth:`hyperparameters` and :meth:`trainable_settings` (none learned),
    :meth:`from_config` and :meth:`check_config` (the training configuration's ``descriptor`` section).
    """

    type_name: str = ""
    per_element_keys: ClassVar[tuple[str, ...]] = ()
    """Configuration keys that take one number for all elements or a list with one per element."""
    config_schema: ClassVar[type | None] = None
    """A dataclass of the configuration keys (typed validation of the ``descriptor`` section); None: the keys
    are checked against the signature of ``__init__``."""
    elements: list[str]

    @property
    @abstractmethod
    def num_descriptors(self) -> int:
        """K, the number of descriptors per atom."""

    @property
    @abstractmethod
    def cutoff(self) -> float:
        """The largest element-pair cutoff, Å: the radius a neighbor list must cover."""

    @abstractmethod
    def pair_cutoffs(self) -> torch.Tensor:
        """(nelements, nelements) cutoff of each element pair, Å."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-like settings from which ``type(self)(**settings)`` rebuilds this descriptor."""

    @abstractmethod
    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        """Descriptors of every atom.

        Args:
            rij: (npairs, 3) ``x[j] - x[i]`` (with periodic image), Å.
            pair_i: (npairs,) central atom indices, in ``[0, num_atoms)``.
            pair_j: (npairs,) neighbor atom indices, in ``[0, ntotal)``.
            species: (ntotal,) element index of each atom; ``ntotal >= num_atoms``, atoms past
                ``num_atoms`` are neighbours only (LAMMPS ghost atoms) and get no descriptor row.
            num_atoms: number of central atoms (rows of the output).

        Returns:
            (num_atoms, K) descriptors.
        """

    def pair_jacobian(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                      num_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptors and their per-pair Jacobian, for the least-squares design rows.

        The default takes K vector–Jacobian products of ``Σ_i B_i`` (vmap-batched when the backward
        allows); descriptors with an analytic Jacobian (LAMMPS' ``compute snap`` quantity) override it.

        Returns:
            B (num_atoms, K) and dB (npairs, 3, K) = ``∂B_{pair_i[p]}/∂r_p``, 1/Å times B's unit; both detached.
        """
        rij = rij.detach().requires_grad_(True)
        with torch.enable_grad():
            B = self(rij, pair_i, pair_j, species, num_atoms)
            dB = autograd_pair_jacobian(B, rij, type(self))
        return B.detach(), dB

    def hyperparameters(self) -> dict[str, torch.Tensor]:
        """Current values of the learned hyperparameters (differentiable), by name; empty when none are learned."""
        return {}

    def trainable_settings(self) -> dict[str, Any]:
        """Extra keywords that, with :meth:`settings`, rebuild this descriptor with its hyperparameters still
        learned (``trainable``, bounds); empty when none are learned."""
        return {}

    @classmethod
    def from_config(cls, elements: Sequence[str], settings: dict[str, Any]) -> Descriptor:
        """This descriptor for ``elements`` from the ``descriptor`` config section's keyword arguments
        (``type``, ``elements`` and ``options`` already taken out): unchanged, except that the keys of
        ``per_element_keys`` given as one number become one value per element."""
        s = dict(settings)
        for key in cls.per_element_keys:
            s[key] = per_element(s[key], elements, key)
        return cls(elements=list(elements), **s)

    @classmethod
    def check_config(cls, settings: dict[str, Any]) -> None:
        """ValueError, naming the key as ``'descriptor.<key>'``, for out-of-range values of the ``descriptor``
        config section (checked before any data is read); the default checks nothing."""


def autograd_pair_jacobian(B: torch.Tensor, rij: torch.Tensor, kind: type) -> torch.Tensor:
    """(npairs, 3, K) ``∂B_{i(p)}/∂r_p`` by K (vmap-batched when possible) vector–Jacobian products of ``Σ_i B_i``.

    Args:
        B: (natoms, K) descriptors computed from ``rij`` with the graph kept.
        rij: (npairs, 3) pair vectors that require grad, Å.
        kind: the descriptor class (remembered when its backward cannot run under vmap).
    """
    K = B.shape[1]
    total = B.sum(0)
    if kind not in _NOT_VMAPPABLE:
        eye = torch.eye(K, dtype=B.dtype, device=B.device)
        try:
            (g,) = torch.autograd.grad(total, rij, grad_outputs=eye, is_grads_batched=True, retain_graph=True)
            return g.permute(1, 2, 0)
        except RuntimeError:
            _NOT_VMAPPABLE.add(kind)
    g = torch.stack([torch.autograd.grad(total[k], rij, retain_graph=True)[0] for k in range(K)])
    return g.permute(1, 2, 0)
