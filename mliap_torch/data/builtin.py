"""The built-in training set: fcc Cu and Cu–Ni labelled with ASE's EMT, generated deterministically.

Groups (configurations; every cell has at most 32 atoms; all cells are fully periodic):

================  ====  =============================================================================
``bulk_strain``    40   2×2×2 conventional fcc (32 atoms), random normal strains ±3 %, 0.03 Å rattle
``bulk_shear``     30   random shear strains ±4 %, 0.03 Å rattle
``rattle``         40   displacements with σ = 0.05–0.15 Å
``volume``         30   isotropic compression/expansion −6 % … +6 % (no rattle), lattice 3.61 Å
``vacancy``        30   one atom removed (31 atoms), rattled 0.05 Å, random strain ±1 %
``alloy``          60   random Cu–Ni (10–90 % Ni), lattice from Vegard's law, strain ±2 %, rattle 0.05 Å
``surface``        40   (100), (110) and (111) slabs, 12 Å vacuum along z (periodic cell with a vacuum
                        gap, so stress is defined: it is the EMT stress of that cell), rattle 0.05 Å
``md``             80   Langevin NVT snapshots (Cu and Cu–Ni, 300/600/900/1200 K, 10 snapshots each,
                        every 5 steps of 5 fs after 10 steps from Maxwell–Boltzmann velocities)
================  ====  =============================================================================

Labels: EMT energy (eV), forces (eV/Å) and stress (ASE convention). Every configuration is generated
from ``numpy.random.default_rng`` seeded per group, so two generations give identical numbers.
The set is cached as extxyz under ``${MLIAP_TORCH_CACHE:-~/.cache/mliap_torch}/builtin/`` after the
first call (about 10 s to generate), with a manifest (SHA-256, size and configuration count of the
file) that every read checks. Generation and writing run under the cache's lock file, so concurrent
first calls generate once (the others wait and read the file); both files are written to temporaries
and renamed into place, the data first. A file that fails the check — cut short, edited, its
manifest missing — is regenerated with a warning naming it (:func:`builtin_dataset`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.calculators.emt import EMT

from ..faults import kill_point
from .configuration import Configuration

BUILTIN_VERSION = 1
"""Bumped whenever the generated data change (the cache file name carries it)."""

ELEMENTS = ("Cu", "Ni")
LATTICE = {"Cu": 3.61, "Ni": 3.52}
SOURCE = "builtin:emt_cu_ni"

log = logging.getLogger(__name__)


def emt_labelled(atoms: Atoms, group: str, index: int, source: str = SOURCE,
                 weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Configuration:
    """``atoms`` labelled by ASE's EMT (the built-in data's labels): energy (eV), forces (eV/Å) and stress (ASE
    convention, eV/Å³), with (energy, force, stress) fit ``weights``; sets ``atoms.calc``."""
    atoms.calc = EMT()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=True)
    return Configuration(positions=atoms.get_positions(), cell=np.asarray(atoms.get_cell()), pbc=atoms.get_pbc(),
                         symbols=atoms.get_chemical_symbols(), energy=energy, forces=forces, stress=stress,
                         group=group, source=source, index=index, energy_weight=weights[0],
                         force_weight=weights[1], stress_weight=weights[2])


def _cu_cell(a: float = LATTICE["Cu"]) -> Atoms:
    return bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 2))


def _strain(atoms: Atoms, eps: np.ndarray) -> Atoms:
    """Apply the (3, 3) symmetric small strain ``eps`` (positions scale with the cell)."""
    out = atoms.copy()
    out.set_cell(atoms.get_cell() @ (np.eye(3) + eps), scale_atoms=True)
    return out


def _rattle(atoms: Atoms, sigma: float, rng: np.random.Generator) -> Atoms:
    out = atoms.copy()
    out.positions += rng.normal(scale=sigma, size=out.positions.shape)
    return out


def _sym(m: np.ndarray) -> np.ndarray:
    return 0.5 * (m + m.T)


def _bulk_strain(rng: np.random.Generator) -> list[Atoms]:
    return [_rattle(_strain(_cu_cell(), np.diag(rng.uniform(-0.03, 0.03, 3))), 0.03, rng) for _ in range(40)]


def _bulk_shear(rng: np.random.Generator) -> list[Atoms]:
    out = []
    for _ in range(30):
        off = np.zeros((3, 3))
        off[np.triu_indices(3, 1)] = rng.uniform(-0.04, 0.04, 3)
        out.append(_rattle(_strain(_cu_cell(), _sym(off + off.T)), 0.03, rng))
    return out


def _rattle_set(rng: np.random.Generator) -> list[Atoms]:
    return [_rattle(_cu_cell(), s, rng) for s in np.linspace(0.05, 0.15, 40)]


def _volume(rng: np.random.Generator) -> list[Atoms]:
    return [_strain(_cu_cell(), np.eye(3) * e) for e in np.linspace(-0.06, 0.06, 30)]


def _vacancy(rng: np.random.Generator) -> list[Atoms]:
    out = []
    for _ in range(30):
        atoms = _cu_cell()
        del atoms[int(rng.integers(len(atoms)))]
        out.append(_rattle(_strain(atoms, _sym(rng.uniform(-0.01, 0.01, (3, 3)))), 0.05, rng))
    return out


def _alloy_cell(rng: np.random.Generator, fraction: float) -> Atoms:
    atoms = _cu_cell(LATTICE["Cu"] + fraction * (LATTICE["Ni"] - LATTICE["Cu"]))
    symbols = np.array(atoms.get_chemical_symbols())
    symbols[rng.random(len(atoms)) < fraction] = "Ni"
    atoms.set_chemical_symbols(symbols.tolist())
    return atoms


def _alloy(rng: np.random.Generator) -> list[Atoms]:
    return [_rattle(_strain(_alloy_cell(rng, rng.uniform(0.1, 0.9)), _sym(rng.uniform(-0.02, 0.02, (3, 3)))),
                    0.05, rng) for _ in range(60)]


def _surface(rng: np.random.Generator) -> list[Atoms]:
    makers = [lambda: fcc100("Cu", (2, 2, 6), a=LATTICE["Cu"], vacuum=6.0),
              lambda: fcc110("Cu", (2, 2, 6), a=LATTICE["Cu"], vacuum=6.0),
              lambda: fcc111("Cu", (2, 2, 6), a=LATTICE["Cu"], vacuum=6.0, orthogonal=True)]
    out = []
    for k in range(40):
        slab = makers[k % 3]()
        slab.pbc = True
        out.append(_rattle(slab, 0.05, rng))
    return out


def _md(rng: np.random.Generator) -> list[Atoms]:
    from ase.md.langevin import Langevin

    out = []
    for alloy in (False, True):
        for temperature in (300, 600, 900, 1200):
            atoms = _alloy_cell(rng, 0.5) if alloy else _cu_cell()
            atoms.calc = EMT()
            kt = units.kB * temperature
            atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(atoms.get_masses() * kt)[:, None])
            dyn = Langevin(atoms, 5 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng)
            dyn.run(10)
            for _ in range(10):
                dyn.run(5)
                snapshot = atoms.copy()
                snapshot.calc = None
                out.append(snapshot)
    return out


GROUPS: dict[str, Callable[[np.random.Generator], list[Atoms]]] = {
    "bulk_strain": _bulk_strain, "bulk_shear": _bulk_shear, "rattle": _rattle_set, "volume": _volume,
    "vacancy": _vacancy, "alloy": _alloy, "surface": _surface, "md": _md,
}
"""Generator of each group's structures (each called with its own seeded generator)."""


