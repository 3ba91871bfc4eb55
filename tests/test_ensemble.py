"""The weighted mean of fitted potentials as one potential (``mliap_torch.average_potentials``): its energies, forces
and stresses against the members evaluated alone, the saved file, the errors, and the ``overlay`` LAMMPS route
(``pair_style hybrid/scaled``) against torch."""
from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

import mliap_torch
from cli_helpers import metrics, run_cli, user_error
from lammps_models import random_head, random_structures
from mliap_torch.cli.schema import validate
from mliap_torch.data.batch import make_batch
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.export.lammps_export import export_lammps, overlay_parts
from mliap_torch.lammps_eval import evaluate_in_lammps
from mliap_torch.models.ensemble import average_potentials
from mliap_torch.models.io import float64_default
from mliap_torch.models.parts import part_weights
from mliap_torch.models.potential import Potential
from mliap_torch.training.data import load_split_data
from test_concatenated import ELEMENTS, ace_qsnap
from test_export_lammps import assert_matches

WEIGHTS = (0.3, 0.7)


def snap_nn(seed: int = 3) -> Potential:
    """Cu-Ni bispectrum (2Jmax 4, rcut 4.0 Å, another cutoff than :func:`ace_qsnap`'s parts) with a random MLP head
    that has a linear term."""
    with float64_default():
        descriptor = Bispectrum(ELEMENTS, 4, 4.0, [0.5, 0.45], [1.0, 0.8], bzeroflag=False)
        head = random_head("mlp", 2, descriptor.num_descriptors, seed=seed)
    return Potential(descriptor, head)


def predictions(potential: Potential, configs) -> dict[str, torch.Tensor]:
    out = potential(make_batch(configs, potential.elements, potential.cutoff))
    return {k: out[k].detach() for k in ("energy", "forces", "stress")}


def test_average_equals_the_weighted_mean_of_its_members():
    members = [ace_qsnap(seed=4), snap_nn()]
    average = average_potentials(members, WEIGHTS)
    configs = random_structures(ELEMENTS, 3, seed=21)
    alone = [predictions(p, configs) for p in members]
    mean = predictions(average, configs)
    for key in ("energy", "forces", "stress"):
        expected = WEIGHTS[0] * alone[0][key] + WEIGHTS[1] * alone[1][key]
        torch.testing.assert_close(mean[key], expected, rtol=1e-12, atol=1e-12)
    assert average.cutoff == max(p.cutoff for p in members)
    assert part_weights(average) == [0.3, 0.3, 0.7]   # the union's two parts, then the network
    # the members are copied, not shared
    members[1].head.offset.data += 1.0
    torch.testing.assert_close(predictions(average, configs)["energy"], mean["energy"], rtol=0, atol=0)


def test_saved_average_loads_back_with_the_same_predictions(tmp_path):
    average = mliap_torch.average_potentials([ace_qsnap(seed=5), snap_nn()])
    path = mliap_torch.save(average, tmp_path / "mean.pt")
    loaded = mliap_torch.load(path)
    assert loaded.head.type_name == "weighted_blocks" and loaded.head.weights == [0.5, 0.5, 0.5]
    configs = random_structures(ELEMENTS, 2, seed=22)
    before, after = predictions(average, configs), predictions(loaded, configs)
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)


def test_average_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="at least two potentials"):
        average_potentials([snap_nn()])
    with pytest.raises(ValueError, match="sum to 1"):
        average_potentials([snap_nn(), snap_nn(4)], [0.5, 0.6])
    with pytest.raises(ValueError, match="one weight per potential"):
        average_potentials([snap_nn(), snap_nn(4)], [1.0])
    with pytest.raises(ValueError, match="potential 1 has a reference potential"):
        average_potentials([snap_nn(), ace_qsnap(zbl=True)])
    with float64_default():
        cu = Potential(Bispectrum(["Cu"], 2, 3.5, [0.5], [1.0]), random_head("linear", 1, 5, seed=1))
    with pytest.raises(ValueError, match="same elements"):
        average_potentials([snap_nn(), cu])
    with pytest.raises(ValueError, match="average its members instead"):
        average_potentials([average_potentials([snap_nn(), snap_nn(4)]), snap_nn(5)])


