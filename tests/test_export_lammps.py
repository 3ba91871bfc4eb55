"""Exported models give in LAMMPS what they give in torch (ML-IAP unified, pair_style snap, mliap model)."""
from __future__ import annotations

import numpy as np
import pytest

from lammps_models import random_potential, random_structures
from mliap_torch.data.batch import make_batch
from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.lammps_eval import evaluate_in_lammps

pytestmark = pytest.mark.lammps

CASES = [  # (elements, head, zbl)
    (["Ta"], "linear", True),
    (["Ta"], "quadratic", False),
    (["Ta"], "mlp", False),
    (["Cu", "Ni"], "linear", False),
    (["Cu", "Ni"], "quadratic", True),
    (["Cu", "Ni"], "mlp", True),
]


def torch_results(potential, configs):
    batch = make_batch(configs, potential.elements, potential.cutoff)
    out = potential(batch)
    return out, batch


def assert_matches(lammps_results, potential, configs, rtol):
    out, batch = torch_results(potential, configs)
    for k, res in enumerate(lammps_results):
        atoms = (batch.atom_config == k).numpy()
        scale_e = abs(float(out["energy"][k].detach()))
        assert res["energy"] == pytest.approx(float(out["energy"][k].detach()), rel=rtol, abs=rtol * scale_e)
        np.testing.assert_allclose(res["atomic_energies"], out["atomic_energies"].detach().numpy()[atoms],
                                   rtol=rtol, atol=rtol * scale_e / atoms.sum())
        f_torch = out["forces"].detach().numpy()[atoms]
        np.testing.assert_allclose(res["forces"], f_torch, rtol=rtol, atol=rtol * np.abs(f_torch).max())
        s_torch = out["stress"].detach().numpy()[k]
        np.testing.assert_allclose(res["stress"], s_torch, rtol=rtol, atol=rtol * np.abs(s_torch).max())


@pytest.mark.parametrize("elements,head,zbl", CASES, ids=lambda v: str(v))
def test_mliap_unified_equals_torch(tmp_path, monkeypatch, elements, head, zbl):
    potential = random_potential(elements, head, zbl, seed=len(elements) * 10 + len(head))
    configs = random_structures(elements, 2, seed=3)
    result = export_lammps(potential, tmp_path, routes=("unified",))
    monkeypatch.chdir(tmp_path)
    res = evaluate_in_lammps(configs, elements, result.routes["unified"].pair_commands, activate_mliappy=True)
    assert_matches(res, potential, configs, rtol=1e-8)


@pytest.mark.parametrize("route", ["snap", "mliap"])
@pytest.mark.parametrize("elements,head,zbl", [c for c in CASES if c[1] != "mlp"], ids=lambda v: str(v))
def test_native_snap_routes_equal_torch(tmp_path, monkeypatch, route, elements, head, zbl):
    potential = random_potential(elements, head, zbl, seed=7)
    configs = random_structures(elements, 2, seed=5)
    result = export_lammps(potential, tmp_path, routes=(route,))
    monkeypatch.chdir(tmp_path)
    res = evaluate_in_lammps(configs, elements, result.routes[route].pair_commands)
    assert_matches(res, potential, configs, rtol=1e-10)
