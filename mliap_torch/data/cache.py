"""HDF5 cache of processed data sets (configurations + species + neighbor lists), and of descriptor arrays.

A cache entry is one file ``<cache dir>/<key>.h5``. The key is a SHA-256 of

* the source files: for each file (folders are expanded recursively, sorted) its absolute path, size
  and modification time in ns — or its content hash with ``content_hash=True``;
* the settings that change the processed data: elements, cutoff, reader name and reader options;
* the cache layout version.

Pair indices are stored as int32 (per configuration, so far below 2³¹) and cell shifts as int16, and
read back as int64.

A second load with the same key reads the HDF5 file and never calls the reader. Descriptor arrays
computed later are stored beside the entry, one file each, in ``<key>.descriptors/``
(:func:`store_descriptors`, :func:`load_descriptors`).

Safe under concurrent readers and writers in several processes:

* A published file is never modified: every file is written to a temporary ``<stem>.tmp<pid>-<token>``
  beside it and renamed into place (:func:`~mliap_torch.data.cache_files.publish`), so a reader sees the old file or the new one,
  never a half-written one, and never meets another process's HDF5 file lock.
* Writers of an entry hold its lock file ``<stem>.lock`` (:func:`~mliap_torch.data.cache_files.entry_lock`, a ``filelock.FileLock``);
  a missing or invalid entry is looked at again under the lock before it is built, so concurrent
  builders of one key build it once and the others read it. Temporaries left by a killed writer are
  removed under the lock. Waiting longer than :data:`~mliap_torch.data.cache_files.LOCK_NOTICE_S` logs one line naming the lock.
* Every array is stored with HDF5 ``fletcher32`` checksums; a read checks them, the layout version,
  the stored key and the counts (configurations, atoms, pairs). A file that fails is a
  :class:`~mliap_torch.data.cache_files.CacheEntryError`, and :func:`cached_dataset` rebuilds it with a warning naming the file. An
  unreadable file for any other reason (permissions, I/O errors) is raised, never deleted or rebuilt.

Default cache folder: ``${MLIAP_TORCH_CACHE:-~/.cache/mliap_torch}/datasets``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .batch import ProcessedConfiguration
from .cache_files import (
    CacheEntryError,
    descriptors_folder,
    entry_lock,
    publish,
    read_or_build,
    remove_stale_temporaries,
)
from .configuration import Configuration
from .dataset import ConfigurationDataset

CACHE_VERSION = 3
"""Bumped whenever the file layout or the processing changes (3: fletcher32 checksums, metadata in a
checksummed JSON array, strings as JSON, descriptor arrays in files of their own)."""


# ---------------------------------------------------------------------------------------------------
# Keys

def cache_dir() -> Path:
    """``${MLIAP_TORCH_CACHE:-~/.cache/mliap_torch}/datasets``."""
    return Path(os.environ.get("MLIAP_TORCH_CACHE", "~/.cache/mliap_torch")).expanduser() / "datasets"


def _files(sources: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for s in sources:
        p = Path(s).resolve()
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: data source does not exist")
    return files


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_fingerprint(sources: Sequence[str | Path], content_hash: bool = False) -> list[list]:
    """``[path, size, mtime_ns or sha256]`` of every source file."""
    out = []
    for f in _files(sources):
        st = f.stat()
        out.append([str(f), st.st_size, _file_hash(f) if content_hash else st.st_mtime_ns])
    return out


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def dataset_key(sources: Sequence[str | Path], settings: Mapping[str, Any], content_hash: bool = False) -> str:
    """Cache key of the processed data set of ``sources`` under ``settings`` (hex SHA-256)."""
    payload = _json({"version": CACHE_VERSION, "sources": source_fingerprint(sources, content_hash),
                     "settings": dict(settings)})
    return hashlib.sha256(payload.encode()).hexdigest()


def _put(f: h5py.File, name: str, array: np.ndarray) -> None:
    """Store ``array`` with fletcher32 checksums (chunked; an empty array has no chunk to check)."""
    array = np.asarray(array)
    f.create_dataset(name, data=array, fletcher32=array.size > 0)


def _put_json(f: h5py.File, name: str, value: Any) -> None:
    """Store ``value`` as checksummed JSON text (a uint8 array)."""
    _put(f, name, np.frombuffer(_json(value).encode(), dtype=np.uint8))


def _get_json(array: np.ndarray) -> Any:
    return json.loads(array.tobytes().decode())


@contextmanager
def _validating(path: Path) -> Iterator[None]:
    """Report what a damaged cache file raises as :class:`~mliap_torch.data.cache_files.CacheEntryError` naming ``path``: HDF5 errors
    that carry no errno (a failed checksum, a truncated file, no HDF5 signature), missing datasets or
    attributes, bad JSON, wrong shapes. OS errors with an errno — no such file, permission denied, I/O
    error, a file locked by another process — are not corruption and pass through unchanged."""
    try:
        yield
    except CacheEntryError:
        raise
    except OSError as err:
        if err.errno is not None:
            raise
        raise CacheEntryError(f"{path}: unreadable cache file ({err})") from err
    except (KeyError, ValueError, TypeError, IndexError) as err:
        raise CacheEntryError(f"{path}: invalid cache file ({type(err).__name__}: {err})") from err


def _open(path: Path) -> h5py.File:
    """Open a published cache file for reading; without HDF5 file locking, as published files never change."""
    return h5py.File(path, "r", locking=False)


def _meta(f: h5py.File, path: Path) -> dict[str, Any]:
    """The checksummed metadata of a cache file, after checking its layout version."""
    version = f.attrs.get("version")
    if version is None or int(version) != CACHE_VERSION:
        raise CacheEntryError(f"{path}: cache layout version {version} != {CACHE_VERSION}")
    return _get_json(f["meta"][()])


# ---------------------------------------------------------------------------------------------------
# Data-set entries

_PER_CONFIG = ("num_atoms", "num_pairs", "cell", "pbc", "energy", "energy_mask", "forces_mask", "stress",
               "stress_mask", "weights", "group_index", "config_id")
_PER_ATOM = ("positions", "species", "forces")
_PER_PAIR = ("pair_i", "pair_j", "shifts")
_STRINGS_PER_CONFIG = ("group", "source", "index", "info")


def _write_dataset(dataset: ConfigurationDataset, path: Path, attrs: Mapping[str, Any]) -> None:
    """Write ``dataset`` to the new HDF5 file ``path`` (layout :data:`CACHE_VERSION`; every array checksummed)."""
    items = dataset.items
    configs = [it.config for it in items]
    n = len(items)

    def cat(arrays, shape, dtype):
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(shape, dtype)

    shifts = cat([it.shifts for it in items], (0, 3), np.int64)
    if shifts.size and np.abs(shifts).max() > np.iinfo(np.int16).max:
        raise ValueError(f"{path}: cell shifts beyond int16 (a cell far thinner than the cutoff)")
    arrays = {
        "num_atoms": np.array([c.num_atoms for c in configs], dtype=np.int64),
        "positions": cat([c.positions for c in configs], (0, 3), np.float64),
        "species": cat([it.species for it in items], (0,), np.int64),
        "cell": np.array([c.cell for c in configs], dtype=np.float64).reshape(n, 3, 3),
        "pbc": np.array([c.pbc for c in configs], dtype=bool).reshape(n, 3),
        "energy": np.array([np.nan if c.energy is None else c.energy for c in configs], dtype=np.float64),
        "energy_mask": np.array([c.energy is not None for c in configs], dtype=bool),
        "forces": cat([np.zeros((c.num_atoms, 3)) if c.forces is None else c.forces for c in configs],
                      (0, 3), np.float64),
        "forces_mask": np.array([c.forces is not None for c in configs], dtype=bool),
        "stress": np.array([np.zeros(6) if c.stress is None else c.stress for c in configs],
                           dtype=np.float64).reshape(n, 6),
        "stress_mask": np.array([c.stress is not None for c in configs], dtype=bool),
        "weights": np.array([[c.energy_weight, c.force_weight, c.stress_weight] for c in configs],
                            dtype=np.float64).reshape(n, 3),
        "group_index": np.array([it.group_index for it in items], dtype=np.int64),
        "config_id": np.array([it.config_id for it in items], dtype=np.int64),
        "num_pairs": np.array([len(it.pair_i) for it in items], dtype=np.int64),
        "pair_i": cat([it.pair_i for it in items], (0,), np.int32),
        "pair_j": cat([it.pair_j for it in items], (0,), np.int32),
        "shifts": shifts.astype(np.int16),
    }
    strings = {"symbols": [str(s) for c in configs for s in c.symbols], "group": [c.group for c in configs],
               "source": [c.source for c in configs], "index": [c.index for c in configs],
               "info": [c.info for c in configs]}
    meta = {"entry_id": uuid.uuid4().hex, "elements": list(dataset.elements), "cutoff": dataset.cutoff,
            "group_names": dataset.group_names, "configurations": n, "atoms": len(arrays["positions"]),
            "pairs": len(arrays["pair_i"]), "attrs": dict(attrs)}
    with h5py.File(path, "w") as f:
        f.attrs["version"] = CACHE_VERSION
        _put_json(f, "meta", meta)
        for name, array in arrays.items():
            _put(f, name, array)
        for name, values in strings.items():
            _put_json(f, name, values)


def save_dataset(dataset: ConfigurationDataset, path: str | Path, attrs: Mapping[str, Any] | None = None) -> Path:
    """Write ``dataset`` to the HDF5 file ``path`` and return ``path``.

    Under the entry's lock, as a temporary renamed into place (kill point ``cache.write`` before the
    rename). ``attrs`` (JSON-able) are kept in the file's metadata. Descriptor arrays stored for an
    earlier file at ``path`` are removed with it.
    """
    path = Path(path)
    with entry_lock(path):
        remove_stale_temporaries(path)
        publish(path, lambda tmp: _write_dataset(dataset, tmp, attrs or {}), "cache.write")
        shutil.rmtree(descriptors_folder(path), ignore_errors=True)
    return path


def _check_counts(data: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Raise ValueError unless every array has the length the metadata and the per-configuration counts
    give, and every pair index lies inside its configuration."""
    n, natoms, npairs = meta["configurations"], meta["atoms"], meta["pairs"]
    num_atoms, num_pairs = data["num_atoms"], data["num_pairs"]
    expected = {**{k: n for k in _PER_CONFIG + _STRINGS_PER_CONFIG}, **{k: natoms for k in _PER_ATOM},
                "symbols": natoms, **{k: npairs for k in _PER_PAIR}}
    wrong = [f"{k}: {len(data[k])} != {m}" for k, m in expected.items() if len(data[k]) != m]
    if (num_atoms < 0).any() or (num_pairs < 0).any() or num_atoms.sum() != natoms or num_pairs.sum() != npairs:
        wrong.append(f"per-configuration counts sum to {num_atoms.sum()} atoms, {num_pairs.sum()} pairs")
    if wrong:
        raise ValueError("inconsistent counts (" + "; ".join(wrong) + ")")
    limit = np.repeat(num_atoms, num_pairs)
    for k in ("pair_i", "pair_j"):
        if npairs and ((data[k] < 0).any() or (data[k] >= limit).any()):
            raise ValueError(f"{k} out of range of its configuration's atoms")


