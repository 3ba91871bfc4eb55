"""From the ``data`` config section to weighted train/validation/test configurations and their split record."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.configuration import Configuration
from ..data.groups import GroupSpec, Split, config_keys, group_fraction_specs, make_split
from ..files import write_text_atomically


@dataclass
class SplitData:
    """Configurations of one run.

    Attributes:
        train: the whole training set (the exact fit and the reported train errors use it).
        test: the held-out test set.
        fit, val: ``train`` divided for gradient training (``val`` drives early stopping and the
            LR schedule; it is part of ``train`` and never of ``test``).
        group_names: sorted group names (index = ``AtomsBatch.group``).
        split: the train/test split record with the weights (saved as ``split.json``).
        val_ids: data-set indices of the validation configurations.
    """

    train: list[Configuration]
    test: list[Configuration]
    fit: list[Configuration]
    val: list[Configuration]
    group_names: list[str]
    split: Split
    val_ids: list[int]

    def save(self, folder: Path) -> None:
        """``split.json`` (a :class:`~mliap_torch.data.groups.Split`) and ``validation.json`` (indices)."""
        self.split.to_json(folder / "split.json")
        write_text_atomically(folder / "validation.json", json.dumps({"val": self.val_ids}))


def read_configurations(data: Any) -> tuple[list[Configuration], list[Configuration] | None]:
    """All configurations named by ``data`` and, for data sets with their own test set (mlearn), that set.

    ``data.format`` is a name of :mod:`mliap_torch.data.formats`; ``data.options`` go to the reader.
    """
    from ..data.readers import read_dataset, read_mlearn

    options = dict(data.options or {})
    if data.format == "mlearn":
        root = Path(data.path) / data.element
        return (read_mlearn(root / "training.json", data.element, **options),
                read_mlearn(root / "test.json", data.element, **options))
    return read_dataset("builtin" if data.format == "builtin" else data.path, data.format, **options), None


def _subset(configs: list[Configuration], n: int | None, rng: np.random.Generator) -> list[Configuration]:
    if n is None or n >= len(configs):
        return configs
    keep = np.sort(rng.choice(len(configs), size=n, replace=False))
    return [configs[k] for k in keep]


def group_specs(group_weights: Any, names: Sequence[str], test_fraction: float) -> tuple[list[GroupSpec], dict]:
    """Group table and sampling settings from ``data.group_weights``.

    ``None``: every group weight 1 with ``1 - test_fraction``/``test_fraction`` of each group.
    A FitSNAP ``.in`` path: its ``[GROUPS]`` table (sizes, weights, ``random_sampling``).
    A mapping ``{group: [eweight, fweight, vweight]}``: those weights; the key ``"*"`` sets the
    weights of unlisted groups (default 1, 1, 1).
    """
    if group_weights is None:
        return group_fraction_specs(names, 1.0 - test_fraction, test_fraction), {"random_sampling": True}
    if isinstance(group_weights, (str, Path)):
        from ..fitsnap.data import group_table
        return group_table(group_weights)
    specs = []
    for name in names:
        w = group_weights.get(name, group_weights.get("*", [1.0, 1.0, 1.0]))
        if len(w) != 3:
            raise ValueError(f"data.group_weights[{name!r}] must be [energy_weight, force_weight, stress_weight]")
        specs.append(GroupSpec(name, 1.0 - test_fraction, test_fraction, float(w[0]), float(w[1]), float(w[2])))
    return specs, {"random_sampling": True}


def load_split_data(data: Any, seed: int) -> SplitData:
    """Read, weight and split the data set of the ``data`` config section (a ``DataConfig``).

    Data sets with their own test set (mlearn) keep it; the others are split per group by
    :func:`~mliap_torch.data.groups.make_split` (FitSNAP's rules). ``val_fraction`` of the
    training configurations (at least one when positive) form the validation set.
    """
    rng = np.random.default_rng(seed)
    configs, test = read_configurations(data)
    configs = _subset(configs, data.max_configs, rng)
    if test is not None:
        test = _subset(test, data.max_configs, rng)
        names = sorted({c.group for c in configs + test})
        specs, _ = group_specs(data.group_weights, names, 0.0)
        everything = configs + test
        weights = {s.name: (s.eweight, s.fweight, s.vweight) for s in specs}
        w = np.array([weights.get(c.group, (1.0, 1.0, 1.0)) for c in everything]).reshape(-1, 3)
        split = Split(train=list(range(len(configs))), test=list(range(len(configs), len(everything))),
                      energy_weight=w[:, 0].tolist(), force_weight=w[:, 1].tolist(), stress_weight=w[:, 2].tolist(),
                      keys=config_keys(everything), seed=None, groups=[])
    else:
        everything = configs
        names = sorted({c.group for c in configs})
        specs, sampling = group_specs(data.group_weights, names, data.test_fraction or 0.0)
        split = make_split(everything, specs, seed=seed, **sampling)
    train, test = split.apply(everything)
    nval = int(round(data.val_fraction * len(train))) if data.val_fraction > 0 and len(train) > 1 else 0
    nval = max(nval, 1) if data.val_fraction > 0 and len(train) > 1 else 0
    val_pos = set(rng.choice(len(train), size=nval, replace=False).tolist()) if nval else set()
    fit = [c for k, c in enumerate(train) if k not in val_pos]
    val = [c for k, c in enumerate(train) if k in val_pos]
    group_names = sorted({c.group for c in train + test})
    return SplitData(train, test, fit, val, group_names, split, [split.train[k] for k in sorted(val_pos)])
