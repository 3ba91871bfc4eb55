"""Group sizes, sampling, weights, splits and energy shifts by FitSNAP's rules."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from mliap_torch.data.configuration import Configuration
from mliap_torch.data.groups import (
    GroupSpec,
    Split,
    apply_energy_shift,
    assign_group_weights,
    group_fraction_specs,
    make_split,
)


def _configs(sizes: dict[str, int]) -> list[Configuration]:
    out = []
    for group, n in sizes.items():
        for k in range(n):
            natoms = 1 + k % 3
            out.append(Configuration(positions=np.zeros((natoms, 3)) + np.arange(natoms)[:, None], cell=np.eye(3) * 5,
                                     pbc=True, symbols=["Ta"] * natoms, energy=-1.0 * natoms, group=group,
                                     source=f"{group}.json", index=k))
    return out


def _fitsnap_count(size: float, n: int, fraction: bool = True) -> int:
    """FitSNAP scrape_groups, written out: fractions round half up, at least 1."""
    if size == 0:
        return 0
    if size < 1 or (size == 1 and fraction):
        return int(size * n) if size == 1 else max(1, int(abs(size) * n + 0.5))
    return int(size)


@pytest.mark.parametrize("n", [1, 2, 9, 10, 33])
@pytest.mark.parametrize("train,test", [(1.0, 0.0), (0.7, 0.3), (0.5, 0.25), (0.9, 0.3), (0.05, 0.0)])
def test_counts_follow_fitsnap(n: int, train: float, test: float) -> None:
    ntrain, ntest = GroupSpec("g", train, test).counts(n)
    assert ntrain == _fitsnap_count(train, n)
    assert ntest == min(_fitsnap_count(test, n), n - ntrain)


def test_integer_counts_and_errors() -> None:
    assert GroupSpec("g", 3, 2, fraction=False).counts(10) == (3, 2)
    assert GroupSpec("g", 1, 1, fraction=False).counts(10) == (1, 1)
    with pytest.raises(ValueError, match="'g'.*the group has 5"):
        GroupSpec("g", 12, 0, fraction=False).counts(5)
    with pytest.raises(ValueError, match="neither a fraction nor a count"):
        GroupSpec("g", 2.5, 0).counts(5)


def test_ordered_split_takes_train_first_and_test_from_the_end() -> None:
    configs = _configs({"A": 10, "B": 4})
    specs = [GroupSpec("B", 0.5, 0.5, eweight=2.0), GroupSpec("A", 0.6, 0.2, fweight=3.0)]
    split = make_split(configs, specs)
    assert split.train == [10, 11, 0, 1, 2, 3, 4, 5]
    assert split.test == [13, 12, 7, 6]
    assert split.seed is None
    assert split.energy_weight[10] == 2.0 and split.force_weight[0] == 3.0
    assert split.energy_weight[8] == 0.0 and split.energy_weight[9] == 0.0, "unused configurations weigh 0"


def test_random_split_is_fitsnap_seeded_shuffle() -> None:
    configs = _configs({"A": 12, "B": 7})
    specs = group_fraction_specs(["A", "B"], 0.7, 0.3)
    split = make_split(configs, specs, random_sampling=True, seed=42)
    random.seed(42)  # FitSNAP: seed(sampling_seed), then shuffle each group's list in table order
    expected_train, expected_test = [], []
    for ids, spec in ((list(range(12)), specs[0]), (list(range(12, 19)), specs[1])):
        random.shuffle(ids)
        ntrain, ntest = spec.counts(len(ids))
        expected_train += ids[:ntrain]
        expected_test += ids[ntrain:ntrain + ntest][::-1]
    assert split.train == expected_train and split.test == expected_test
    assert make_split(configs, specs, random_sampling=True, seed=42).train == split.train
    assert make_split(configs, specs, random_sampling=True, seed=7).train != split.train


def test_smartweights() -> None:
    configs = _configs({"A": 10})
    split = make_split(configs, [GroupSpec("A", 0.8, 0.2, eweight=8.0, fweight=6.0, vweight=12.0)], smartweights=True)
    for k in split.train:
        assert split.energy_weight[k] == 8.0 / 8
        assert split.force_weight[k] == pytest.approx(6.0 / 8 / (3 * configs[k].num_atoms))
        assert split.stress_weight[k] == pytest.approx(12.0 / 8 / 6)
    for k in split.test:
        assert split.energy_weight[k] == 8.0 / 2


def test_split_json_round_trip_and_apply(tmp_path: Path) -> None:
    configs = _configs({"A": 6, "B": 3})
    split = make_split(configs, [GroupSpec("A", 0.5, 0.5, eweight=5.0), GroupSpec("B", 1.0, 0.0, vweight=0.1)],
                       random_sampling=True, seed=3)
    split.to_json(tmp_path / "split.json")
    back = Split.from_json(tmp_path / "split.json")
    assert back == split
    train, test = back.apply(configs)
    assert [c.index for c in train] == [configs[k].index for k in split.train]
    assert all(c.energy_weight == 5.0 for c in train if c.group == "A")
    assert all(c.stress_weight == 0.1 for c in train if c.group == "B") and len(test) == 3
    with pytest.raises(ValueError, match="different data"):
        back.apply(configs[:-1])
    (tmp_path / "bad.json").write_text('{"train": []}')
    with pytest.raises(ValueError, match="bad.json"):
        Split.from_json(tmp_path / "bad.json")


def test_unknown_group_handling() -> None:
    configs = _configs({"A": 2, "C": 2})
    with pytest.raises(ValueError, match=r"C.json \[configuration 0\] field 'group'"):
        make_split(configs, [GroupSpec("A")])
    split = make_split(configs, [GroupSpec("A")], unknown_groups="ignore")
    assert split.train == [0, 1] and split.energy_weight[2] == 0.0
    with pytest.raises(ValueError, match="'group'"):
        assign_group_weights(configs, [GroupSpec("A")])
    weighted = assign_group_weights(configs, [GroupSpec("A", eweight=3.0), GroupSpec("C", fweight=0.5)])
    assert weighted[0].energy_weight == 3.0 and weighted[3].force_weight == 0.5


def test_energy_shift() -> None:
    config = Configuration(positions=np.zeros((3, 3)), cell=np.eye(3) * 4, pbc=True, symbols=["W", "Be", "Be"],
                           energy=-10.0, source="wbe.json", index=2)
    [shifted] = apply_energy_shift([config], {"W": 1.5, "Be": -0.25})
    assert shifted.energy == -10.0 + 1.5 - 0.5 and config.energy == -10.0
    with pytest.raises(ValueError, match=r"wbe.json \[configuration 2\] field 'symbols'.*'Be'"):
        apply_energy_shift([config], {"W": 1.0})
    unlabelled = Configuration(positions=np.zeros((1, 3)), cell=np.eye(3), pbc=True, symbols=["W"])
    assert apply_energy_shift([unlabelled], {"W": 1.0})[0].energy is None


@pytest.mark.shared_data
def test_fitsnap_random_sampling_input(shared_data: Path) -> None:
    """Ta_PyTorch_NN.in: 0.7/0.3 per group with random sampling."""
    from mliap_torch.data.readers import read_fitsnap_input, read_fitsnap_json

    settings = read_fitsnap_input(shared_data / "fitsnap/Ta_PyTorch_NN/Ta-example.in")
    specs = settings["GROUPS"]["groups"]
    configs = read_fitsnap_json(settings["PATH"]["data_path"], groups=[s.name for s in specs])
    split = make_split(configs, specs, random_sampling=bool(settings["GROUPS"]["random_sampling"]), seed=1)
    sizes = {s.name: sum(c.group == s.name for c in configs) for s in specs}
    assert len(split.train) == sum(_fitsnap_count(0.7, n) for n in sizes.values())
    assert len(split.test) == sum(min(_fitsnap_count(0.3, n), n - _fitsnap_count(0.7, n)) for n in sizes.values())
    assert not set(split.train) & set(split.test)
