"""Groups, fit weights, train/test splits and per-element energy shifts (FitSNAP's ``[GROUPS]``, ``[ESHIFT]``).

FitSNAP semantics reproduced here:

* Sizes: ``training_size``/``testing_size`` below 1 (or exactly 1.0 with a float column type) are
  fractions of the group, rounded as ``max(1, int(f * n + 0.5))`` (0 stays 0); larger values are counts;
  train + test above the group size shrinks the test count.
* Sampling: in order (``random_sampling = 0``) or shuffled with a seeded ``random.Random(seed)``
  (Python's ``shuffle``, groups in table order, as FitSNAP after ``seed(seed)``). The first
  ``ntrain`` configurations train; the test set is taken from the end of the (kept) list, last first.
* Weights: ``eweight``, ``fweight``, ``vweight`` per group; with ``smartweights`` each is divided by the
  group's train (or test) count, ``fweight`` also by ``3 natoms`` and ``vweight`` by 6.
* Energy shifts: ``energy += sum(shift[element] for each atom)`` (FitSNAP adds ``[ESHIFT]``).
"""
from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import write_text_atomically
from .configuration import Configuration


@dataclass
class GroupSpec:
    """One row of a ``[GROUPS]`` table.

    Attributes:
        name: group name (FitSNAP: the folder).
        training_size, testing_size: fraction (< 1, or 1.0 when ``fraction=True``) or count.
        eweight, fweight, vweight: energy, force and stress (virial) row weights.
        fraction: whether a size of exactly 1 means "all" (float column) rather than one configuration.
        extra: further columns of the table, kept as read.
    """

    name: str
    training_size: float = 1.0
    testing_size: float = 0.0
    eweight: float = 1.0
    fweight: float = 1.0
    vweight: float = 1.0
    fraction: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def counts(self, nconfigs: int) -> tuple[int, int]:
        """(ntrain, ntest) for a group of ``nconfigs`` configurations, by FitSNAP's rule."""
        def size(value: float) -> int:
            if value == 0:
                return 0
            if value < 1 or (value == 1 and self.fraction):
                return nconfigs if value == 1 else max(1, int(abs(value) * nconfigs + 0.5))
            if float(value) != int(value):
                raise ValueError(f"group {self.name!r}: size {value} is neither a fraction nor a count")
            return int(value)

        ntrain, ntest = size(self.training_size), size(self.testing_size)
        if ntrain > nconfigs:
            raise ValueError(f"group {self.name!r}: training_size {self.training_size} asks for {ntrain} "
                             f"configurations but the group has {nconfigs}")
        return ntrain, min(ntest, nconfigs - ntrain)


def apply_energy_shift(configs: Sequence[Configuration], shifts: Mapping[str, float]) -> list[Configuration]:
    """Copies with ``energy + sum(shifts[element] over atoms)`` (eV); unlabelled energies stay None."""
    out = []
    for c in configs:
        if c.energy is None:
            out.append(c)
            continue
        symbols, counts = np.unique(c.symbols, return_counts=True)
        missing = [str(s) for s in symbols if s not in shifts]
        if missing:
            raise ValueError(f"{c.where} field 'symbols': no energy shift for element(s) {missing} "
                             f"(shifts given for {sorted(shifts)})")
        delta = float(sum(float(shifts[s]) * n for s, n in zip(symbols, counts)))
        out.append(dataclasses.replace(c, energy=c.energy + delta))
    return out


@dataclass
class Split:
    """A reproducible train/test split with per-configuration weights.

    Attributes:
        train, test: configuration indices (into the data set list the split was made for).
        energy_weight, force_weight, stress_weight: (nconfigs,) weights of every configuration (the
            values the fit uses; configurations in neither set have weight 0).
        keys: ``"source#index"`` of every configuration, to check the split is applied to the same data.
        seed: the sampling seed (None for ordered sampling).
        groups: the group specifications used.
    """

    train: list[int]
    test: list[int]
    energy_weight: list[float]
    force_weight: list[float]
    stress_weight: list[float]
    keys: list[str]
    seed: int | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, path: str | Path) -> None:
        write_text_atomically(path, json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def from_json(cls, path: str | Path) -> Split:
        data = json.loads(Path(path).read_text())
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"{path}: not a split record ({exc})") from None

    def apply(self, configs: Sequence[Configuration]) -> tuple[list[Configuration], list[Configuration]]:
        """(train, test) configuration copies carrying the split's weights; checks the data matches."""
        keys = config_keys(configs)
        if keys != self.keys:
            first = next((k for k, (a, b) in enumerate(zip(keys, self.keys)) if a != b), min(len(keys), len(self.keys)))
            raise ValueError(f"split was made for different data: {len(self.keys)} configurations recorded, "
                             f"{len(keys)} given; first difference at position {first}")

        def weighted(k: int) -> Configuration:
            return dataclasses.replace(configs[k], energy_weight=self.energy_weight[k],
                                       force_weight=self.force_weight[k], stress_weight=self.stress_weight[k])

        return [weighted(k) for k in self.train], [weighted(k) for k in self.test]


