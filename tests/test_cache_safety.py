"""The HDF5 data-set cache under concurrent processes, corruption and SIGKILL: real processes started with
``sys.executable``, real files and real locks (no mocks). Each process imports torch (~2–4 s here)."""
from __future__ import annotations

import hashlib
import inspect
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from mliap_torch.data.cache import (
    CacheEntryError,
    cached_dataset,
    descriptor_file,
    load_dataset_file,
    load_descriptors,
    save_dataset,
    store_descriptors,
)
from mliap_torch.data.configuration import Configuration
from mliap_torch.data.dataset import ConfigurationDataset
from mliap_torch.data.readers import read_ase, write_extxyz

ELEMENTS, CUTOFF, SETTINGS = ["Cu", "Ni"], 4.0, {"reader": "extxyz"}


def digest(dataset) -> str:
    """SHA-256 of everything a cache entry stores of ``dataset`` (positions, labels, species, pairs)."""
    h = hashlib.sha256(repr((dataset.elements, dataset.cutoff, dataset.group_names)).encode())
    for it in dataset.items:
        c = it.config
        h.update(repr((c.energy, c.group, c.source, c.index, list(map(str, c.symbols)))).encode())
        for a in (c.positions, c.cell, c.forces, c.stress, it.species, it.pair_i, it.pair_j, it.shifts):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """An extxyz file of 24 EMT-labelled Cu/Ni cells (8–16 atoms)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    configs = []
    for k in range(24):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 2, 1 + k % 2))
        atoms[k % 4].symbol = "Ni"
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        c = Configuration.from_ase(atoms, group="bulk", source="emt", index=k)
        c.energy, c.forces, c.stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        configs.append(c)
    path = tmp_path / "emt.extxyz"
    write_extxyz(configs, path)
    return path


def uncached(source: Path) -> ConfigurationDataset:
    return ConfigurationDataset(read_ase(source), ELEMENTS, CUTOFF)


class CountingReader:
    """The real extxyz reader, counting its calls."""

    def __init__(self, path: Path):
        self.path, self.calls = path, 0

    def __call__(self):
        self.calls += 1
        return read_ase(self.path)


PRELUDE = textwrap.dedent(f"""
    import os, sys, time
    from pathlib import Path
    import numpy as np
    from mliap_torch.data.cache import cached_dataset, load_dataset_file, load_descriptors, store_descriptors
    from mliap_torch.data.readers import read_ase
    ELEMENTS, CUTOFF, SETTINGS = {ELEMENTS!r}, {CUTOFF!r}, {SETTINGS!r}
    import hashlib
""") + inspect.getsource(digest)


def start(body: str, *args: object, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -c PRELUDE+body args...`` (stdout and stderr captured as text)."""
    return subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(body), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


BUILD = """
    src, where, marker = map(Path, sys.argv[1:4])
    def reader():
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(1.0)  # keep the entry missing a while longer, so the other processes find it missing too
        return read_ase(src)
    print(digest(cached_dataset([src], reader, ELEMENTS, CUTOFF, SETTINGS, directory=where)))
"""


def test_concurrent_builders_build_once_and_read_the_same(source: Path, tmp_path: Path) -> None:
    where, marker = tmp_path / "cache", tmp_path / "reader_calls.txt"
    results = [finish(p) for p in [start(BUILD, source, where, marker) for _ in range(4)]]
    assert all(rc == 0 for rc, _, _ in results), [err[-2000:] for _, _, err in results]
    assert len(marker.read_text().split()) == 1, "the reader ran in more than one process"
    assert {out.strip() for _, out, _ in results} == {digest(uncached(source))}
    assert [p.name for p in where.iterdir() if ".tmp" in p.name] == []


DESCRIPTORS = """
    entry, me, rounds, natoms = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    settings = {"type": "bispectrum", "twojmax": 6}
    for k in range(rounds):
        store_descriptors(entry, "B", np.full((natoms, 300), 1000.0 * me + k), settings)
        got = load_descriptors(entry, "B", settings)
        assert got is not None and got.shape == (natoms, 300) and np.unique(got).size == 1, got
        assert len(load_dataset_file(entry)) == 24
    (entry.parent / f"done{me}").touch()
    while len(list(entry.parent.glob("done*"))) < 4:
        time.sleep(0.05)
    print(load_descriptors(entry, "B", settings)[0, 0])
"""


