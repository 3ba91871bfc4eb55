"""The interface of reference potentials (pair terms added to, or combined with, the model's energy)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn


class ReferencePotential(nn.Module, ABC):
    """A reference potential: ``forward(rij, pair_i, pair_j, species, num_atoms)`` → per-atom energies
    (num_atoms,) eV from the pair list, ``settings()``, ``cutoff`` (Å), registered with
    :func:`~mliap_torch.registry.register_reference`.

    The atom's energy is :meth:`combine` of the model's (descriptor + head) and the reference's energies;
    the default adds them (``additive``). A reference that is not additive (e.g. PACE's core repulsion,
    which switches the model's energy off at high core density) cannot be subtracted from the targets of an
    exact linear fit, nor written as a separate LAMMPS pair style.
    """

    type_name: str = ""
    additive: ClassVar[bool] = True
    """True when the atom's energy is the model's plus the reference's (:meth:`combine` adds them)."""

    @property
    @abstractmethod
    def cutoff(self) -> float:
        """Largest distance, Å, at which the reference acts (the neighbor list covers it)."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Keyword arguments from which ``type(self)(**settings)`` rebuilds the reference."""

    def combine(self, model_energies: torch.Tensor, reference_energies: torch.Tensor,
                species: torch.Tensor) -> torch.Tensor:
        """(natoms,) energies, eV, of the potential from the model's and the reference's (natoms,) energies, eV,
        and the atoms' species (natoms,); the default is their sum."""
        return model_energies + reference_energies


def overlaid_in_lammps(reference: ReferencePotential | None) -> bool:
    """True when the LAMMPS routes that write the model as its own pair style can carry ``reference``: none, or
    ZBL (LAMMPS' ``pair_style zbl`` overlaid on the model's with ``hybrid/overlay``)."""
    return reference is None or reference.type_name == "zbl"


def require_additive(reference: ReferencePotential) -> None:
    """ValueError unless ``reference`` adds to the model's energy (what subtracting it from the targets of an
    exact fit, or writing it as its own LAMMPS pair style, assumes)."""
    if not reference.additive:
        raise ValueError(f"the {reference.type_name!r} reference potential is not added to the model's energy "
                         "(it combines with it), so it cannot be subtracted from fit targets or written as a "
                         "separate pair style")