def generate_builtin(seed: int = 20240611) -> list[Configuration]:
    """Generate the built-in data set (no cache): EMT labels of every group's structures, in group order."""
    configs: list[Configuration] = []
    for k, (group, make) in enumerate(GROUPS.items()):
        rng = np.random.default_rng([seed, k])
        kill_point("builtin.generate")
        start = len(configs)
        configs.extend(emt_labelled(atoms, group, start + j) for j, atoms in enumerate(make(rng)))
    return configs


def builtin_cache_file() -> Path:
    """``${MLIAP_TORCH_CACHE:-~/.cache/mliap_torch}/builtin/emt_cu_ni_v<BUILTIN_VERSION>.extxyz``."""
    root = Path(os.environ.get("MLIAP_TORCH_CACHE", "~/.cache/mliap_torch")).expanduser()
    return root / "builtin" / f"emt_cu_ni_v{BUILTIN_VERSION}.extxyz"


def builtin_manifest_file() -> Path:
    """The manifest of :func:`builtin_cache_file`: the same name with ``.json``."""
    return builtin_cache_file().with_suffix(".json")


def _manifest(data: bytes, num_configs: int) -> dict[str, Any]:
    return {"builtin_version": BUILTIN_VERSION, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "configurations": num_configs}


def _read_cache(file: Path, manifest_file: Path) -> list[Configuration] | None:
    """The configurations of the cache ``file``, checked against ``manifest_file`` (SHA-256, size,
    count); None when neither file exists; :class:`~mliap_torch.data.cache_files.CacheEntryError` naming
    ``file`` when they do not agree."""
    from .cache_files import CacheEntryError
    from .readers.ase_io import read_ase

    try:
        data = file.read_bytes()
    except FileNotFoundError:
        if manifest_file.exists():
            raise CacheEntryError(f"{file}: missing, but its manifest {manifest_file.name} exists") from None
        return None
    try:
        manifest = json.loads(manifest_file.read_text())
    except FileNotFoundError:
        raise CacheEntryError(f"{file}: no manifest {manifest_file.name} (its write was cut short, or it predates "
                              "manifests)") from None
    except ValueError as err:
        raise CacheEntryError(f"{file}: unreadable manifest {manifest_file.name} ({err})") from err
    if not isinstance(manifest, dict):
        raise CacheEntryError(f"{file}: its manifest {manifest_file.name} is not a JSON object")
    expected = _manifest(data, manifest.get("configurations", -1))
    if manifest != expected:
        raise CacheEntryError(f"{file}: does not match its manifest {manifest_file.name} (file: {len(data)} bytes, "
                              f"SHA-256 {expected['sha256'][:12]}…; manifest: {manifest.get('bytes')} bytes, "
                              f"SHA-256 {str(manifest.get('sha256'))[:12]}…)")
    configs = read_ase(file)
    if len(configs) != manifest["configurations"]:
        raise CacheEntryError(f"{file}: {len(configs)} configurations, its manifest says {manifest['configurations']}")
    return configs


