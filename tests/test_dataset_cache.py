"""Dataset/collate against make_batch, DistributedSampler coverage, and the HDF5 cache (hits skip
parsing, source and setting changes invalidate, descriptors stored with the entry)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from mliap_torch.data.batch import AtomsBatch, make_batch
from mliap_torch.data.cache import (
    cache_dir,
    cached_dataset,
    load_dataset,
    load_dataset_file,
    load_descriptors,
    save_dataset,
    store_descriptors,
)
from mliap_torch.data.configuration import Configuration
from mliap_torch.data.dataset import AtomsCollate, ConfigurationDataset, collate_processed
from mliap_torch.data.readers import read_ase, write_extxyz


@pytest.fixture
def emt_file(tmp_path: Path) -> Path:
    from ase.build import bulk
    from ase.calculators.emt import EMT

    configs = []
    for k in range(7):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 1 + k % 2))
        if k % 3 == 0:
            atoms[0].symbol = "Ni"
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        c = Configuration.from_ase(atoms, group=f"g{k % 2}", source="emt", index=k)
        c.energy, c.forces, c.stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        if k == 4:
            c.stress = None
        configs.append(c)
    path = tmp_path / "emt.extxyz"
    write_extxyz(configs, path)
    return path


def _assert_batches_equal(a: AtomsBatch, b: AtomsBatch) -> None:
    for name in AtomsBatch.__dataclass_fields__:
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0, msg=name)


def test_loader_batches_equal_make_batch(emt_file: Path) -> None:
    configs = read_ase(emt_file)
    dataset = ConfigurationDataset(configs, ["Cu", "Ni"], 4.0, group_names=["g0", "g1"], progress=True)
    assert len(dataset) == 7 and dataset.group_names == ["g0", "g1"]
    batches = list(dataset.loader(batch_size=3))
    assert [b.num_configs for b in batches] == [3, 3, 1]
    reference = make_batch(configs[3:6], ["Cu", "Ni"], 4.0)
    reference.config_id = torch.tensor([3, 4, 5])
    reference.group = torch.tensor([1, 0, 1])
    _assert_batches_equal(batches[1], reference)
    assert not bool(batches[1].stress_mask[1]) and bool(batches[1].stress_mask[0])
    b32 = collate_processed([dataset[0], dataset[1]], dtype=torch.float32)
    assert b32.positions.dtype == torch.float32 and b32.pair_i.dtype == torch.int64


def test_distributed_sampler_covers_every_configuration(emt_file: Path) -> None:
    dataset = ConfigurationDataset(read_ase(emt_file), ["Cu", "Ni"], 4.0)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0, drop_last=False)
        loader = DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=AtomsCollate())
        for batch in loader:
            assert isinstance(batch, AtomsBatch)
            seen.extend(batch.config_id.tolist())
    assert sorted(set(seen)) == list(range(7)) and len(seen) == 8  # one repeat pads to equal shards


def test_unknown_group_is_an_error(emt_file: Path) -> None:
    with pytest.raises(ValueError, match=r"emt.extxyz \[configuration 1\] field 'group'"):
        ConfigurationDataset(read_ase(emt_file), ["Cu", "Ni"], 4.0, group_names=["g0"])


class CountingReader:
    """The real extxyz reader, counting its calls (proof that a cache hit skips parsing)."""

    def __init__(self, path: Path):
        self.path = path
        self.calls = 0

    def __call__(self) -> list[Configuration]:
        self.calls += 1
        return read_ase(self.path)


def _same_dataset(a: ConfigurationDataset, b: ConfigurationDataset) -> None:
    assert (a.elements, a.cutoff, a.group_names, len(a)) == (b.elements, b.cutoff, b.group_names, len(b))
    _assert_batches_equal(collate_processed(a.items), collate_processed(b.items))
    for x, y in zip(a.configurations, b.configurations):
        assert (x.source, x.index, x.group, x.info, x.energy) == (y.source, y.index, y.group, y.info, y.energy)
        assert np.array_equal(x.symbols, y.symbols) and (x.stress is None) == (y.stress is None)


def test_cache_hit_skips_parsing_and_changes_invalidate(emt_file: Path, tmp_path: Path) -> None:
    reader = CountingReader(emt_file)
    where = tmp_path / "cache"
    first = cached_dataset([emt_file], reader, ["Cu", "Ni"], 4.0, {"reader": "extxyz"}, directory=where)
    second = cached_dataset([emt_file], reader, ["Cu", "Ni"], 4.0, {"reader": "extxyz"}, directory=where)
    assert reader.calls == 1 and second.cache_path == first.cache_path
    _same_dataset(first, second)
    cached_dataset([emt_file], reader, ["Cu", "Ni"], 4.5, {"reader": "extxyz"}, directory=where)
    assert reader.calls == 2, "a new cutoff is a new entry"
    cached_dataset([emt_file], reader, ["Cu", "Ni"], 4.0, {"reader": "ase", "index": "0:3"}, directory=where)
    assert reader.calls == 3, "new reader options are a new entry"
    configs = read_ase(emt_file)
    configs[0].energy += 1.0
    write_extxyz(configs, emt_file)
    changed = cached_dataset([emt_file], reader, ["Cu", "Ni"], 4.0, {"reader": "extxyz"}, directory=where)
    assert reader.calls == 4 and changed.configurations[0].energy == configs[0].energy
    assert len(list(where.glob("*.h5"))) == 4


def test_content_hash_ignores_touch(emt_file: Path, tmp_path: Path) -> None:
    reader = CountingReader(emt_file)
    for _ in range(2):
        cached_dataset([emt_file], reader, ["Cu", "Ni"], 4.0, directory=tmp_path / "c", content_hash=True)
        cached_dataset([emt_file.parent], reader, ["Cu", "Ni"], 4.0, directory=tmp_path / "m")
        st = emt_file.stat()
        os.utime(emt_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert reader.calls == 3, "content hash: one parse; size+mtime of the folder's files: two"


def test_saved_file_round_trip_and_descriptors(emt_file: Path, tmp_path: Path) -> None:
    dataset = ConfigurationDataset(read_ase(emt_file), ["Cu", "Ni"], 4.0)
    path = save_dataset(dataset, tmp_path / "d.h5")
    loaded = load_dataset_file(path)
    _same_dataset(dataset, loaded)
    for x, y in zip(dataset.configurations, loaded.configurations):
        np.testing.assert_array_equal(x.positions, y.positions)
    natoms = sum(c.num_atoms for c in dataset.configurations)
    descriptors = np.random.default_rng(0).normal(size=(natoms, 5))
    settings = {"type": "bispectrum", "twojmax": 2}
    assert load_descriptors(loaded, "B", settings) is None
    store_descriptors(loaded, "B", descriptors, settings)
    np.testing.assert_array_equal(load_descriptors(path, "B", settings), descriptors)
    assert load_descriptors(path, "B", {**settings, "twojmax": 4}) is None
    store_descriptors(path, "B", 2 * descriptors, settings)
    np.testing.assert_array_equal(load_descriptors(loaded, "B", settings), 2 * descriptors)
    with pytest.raises(ValueError, match="no cache file"):
        store_descriptors(dataset, "B", descriptors, settings)


def test_load_dataset_uses_default_cache_folder(emt_file: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLIAP_TORCH_CACHE", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / "datasets"
    dataset = load_dataset(emt_file, ["Cu", "Ni"], 4.0)
    assert dataset.cache_path.parent == tmp_path / "home" / "datasets"
    again = load_dataset(emt_file, ["Cu", "Ni"], 4.0)
    assert again.cache_path == dataset.cache_path
    _same_dataset(dataset, again)


def test_extxyz_round_trip_molecule_and_slab(tmp_path: Path) -> None:
    molecule = Configuration(positions=[[0, 0, 0], [0.74, 0, 0]], cell=np.zeros((3, 3)), pbc=False,
                             symbols=["H", "H"], energy=-31.7, forces=[[0.1, 0, 0], [-0.1, 0, 0]], group="mol",
                             energy_weight=2.5, info={"note": "a b=c", "charge": 0, "flag": True})
    slab = Configuration(positions=np.random.default_rng(0).normal(size=(4, 3)), cell=np.diag([3.0, 3.0, 20.0]),
                         pbc=[True, True, False], symbols=["Cu"] * 4, stress=np.arange(6) * 1e-3 / 3,
                         force_weight=0.125)
    write_extxyz([molecule, slab], tmp_path / "m.extxyz")
    back = read_ase(tmp_path / "m.extxyz")
    for a, b in zip([molecule, slab], back):
        for name in ("positions", "cell", "pbc", "symbols"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert (a.energy, a.group, a.energy_weight, a.force_weight, a.info) == (
            b.energy, b.group, b.energy_weight, b.force_weight, b.info)
    np.testing.assert_array_equal(back[1].stress, slab.stress)
    assert back[0].stress is None and back[1].forces is None and back[1].energy is None
