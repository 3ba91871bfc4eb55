"""Models on two descriptors side by side (linear ACE + qSNAP in one fit): the concatenated descriptor against its
parts, the blocks head's design rows against the potential's own autograd, the saved file, the configuration
errors, and the ``overlay`` LAMMPS route (``pair_style hybrid/overlay pace snap``) against torch on 1, 2 and 4
MPI ranks and through ``train.py model=ace_qsnap``."""
from __future__ import annotations

import json

import pytest
import torch

import mliap_torch
from cli_helpers import run_cli, user_error
from lammps_models import random_structures
from mliap_torch.data.batch import make_batch
from mliap_torch.descriptors.ace import ACE
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.descriptors.concatenated import ConcatenatedDescriptor
from mliap_torch.export.lammps_export import export_lammps, overlay_parts, unsupported_routes
from mliap_torch.fitting.design import DesignMatrixBuilder
from mliap_torch.fitting.exact_fit import fit_exact
from mliap_torch.lammps_eval import evaluate_in_lammps
from mliap_torch.models.heads import BlockHead, LinearHead, QuadraticHead
from mliap_torch.models.io import float64_default
from mliap_torch.models.parts import potential_parts
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL
from mpi_cases import assert_rank_equal, check_route
from test_export_lammps import assert_matches

ELEMENTS = ["Cu", "Ni"]


def ace_qsnap(seed: int = 0, zbl: bool = False) -> Potential:
    """Cu-Ni linear ACE (rcut 4.2 Å) + qSNAP (2Jmax 4, rcut 3.6 Å) with random coefficients and constants."""
    with float64_default():
        ace = ACE(ELEMENTS, nradmax_by_orders=[4, 2, 1], lmax_by_orders=[0, 2, 1], rcut=4.2)
        snap = Bispectrum(ELEMENTS, 4, 3.6, [0.5, 0.45], [1.0, 0.8], bzeroflag=False)
        descriptor = ConcatenatedDescriptor([ace, snap])
        head = BlockHead(2, descriptor.num_descriptors, ["linear", "quadratic"], descriptor.part_sizes())
    generator = torch.Generator().manual_seed(seed)
    coefficients = 0.02 * torch.randn(2, 1 + head.num_features, generator=generator, dtype=torch.float64)
    coefficients[:, 0] = torch.tensor([-3.5, -4.4])
    head.set_coefficients(coefficients)
    reference = ZBL(ELEMENTS, [29.0, 28.0], inner=1.5, outer=2.5) if zbl else None
    return Potential(descriptor, head, reference)


def labelled(potential: Potential, count: int, seed: int):
    """Random Cu-Ni cells with the potential's own energies, forces and stresses as labels."""
    configs = random_structures(ELEMENTS, count, seed=seed)
    out = potential(make_batch(configs, potential.elements, potential.cutoff))
    start = 0
    for k, config in enumerate(configs):
        config.energy = float(out["energy"][k].detach())
        config.forces = out["forces"][start:start + config.num_atoms].detach().numpy()
        config.stress = out["stress"][k].detach().numpy()
        start += config.num_atoms
    return configs


