"""A model on a concatenated descriptor as the sum of potentials of its parts (how LAMMPS runs it, overlaid)."""
from __future__ import annotations

from ..descriptors.concatenated import ConcatenatedDescriptor
from .heads import BlockHead
from .potential import Potential


def potential_parts(potential: Potential) -> list[Potential] | None:
    """``[Potential(part_k, head_k), ...]`` whose energies, forces and stresses add up to those of ``potential``
    without its reference: one per part of a :class:`ConcatenatedDescriptor` under a :class:`BlockHead` with one
    head per part; None for any other model."""
    descriptor, head = potential.descriptor, potential.head
    if not isinstance(descriptor, ConcatenatedDescriptor) or not isinstance(head, BlockHead):
        return None
    if head.sizes != descriptor.part_sizes():
        return None
    return [Potential(d, h) for d, h in zip(descriptor.part_descriptors(), head.block_heads())]
