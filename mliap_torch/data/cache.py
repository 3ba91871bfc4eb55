"""HDF5 cache of processed data sets (configurations + species + neighbor lists), and of descriptor arrays.

A cache entry is one file ``<cache dir>/<key>.h5``. The key is a SHA-256 of

* the source files: for each file (folders are expanded recursively, sorted) its absolute path, size
  and modification time in ns — or its content hash with ``content_hash=True``;
* the settings that change the processed data: elements, cutoff, reader name and reader options;
* the cache layout version.

Pair indices are stored as int32 (per configuration, so far below 2³¹) and cell shifts as int16, and
read back as int64.

A second load with the same key reads the HDF5 file and never calls the reader. Descriptor arrays
computed later can be stored in the same file under ``descriptors/<name>/<settings hash>``
(:func:`store_descriptors`, :func:`load_descriptors`).

Default cache folder: ``${MLIAP_TORCH_CACHE:-~/.cache/mliap_torch}/datasets``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import h5py
import numpy as np

from .batch import ProcessedConfiguration
from .configuration import Configuration
from .dataset import ConfigurationDataset

CACHE_VERSION = 2
"""Bumped whenever the file layout or the processing changes."""


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


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array([str(v).encode() for v in values], dtype=h5py.string_dtype())


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def save_dataset(dataset: ConfigurationDataset, path: str | Path, attrs: Mapping[str, Any] | None = None) -> Path:
    """Write ``dataset`` to the HDF5 file ``path`` (atomically: a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = dataset.items
    configs = [it.config for it in items]
    n = len(items)

    def cat(arrays, shape, dtype):
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(shape, dtype)

    fd, tmp = tempfile.mkstemp(suffix=".h5.tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["version"] = CACHE_VERSION
            f.attrs["elements"] = _json(dataset.elements)
            f.attrs["cutoff"] = dataset.cutoff
            f.attrs["group_names"] = _json(dataset.group_names)
            for k, v in (attrs or {}).items():
                f.attrs[k] = _json(v)
            f["num_atoms"] = np.array([c.num_atoms for c in configs], dtype=np.int64)
            f["positions"] = cat([c.positions for c in configs], (0, 3), np.float64)
            f["symbols"] = _strings([s for c in configs for s in c.symbols])
            f["species"] = cat([it.species for it in items], (0,), np.int64)
            f["cell"] = np.array([c.cell for c in configs], dtype=np.float64).reshape(n, 3, 3)
            f["pbc"] = np.array([c.pbc for c in configs], dtype=bool).reshape(n, 3)
            f["energy"] = np.array([np.nan if c.energy is None else c.energy for c in configs], dtype=np.float64)
            f["energy_mask"] = np.array([c.energy is not None for c in configs], dtype=bool)
            f["forces"] = cat([np.zeros((c.num_atoms, 3)) if c.forces is None else c.forces for c in configs],
                              (0, 3), np.float64)
            f["forces_mask"] = np.array([c.forces is not None for c in configs], dtype=bool)
            f["stress"] = np.array([np.zeros(6) if c.stress is None else c.stress for c in configs],
                                   dtype=np.float64).reshape(n, 6)
            f["stress_mask"] = np.array([c.stress is not None for c in configs], dtype=bool)
            f["weights"] = np.array([[c.energy_weight, c.force_weight, c.stress_weight] for c in configs],
                                    dtype=np.float64).reshape(n, 3)
            f["group"] = _strings([c.group for c in configs])
            f["source"] = _strings([c.source for c in configs])
            f["index"] = _strings([_json(c.index) for c in configs])
            f["info"] = _strings([_json(c.info) for c in configs])
            f["group_index"] = np.array([it.group_index for it in items], dtype=np.int64)
            f["config_id"] = np.array([it.config_id for it in items], dtype=np.int64)
            f["num_pairs"] = np.array([len(it.pair_i) for it in items], dtype=np.int64)
            f["pair_i"] = cat([it.pair_i for it in items], (0,), np.int32)
            f["pair_j"] = cat([it.pair_j for it in items], (0,), np.int32)
            shifts = cat([it.shifts for it in items], (0, 3), np.int64)
            if shifts.size and np.abs(shifts).max() > np.iinfo(np.int16).max:
                raise ValueError(f"{path}: cell shifts beyond int16 (a cell far thinner than the cutoff)")
            f["shifts"] = shifts.astype(np.int16)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_dataset_file(path: str | Path) -> ConfigurationDataset:
    """Read a data set written by :func:`save_dataset` (no parsing of the original sources)."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        if int(f.attrs.get("version", -1)) != CACHE_VERSION:
            raise ValueError(f"{path}: cache layout version {f.attrs.get('version')} != {CACHE_VERSION}")
        data = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        elements = json.loads(f.attrs["elements"])
        cutoff = float(f.attrs["cutoff"])
        group_names = json.loads(f.attrs["group_names"])
    atom_split = np.cumsum(data["num_atoms"])[:-1]
    pair_split = np.cumsum(data["num_pairs"])[:-1]
    per_atom = {k: np.split(data[k], atom_split) for k in ("positions", "species", "forces")}
    symbols = np.split(np.array(_decode(data["symbols"]), dtype=str), atom_split)
    per_pair = {k: np.split(data[k].astype(np.int64), pair_split) for k in ("pair_i", "pair_j", "shifts")}
    groups, sources = _decode(data["group"]), _decode(data["source"])
    indices, infos = _decode(data["index"]), _decode(data["info"])
    items = []
    for k in range(len(data["num_atoms"])):
        w = data["weights"][k]
        config = Configuration(
            positions=per_atom["positions"][k], cell=data["cell"][k], pbc=data["pbc"][k], symbols=symbols[k],
            energy=float(data["energy"][k]) if data["energy_mask"][k] else None,
            forces=per_atom["forces"][k] if data["forces_mask"][k] else None,
            stress=data["stress"][k] if data["stress_mask"][k] else None,
            group=groups[k], source=sources[k], index=json.loads(indices[k]),
            energy_weight=float(w[0]), force_weight=float(w[1]), stress_weight=float(w[2]),
            info=json.loads(infos[k]))
        items.append(ProcessedConfiguration(config, per_atom["species"][k], per_pair["pair_i"][k],
                                            per_pair["pair_j"][k], per_pair["shifts"][k],
                                            int(data["group_index"][k]), int(data["config_id"][k])))
    dataset = ConfigurationDataset([], elements, cutoff, group_names=group_names, processed=items)
    dataset.cache_path = path
    return dataset


def cached_dataset(sources: Sequence[str | Path], reader: Callable[[], Sequence[Configuration]],
                   elements: Sequence[str], cutoff: float, settings: Mapping[str, Any] | None = None, *,
                   group_names: Sequence[str] | None = None, directory: str | Path | None = None,
                   content_hash: bool = False, progress: bool | None = None) -> ConfigurationDataset:
    """The processed data set of ``sources``: from the cache when the key matches, else ``reader()``
    (called only on a miss), processed and stored.

    Args:
        sources: files/folders the reader reads (their fingerprint is part of the key).
        reader: returns the configurations (e.g. ``lambda: read_dataset(path)``).
        elements, cutoff: processing settings (part of the key).
        settings: further settings that change the result (reader name and options; part of the key).
        group_names: group index order (part of the key).
        directory: cache folder (default :func:`cache_dir`).
        content_hash: fingerprint files by content instead of size + mtime.
    """
    key_settings = {"elements": list(elements), "cutoff": float(cutoff), "group_names": group_names,
                    **dict(settings or {})}
    key = dataset_key(sources, key_settings, content_hash)
    path = Path(directory) if directory is not None else cache_dir()
    file = path / f"{key}.h5"
    if file.is_file():
        try:
            return load_dataset_file(file)
        except (OSError, KeyError, ValueError):
            file.unlink()
    dataset = ConfigurationDataset(list(reader()), elements, cutoff, group_names=group_names, progress=progress)
    save_dataset(dataset, file, {"key": key, "settings": key_settings,
                                 "sources": [str(Path(s).resolve()) for s in sources]})
    dataset.cache_path = file
    return dataset


def load_dataset(path: str | Path, elements: Sequence[str], cutoff: float, format: str = "auto", *,
                 group_names: Sequence[str] | None = None, directory: str | Path | None = None,
                 content_hash: bool = False, **reader_options: Any) -> ConfigurationDataset:
    """Read ``path`` with :func:`~mliap_torch.data.readers.read_dataset` and process it, through the cache."""
    from .readers import read_dataset

    sources = [] if str(path) == "builtin" else [path]
    if str(path) != "builtin" and Path(path).suffix == ".in":
        from .readers import read_fitsnap_input
        sources.append(read_fitsnap_input(path)["PATH"]["data_path"])
    settings = {"reader": format, "path": str(path), "options": reader_options}
    if str(path) == "builtin":
        from .builtin import BUILTIN_VERSION
        settings["builtin_version"] = BUILTIN_VERSION
    return cached_dataset(sources, lambda: read_dataset(path, format, **reader_options), elements, cutoff, settings,
                          group_names=group_names, directory=directory, content_hash=content_hash)


def _settings_hash(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(_json(dict(settings)).encode()).hexdigest()[:16]


def _cache_file(target: ConfigurationDataset | str | Path) -> Path:
    if isinstance(target, ConfigurationDataset):
        if target.cache_path is None:
            raise ValueError("this data set has no cache file (build it with cached_dataset/load_dataset)")
        return Path(target.cache_path)
    return Path(target)


def store_descriptors(target: ConfigurationDataset | str | Path, name: str, array: np.ndarray,
                      settings: Mapping[str, Any]) -> None:
    """Store a descriptor array (e.g. (natoms, K) per-atom descriptors of the whole data set) with the
    data set's cache entry, keyed by ``name`` and the descriptor ``settings``."""
    with h5py.File(_cache_file(target), "a") as f:
        key = f"descriptors/{name}/{_settings_hash(settings)}"
        if key in f:
            del f[key]
        f[key] = np.asarray(array)
        f[key].attrs["settings"] = _json(dict(settings))


def load_descriptors(target: ConfigurationDataset | str | Path, name: str,
                     settings: Mapping[str, Any]) -> np.ndarray | None:
    """The array stored by :func:`store_descriptors` for ``name`` and ``settings``, or None."""
    file = _cache_file(target)
    if not file.is_file():
        return None
    with h5py.File(file, "r") as f:
        key = f"descriptors/{name}/{_settings_hash(settings)}"
        return f[key][()] if key in f else None
