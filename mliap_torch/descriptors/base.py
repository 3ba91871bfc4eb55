"""The interface every descriptor implements: per-atom features from a pair list."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


class Descriptor(nn.Module, ABC):
    """Per-atom descriptors from the pair-list representation shared with LAMMPS' ML-IAP.

    Subclasses set ``elements`` (element symbols, index = species index) and implement
    :meth:`forward`, :attr:`num_descriptors`, :attr:`cutoff`, :meth:`pair_cutoffs` and :meth:`settings`.
    Pairs beyond their element-pair cutoff must contribute exactly zero (LAMMPS passes pairs up to
    the neighbor-list radius plus skin).
    """

    type_name: str = ""
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