def test_concurrent_descriptor_writers_and_readers(source: Path, tmp_path: Path) -> None:
    dataset = uncached(source)
    entry = save_dataset(dataset, tmp_path / "cache" / "entry.h5")
    natoms = sum(c.num_atoms for c in dataset.configurations)
    results = [finish(p) for p in [start(DESCRIPTORS, entry, me, 12, natoms) for me in range(4)]]
    assert all(rc == 0 for rc, _, _ in results), [err[-2000:] for _, _, err in results]
    values = {float(out) for _, out, _ in results}
    assert len(values) == 1 and values.pop() in {1000.0 * me + 11 for me in range(4)}, "one last write wins whole"
    assert digest(load_dataset_file(entry)) == digest(dataset)
    assert not [p for p in entry.parent.rglob("*") if ".tmp" in p.name]


HOLD_OPEN = """
    with __import__("h5py").File(sys.argv[1], "a"):  # an in-place writer holding HDF5's file lock
        print("open", flush=True)
        time.sleep(float(sys.argv[2]))
"""

STORE_LOOP = """
    entry, natoms = Path(sys.argv[1]), int(sys.argv[2])
    for k in range(15):
        store_descriptors(entry, "B", np.full((natoms, 20000), float(k)), {"type": "big"})
"""


def test_readers_during_writers_never_delete_or_rebuild(source: Path, tmp_path: Path) -> None:
    where, reader = tmp_path / "cache", CountingReader(source)
    entry = cached_dataset([source], reader, ELEMENTS, CUTOFF, SETTINGS, directory=where).cache_path
    inode, reference = entry.stat().st_ino, digest(uncached(source))
    holder = start(HOLD_OPEN, entry, 4)
    assert holder.stdout.readline() == "open\n"
    for _ in range(5):  # the old cache took the HDF5 lock for corruption and deleted the file
        assert digest(cached_dataset([source], reader, ELEMENTS, CUTOFF, SETTINGS, directory=where)) == reference
    assert finish(holder)[0] == 0
    natoms = sum(len(it.species) for it in uncached(source).items)
    writer, reads = start(STORE_LOOP, entry, natoms), 0
    while writer.poll() is None:
        assert digest(cached_dataset([source], reader, ELEMENTS, CUTOFF, SETTINGS, directory=where)) == reference
        got = load_descriptors(entry, "B", {"type": "big"})
        assert got is None or (got.shape == (natoms, 20000) and np.unique(got).size == 1)
        reads += 1
    rc, _, err = finish(writer)
    assert rc == 0, err[-2000:]
    assert reader.calls == 1 and entry.stat().st_ino == inode and reads > 0
    assert load_descriptors(entry, "B", {"type": "big"})[0, 0] == 14.0


