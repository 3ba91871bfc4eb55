"""Per-element energy heads: E_i = head(B_i, species_i)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn


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


class LinearHead(nn.Module):
    """Linear SNAP head: ``E_i = β0[s_i] + β[s_i]·B_i`` (eV)."""

    type_name = "linear"

    def __init__(self, num_elements: int, num_descriptors: int):
        super().__init__()
        self.num_elements = num_elements
        self.num_descriptors = num_descriptors
        self.bias = nn.Parameter(torch.zeros(num_elements, dtype=torch.float64))
        self.weight = nn.Parameter(torch.zeros(num_elements, num_descriptors, dtype=torch.float64))

    @property
    def num_features(self) -> int:
        """Number of per-element coefficients besides the constant."""
        return self.num_descriptors

    def features(self, B: torch.Tensor) -> torch.Tensor:
        """(natoms, num_features) the quantities the head is linear in."""
        return B

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

    def settings(self) -> dict[str, Any]:
        return {"type": self.type_name, "num_elements": self.num_elements, "num_descriptors": self.num_descriptors}

    def forward(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (natoms,) eV from descriptors B (natoms, K) and species (natoms,)."""
        return self.bias[species] + (B * self.weight[species]).sum(-1)


class QuadraticHead(LinearHead):
    """Quadratic SNAP head: ``E_i = β0 + β·B_i + ½ Σ_a β_aa B_a² + Σ_{a<b} β_ab B_a B_b``."""

    type_name = "quadratic"

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

    def coefficients(self) -> torch.Tensor:
        return torch.cat([self.bias[:, None], self.weight, self.quadratic], dim=1)

    def _set_feature_coefficients(self, c: torch.Tensor) -> None:
        self.weight.copy_(c[:, : self.num_descriptors])
        self.quadratic.copy_(c[:, self.num_descriptors:])

    def forward(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        linear = super().forward(B, species)
        return linear + (quadratic_features(B) * self.quadratic[species]).sum(-1)


ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus,
                                           "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "linear": nn.Identity}
"""The activations of :class:`MLPHead` by name (``linear``: none)."""


class MLPHead(nn.Module):
    """Per-element multilayer perceptron on standardised descriptors.

    ``E_i = offset[s] + MLP_s(x_i) [+ linear[s]·x_i]`` with ``x_i = (B_i - shift) / scale``; ``activation``
    names one activation for every hidden layer or one per layer (:data:`ACTIVATIONS`), and
    ``output_activation`` one on the output (``linear``: none, the default);
    ``shift``/``scale`` (K,) are buffers set from training statistics (:meth:`set_scaling`), ``offset``
    (nelements,) per-element energies, eV. With ``linear_term`` the head also has a linear part,
    which :meth:`start_from_linear` sets from an exact linear fit, so that training starts at the
    linear model's accuracy and the network learns the rest.
    """

    type_name = "mlp"
    # buffers registered in __init__ (declared for the type checker)
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, num_elements: int, num_descriptors: int, hidden: Sequence[int] = (64, 64),
                 activation: str | Sequence[str] = "silu", linear_term: bool = False,
                 output_activation: str = "linear"):
        super().__init__()
        self.num_elements = num_elements
        self.num_descriptors = num_descriptors
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
        return {"type": self.type_name, "num_elements": self.num_elements, "num_descriptors": self.num_descriptors,
                "hidden": list(self.hidden), "activation": self.activation, "linear_term": self.linear_term,
                "output_activation": self.output_activation}

    def forward(self, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        x = (B - self.shift) / self.scale
        energies = self.offset[species].clone()
        if self.linear_term:
            energies = energies + (x * self.linear[species]).sum(-1)
        for e, net in enumerate(self.networks):
            mask = species == e
            energies = energies.masked_scatter(mask, energies[mask] + net(x[mask]).squeeze(-1))
        return energies


HEADS: dict[str, type[nn.Module]] = {c.type_name: c for c in (LinearHead, QuadraticHead, MLPHead)}


def head_from_settings(settings: dict[str, Any]) -> nn.Module:
    """Rebuild a head from :meth:`settings` output."""
    s = dict(settings)
    kind = s.pop("type")
    if kind not in HEADS:
        raise ValueError(f"unknown head type {kind!r}; known: {sorted(HEADS)}")
    return HEADS[kind](**s)
