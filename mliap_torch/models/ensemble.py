"""The weighted mean of several fitted potentials, as one potential (a small ensemble of different model forms).

``E = Σ_m w_m E_m`` (and the same for forces and stress) with ``Σ_m w_m = 1``. Every member is a sum of per-atom
energies of its own descriptor, so the mean is one too: the members' descriptors side by side (a
:class:`~mliap_torch.descriptors.concatenated.ConcatenatedDescriptor`; a member on a concatenated descriptor brings
its parts, :func:`~mliap_torch.models.parts.potential_parts`) under a
:class:`~mliap_torch.models.heads.WeightedBlocksHead`, each block the member's own head scaled by its weight. In
LAMMPS each block runs through its own pair style, ``pair_style hybrid/scaled w_1 <style 1> w_2 <style 2> ...``
(:mod:`mliap_torch.export.lammps_export`'s ``overlay`` route).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

from ..descriptors.concatenated import ConcatenatedDescriptor
from .heads import WeightedBlocksHead
from .parts import potential_parts
from .potential import Potential


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
        if isinstance(p.head, WeightedBlocksHead):
            raise ValueError(f"potential {k} is itself an average of potentials; average its members instead")
    descriptors, heads, block_weights = [], [], []
    for p, weight in zip(potentials, w):
        for part in potential_parts(p) or [p]:
            descriptors.append(copy.deepcopy(part.descriptor))
            heads.append(copy.deepcopy(part.head))
            block_weights.append(weight)
    dtype = next(iter(potentials[0].parameters())).dtype
    descriptor = ConcatenatedDescriptor(descriptors, elements)
    head = WeightedBlocksHead(len(elements), descriptor.num_descriptors, heads, block_weights)
    return Potential(descriptor, head).to(dtype)