def _read_dataset(path: Path, key: str | None) -> ConfigurationDataset:
    """Read and validate the data-set file ``path`` (its stored key must be ``key`` unless None).

    Raises FileNotFoundError when absent, :class:`~mliap_torch.data.cache_files.CacheEntryError` when invalid.
    """
    with _validating(path):
        with _open(path) as f:
            meta = _meta(f, path)
            data = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset) and k != "meta"}
        if key is not None and meta["attrs"].get("key") != key:
            raise CacheEntryError(f"{path}: stored key {meta['attrs'].get('key')} is not the file's key {key}")
        for k in _STRINGS_PER_CONFIG + ("symbols",):
            data[k] = _get_json(data[k])
        _check_counts(data, meta)
        dataset = _dataset_from_arrays(data, meta)
    dataset.cache_path = path
    return dataset


def _dataset_from_arrays(data: Mapping[str, Any], meta: Mapping[str, Any]) -> ConfigurationDataset:
    """The data set of the validated arrays ``data`` of a cache file."""
    atom_split = np.cumsum(data["num_atoms"])[:-1]
    pair_split = np.cumsum(data["num_pairs"])[:-1]
    per_atom = {k: np.split(data[k], atom_split) for k in _PER_ATOM}
    symbols = np.split(np.array(data["symbols"], dtype=str), atom_split)
    per_pair = {k: np.split(data[k].astype(np.int64), pair_split) for k in _PER_PAIR}
    items = []
    for k in range(meta["configurations"]):
        w = data["weights"][k]
        config = Configuration(
            positions=per_atom["positions"][k], cell=data["cell"][k], pbc=data["pbc"][k], symbols=symbols[k],
            energy=float(data["energy"][k]) if data["energy_mask"][k] else None,
            forces=per_atom["forces"][k] if data["forces_mask"][k] else None,
            stress=data["stress"][k] if data["stress_mask"][k] else None,
            group=data["group"][k], source=data["source"][k], index=data["index"][k],
            energy_weight=float(w[0]), force_weight=float(w[1]), stress_weight=float(w[2]), info=data["info"][k])
        items.append(ProcessedConfiguration(config, per_atom["species"][k], per_pair["pair_i"][k],
                                            per_pair["pair_j"][k], per_pair["shifts"][k],
                                            int(data["group_index"][k]), int(data["config_id"][k])))
    return ConfigurationDataset([], meta["elements"], float(meta["cutoff"]), group_names=meta["group_names"],
                                processed=items)


