"""Per-element energy heads: E_i = head(B_i, species_i)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ..registry import build, register_head


def quadratic_features(B: torch.Tensor) -> torch.Tensor:
    """Quadratic SNAP features in ``.snapcoeff`` order.

    For each a ≤ b (upper triangle, row by row): ``½·B_a²`` on the diagonal, ``B_a·B_b`` off it,
    so that ``E = β·B + q·quadratic_features(B)`` is qSNAP's ``½ β_aa B_a² + β_ab B_a B_b``.

    Args:
        B: (natoms, K).
    Returns:
        (natoms, K(K+1)/2).
    """
    K = B.shape[-1]
    a, b = torch.triu_indices(K, K, device=B.device)
    scale = torch.where(a == b, 0.5, 1.0).to(B.dtype)
    return B[:, a] * B[:, b] * scale


@dataclass(frozen=True)
class FeatureBlock:
    """A run of a linear-in-parameters head's features: ``B[:, start:stop]`` (K_b columns), followed, when
    ``quadratic``, by :func:`quadratic_features` of it (K_b(K_b+1)/2 more); a head's features are its
    blocks' features side by side (what the exact fit's force and stress rows are built from)."""

    start: int
    stop: int
    quadratic: bool

    @property
    def num_features(self) -> int:
        k = self.stop - self.start
        return k + (k * (k + 1) // 2 if self.quadratic else 0)


class Head(nn.Module):
    """The interface of per-element energy heads ``E_i = head(B_i, s_i)``, eV.

    Subclasses implement ``forward(B, species)`` (B: (natoms, K) descriptors, species: (natoms,)
    element indices → (natoms,) energies, eV) and :meth:`settings`, and are registered with
    :func:`~mliap_torch.registry.register_head`. A head that is linear in its parameters
    (``linear_in_parameters``) also implements ``num_features``, ``features``, ``coefficients``,
    ``set_coefficients`` and ``feature_blocks``, and can then be fitted exactly by least squares. A head with per-atom features
    for the extrapolation grade overrides :meth:`grade_features` (default: none).
    """

    type_name: str = ""
    linear_in_parameters: ClassVar[bool] = False
    """True when the energy is linear in the parameters (an exact least-squares fit solves for them)."""

    def __init__(self, num_elements: int, num_descriptors: int):
        super().__init__()
        self.num_elements = num_elements
        self.num_descriptors = num_descriptors

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """ValueError naming the ``model.<key>`` when the training config's head ``options`` (``hidden``,
        ``activation``, ``linear_term``, ``blocks``; ``num_parts``: the descriptor's number of parts) cannot build
        this head; the default accepts any."""

    @classmethod
    def for_training(cls, num_elements: int, num_descriptors: int, options: dict[str, Any]) -> Head:
        """A new head from the training config's head ``options`` (see :meth:`check_options`); the default
        uses none of them."""
        return cls(num_elements, num_descriptors)

    def settings(self) -> dict[str, Any]:
        """JSON-like settings from which :func:`mliap_torch.registry.build` rebuilds this head."""
        return {"type": self.type_name, "num_elements": self.num_elements, "num_descriptors": self.num_descriptors}

    def grade_features(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor | None:
        """(natoms, F) per-atom features for the extrapolation grade γ (:mod:`mliap_torch.uncertainty`): the
        quantities the energy is linear in, with a 1 for the constant; None (the default) when the head has
        none, and then its potentials get no active set."""
        return None


@register_head("linear")
class LinearHead(Head):
    """Linear SNAP head: ``E_i = β0[s_i] + β[s_i]·B_i`` (eV)."""

    linear_in_parameters = True

    def __init__(self, num_elements: int, num_descriptors: int):
        super().__init__(num_elements, num_descriptors)
        self.bias = nn.Parameter(torch.zeros(num_elements, dtype=torch.float64))
        self.weight = nn.Parameter(torch.zeros(num_elements, num_descriptors, dtype=torch.float64))

    @property
    def num_features(self) -> int:
        """Number of per-element coefficients besides the constant."""
        return self.num_descriptors

    def features(self, B: torch.Tensor) -> torch.Tensor:
        """(natoms, num_features) the quantities the head is linear in."""
        return B

    def grade_features(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """``[1, features(B)]`` (natoms, 1 + num_features): linear ``[1, B]``, quadratic
        ``[1, B, quadratic_features(B)]`` (all that the energy is linear in, so that γ also sees
        extrapolation along the products)."""
        features = self.features(B)
        return torch.cat([features.new_ones(len(features), 1), features], dim=1)

    def feature_blocks(self) -> list[FeatureBlock]:
        """How :meth:`features` are made from B: one block, B itself."""
        return [FeatureBlock(0, self.num_descriptors, quadratic=False)]

    def coefficients(self) -> torch.Tensor:
        """(nelements, 1 + num_features) ``[β0, β...]`` as in ``.snapcoeff``."""
        return torch.cat([self.bias[:, None], self.weight], dim=1)

    @torch.no_grad()
    def set_coefficients(self, coeffs: torch.Tensor) -> None:
        """Set from (nelements, 1 + num_features) ``.snapcoeff``-ordered coefficients."""
        coeffs = torch.as_tensor(coeffs, dtype=self.bias.dtype, device=self.bias.device)
        self.bias.copy_(coeffs[:, 0])
        self._set_feature_coefficients(coeffs[:, 1:])

    def _set_feature_coefficients(self, c: torch.Tensor) -> None:
        self.weight.copy_(c)

    def forward(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (natoms,) eV from descriptors B (natoms, K) and species (natoms,)."""
        return self.bias[species] + (B * self.weight[species]).sum(-1)


