"""Several descriptors side by side: ``B_i = [B_i^(1), B_i^(2), ...]`` on one pair list.

A model on the union of two bases (e.g. a large ACE and a bispectrum for a quadratic head,
:class:`~mliap_torch.models.heads.BlockHead`) is one least-squares fit over all their columns; in LAMMPS each
part runs through its own pair style, overlaid (``pair_style hybrid/overlay pace snap``,
:mod:`mliap_torch.export.lammps_export`'s ``overlay`` route).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ..registry import build, descriptor_class, register_descriptor
from .base import Descriptor


def _part_settings(part: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(type, keyword arguments)`` of one part's config section: ``elements`` dropped (the parts share the
    concatenation's), null values left out and ``options`` merged in, as for a whole ``descriptor`` section."""
    if "type" not in part:
        raise ValueError(f"a part of a concatenated descriptor needs a 'type' (e.g. ace, bispectrum); got keys {sorted(part)}")
    settings = {k: v for k, v in part.items() if k not in ("type", "elements", "options") and v is not None}
    settings.update(part.get("options") or {})
    return str(part["type"]), settings


@register_descriptor("concatenated")
class ConcatenatedDescriptor(Descriptor):
    """The descriptors of ``parts`` side by side, (num_atoms, K_1 + K_2 + ...).

    Args:
        parts: the part descriptors, or their settings (``{"type": ..., **settings}`` as
            :meth:`Descriptor.settings` gives them with the type), at least one; all on the same ``elements``.
        elements: element symbols (index = species index); default: the first part's.

    Each part sees the same pair list (up to :attr:`cutoff`, the largest part's) and gives zero for pairs
    beyond its own cutoffs, so the concatenation equals each part evaluated alone.
    """

    composite: ClassVar[bool] = True
    """Its ``parts`` config key holds descriptor sections, each validated like a ``descriptor`` section."""

    def __init__(self, parts: Sequence[Descriptor | dict[str, Any]], elements: Sequence[str] | None = None):
        super().__init__()
        if not parts:
            raise ValueError("a concatenated descriptor needs at least one part")
        built = [p if isinstance(p, Descriptor) else cast(Descriptor, build("descriptor", dict(p))) for p in parts]
        self.elements = list(elements) if elements is not None else list(built[0].elements)
        for k, part in enumerate(built):
            if list(part.elements) != self.elements:
                raise ValueError(f"part {k} of a concatenated descriptor ({part.type_name}) has elements "
                                 f"{list(part.elements)}, not {self.elements}")
        self.parts = nn.ModuleList(built)

    def part_descriptors(self) -> list[Descriptor]:
        """The part descriptors, in column order."""
        return [cast(Descriptor, p) for p in self.parts]

    def part_sizes(self) -> list[int]:
        """K of each part, in column order."""
        return [p.num_descriptors for p in self.part_descriptors()]

    @property
    def num_descriptors(self) -> int:
        return sum(self.part_sizes())

    @property
    def cutoff(self) -> float:
        return max(float(p.cutoff) for p in self.part_descriptors())

    def pair_cutoffs(self) -> torch.Tensor:
        """(nelements, nelements) the largest part cutoff of each element pair, Å."""
        cutoffs = [p.pair_cutoffs().to(torch.float64) for p in self.part_descriptors()]
        return torch.stack(cutoffs).amax(0)

    def settings(self) -> dict[str, Any]:
        return {"elements": list(self.elements),
                "parts": [{"type": p.type_name, **p.settings()} for p in self.part_descriptors()]}

    def hyperparameters(self) -> dict[str, torch.Tensor]:
        """The parts' learned hyperparameters, named ``part<k>.<name>``."""
        return {f"part{k}.{name}": value for k, p in enumerate(self.part_descriptors())
                for name, value in p.hyperparameters().items()}

    def trainable_settings(self) -> dict[str, Any]:
        """Only parts without learned hyperparameters are supported (their settings rebuild them)."""
        learned = [p.type_name for p in self.part_descriptors() if p.trainable_settings()]
        if learned:
            raise ValueError(f"a concatenated descriptor cannot keep learned hyperparameters of its parts ({learned})")
        return {}

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                num_atoms: int) -> torch.Tensor:
        """(num_atoms, K_1 + K_2 + ...) the parts' descriptors side by side (see :meth:`Descriptor.forward`)."""
        return torch.cat([p(rij, pair_i, pair_j, species, num_atoms) for p in self.part_descriptors()], dim=1)

    def pair_jacobian(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                      num_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
        """B (num_atoms, K) and dB (npairs, 3, K): each part's own (analytic where it has one) side by side."""
        pieces = [p.pair_jacobian(rij, pair_i, pair_j, species, num_atoms) for p in self.part_descriptors()]
        return torch.cat([b for b, _ in pieces], dim=1), torch.cat([d for _, d in pieces], dim=2)

    def function_degrees(self) -> torch.Tensor:
        """(nelements, K) the parts' polynomial degrees side by side; ValueError when a part has none (only ACE does)."""
        degrees = []
        for p in self.part_descriptors():
            of_part = getattr(p, "function_degrees", None)
            if not callable(of_part):
                raise ValueError(f"a smoothness prior needs the polynomial degree of every feature; the "
                                 f"{p.type_name} part of the concatenated descriptor does not define one (ACE does)")
            degrees.append(of_part())
        return torch.cat(degrees, dim=1)

    @classmethod
    def from_config(cls, elements: Sequence[str], settings: dict[str, Any]) -> Descriptor:
        """From ``{"parts": [section, ...]}``, each section a ``descriptor`` config section of its own (with ``type``)."""
        parts = []
        for part in settings["parts"]:
            kind, part_settings = _part_settings(dict(part))
            parts.append(descriptor_class(kind).from_config(elements, part_settings))
        return cls(parts=parts, elements=list(elements))