def load_dataset_file(path: str | Path) -> ConfigurationDataset:
    """Read a data set written by :func:`save_dataset` (no parsing of the original sources).

    The file is validated (checksums, layout version, counts); a file that fails raises
    :class:`~mliap_torch.data.cache_files.CacheEntryError` naming it, a missing one FileNotFoundError.
    """
    return _read_dataset(Path(path), None)


def _read_entry(path: Path, key: str) -> ConfigurationDataset | None:
    """The data set of the entry ``path`` with key ``key``; None when absent; :class:`~mliap_torch.data.cache_files.CacheEntryError` when invalid."""
    try:
        return _read_dataset(path, key)
    except FileNotFoundError:
        return None


def cached_dataset(sources: Sequence[str | Path], reader: Callable[[], Sequence[Configuration]],
                   elements: Sequence[str], cutoff: float, settings: Mapping[str, Any] | None = None, *,
                   group_names: Sequence[str] | None = None, directory: str | Path | None = None,
                   content_hash: bool = False, progress: bool | None = None) -> ConfigurationDataset:
    """The processed data set of ``sources``: from the cache when the key matches, else ``reader()``
    (called only on a miss), processed and stored.

    Safe with several processes: concurrent callers with one key call the reader once (the others wait
    for the entry lock and read the entry); an invalid entry is rebuilt with a warning naming the file
    (module docstring).

    Args:
        sources: files/folders the reader reads (their fingerprint is part of the key).
        reader: returns the configurations (e.g. ``lambda: read_dataset(path)``).
        elements: processing setting (part of the key).
        cutoff: processing setting (part of the key).
        settings: further settings that change the result (reader name and options; part of the key).
        group_names: group index order (part of the key).
        directory: cache folder (default :func:`cache_dir`).
        content_hash: fingerprint files by content instead of size + mtime.
    """
    key_settings = {"elements": list(elements), "cutoff": float(cutoff), "group_names": group_names,
                    **dict(settings or {})}
    key = dataset_key(sources, key_settings, content_hash)
    file = (Path(directory) if directory is not None else cache_dir()) / f"{key}.h5"

    def build() -> ConfigurationDataset:
        dataset = ConfigurationDataset(list(reader()), elements, cutoff, group_names=group_names, progress=progress)
        save_dataset(dataset, file, {"key": key, "settings": key_settings,
                                     "sources": [str(Path(s).resolve()) for s in sources]})
        dataset.cache_path = file
        return dataset

    return read_or_build(file, lambda: _read_entry(file, key), build)