def _generate_cache(file: Path, manifest_file: Path) -> None:
    """Generate the data set and publish ``file`` (kill point ``builtin.write`` before its rename), then
    its manifest. Call it holding the cache's lock."""
    from .cache_files import publish
    from .readers.ase_io import write_extxyz

    log.info("generating the built-in data set into %s (about 10 s)", file)
    configs = generate_builtin()
    publish(file, lambda tmp: write_extxyz(configs, tmp), "builtin.write")
    manifest = _manifest(file.read_bytes(), len(configs))
    publish(manifest_file, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1) + "\n"))


def builtin_dataset(cache: bool = True) -> list[Configuration]:
    """The built-in EMT Cu/Cu–Ni data set (module docstring), read from the extxyz cache when present.

    Configurations read back from the cache are identical to freshly generated ones (the extxyz
    writer is lossless; ``source`` is ``"builtin:emt_cu_ni"`` and ``index`` the position in both).
    The cache is checked against its manifest on every read; a cold or invalid cache is generated
    once across processes (concurrent callers wait for the lock, then read), an invalid one with a
    warning naming the file. ``cache=False`` generates without touching the cache.
    """
    if not cache:
        return generate_builtin()
    from .cache_files import read_or_build

    file, manifest_file = builtin_cache_file(), builtin_manifest_file()

    def build() -> list[Configuration]:
        _generate_cache(file, manifest_file)
        configs = _read_cache(file, manifest_file)
        assert configs is not None, f"{file}: missing right after it was generated"
        return configs

    configs: list[Configuration] = read_or_build(file, lambda: _read_cache(file, manifest_file), build)
    for c in configs:
        c.source = SOURCE
    return configs
