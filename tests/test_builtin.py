"""The built-in EMT data set: deterministic, labelled, cached losslessly; the cache is checked on every read, survives
SIGKILL at its kill points and is generated once by concurrent first calls."""
from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from mliap_torch import faults
from mliap_torch.data.builtin import (
    GROUPS,
    builtin_cache_file,
    builtin_dataset,
    builtin_manifest_file,
    generate_builtin,
)
from mliap_torch.data.readers import read_ase, read_dataset


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


# --- the cache under truncation, SIGKILL and concurrent first calls (real processes and files) -------

def digest(configs) -> str:
    """SHA-256 of every stored field of ``configs``."""
    import hashlib

    h = hashlib.sha256()
    for c in configs:
        h.update(repr((c.energy, c.group, c.source, c.index, sorted(c.info.items()), list(map(str, c.symbols))))
                 .encode())
        for a in (c.positions, c.cell, c.pbc, c.forces, c.stress):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def reference() -> str:
    """Digest of a fresh generation (no cache)."""
    return digest(generate_builtin())


def _run(cache: Path, body: str, kill_at: str | None = None) -> subprocess.Popen:
    """Start a Python process running ``body`` with ``MLIAP_TORCH_CACHE=cache`` (and a kill point)."""
    env = {**os.environ, "MLIAP_TORCH_CACHE": str(cache)}
    env.pop("MLIAP_TORCH_KILL_AT", None)
    if kill_at:
        env["MLIAP_TORCH_KILL_AT"] = kill_at
    script = "import json, numpy as np\nfrom mliap_torch import faults\n" \
             "from mliap_torch.data.builtin import builtin_dataset\n" + inspect.getsource(digest) + body
    return subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "builtin").iterdir() if ".tmp" in p.name)


def test_truncated_cache_is_regenerated(reference: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLIAP_TORCH_CACHE", str(tmp_path))
    assert digest(builtin_dataset()) == reference
    lines = builtin_cache_file().read_text().splitlines(keepends=True)
    start, frames = 0, 0
    while frames < 300:  # cut after 300 whole frames: still a valid extxyz file
        start += int(lines[start]) + 2
        frames += 1
    builtin_cache_file().write_text("".join(lines[:start]))
    assert len(read_ase(builtin_cache_file())) == 300
    with pytest.warns(UserWarning, match=re.escape(f"{builtin_cache_file()}: does not match its manifest")):
        configs = builtin_dataset()
    assert len(configs) == 350 and digest(configs) == reference
    assert _leftovers(tmp_path) == []


def test_killed_generation_and_write_recover(reference: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLIAP_TORCH_CACHE", str(tmp_path))
    killed = _run(tmp_path, "builtin_dataset()", kill_at="builtin.generate:3")
    _, err = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, err[-2000:]
    assert not builtin_cache_file().is_file()
    killed = _run(tmp_path, "builtin_dataset()", kill_at="builtin.write")
    _, err = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, err[-2000:]
    assert not builtin_cache_file().is_file() and not builtin_manifest_file().is_file()
    assert len(_leftovers(tmp_path)) == 1, "the killed write left its temporary"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cold cache is no damaged cache: no warning
        configs = builtin_dataset()
    assert len(configs) == 350 and digest(configs) == reference
    assert _leftovers(tmp_path) == [], "the stale temporary is removed under the lock"


def test_concurrent_first_calls_generate_once(reference: str, tmp_path: Path) -> None:
    body = 'configs = builtin_dataset()\n' \
           'print(json.dumps([len(configs), digest(configs), faults._reached["builtin.generate"]]))\n'
    processes = [_run(tmp_path, body) for _ in range(4)]
    results = [(p.communicate(timeout=300), p.returncode) for p in processes]
    assert all(rc == 0 for _, rc in results), [err[-2000:] for (_, err), _ in results]
    outputs = [json.loads(out) for (out, _), _ in results]
    assert {(n, d) for n, d, _ in outputs} == {(350, reference)}
    assert sorted(k for _, _, k in outputs) == [0, 0, 0, len(GROUPS)], "one process generated, three read"
    assert _leftovers(tmp_path) == []