def load_dataset(path: str | Path, elements: Sequence[str], cutoff: float, format: str = "auto", *,
                 group_names: Sequence[str] | None = None, directory: str | Path | None = None,
                 content_hash: bool = False, **reader_options: Any) -> ConfigurationDataset:
    """Read ``path`` with :func:`~mliap_torch.data.readers.read_dataset` and process it, through the cache."""
    from .readers import read_dataset

    sources = [] if str(path) == "builtin" else [path]
    if str(path) != "builtin" and Path(path).suffix == ".in":
        from ..fitsnap.input import read_fitsnap_input
        sources.append(read_fitsnap_input(path)["PATH"]["data_path"])
    settings: dict[str, Any] = {"reader": format, "path": str(path), "options": reader_options}
    if str(path) == "builtin":
        from .builtin import BUILTIN_VERSION
        settings["builtin_version"] = BUILTIN_VERSION
    return cached_dataset(sources, lambda: read_dataset(path, format, **reader_options), elements, cutoff, settings,
                          group_names=group_names, directory=directory, content_hash=content_hash)


# ---------------------------------------------------------------------------------------------------
# Descriptor arrays

def _cache_file(target: ConfigurationDataset | str | Path) -> Path:
    if isinstance(target, ConfigurationDataset):
        if target.cache_path is None:
            raise ValueError("this data set has no cache file (build it with cached_dataset/load_dataset)")
        return Path(target.cache_path)
    return Path(target)


