"""The active set of a potential: per element, the matrix that grades an atom's features against the
D-optimal (MaxVol) set of training atoms, giving the extrapolation grade γ (Lysogorskiy et al., Phys. Rev.
Materials 7, 043801 (2023))."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .maxvol import TOLERANCE, active_set_inverse


class ActiveSet(nn.Module):
    """Per-element active-set inverses: ``γ_i = max_k |x_i · M[s_i]|_k``.

    ``x_i`` (F,) are atom i's features for γ (:meth:`~mliap_torch.models.heads.Head.grade_features`: the
    quantities its energy is linear in), ``M[e]`` (F, F) the inverse of element e's active set (its first
    ``size[e]`` columns; the others are zero): the rows of the (n_e, F) matrix of e's training features that
    MaxVol picked, so that every training atom has ``γ ≤ tol``. ``γ ≤ 1``: the atom's features are an
    interpolation of the active set's; ``γ > 1``: extrapolation, by that factor. An element without training
    atoms grades its atoms ``inf``.

    Buffers (saved in the state dict, so :func:`mliap_torch.save` keeps them): ``inverse`` (nelements, F, F)
    and ``size`` (nelements,).
    """

    inverse: torch.Tensor
    size: torch.Tensor

    def __init__(self, num_elements: int, num_features: int):
        super().__init__()
        self.num_elements, self.num_features = int(num_elements), int(num_features)
        self.register_buffer("inverse", torch.zeros(num_elements, num_features, num_features, dtype=torch.float64))
        self.register_buffer("size", torch.zeros(num_elements, dtype=torch.int64))

    def settings(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this (empty) module; the matrices are in the state dict."""
        return {"num_elements": self.num_elements, "num_features": self.num_features}

    @classmethod
    def from_features(cls, features: Sequence[np.ndarray | torch.Tensor], tol: float = TOLERANCE,
                      rcond: float = 1e-10) -> ActiveSet:
        """MaxVol active sets of per-element feature matrices.

        Args:
            features: one (n_e, F) matrix per element (n_e may be 0), rows = that element's training atoms.
            tol: MaxVol's tolerance (every training atom gets ``γ ≤ tol``).
            rcond: relative singular-value cutoff of the feature matrix (directions below it are not in
                the active set; see :func:`~mliap_torch.uncertainty.maxvol.reduced_basis`).
        """
        F = int(features[0].shape[1])
        out = cls(len(features), F)
        with torch.no_grad():
            for e, X in enumerate(features):
                X = np.asarray(torch.as_tensor(X, dtype=torch.float64).cpu())
                _, M = active_set_inverse(X, tol, rcond)
                out.inverse[e, :, : M.shape[1]] = torch.from_numpy(M)
                out.size[e] = M.shape[1]
        return out

    def forward(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """γ (natoms,) from features (natoms, F) and species (natoms,)."""
        features = features.to(self.inverse.dtype)
        gamma = features.new_full((len(species),), float("inf"))
        for e in range(self.num_elements):
            mask = species == e
            if int(self.size[e]) > 0:
                gamma = gamma.masked_scatter(mask, (features[mask] @ self.inverse[e]).abs().amax(-1))
        return gamma