def config_keys(configs: Sequence[Configuration]) -> list[str]:
    """``"source#index"`` of each configuration."""
    return [f"{c.source}#{c.index}" for c in configs]


def make_split(configs: Sequence[Configuration], specs: Sequence[GroupSpec], *, random_sampling: bool = False,
               seed: int = 0, smartweights: bool = False, unknown_groups: str = "error") -> Split:
    """Split ``configs`` per group and assign group weights, by FitSNAP's rules (module docstring).

    Args:
        configs: the data set (its order is the "file order" within each group).
        specs: one :class:`GroupSpec` per group; their order is the sampling order.
        random_sampling: shuffle each group with ``random.Random(seed)`` before taking train/test.
        seed: sampling seed.
        smartweights: FitSNAP's smartweights normalisation.
        unknown_groups: ``"error"`` (a configuration whose group has no spec is an error) or ``"ignore"``
            (such configurations are in neither set, weight 0).
    """
    if unknown_groups not in ("error", "ignore"):
        raise ValueError(f"unknown_groups must be 'error' or 'ignore', got {unknown_groups!r}")
    by_name = {s.name: s for s in specs}
    if len(by_name) != len(specs):
        raise ValueError("duplicate group names in the group specifications")
    members: dict[str, list[int]] = {s.name: [] for s in specs}
    for k, c in enumerate(configs):
        if c.group in members:
            members[c.group].append(k)
        elif unknown_groups == "error":
            raise ValueError(f"{c.where} field 'group': group {c.group!r} has no entry in the group table "
                             f"({sorted(by_name)})")
    rng = random.Random(seed) if random_sampling else None
    n = len(configs)
    weights = np.zeros((3, n))
    train: list[int] = []
    test: list[int] = []
    for spec in specs:
        ids = list(members[spec.name])
        if rng is not None:
            rng.shuffle(ids)
        ntrain, ntest = spec.counts(len(ids))
        kept = ids[:ntrain + ntest]
        group_train, group_test = kept[:ntrain], kept[ntrain:][::-1]
        for subset, count in ((group_train, ntrain), (group_test, ntest)):
            for k in subset:
                w = np.array([spec.eweight, spec.fweight, spec.vweight], dtype=float)
                if smartweights:
                    w /= count
                    w[1] /= 3 * configs[k].num_atoms
                    w[2] /= 6
                weights[:, k] = w
        train.extend(group_train)
        test.extend(group_test)
    return Split(train=train, test=test, energy_weight=weights[0].tolist(), force_weight=weights[1].tolist(),
                 stress_weight=weights[2].tolist(), keys=config_keys(configs),
                 seed=seed if random_sampling else None, groups=[dataclasses.asdict(s) for s in specs])


def assign_group_weights(configs: Sequence[Configuration], specs: Sequence[GroupSpec]) -> list[Configuration]:
    """Copies with each configuration's weights set from its group's spec (unknown group: error)."""
    by_name = {s.name: s for s in specs}
    out = []
    for c in configs:
        if c.group not in by_name:
            raise ValueError(f"{c.where} field 'group': group {c.group!r} has no entry in the group table")
        s = by_name[c.group]
        out.append(dataclasses.replace(c, energy_weight=s.eweight, force_weight=s.fweight, stress_weight=s.vweight))
    return out


def group_fraction_specs(names: Sequence[str], train_fraction: float = 1.0, test_fraction: float = 0.0,
                         eweight: float = 1.0, fweight: float = 1.0, vweight: float = 1.0) -> list[GroupSpec]:
    """The same fractions and weights for every group in ``names``."""
    return [GroupSpec(name=g, training_size=train_fraction, testing_size=test_fraction, eweight=eweight,
                      fweight=fweight, vweight=vweight) for g in names]
