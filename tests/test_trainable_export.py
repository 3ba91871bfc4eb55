"""Models with learned descriptor hyperparameters give in LAMMPS what they give in torch.

The learned values (wj, radelem, rfac0 away from their starting values) must reach every export:
the ML-IAP unified pickle (settings rebuilt into a plain Bispectrum), ``pair_style snap`` files written
here directly from ``settings()`` (per-element radius and weight in ``.snapcoeff``, rfac0 in
``.snapparam``), and — once the SNAP file writer exists — the ``snap``/``mliap`` export routes.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from lammps_models import random_structures
from mliap_torch.data.batch import make_batch
from mliap_torch.descriptors.trainable import TrainableBispectrum
from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.lammps_eval import evaluate_in_lammps
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.potential import Potential

pytestmark = pytest.mark.lammps

ELEMENTS = ["Cu", "Ni"]


def _learned_potential() -> Potential:
    """A linear SNAP whose trainable wj, radelem, rfac0 have moved (as after training)."""
    torch.manual_seed(4)
    desc = TrainableBispectrum(ELEMENTS, twojmax=4, rcutfac=4.6, radelem=[0.5, 0.45], wj=[1.0, 0.8], rfac0=0.99363,
                               bzeroflag=False, max_cutoff=4.8)
    with torch.no_grad():
        desc.wj_raw.add_(torch.tensor([0.3, -0.2]))
        desc.radelem_raw.add_(torch.tensor([-0.4, 0.3]))
        desc.rfac0_raw.sub_(0.7)
    head = LinearHead(2, desc.num_descriptors)
    coeffs = 0.05 * torch.randn(2, 1 + head.num_features, dtype=torch.float64)
    coeffs[:, 0] = torch.tensor([-1.0, -2.0])
    head.set_coefficients(coeffs)
    return Potential(desc, head)


def _assert_matches(results, potential, configs, rtol):
    batch = make_batch(configs, potential.elements, potential.cutoff)
    out = potential(batch)
    for k, res in enumerate(results):
        atoms = (batch.atom_config == k).numpy()
        e = float(out["energy"][k].detach())
        assert res["energy"] == pytest.approx(e, rel=rtol, abs=rtol * abs(e))
        f = out["forces"].detach().numpy()[atoms]
        np.testing.assert_allclose(res["forces"], f, rtol=rtol, atol=rtol * np.abs(f).max())
        s = out["stress"].detach().numpy()[k]
        np.testing.assert_allclose(res["stress"], s, rtol=rtol, atol=rtol * np.abs(s).max())


def _write_snap_files(potential: Potential, folder) -> list[str]:
    """``.snapcoeff``/``.snapparam`` from the descriptor's settings (the LAMMPS file formats)."""
    s = potential.descriptor.settings()
    coeffs = potential.head.coefficients().detach()
    lines = ["# learned hyperparameters", f"{len(s['elements'])} {coeffs.shape[1]}"]
    for e, r, w, row in zip(s["elements"], s["radelem"], s["wj"], coeffs):
        lines.append(f"{e} {r!r} {w!r}")
        lines += [repr(float(c)) for c in row]
    (folder / "learned.snapcoeff").write_text("\n".join(lines) + "\n")
    params = {"rcutfac": s["rcutfac"], "twojmax": s["twojmax"], "rfac0": s["rfac0"], "rmin0": s["rmin0"],
              "bzeroflag": int(s["bzeroflag"]), "switchflag": int(s["switchflag"]), "quadraticflag": 0}
    (folder / "learned.snapparam").write_text("".join(f"{k} {v!r}\n" for k, v in params.items()))
    return ["pair_style snap", f"pair_coeff * * learned.snapcoeff learned.snapparam {' '.join(s['elements'])}"]


def test_learned_values_leave_the_starting_point():
    s = _learned_potential().descriptor.settings()
    assert s["wj"] != [1.0, 0.8] and s["radelem"] != [0.5, 0.45] and s["rfac0"] != 0.99363


def test_mliap_unified_carries_learned_hyperparameters(tmp_path, monkeypatch):
    potential = _learned_potential()
    configs = random_structures(ELEMENTS, 2, seed=3)
    result = export_lammps(potential, tmp_path, routes=("unified",))
    monkeypatch.chdir(tmp_path)
    res = evaluate_in_lammps(configs, ELEMENTS, result.routes["unified"].pair_commands, activate_mliappy=True)
    _assert_matches(res, potential, configs, rtol=1e-8)


def test_native_snap_with_learned_hyperparameters(tmp_path, monkeypatch):
    potential = _learned_potential()
    configs = random_structures(ELEMENTS, 2, seed=5)
    commands = _write_snap_files(potential, tmp_path)
    monkeypatch.chdir(tmp_path)
    _assert_matches(evaluate_in_lammps(configs, ELEMENTS, commands), potential, configs, rtol=1e-10)


@pytest.mark.parametrize("route", ["snap", "mliap"])
def test_native_export_routes_with_learned_hyperparameters(tmp_path, monkeypatch, route):
    if importlib.util.find_spec("mliap_torch.export.snap_files") is None:
        pytest.skip("mliap_torch.export.snap_files (the SNAP file writer) is not in this checkout yet")
    potential = _learned_potential()
    configs = random_structures(ELEMENTS, 2, seed=5)
    result = export_lammps(potential, tmp_path, routes=(route,))
    monkeypatch.chdir(tmp_path)
    _assert_matches(evaluate_in_lammps(configs, ELEMENTS, result.routes[route].pair_commands), potential, configs,
                    rtol=1e-10)
