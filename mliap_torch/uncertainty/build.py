"""Building a potential's active set from its training configurations, and the γ statistics of a set."""
from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..data.batch import AtomsBatch
from ..data.configuration import Configuration
from ..data.dataset import ConfigurationDataset
from ..models.potential import Potential
from .active_set import ActiveSet
from .maxvol import TOLERANCE


def _batches(potential: Potential, configs: Sequence[Configuration], batch_size: int, progress: bool | None,
             desc: str) -> Iterator[AtomsBatch]:
    """``configs`` in batches on the potential's device and dtype, with a tqdm bar on stderr when ``progress``
    (None: when stderr is a terminal)."""
    dataset = ConfigurationDataset(configs, potential.elements, potential.cutoff, group_names=sorted({c.group for c in configs}))
    reference = next(iter(potential.parameters()), torch.empty(0, dtype=torch.float64))
    loader = dataset.loader(batch_size=batch_size, dtype=reference.dtype)
    if progress if progress is not None else sys.stderr.isatty():
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True)
    for batch in loader:
        yield batch.to(reference.device)


@torch.no_grad()
def grade_features(potential: Potential, configs: Sequence[Configuration], batch_size: int = 16,
                   progress: bool | None = None) -> list[torch.Tensor] | None:
    """Per element, the (n_e, F) features for γ of all atoms of ``configs`` (CPU, float64); None when the head
    has none (:meth:`~mliap_torch.models.heads.Head.grade_features`)."""
    parts: list[list[torch.Tensor]] = [[] for _ in potential.elements]
    for batch in _batches(potential, configs, batch_size, progress, "active set features"):
        B = potential.descriptor(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        features = potential.head.grade_features(B, batch.species)
        if features is None:
            return None
        for e, part in enumerate(parts):
            part.append(features[batch.species == e].to("cpu", torch.float64))
    width = next((p[0].shape[1] for p in parts if p), 0)
    return [torch.cat(p) if p else torch.zeros(0, width, dtype=torch.float64) for p in parts]


def build_active_set(potential: Potential, configs: Sequence[Configuration], batch_size: int = 16,
                     tol: float = TOLERANCE, rcond: float = 1e-10, progress: bool | None = None) -> ActiveSet | None:
    """The MaxVol active set of the atoms of ``configs`` (the training set, after the fit), set as
    ``potential.active_set`` and returned; None (and nothing set) when the head has no features for γ or
    ``configs`` is empty.

    Args:
        potential: the fitted potential.
        configs: its training configurations.
        batch_size: configurations per descriptor pass.
        tol: MaxVol's tolerance: every training atom gets ``γ ≤ tol``.
        rcond: relative singular-value cutoff of each element's feature matrix
            (:func:`~mliap_torch.uncertainty.maxvol.reduced_basis`).
        progress: tqdm bar of the descriptor pass (None: when stderr is a terminal).
    """
    if not configs:
        return None
    features = grade_features(potential, configs, batch_size, progress)
    if features is None:
        return None
    reference = next(iter(potential.buffers()), torch.empty(0))
    active_set = ActiveSet.from_features(features, tol, rcond).to(reference.device)
    potential.active_set = active_set
    return active_set


@torch.no_grad()
def configuration_grades(potential: Potential, configs: Sequence[Configuration], batch_size: int = 16,
                         progress: bool | None = None) -> list[np.ndarray]:
    """γ of every atom of every configuration: one (natoms_c,) array per configuration."""
    out: list[np.ndarray] = []
    for batch in _batches(potential, configs, batch_size, progress, "extrapolation grades"):
        gamma = potential.extrapolation_grade(batch).cpu().numpy()
        counts = batch.num_atoms.cpu().numpy()
        out += np.split(gamma, np.cumsum(counts)[:-1])
    return out


THRESHOLDS = (1.01, 2.0, 10.0)
"""γ thresholds counted by :func:`grade_statistics`: MaxVol's tolerance (above it: extrapolation), 2 and 10."""


def grade_statistics(grades: Sequence[np.ndarray], thresholds: Sequence[float] = THRESHOLDS) -> dict[str, Any]:
    """Summary of per-atom γ (one array per configuration): ``atoms``, ``configs``, ``mean``, ``median``,
    ``p90``, ``p99`` and ``max`` over atoms, and ``above[str(t)] = {"atoms": ..., "configs": ...}``, the numbers
    of atoms with γ > t and of configurations with such an atom, for each threshold t."""
    if sum(len(g) for g in grades) == 0:
        return {"atoms": 0, "configs": len(grades)}
    gamma = np.concatenate(grades)
    worst = np.array([g.max() if len(g) else 0.0 for g in grades])
    return {"atoms": int(gamma.size), "configs": len(grades), "mean": float(gamma.mean()),
            "median": float(np.median(gamma)), "p90": float(np.percentile(gamma, 90)),
            "p99": float(np.percentile(gamma, 99)), "max": float(gamma.max()),
            "above": {f"{t:g}": {"atoms": int((gamma > t).sum()), "configs": int((worst > t).sum())}
                      for t in thresholds}}