def test_concatenation_is_its_parts_side_by_side():
    potential = ace_qsnap()
    descriptor = potential.descriptor
    ace, snap = descriptor.part_descriptors()
    assert descriptor.cutoff == 4.2 and descriptor.part_sizes() == [ace.num_descriptors, snap.num_descriptors]
    torch.testing.assert_close(descriptor.pair_cutoffs(), torch.maximum(ace.pair_cutoffs(), snap.pair_cutoffs()))
    batch = make_batch(random_structures(ELEMENTS, 2, seed=1), ELEMENTS, descriptor.cutoff)
    args = (batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    B, dB = descriptor.pair_jacobian(*args)
    B_ace, dB_ace = ace.pair_jacobian(*args)
    B_snap, dB_snap = snap.pair_jacobian(*args)
    torch.testing.assert_close(B, torch.cat([B_ace, B_snap], dim=1), rtol=0, atol=0)
    torch.testing.assert_close(dB, torch.cat([dB_ace, dB_snap], dim=2), rtol=0, atol=0)
    torch.testing.assert_close(descriptor(*args), B, rtol=1e-14, atol=1e-14)
    assert float(B_snap.abs().max()) > 0 and float(dB_snap.abs().max()) > 0


def test_parts_add_up_to_the_model_and_the_constant_is_the_first_blocks():
    potential = ace_qsnap(zbl=True)
    head = potential.head
    coefficients = head.coefficients().detach()
    linear, quadratic = head.block_heads()
    assert type(linear) is LinearHead and type(quadratic) is QuadraticHead
    torch.testing.assert_close(linear.bias.detach(), coefficients[:, 0])
    assert float(quadratic.bias.detach().abs().max()) == 0.0
    batch = make_batch(random_structures(ELEMENTS, 2, seed=2), ELEMENTS, potential.cutoff)
    whole = Potential(potential.descriptor, head)(batch)
    parts = [part(batch) for part in potential_parts(potential)]
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(sum(p[key] for p in parts), whole[key], rtol=1e-12, atol=1e-12)
    assert float(parts[1]["energy"].detach().abs().min()) > 1e-3, "the qSNAP block contributes"


@pytest.mark.parametrize("bias", [True, False])
def test_design_rows_times_coefficients_are_the_models_predictions(bias):
    potential = ace_qsnap(seed=3)
    if not bias:
        potential.head.set_coefficients(torch.cat([torch.zeros(2, 1), potential.head.coefficients()[:, 1:]], dim=1))
    batch = make_batch(labelled(potential, 3, seed=4), ELEMENTS, potential.cutoff)
    builder = DesignMatrixBuilder(potential, bias=bias)
    rows = builder.rows(batch)
    coefficients = potential.head.coefficients().detach()
    x = (coefficients if bias else coefficients[:, 1:]).reshape(-1)
    out = potential(batch)
    expected = torch.cat([out["energy"].detach() / batch.num_atoms.double(), out["forces"].detach().reshape(-1),
                          out["stress"].detach().reshape(-1)])
    torch.testing.assert_close(rows.A @ x, expected, rtol=1e-10, atol=1e-10)
    assert builder.num_columns == 2 * (potential.head.num_features + int(bias))


def test_exact_fit_recovers_the_model_from_its_own_labels():
    truth = ace_qsnap(seed=5)
    configs = labelled(truth, 16, seed=6)
    fitted = ace_qsnap(seed=9)
    fit_exact(fitted, configs, bias=True)
    batch = make_batch(random_structures(ELEMENTS, 2, seed=7), ELEMENTS, truth.cutoff)
    expected, got = truth(batch), fitted(batch)
    torch.testing.assert_close(got["energy"], expected["energy"], rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(got["forces"], expected["forces"], rtol=1e-6, atol=1e-6)


def test_saved_model_loads_with_the_same_predictions(tmp_path):
    potential = ace_qsnap(seed=11, zbl=True)
    mliap_torch.save(potential, tmp_path / "model.pt")
    loaded = mliap_torch.load(tmp_path / "model.pt")
    assert loaded.settings() == potential.settings()
    assert loaded.descriptor.settings()["parts"][1]["type"] == "bispectrum"
    batch = make_batch(random_structures(ELEMENTS, 1, seed=8), ELEMENTS, potential.cutoff)
    for key, value in potential(batch).items():
        torch.testing.assert_close(loaded(batch)[key], value, rtol=0, atol=0)


def test_blocks_head_refuses_sizes_that_do_not_add_up_and_nonlinear_blocks():
    with pytest.raises(ValueError, match="add up to 30, not to the 31"):
        BlockHead(1, 31, ["linear", "quadratic"], [20, 10])
    with pytest.raises(ValueError, match="linear in its parameters"):
        BlockHead(1, 30, ["linear", "mlp"], [20, 10])
    with pytest.raises(ValueError, match="elements"):
        ConcatenatedDescriptor([Bispectrum(["Cu"], 2, 3.0, [0.5], [1.0]), Bispectrum(["Ni"], 2, 3.0, [0.5], [1.0])])


@pytest.mark.lammps
def test_overlay_route_is_pace_plus_snap_and_matches_torch(tmp_path):
    pytest.importorskip("pyace")
    potential = ace_qsnap(seed=12, zbl=True)
    assert [route for route, _ in overlay_parts(potential)] == ["pace", "snap"]
    assert set(unsupported_routes(potential, ("snap", "pace", "mliap", "plugin", "overlay"))) == {
        "snap", "pace", "mliap", "plugin"}
    result = export_lammps(potential, tmp_path, routes=("overlay",))
    route = result.routes["overlay"]
    assert route.pair_commands[0] == "pair_style hybrid/overlay zbl 1.5 2.5 pace snap"
    assert route.requires == {"pace"}
    configs = random_structures(ELEMENTS, 2, seed=13)
    results = evaluate_in_lammps(configs, ELEMENTS, route.pair_commands, directory=tmp_path)
    assert_matches(results, potential, configs, rtol=1e-8)


@pytest.mark.lammps
@pytest.mark.mpi
def test_overlay_route_on_several_ranks_equals_one_rank(tmp_path):
    pytest.importorskip("pyace")
    differences = check_route(tmp_path, ace_qsnap(seed=14), "overlay", ("triclinic", "ghost_heavy"))
    assert_rank_equal(differences, "overlay pace+snap")


def test_part_settings_errors_name_the_part(tmp_path):
    message = user_error(run_cli(["model=ace_qsnap", "descriptor.parts.1.twojmax=-2", f"hydra.run.dir={tmp_path}"]))
    assert "'descriptor.parts[1].twojmax'" in message
    message = user_error(run_cli(["model=ace_qsnap", "+descriptor.parts.0.twojmax=4", f"hydra.run.dir={tmp_path}"]))
    assert "descriptor.parts[0]" in message and "twojmax" in message
    message = user_error(run_cli(["model=ace_qsnap", "model.blocks=[linear]", f"hydra.run.dir={tmp_path}"]))
    assert "'model.blocks' names 1 heads but the descriptor has 2 parts" in message


@pytest.mark.lammps
def test_train_ace_qsnap_fits_and_runs_in_lammps_by_the_overlay_route(tmp_path):
    pytest.importorskip("pyace")
    run = tmp_path / "run"
    proc = run_cli(["model=ace_qsnap", "data.max_configs=60", "plots=false", "export.md_steps=50",
                    f"hydra.run.dir={run}"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["summary"]["test"]["all"]["force_mae"] < 0.01, metrics["summary"]["test"]["all"]
    report = metrics["lammps"]
    assert report["deploy_route"] == "overlay" and report["md"]["route"] == "overlay"
    assert report["lammps_vs_torch"]["overlay"]["force_relative"] < 1e-8
    potential = mliap_torch.load(run / "model.pt")
    assert potential.head.type_name == "blocks" and potential.descriptor.type_name == "concatenated"
