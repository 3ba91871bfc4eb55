"""The weighted mean of several fitted potentials, as one potential (a small ensemble of different model forms).

``E = Σ_m w_m E_m`` (and the same for forces and stress) with ``Σ_m w_m = 1``. Every member is a sum of per-atom
energies of its own descriptor, so the mean is one too: the members' descriptors side by side (a
:class:`~mliap_torch.descriptors.concatenated.ConcatenatedDescriptor`; a member on a concatenated descriptor brings
its parts) under a :class:`WeightedBlocksHead`, each block the member's own head scaled by its weight. In LAMMPS
each block runs through its own pair style, ``pair_style hybrid/scaled w_1 <style 1> w_2 <style 2> ...``
(:mod:`mliap_torch.export.lammps_export`'s ``overlay`` route).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from itertools import accumulate
from typing import Any, cast

import torch
from torch import nn

from ..descriptors.concatenated import ConcatenatedDescriptor
from ..registry import build, register_head
from .heads import BlockHead, Head
from .potential import Potential


@register_head("weighted_blocks")
class WeightedBlocksHead(Head):
    """``E_i = Σ_b w_b · head_b(B_i[block b])``: any registered head per block of consecutive descriptors, scaled.

    Args:
        num_elements: number of elements.
        num_descriptors: K, the sum of the blocks' ``num_descriptors``.
        heads: each block's head, or its settings (``{"type": ..., **settings}`` as :meth:`Head.settings` gives),
            in column order.
        weights: w_b of each block, dimensionless.
    """

    def __init__(self, num_elements: int, num_descriptors: int, heads: Sequence[Head | dict[str, Any]],
                 weights: Sequence[float]):
        super().__init__(num_elements, num_descriptors)
        built = [h if isinstance(h, Head) else cast(Head, build("head", dict(h))) for h in heads]
        if not built or len(built) != len(weights):
            raise ValueError(f"a weighted blocks head needs one weight per head: {len(weights)} weights for "
                             f"{len(built)} heads")
        sizes = [h.num_descriptors for h in built]
        if sum(sizes) != num_descriptors:
            raise ValueError(f"the blocks' sizes {sizes} add up to {sum(sizes)}, not to the {num_descriptors} descriptors")
        for k, h in enumerate(built):
            if h.num_elements != num_elements:
                raise ValueError(f"block {k}'s head ({h.type_name}) has {h.num_elements} elements, not {num_elements}")
        self.weights = [float(w) for w in weights]
        if not all(math.isfinite(w) for w in self.weights):
            raise ValueError(f"the blocks' weights must be finite numbers, not {self.weights}")
        self.blocks = nn.ModuleList(built)

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        raise ValueError("'model.head' is weighted_blocks, which is not trained from a config: it is the mean of "
                         "fitted potentials, made by mliap_torch.average_potentials or by an experiment's "
                         "'ensemble.members'.")

    def block_heads(self) -> list[Head]:
        """The heads of the blocks, in column order (unscaled)."""
        return [cast(Head, h) for h in self.blocks]

    def _slices(self) -> list[slice]:
        bounds = [0, *accumulate(h.num_descriptors for h in self.block_heads())]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "heads": [h.settings() for h in self.block_heads()],
                "weights": list(self.weights)}

    def forward(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (natoms,) eV: the weighted sum of the blocks' heads on their columns of B (natoms, K)."""
        return sum((w * h(B[:, s], species) for w, h, s in zip(self.weights, self.block_heads(), self._slices())),
                   B.new_zeros(len(B)))


def _parts(potential: Potential) -> list[tuple[Any, Head]]:
    """(descriptor, head) of each part of ``potential``: the parts of a concatenated descriptor under a blocks head,
    else the potential's own pair."""
    descriptor, head = potential.descriptor, potential.head
    if isinstance(descriptor, ConcatenatedDescriptor) and isinstance(head, (BlockHead, WeightedBlocksHead)):
        if isinstance(head, WeightedBlocksHead):
            raise ValueError("a member is itself an average of potentials; average its members instead")
        return list(zip(descriptor.part_descriptors(), head.block_heads()))
    return [(descriptor, head)]


def average_potentials(potentials: Sequence[Potential], weights: Sequence[float] | None = None) -> Potential:
    """The weighted mean ``Σ_m w_m · potential_m`` as one :class:`Potential` (copies; the members are untouched).

    Args:
        potentials: the members, at least two, on the same elements in the same order, without reference
            potentials (ZBL, PACE core repulsion) or active sets.
        weights: w_m of each member, summing to 1; default equal weights.
    Raises:
        ValueError: fewer than two members, different elements, a reference potential, or weights that are not
            one per member or do not sum to 1.
    """
    if len(potentials) < 2:
        raise ValueError(f"an average needs at least two potentials, got {len(potentials)}")
    w = [1.0 / len(potentials)] * len(potentials) if weights is None else [float(x) for x in weights]
    if len(w) != len(potentials):
        raise ValueError(f"{len(w)} weights for {len(potentials)} potentials; give one weight per potential")
    if not all(math.isfinite(x) for x in w) or abs(sum(w) - 1.0) > 1e-12:
        raise ValueError(f"the weights of an average must be finite and sum to 1, not {w} (sum {sum(w)})")
    elements = list(potentials[0].elements)
    for k, p in enumerate(potentials):
        if list(p.elements) != elements:
            raise ValueError(f"potential {k} has elements {list(p.elements)}, potential 0 has {elements}; an average "
                             "needs the same elements in the same order")
        if p.reference is not None:
            raise ValueError(f"potential {k} has a reference potential ({p.reference.type_name}); averaging potentials "
                             "with reference potentials is not supported")
    descriptors, heads, block_weights = [], [], []
    for p, weight in zip(potentials, w):
        for descriptor, head in _parts(p):
            descriptors.append(copy.deepcopy(descriptor))
            heads.append(copy.deepcopy(head))
            block_weights.append(weight)
    dtype = next(iter(potentials[0].parameters())).dtype
    descriptor = ConcatenatedDescriptor(descriptors, elements)
    head = WeightedBlocksHead(len(elements), descriptor.num_descriptors, heads, block_weights)
    return Potential(descriptor, head).to(dtype)
