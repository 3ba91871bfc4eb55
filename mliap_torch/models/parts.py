"""A model on a concatenated descriptor as the sum of potentials of its parts (how LAMMPS runs it, overlaid)."""
from __future__ import annotations

from ..descriptors.concatenated import ConcatenatedDescriptor
from .heads import BlockHead, WeightedBlocksHead
from .potential import Potential


def potential_parts(potential: Potential) -> list[Potential] | None:
    """``[Potential(part_k, head_k), ...]`` whose energies, forces and stresses, each scaled by its
    :func:`part_weights`, add up to those of ``potential`` without its reference: one per part of a
    :class:`ConcatenatedDescriptor` under a :class:`BlockHead` or a
    :class:`~mliap_torch.models.heads.WeightedBlocksHead` with one head per part; None for any other model."""
    descriptor, head = potential.descriptor, potential.head
    if not isinstance(descriptor, ConcatenatedDescriptor) or not isinstance(head, (BlockHead, WeightedBlocksHead)):
        return None
    heads = head.block_heads()
    if [h.num_descriptors for h in heads] != descriptor.part_sizes():
        return None
    return [Potential(d, h) for d, h in zip(descriptor.part_descriptors(), heads)]


def part_weights(potential: Potential) -> list[float] | None:
    """The factor of each of :func:`potential_parts`: a weighted blocks head's weights, 1 for a blocks head's parts;
    None for a model without parts."""
    parts = potential_parts(potential)
    if parts is None:
        return None
    head = potential.head
    return list(head.weights) if isinstance(head, WeightedBlocksHead) else [1.0] * len(parts)