def descriptor_file(target: ConfigurationDataset | str | Path, name: str, settings: Mapping[str, Any]) -> Path:
    """The file of the descriptor array ``name`` under ``settings`` stored with the entry of ``target``:
    ``<stem>.descriptors/<SHA-256 of name and settings, 32 hex digits>.h5``."""
    digest = hashlib.sha256(_json({"name": name, "settings": dict(settings)}).encode()).hexdigest()[:32]
    return descriptors_folder(_cache_file(target)) / f"{digest}.h5"


def _entry_id(path: Path) -> str:
    """The id written into the data-set file ``path`` when it was saved (new for every save)."""
    with _validating(path), _open(path) as f:
        return _meta(f, path)["entry_id"]


def store_descriptors(target: ConfigurationDataset | str | Path, name: str, array: np.ndarray,
                      settings: Mapping[str, Any]) -> None:
    """Store a descriptor array (e.g. (natoms, K) per-atom descriptors of the whole data set) with the
    data set's cache entry, keyed by ``name`` and the descriptor ``settings``.

    The array gets a file of its own (:func:`descriptor_file`), written under the entry's lock to a
    temporary that is renamed into place (kill point ``cache.write``); storing again replaces it. The
    entry's file itself is never modified.
    """
    file = _cache_file(target)
    array = np.asarray(array)
    with entry_lock(file):
        remove_stale_temporaries(file)
        meta = {"name": name, "settings": dict(settings), "entry_id": _entry_id(file),
                "shape": list(array.shape), "dtype": array.dtype.str}
        out = descriptor_file(file, name, settings)
        out.parent.mkdir(exist_ok=True)

        def write(tmp: Path) -> None:
            with h5py.File(tmp, "w") as f:
                f.attrs["version"] = CACHE_VERSION
                _put_json(f, "meta", meta)
                _put(f, "array", array)

        publish(out, write, "cache.write")


def _read_descriptors(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    """Metadata and array of the descriptor file ``path``, validated (checksums, shape, dtype)."""
    with _validating(path):
        with _open(path) as f:
            meta = _meta(f, path)
            array = f["array"][()]
        if list(array.shape) != meta["shape"] or array.dtype.str != meta["dtype"]:
            raise CacheEntryError(f"{path}: array {array.dtype.str}{list(array.shape)} is not the stored "
                                  f"{meta['dtype']}{meta['shape']}")
    return meta, array


def load_descriptors(target: ConfigurationDataset | str | Path, name: str,
                     settings: Mapping[str, Any]) -> np.ndarray | None:
    """The array stored by :func:`store_descriptors` for ``name`` and ``settings``, or None.

    None also when the entry was saved again after the array was stored (its id differs), and — with a
    warning naming the file — when the descriptor file is invalid (store it again to replace it).
    """
    file = _cache_file(target)
    path = descriptor_file(file, name, settings)
    try:
        entry_id = _entry_id(file)
        meta, array = _read_descriptors(path)
    except FileNotFoundError:
        return None
    except CacheEntryError as err:
        warnings.warn(f"{err}; ignoring the stored descriptors", stacklevel=2)
        return None
    wanted = {"name": name, "settings": json.loads(_json(dict(settings))), "entry_id": entry_id}
    return array if all(meta[k] == v for k, v in wanted.items()) else None
