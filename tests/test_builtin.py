"""The built-in EMT data set: deterministic, labelled, cached losslessly."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from mliap_torch import faults
from mliap_torch.data.builtin import (GROUPS, builtin_cache_file, builtin_dataset, builtin_manifest_file,
                                      generate_builtin)
from mliap_torch.data.readers import read_dataset


def _identical(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for name in ("positions", "cell", "pbc", "symbols", "forces", "stress"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=f"{x.where} {name}")
        assert (x.energy, x.group, x.source, x.index, x.info) == (y.energy, y.group, y.source, y.index, y.info)


def test_builtin_deterministic_labelled_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLIAP_TORCH_CACHE", str(tmp_path))
    fresh = generate_builtin()
    cached = builtin_dataset()  # generates a second time, writes the extxyz cache, reads it back
    assert builtin_cache_file().is_file() and builtin_cache_file().parent == tmp_path / "builtin"
    _identical(fresh, cached)

    assert 300 <= len(fresh) <= 400
    counts = Counter(c.group for c in fresh)
    assert set(counts) == set(GROUPS) and min(counts.values()) >= 30
    assert all(c.energy is not None and c.forces is not None and c.stress is not None for c in fresh)
    assert max(c.num_atoms for c in fresh) <= 32 and all(c.pbc.all() for c in fresh)
    assert {str(s) for c in fresh for s in c.symbols} == {"Cu", "Ni"}
    assert all("Ni" in c.symbols for c in fresh if c.group == "alloy")
    # configurations differ (random strains/displacements/MD), volumes span the compressed/expanded set
    energies = np.array([c.energy / c.num_atoms for c in fresh])
    assert len(np.unique(energies)) == len(fresh)
    volumes = [c.volume / c.num_atoms for c in fresh if c.group == "volume"]
    assert max(volumes) / min(volumes) > 1.3
    # labels belong to the stored structures: EMT on a sample of records reproduces them
    for c in fresh[::37]:
        atoms = Atoms(list(c.symbols), positions=c.positions, cell=c.cell, pbc=c.pbc, calculator=EMT())
        assert atoms.get_potential_energy() == pytest.approx(c.energy, abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), c.forces, atol=1e-10)
        np.testing.assert_allclose(atoms.get_stress(), c.stress, atol=1e-12)

    # a second call reads the cache file (checked against its manifest) instead of generating
    generated = faults._reached["builtin.generate"]
    _identical(fresh, builtin_dataset())
    _identical(fresh, read_dataset("builtin"))
    assert faults._reached["builtin.generate"] == generated
    assert builtin_manifest_file().is_file()