@register_head("quadratic")
class QuadraticHead(LinearHead):
    """Quadratic SNAP head: ``E_i = β0 + β·B_i + ½ Σ_a β_aa B_a² + Σ_{a<b} β_ab B_a B_b``."""


    def __init__(self, num_elements: int, num_descriptors: int):
        super().__init__(num_elements, num_descriptors)
        nq = num_descriptors * (num_descriptors + 1) // 2
        self.quadratic = nn.Parameter(torch.zeros(num_elements, nq, dtype=torch.float64))

    @property
    def num_features(self) -> int:
        K = self.num_descriptors
        return K + K * (K + 1) // 2

    def features(self, B: torch.Tensor) -> torch.Tensor:
        return torch.cat([B, quadratic_features(B)], dim=1)

    def feature_blocks(self) -> list[FeatureBlock]:
        return [FeatureBlock(0, self.num_descriptors, quadratic=True)]

    def coefficients(self) -> torch.Tensor:
        return torch.cat([self.bias[:, None], self.weight, self.quadratic], dim=1)

    def _set_feature_coefficients(self, c: torch.Tensor) -> None:
        self.weight.copy_(c[:, : self.num_descriptors])
        self.quadratic.copy_(c[:, self.num_descriptors:])

    def forward(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        linear = super().forward(B, species)
        return linear + (quadratic_features(B) * self.quadratic[species]).sum(-1)


@register_head("blocks")
class BlockHead(Head):
    """One linear-in-parameters head per block of consecutive descriptors: ``E_i = Σ_b head_b(B_i[block b])``.

    The blocks are the parts of a :class:`~mliap_torch.descriptors.concatenated.ConcatenatedDescriptor` (e.g. a
    linear head on a large ACE and a quadratic one on a bispectrum), fitted together by one least-squares fit
    with one constant per element, held by the first block's head (the others' constants are zero after
    :meth:`set_coefficients`). Each block with its part of the descriptor is a potential of its own
    (how LAMMPS runs it, overlaid).

    Args:
        num_elements: number of elements.
        num_descriptors: K, the sum of ``sizes``.
        heads: registered head type of each block, linear in its parameters (``linear``, ``quadratic``).
        sizes: K_b of each block, in column order.
    """

    linear_in_parameters = True

    def __init__(self, num_elements: int, num_descriptors: int, heads: Sequence[str], sizes: Sequence[int]):
        super().__init__(num_elements, num_descriptors)
        if len(heads) != len(sizes) or not heads:
            raise ValueError(f"a blocks head needs one head per block: {len(heads)} heads for {len(sizes)} blocks")
        if sum(int(k) for k in sizes) != num_descriptors:
            raise ValueError(f"the blocks' sizes {list(sizes)} add up to {sum(sizes)}, not to the {num_descriptors} "
                             "descriptors")
        self.head_types = [str(h) for h in heads]
        self.sizes = [int(k) for k in sizes]
        blocks = []
        for name, size in zip(self.head_types, self.sizes):
            sub = build("head", {"type": name, "num_elements": num_elements, "num_descriptors": size})
            if not isinstance(sub, LinearHead):
                raise ValueError(f"a block's head must be linear in its parameters (linear, quadratic), not {name!r}")
            blocks.append(sub)
        self.blocks = nn.ModuleList(blocks)

    def block_heads(self) -> list[LinearHead]:
        """The heads of the blocks, in column order."""
        return [cast(LinearHead, h) for h in self.blocks]

    def _slices(self) -> list[slice]:
        bounds = [0, *accumulate(self.sizes)]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        blocks = options.get("blocks") or []
        if not blocks:
            raise ValueError("'model.blocks' is empty; a blocks head needs one head per part of the concatenated "
                             "descriptor, e.g. model.blocks=[linear,quadratic].")
        for name in blocks:
            if name not in ("linear", "quadratic"):
                raise ValueError(f"'model.blocks' names {name!r}; each block's head is linear or quadratic.")
        parts = options.get("num_parts")
        if parts is not None and parts != len(blocks):
            raise ValueError(f"'model.blocks' names {len(blocks)} heads but the descriptor has {parts} parts; give one "
                             "head per part (descriptor=concatenated with 'parts').")

    @classmethod
    def for_training(cls, num_elements: int, num_descriptors: int, options: dict[str, Any]) -> Head:
        """Needs ``options["blocks"]`` (head types) and ``options["part_sizes"]`` (the concatenated descriptor's
        :meth:`~mliap_torch.descriptors.concatenated.ConcatenatedDescriptor.part_sizes`)."""
        sizes = list(options.get("part_sizes") or [num_descriptors])
        cls.check_options({**options, "num_parts": len(sizes)})
        return cls(num_elements, num_descriptors, heads=options["blocks"], sizes=sizes)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "heads": list(self.head_types), "sizes": list(self.sizes)}

    @property
    def num_features(self) -> int:
        return sum(h.num_features for h in self.block_heads())

    def features(self, B: torch.Tensor) -> torch.Tensor:
        """(natoms, num_features) the blocks' features side by side."""
        return torch.cat([h.features(B[:, s]) for h, s in zip(self.block_heads(), self._slices())], dim=1)

    def feature_blocks(self) -> list[FeatureBlock]:
        return [FeatureBlock(b.start + s.start, b.stop + s.start, b.quadratic)
                for h, s in zip(self.block_heads(), self._slices()) for b in h.feature_blocks()]

    def grade_features(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """``[1, features(B)]`` (natoms, 1 + num_features)."""
        features = self.features(B)
        return torch.cat([features.new_ones(len(features), 1), features], dim=1)

    def coefficients(self) -> torch.Tensor:
        """(nelements, 1 + num_features) ``[β0, block 1's β..., block 2's β..., ...]``; β0 the sum of the blocks' constants."""
        heads = self.block_heads()
        bias = torch.stack([h.bias for h in heads]).sum(0)
        return torch.cat([bias[:, None], *[h.coefficients()[:, 1:] for h in heads]], dim=1)

    @torch.no_grad()
    def set_coefficients(self, coeffs: torch.Tensor) -> None:
        """Set from (nelements, 1 + num_features) :meth:`coefficients`-ordered values; the constant goes to the
        first block."""
        heads = self.block_heads()
        coeffs = torch.as_tensor(coeffs, dtype=heads[0].bias.dtype, device=heads[0].bias.device)
        start = 1
        for k, h in enumerate(heads):
            stop = start + h.num_features
            constant = coeffs[:, :1] if k == 0 else torch.zeros_like(coeffs[:, :1])
            h.set_coefficients(torch.cat([constant, coeffs[:, start:stop]], dim=1))
            start = stop

    def forward(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (natoms,) eV: the sum of the blocks' heads on their columns of B (natoms, K)."""
        return sum((h(B[:, s], species) for h, s in zip(self.block_heads(), self._slices())),
                   B.new_zeros(len(B)))


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


ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus,
                                           "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "linear": nn.Identity}
"""The activations of :class:`MLPHead` by name (``linear``: none)."""


@register_head("mlp")
class MLPHead(Head):
    """Per-element multilayer perceptron on standardised descriptors.

    ``E_i = offset[s] + MLP_s(x_i) [+ linear[s]·x_i]`` with ``x_i = (B_i - shift) / scale``; ``activation``
    names one activation for every hidden layer or one per layer (:data:`ACTIVATIONS`), and
    ``output_activation`` one on the output (``linear``: none, the default);
    ``shift``/``scale`` (K,) are buffers set from training statistics (:meth:`set_scaling`), ``offset``
    (nelements,) per-element energies, eV. With ``linear_term`` the head also has a linear part,
    which :meth:`start_from_linear` sets from an exact linear fit, so that training starts at the
    linear model's accuracy and the network learns the rest.
    """

    # buffers registered in __init__ (declared for the type checker)
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, num_elements: int, num_descriptors: int, hidden: Sequence[int] = (64, 64),
                 activation: str | Sequence[str] = "silu", linear_term: bool = False,
                 output_activation: str = "linear"):
        super().__init__(num_elements, num_descriptors)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation if isinstance(activation, str) else [str(a) for a in activation]
        self.activations = ([activation] * len(self.hidden) if isinstance(activation, str)
                            else [str(a) for a in activation])
        self.output_activation = output_activation
        self.linear_term = bool(linear_term)
        if len(self.activations) != len(self.hidden):
            raise ValueError(f"{len(self.activations)} activations for {len(self.hidden)} hidden layers")
        for name in [*self.activations, output_activation]:
            if name not in ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
        self.networks = nn.ModuleList()
        for _ in range(num_elements):
            layers: list[nn.Module] = []
            width = num_descriptors
            for h, name in zip(self.hidden, self.activations):
                layers += [nn.Linear(width, h, dtype=torch.float64), ACTIVATIONS[name]()]
                width = h
            layers.append(nn.Linear(width, 1, dtype=torch.float64))
            if output_activation != "linear":
                layers.append(ACTIVATIONS[output_activation]())
            self.networks.append(nn.Sequential(*layers))
        self.register_buffer("shift", torch.zeros(num_descriptors, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(num_descriptors, dtype=torch.float64))
        self.offset = nn.Parameter(torch.zeros(num_elements, dtype=torch.float64))
        if self.linear_term:
            self.linear = nn.Parameter(torch.zeros(num_elements, num_descriptors, dtype=torch.float64))

    def layers(self, element: int) -> list[nn.Linear]:
        """The linear layers of ``element``'s network, input to output."""
        return [m for m in cast(nn.Sequential, self.networks[element]) if isinstance(m, nn.Linear)]

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        if not options.get("hidden"):
            raise ValueError("'model.hidden' is empty; an mlp head needs hidden layer widths, e.g. model.hidden=[64,64].")

    @classmethod
    def for_training(cls, num_elements: int, num_descriptors: int, options: dict[str, Any]) -> Head:
        return cls(num_elements, num_descriptors, hidden=options.get("hidden", (64, 64)),
                   activation=options.get("activation", "silu"), linear_term=bool(options.get("linear_term", False)))

    @torch.no_grad()
    def start_from_linear(self, coefficients: torch.Tensor) -> None:
        """Make the head equal a linear model: ``coefficients`` (nelements, 1 + K) are ``[β0, β]`` on the
        raw descriptors (``.snapcoeff`` order); the networks' output layers are zeroed. Call after
        :meth:`set_scaling` (β·B = (β·scale)·x + β·shift)."""
        if not self.linear_term:
            raise ValueError("MLPHead.start_from_linear needs linear_term=True")
        c = torch.as_tensor(coefficients, dtype=self.offset.dtype, device=self.offset.device)
        self.linear.copy_(c[:, 1:] * self.scale)
        self.offset.copy_(c[:, 0] + c[:, 1:] @ self.shift)
        for e in range(self.num_elements):
            out = self.layers(e)[-1]
            out.weight.zero_()
            out.bias.zero_()

    @torch.no_grad()
    def set_scaling(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Descriptor standardisation: (K,) mean and (K,) standard deviation (zeros become 1)."""
        self.shift.copy_(shift)
        self.scale.copy_(torch.where(scale > 1e-12, scale, torch.ones_like(scale)))

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "hidden": list(self.hidden), "activation": self.activation, "linear_term": self.linear_term,
                "output_activation": self.output_activation}

    def grade_features(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """``[1, h_i(, x_i)]`` (natoms, 1 + hidden[-1] (+ K)): the last hidden layer's activations of each
        atom's element network (and the standardised descriptors with ``linear_term``), what the output
        layer is linear in."""
        x = (B - self.shift) / self.scale
        hidden = x.new_zeros(len(B), self.hidden[-1])
        for e, net in enumerate(self.networks):
            mask = species == e
            last_hidden = cast(nn.Sequential, net)[: 2 * len(self.hidden)]
            hidden = hidden.masked_scatter(mask[:, None], last_hidden(x[mask]))
        parts = [x.new_ones(len(B), 1), hidden] + ([x] if self.linear_term else [])
        return torch.cat(parts, dim=1)

    def forward(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        x = (B - self.shift) / self.scale
        energies = self.offset[species].clone()
        if self.linear_term:
            energies = energies + (x * self.linear[species]).sum(-1)
        for e, net in enumerate(self.networks):
            mask = species == e
            energies = energies.masked_scatter(mask, energies[mask] + net(x[mask]).squeeze(-1))
        return energies



def head_from_settings(settings: dict[str, Any]) -> nn.Module:
    """Rebuild a head from :meth:`Head.settings` output (any registered head type)."""
    return build("head", settings)