@pytest.mark.lammps
@pytest.mark.plugin
def test_average_runs_in_lammps_by_hybrid_scaled_and_matches_torch(tmp_path):
    pytest.importorskip("pyace")
    average = average_potentials([ace_qsnap(seed=6), snap_nn()], WEIGHTS)
    assert [route for route, _ in overlay_parts(average)] == ["pace", "snap", "plugin"]
    route = export_lammps(average, tmp_path, routes=("overlay",)).routes["overlay"]
    style = next(line for line in route.pair_commands if line.startswith("pair_style"))
    assert style.startswith("pair_style hybrid/scaled 0.3 pace 0.3 snap 0.7 mliap/torch "), style
    assert route.requires == {"pace", "plugin"}
    configs = random_structures(ELEMENTS, 2, seed=23)
    results = evaluate_in_lammps(configs, ELEMENTS, route.pair_commands, directory=tmp_path)
    assert_matches(results, average, configs, rtol=1e-8)


@pytest.mark.lammps
@pytest.mark.plugin
@pytest.mark.shared_data
@pytest.mark.timeout(900)
def test_train_py_ensemble_trains_its_members_and_keeps_their_mean(tmp_path, shared_data):
    """``python train.py ensemble.members=[...]``: both members trained in their own folders, the run's model their
    mean, its test errors those of the members' predictions averaged, and LAMMPS (hybrid/scaled) equal to torch."""
    run = tmp_path / "run"
    small = ["data.max_configs=20", "trainer.max_epochs=2"]
    proc = run_cli(["data=mlearn", "data.element=Li", "data.val_fraction=0.0", *small, "model.name=li_mean",
                    "ensemble.members=[mlearn_li_snap,mlearn_li_snap_nn]",
                    "ensemble.member_overrides=[" + ",".join(f'"{o}"' for o in small) + "]",
                    "plots=false", "export.md_steps=20", f"hydra.run.dir={run}"], timeout=850)
    assert proc.returncode == 0, proc.stderr[-3000:]
    members = [mliap_torch.load(run / "members" / name / "model.pt") for name in ("mlearn_li_snap", "mlearn_li_snap_nn")]
    assert not (run / "members" / "mlearn_li_snap" / "lammps").exists()     # members have no LAMMPS step
    mean = mliap_torch.load(run / "model.pt")
    assert mean.head.type_name == "weighted_blocks" and mean.head.weights == [0.5, 0.5]
    typed = validate(OmegaConf.load(run / "config.yaml"))
    test = load_split_data(typed.data, typed.seed).test
    energies = [predictions(p, test)["energy"] for p in members]
    atoms = torch.tensor([c.num_atoms for c in test], dtype=torch.float64)
    labels = torch.tensor([c.energy for c in test], dtype=torch.float64)
    expected = float(((0.5 * (energies[0] + energies[1]) - labels).abs() / atoms).mean())
    report = metrics(run)
    assert report["test"]["all"]["energy_mae"] == pytest.approx(expected, rel=1e-9)
    lammps = json.loads((run / "metrics.json").read_text())["lammps"]
    assert lammps["deploy_route"] == "overlay" and lammps["lammps_vs_torch"]["overlay"]["force_relative"] < 1e-8


def test_ensemble_config_errors_name_the_key(tmp_path):
    message = user_error(run_cli(["ensemble.members=[mlearn_li_snap]", f"hydra.run.dir={tmp_path}"]))
    assert "'ensemble.members'" in message and "at least two" in message
    message = user_error(run_cli(["ensemble.members=[mlearn_li_snap,mlearn_li_snap_nn]", "ensemble.weights=[0.5,0.6]",
                                  f"hydra.run.dir={tmp_path}"]))
    assert "'ensemble.weights'" in message and "summing to 1" in message
    message = user_error(run_cli(["ensemble.members=[mlearn_li_snap,no_such_experiment]", f"hydra.run.dir={tmp_path}"]))
    assert "'ensemble.members'" in message and "no_such_experiment" in message