def _flip_byte_in_positions(path: Path) -> None:
    with h5py.File(path, "r") as f:
        offset = f["positions"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as f:
        f.seek(offset + 100)
        byte = f.read(1)
        f.seek(offset + 100)
        f.write(bytes([byte[0] ^ 0x10]))


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _other_entry(path: Path) -> None:
    path.write_bytes(next(p for p in path.parent.glob("*.h5") if p != path).read_bytes())


@pytest.mark.parametrize("damage", [_flip_byte_in_positions, _truncate, _other_entry])
def test_corrupt_entry_is_rebuilt_with_a_warning(damage, source: Path, tmp_path: Path) -> None:
    where, reader = tmp_path / "cache", CountingReader(source)
    cached_dataset([source], reader, ELEMENTS, 4.5, SETTINGS, directory=where)  # another entry, for _other_entry
    entry = cached_dataset([source], reader, ELEMENTS, CUTOFF, SETTINGS, directory=where).cache_path
    store_descriptors(entry, "B", np.ones((3, 2)), {"k": 1})
    damage(entry)
    if damage is not _other_entry:  # another entry's file is valid as a file; only its key is wrong
        with pytest.raises(CacheEntryError, match=re.escape(str(entry))):
            load_dataset_file(entry)
    with pytest.warns(UserWarning, match=rf"{re.escape(str(entry))}: .*rebuilding it"):
        rebuilt = cached_dataset([source], reader, ELEMENTS, CUTOFF, SETTINGS, directory=where)
    assert reader.calls == 3 and digest(rebuilt) == digest(uncached(source))
    assert digest(load_dataset_file(entry)) == digest(rebuilt)
    assert load_descriptors(entry, "B", {"k": 1}) is None, "descriptors of the damaged entry are dropped"


def test_corrupt_descriptor_file_is_ignored_with_a_warning(source: Path, tmp_path: Path) -> None:
    entry = save_dataset(uncached(source), tmp_path / "d.h5")
    store_descriptors(entry, "B", np.arange(12.0).reshape(4, 3), {"k": 1})
    path = descriptor_file(entry, "B", {"k": 1})
    _truncate(path)
    with pytest.warns(UserWarning, match=re.escape(str(path))):
        assert load_descriptors(entry, "B", {"k": 1}) is None
    store_descriptors(entry, "B", np.arange(12.0).reshape(4, 3), {"k": 1})
    np.testing.assert_array_equal(load_descriptors(entry, "B", {"k": 1}), np.arange(12.0).reshape(4, 3))


KILLED_BUILD = """
    src, where = map(Path, sys.argv[1:3])
    dataset = cached_dataset([src], lambda: read_ase(src), ELEMENTS, CUTOFF, SETTINGS, directory=where)
    store_descriptors(dataset, "B", np.full((3, 2), 1.0), {"k": 1})
    store_descriptors(dataset, "B", np.full((3, 2), 2.0), {"k": 1})
"""


def test_killed_writes_leave_nothing_corrupt(source: Path, tmp_path: Path) -> None:
    where, reader = tmp_path / "cache", CountingReader(source)
    rc, _, err = finish(start(KILLED_BUILD, source, where, env={"MLIAP_TORCH_KILL_AT": "cache.write"}))
    assert rc == -signal.SIGKILL, err[-2000:]
    assert not list(where.glob("*.h5")) and len(list(where.glob("*.tmp*"))) == 1, "killed before the rename"
    dataset = cached_dataset([source], reader, ELEMENTS, CUTOFF, SETTINGS, directory=where)
    assert reader.calls == 1 and digest(dataset) == digest(uncached(source))
    assert not list(where.glob("*.tmp*")), "the stale temporary is removed under the lock"

    # killed replacing a stored descriptor array (second write through cache.write): the previous one stays whole
    rc, _, err = finish(start(KILLED_BUILD, source, where, env={"MLIAP_TORCH_KILL_AT": "cache.write:2"}))
    assert rc == -signal.SIGKILL, err[-2000:]
    np.testing.assert_array_equal(load_descriptors(dataset, "B", {"k": 1}), np.full((3, 2), 1.0))
    assert [p.name for p in where.rglob("*.tmp*")], "the killed write left its temporary"
    store_descriptors(dataset, "B", np.full((3, 2), 3.0), {"k": 1})
    np.testing.assert_array_equal(load_descriptors(dataset, "B", {"k": 1}), np.full((3, 2), 3.0))
    assert not list(where.rglob("*.tmp*")) and reader.calls == 1
    assert digest(cached_dataset([source], reader, ELEMENTS, CUTOFF, SETTINGS, directory=where)) == digest(dataset)


def test_waiting_for_the_lock_is_reported(source: Path, tmp_path: Path) -> None:
    entry = save_dataset(uncached(source), tmp_path / "d.h5")
    holder = start("""
        from filelock import FileLock
        with FileLock(sys.argv[1]):
            print("locked", flush=True)
            time.sleep(float(sys.argv[2]))
    """, tmp_path / "d.lock", 12)
    assert holder.stdout.readline() == "locked\n"
    begin = time.monotonic()
    rc, out, err = finish(start("""
        store_descriptors(Path(sys.argv[1]), "B", np.ones(3), {})
        print(load_descriptors(Path(sys.argv[1]), "B", {}).sum())
    """, entry))
    assert rc == 0 and out.strip() == "3.0", err[-2000:]
    assert f"waiting for {tmp_path / 'd.lock'}" in err and time.monotonic() - begin > 5
    assert finish(holder)[0] == 0
