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
def test_mliap_unified_equals_torch(tmp_path, elements, head, zbl):
    potential = random_potential(elements, head, zbl, seed=len(elements) * 10 + len(head))
    configs = random_structures(elements, 2, seed=3)
    result = export_lammps(potential, tmp_path, routes=("unified",))
    res = evaluate_in_lammps(configs, elements, result.routes["unified"].pair_commands, activate_mliappy=True,
                             directory=tmp_path)
    assert_matches(res, potential, configs, rtol=1e-8)


@pytest.mark.parametrize("route", ["snap", "mliap"])
@pytest.mark.parametrize("elements,head,zbl", [c for c in CASES if c[1] != "mlp"], ids=lambda v: str(v))
def test_native_snap_routes_equal_torch(tmp_path, route, elements, head, zbl):
    potential = random_potential(elements, head, zbl, seed=7)
    configs = random_structures(elements, 2, seed=5)
    result = export_lammps(potential, tmp_path, routes=(route,))
    res = evaluate_in_lammps(configs, elements, result.routes[route].pair_commands, directory=tmp_path)
    assert_matches(res, potential, configs, rtol=1e-10)


def test_lammps_torch_differences_reports_every_route(tmp_path):
    potential = random_potential(["Cu", "Ni"], "quadratic", True, seed=11)
    configs = random_structures(["Cu", "Ni"], 2, seed=8)
    from mliap_torch.export.verify import lammps_torch_differences

    report = lammps_torch_differences(potential, export_lammps(potential, tmp_path), configs)
    assert set(report) == {"unified", "snap", "mliap", "plugin"}
    for route, diff in report.items():
        assert diff["configurations"] == 2
        assert diff["force_relative"] < (1e-8 if route == "unified" else 1e-10)
        assert diff["energy_per_atom"] < 1e-9
    broken = random_potential(["Cu", "Ni"], "quadratic", True, seed=12)
    assert lammps_torch_differences(broken, export_lammps(potential, tmp_path / "other"), configs)["snap"][
        "force_relative"] > 1e-3
