"""The mlearn benchmark script's core on a tiny subset: Mo, a few configurations, 2Jmax 4.

Checks the table against independent recomputations: the reported test MAEs against the saved
model's per-configuration ASE-calculator predictions, the fitted coefficients against numpy's
least squares of the weighted rows, and the rows themselves (LAMMPS ``compute snap``) against the
torch potential's energies, forces and stresses.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mlearn_study.mlearn import RowSet, fit_snap_cell, make_bispectrum, relative_ridge, select_weights
from mlearn_study.snap_rows import snap_rows
from mliap_torch.calculator import Calculator
from mliap_torch.cli.train import CONFIG_DIR
from mliap_torch.data.batch import make_batch
from mliap_torch.data.readers import read_mlearn
from mliap_torch.models.heads import QuadraticHead
from mliap_torch.models.io import load
from mliap_torch.models.potential import Potential

ROOT = Path(__file__).resolve().parent.parent
SMALL_ACE = {"nradmax_by_orders": [6, 2, 1], "lmax_by_orders": [0, 2, 1], "radial_basis": "ChebExpCos",
             "radial_parameters": 5.25, "dcut": 0.01}
"""A small ACE basis for the ACE+qSNAP tests (the table's has 1004 functions)."""
pytestmark = [pytest.mark.lammps, pytest.mark.shared_data]


def _script(name: str = "mlearn_benchmark"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module          # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import SHARED_DATA as shared_data

    if not shared_data.is_dir():
        pytest.skip(f"shared data folder {shared_data} is absent")
    tmp = tmp_path_factory.mktemp("mlearn")
    args = ["--data", str(shared_data / "mlearn"), "--elements", "Mo", "--models", "snap", "qsnap",
            "--max-configs", "10", "--twojmax", "4", "--folds", "3", "--no-cost", "--snap-rcut-offsets", "0", "0.3",
            "--snap-twojmax-offsets", "-2", "--results", str(tmp / "results.json"), "--plot", str(tmp / "pareto.png"),
            "--doc", str(tmp / "doc.md"), "--readme", str(tmp / "readme.md"), "--models-dir", str(tmp / "models")]
    results = _script().main(args)
    return tmp, results


def test_reported_mae_equals_recomputation(run, shared_data):
    tmp, results = run
    stored = json.loads((tmp / "results.json").read_text())
    test = read_mlearn(shared_data / "mlearn" / "Mo" / "test.json", element="Mo")[:10]
    for model in ("snap", "qsnap"):
        entry = stored[f"Mo/{model}"]
        assert entry == results[f"Mo/{model}"]
        potential = load(tmp / "models" / f"mlearn_mo_{model}.pt")
        e_err, f_err = [], []
        for config in test:
            atoms = config.to_ase()
            atoms.calc = Calculator(potential)
            e_err.append(abs(atoms.get_potential_energy() - config.energy) / config.num_atoms)
            f_err.append(np.abs(atoms.get_forces() - config.forces).reshape(-1))
        assert entry["energy_mae"] == pytest.approx(1000 * np.mean(e_err), rel=1e-9)
        assert entry["force_mae"] == pytest.approx(np.mean(np.concatenate(f_err)), rel=1e-9)
        # bootstrap standard error of a mean over configurations: σ/√n in expectation (2000 resamples)
        assert entry["energy_mae_se"] == pytest.approx(1000 * np.std(e_err) / np.sqrt(len(e_err)), rel=0.1)
        assert 0 < entry["force_mae_se"] < entry["force_mae"]
        # the cutoff is the cross-validation's best of the two tried at 2Jmax 4, then 2Jmax the best of 4
        # and 2 at that cutoff
        study = 4.6 if model == "snap" else 5.2
        settings = entry["settings"]
        scores = {float(k): v[2] for k, v in settings["cutoff_cv"].items()}
        assert sorted(scores) == [study, round(study + 0.3, 4)]
        best_rcut = min(scores, key=scores.get)
        by_twojmax = {int(k): v[2] for k, v in settings["twojmax_cv"].items()}
        assert sorted(by_twojmax) == [2, 4] and by_twojmax[4] == scores[best_rcut]
        assert settings["twojmax"] == min(by_twojmax, key=by_twojmax.get) and settings["rcut"] == best_rcut
        assert potential.descriptor.cutoff == pytest.approx(settings["rcut"])
        assert potential.descriptor.twojmax == settings["twojmax"]
        # the generated table shows these numbers
        doc = (tmp / "doc.md").read_text()
        assert f"{entry['energy_mae']:.2f}" in doc and f"{entry['force_mae']:.3f}" in doc
    # the README summary: Mo's row, the lower-energy form in bold, the plot linked
    readme = (tmp / "readme.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| Mo |"))
    best = min(("snap", "qsnap"), key=lambda m: stored[f"Mo/{m}"]["energy_mae"])
    other = ({"snap", "qsnap"} - {best}).pop()
    assert f"**{stored[f'Mo/{best}']['energy_mae']:.2f} / {stored[f'Mo/{best}']['force_mae']:.3f}**" in row
    assert f" {stored[f'Mo/{other}']['energy_mae']:.2f} / {stored[f'Mo/{other}']['force_mae']:.3f} |" in row
    assert "](pareto.png)" in readme


def test_rescore_reproduces_the_saved_models_and_rejects_a_stale_table(run, shared_data):
    tmp, results = run
    stored = json.loads((tmp / "results.json").read_text())
    common = ["--data", str(shared_data / "mlearn"), "--elements", "Mo", "--models", "snap", "--max-configs", "10",
              "--models-dir", str(tmp / "models"), "--no-doc", "--plot", str(tmp / "rescore.png")]
    copy = tmp / "rescore.json"
    copy.write_text(json.dumps(stored))
    again = _script().main(common + ["--rescore", "--results", str(copy)])
    for key in ("energy_mae", "force_mae", "energy_mae_se", "force_mae_se"):
        assert again["Mo/snap"][key] == pytest.approx(stored["Mo/snap"][key], rel=1e-9)
    stored["Mo/snap"]["energy_mae"] *= 1.01
    copy.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="fit the cell again"):
        _script().main(common + ["--rescore", "--results", str(copy)])


def test_jobs_fit_elements_in_processes_as_one_process_does(run, shared_data):
    """``--jobs 2``: one process per element, exact fits first, then networks; the SNAP fit equals the
    one-process run's, and each network lane starts from its element's new linear fit (SNAP+NN: SNAP's
    descriptor, row weights and energy weight; ACE+NN: linear ACE's)."""
    tmp, results = run
    args = ["--data", str(shared_data / "mlearn"), "--elements", "Mo", "Li", "--models", "snap", "ace", "snap_nn",
            "ace_nn", "--ace-rcut-offsets", "0", "--max-configs", "10", "--twojmax", "4", "--folds", "3", "--no-cost",
            "--snap-rcut-offsets", "0", "0.3", "--snap-twojmax-offsets", "-2", "--nn-epochs", "2", "--jobs", "2",
            "--results", str(tmp / "jobs.json"), "--plot", str(tmp / "jobs.png"), "--doc", str(tmp / "jobs.md"),
            "--readme", str(tmp / "jobs_readme.md"), "--models-dir", str(tmp / "jobs")]
    got = _script().main(args)
    assert sorted(got) == ["Li/ace", "Li/ace_nn", "Li/snap", "Li/snap_nn", "Mo/ace", "Mo/ace_nn", "Mo/snap",
                           "Mo/snap_nn"]
    for key in ("energy_mae", "force_mae", "train_energy_mae", "weights"):
        assert got["Mo/snap"][key] == results["Mo/snap"][key]
    for el in ("Mo", "Li"):
        train = read_mlearn(shared_data / "mlearn" / el / "training.json", element=el)[:10]
        for model, linear_model in (("snap_nn", "snap"), ("ace_nn", "ace")):
            linear, nn = got[f"{el}/{linear_model}"], got[f"{el}/{model}"]["settings"]
            assert (nn["rcut"], nn.get("twojmax")) == (linear["settings"]["rcut"], linear["settings"].get("twojmax"))
            per_group = linear["settings"].get("group_weights") or {}
            for group, (we, wf, _) in nn["experiment"]["data"]["group_weights"].items():
                assert [we, wf] == list(per_group.get(group, linear["weights"]))[:2]
            assert nn["experiment"]["model"]["solver"]["solver"] == ("ridge" if linear["settings"]["ridge_alpha"] else "qr")
            assert nn["experiment"]["model"]["loss"]["energy"] == pytest.approx(
                _script().nn_energy_weight(train, got[f"{el}/snap"]))
            assert nn["epochs"] == 2 and nn["best_epoch"] in (-1, 0, 1)
        assert load(tmp / "jobs" / f"mlearn_{el.lower()}_snap_nn.pt").descriptor.twojmax == \
            got[f"{el}/snap"]["settings"]["twojmax"]
    assert json.loads((tmp / "jobs.json").read_text()) == got
    assert f"{got['Li/snap_nn']['energy_mae']:.2f}" in (tmp / "jobs.md").read_text()


def _lane(models: str, element: str, after: tuple[str, ...] = (), large: bool = False):
    return _script().LaneTask((models,), element, frozenset(((a,), element) for a in after), large)


def test_lanes_start_a_network_as_soon_as_its_exact_fits_are_done():
    """Two slots: B's exact fits can only finish once A's network has started, which the scheduler must start
    in the slot A's exact fits free (not after every exact fit); every lane starts after those it waits for."""
    network_of_a_started = threading.Event()
    events: list[tuple[str, tuple]] = []

    def run(task) -> None:
        events.append(("start", task.key))
        if task.key == (("snap",), "B"):
            assert network_of_a_started.wait(timeout=60), "A's network did not start while B's exact fits ran"
        if task.key == (("snap_nn",), "A"):
            network_of_a_started.set()
        events.append(("end", task.key))

    tasks = [_lane("snap", "A"), _lane("snap", "B"), _lane("snap_nn", "A", ("snap",)), _lane("snap_nn", "B", ("snap",))]
    _script().run_lanes(tasks, run, 2)
    assert sorted(key for what, key in events if what == "end") == sorted(t.key for t in tasks)
    for task in tasks:
        for needed in task.after:
            assert events.index(("end", needed)) < events.index(("start", task.key))


def test_lanes_of_large_training_sets_never_run_together():
    """Ni and Cu are large: while one runs, the free slot takes the small Mo instead of the other."""
    lock = threading.Lock()
    large_running, most = 0, 0
    mo_started = threading.Event()

    def run(task) -> None:
        nonlocal large_running, most
        with lock:
            large_running += task.large
            most = max(most, large_running)
        if task.element == "Mo":
            mo_started.set()
        elif task.element == "Ni":
            assert mo_started.wait(timeout=60), "the second slot did not start Mo while Ni ran"
        with lock:
            large_running -= task.large

    _script().run_lanes([_lane("snap", "Ni", large=True), _lane("snap", "Cu", large=True), _lane("snap", "Mo")], run, 2)
    assert most == 1


def test_lanes_stop_starting_after_a_failure_and_refuse_lanes_that_wait_for_none():
    started = []

    def run(task) -> None:
        started.append(task.element)
        if task.element == "Mo":
            raise RuntimeError("snap fits of Mo failed")

    with pytest.raises(RuntimeError, match="of Mo failed"):
        _script().run_lanes([_lane("snap", "Mo"), _lane("snap", "Li")], run, 1)
    assert started == ["Mo"]
    with pytest.raises(RuntimeError, match="never ready"):
        _script().run_lanes([_lane("snap_nn", "Li", ("snap",))], run, 2)


def test_network_cell_is_the_run_of_its_experiment_config(run, shared_data, tmp_path):
    """A network cell of the table is ``python train.py experiment=mlearn_<el>_<model>`` with the config
    --write-configs writes for it: that command, as a user runs it, gives the same model (test MAEs to 1e-6)."""
    from cli_helpers import run_cli
    from mlearn_study.mlearn import score_on_test

    tmp, results = run
    script = _script()
    (tmp_path / "results.json").write_text((tmp / "results.json").read_text())    # the fixture's Mo/snap
    args = ["--data", str(shared_data / "mlearn"), "--elements", "Mo", "--models", "snap_nn", "--max-configs", "10",
            "--nn-epochs", "3", "--no-cost", "--results", str(tmp_path / "results.json"), "--plot",
            str(tmp_path / "p.png"), "--no-doc", "--models-dir", str(tmp_path / "models")]
    entry = script.main(args)["Mo/snap_nn"]
    assert entry["settings"]["epochs"] == 3
    (tmp_path / "configs" / "experiment").mkdir(parents=True)
    written = script.write_configs({"Mo/snap_nn": entry}, tmp_path / "configs" / "experiment")
    assert [p.name for p in written] == ["mlearn_mo_snap_nn.yaml", "mlearn_mo_best.yaml"]
    written[1].rename(written[1].with_name("network_cell_test.yaml"))     # the package's own mlearn_mo_best comes first
    proc = run_cli([f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "experiment=network_cell_test",
                    f"data.path={shared_data / 'mlearn'}", "data.max_configs=10", "export.lammps=false", "plots=false",
                    f"hydra.run.dir={tmp_path / 'cli'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    test = read_mlearn(shared_data / "mlearn" / "Mo" / "test.json", element="Mo")[:10]
    scores = score_on_test(load(tmp_path / "cli" / "model.pt"), test)
    assert scores["energy_mae"] == pytest.approx(entry["energy_mae"], rel=1e-6)
    assert scores["force_mae"] == pytest.approx(entry["force_mae"], rel=1e-6)
    linear = score_on_test(load(tmp / "models" / "mlearn_mo_snap.pt"), test)
    assert scores["energy_mae"] != pytest.approx(linear["energy_mae"], rel=1e-6)      # the network trained


def test_ensemble_cell_is_the_mean_of_its_members_and_its_config_trains_them(run, shared_data):
    """The ensemble cell scores the equally weighted mean of two fitted cells (here the fixture's SNAP and qSNAP):
    its test errors are those of the members' predictions averaged, and its experiment names the members."""
    from hydra import compose, initialize_config_dir

    from mlearn_study.mlearn import ensemble_cell, evaluate
    from mliap_torch.cli.schema import validate

    tmp, results = run
    test = read_mlearn(shared_data / "mlearn" / "Mo" / "test.json", element="Mo")[:10]
    members = [(results[f"Mo/{m}"], load(tmp / "models" / f"mlearn_mo_{m}.pt")) for m in ("snap", "qsnap")]
    cell, potential = ensemble_cell("Mo", members, test)
    predictions = [evaluate(p, test) for _, p in members]
    energy = (predictions[0]["energy"] + predictions[1]["energy"]) / 2
    forces = (predictions[0]["forces"] + predictions[1]["forces"]) / 2
    assert cell.energy_mae == pytest.approx(1000 * np.abs(energy - predictions[0]["energy_ref"]).mean(), rel=1e-10)
    assert cell.force_mae == pytest.approx(np.abs(forces - predictions[0]["forces_ref"]).mean(), rel=1e-10)
    assert cell.fit_seconds == pytest.approx(sum(entry["fit_seconds"] for entry, _ in members))
    assert cell.num_parameters == sum(entry["num_parameters"] for entry, _ in members)
    assert potential.head.type_name == "weighted_blocks" and cell.train_energy_mae is None
    entry = json.loads(json.dumps(dataclasses.asdict(cell)))
    assert "| — | — |" in _script().table_markdown({"Mo/ensemble": entry}, ["Mo"], ["ensemble"])
    path = CONFIG_DIR / "experiment" / "mlearn_test_ensemble_probe.yaml"
    path.write_text(_script().ensemble_config(entry))
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = validate(compose("train", overrides=["experiment=mlearn_test_ensemble_probe"]))
    finally:
        path.unlink()
    assert cfg.ensemble.members == ["mlearn_mo_snap", "mlearn_mo_qsnap"] and cfg.data.element == "Mo"


def test_ablation_runs_a_variant_in_its_own_process_and_tabulates_it(run, shared_data):
    """scripts/mlearn_ablation.py: the study-settings variant (one cutoff, one 2Jmax, one weight per kind)
    fitted by a benchmark process equals fit_snap_cell called directly with those settings; the table's
    column comes from the benchmark results; a finished cell is not fitted again."""
    tmp, results = run
    ablation_script = _script("mlearn_ablation")
    doc = tmp / "ablation.md"
    doc.write_text(f"# ablation\n\n{ablation_script.BEGIN}\n{ablation_script.END}\n")
    args = ["--data", str(shared_data / "mlearn"), "--elements", "Mo", "--variants", "study_rcut_one_weight",
            "--work", str(tmp / "ablation"), "--results", str(tmp / "results.json"), "--ablation",
            str(tmp / "ablation.json"), "--doc", str(doc), "--max-configs", "10", "--twojmax", "4", "--folds", "3"]
    ablation = ablation_script.main(args)
    train = read_mlearn(shared_data / "mlearn" / "Mo" / "training.json", element="Mo")[:10]
    test = read_mlearn(shared_data / "mlearn" / "Mo" / "test.json", element="Mo")[:10]
    direct, _ = fit_snap_cell("Mo", "snap", train, test, twojmax=4, rcut_offsets=(0.0,), twojmax_offsets=(),
                              group_weights=False, folds=3)
    variant = ablation["Mo/snap"]["study_rcut_one_weight"]
    assert variant["energy_mae"] == pytest.approx(direct.energy_mae, rel=1e-9)
    assert variant["force_mae"] == pytest.approx(direct.force_mae, rel=1e-9)
    assert (variant["rcut"], variant["twojmax"]) == (4.6, 4)
    assert ablation["Mo/qsnap"]["cv_rcut_twojmax_group_weights"]["energy_mae"] == results["Mo/qsnap"]["energy_mae"]
    assert json.loads((tmp / "ablation.json").read_text()) == ablation
    text = doc.read_text()
    assert f"| Mo | SNAP | 5.48 / 0.207 | {variant['energy_mae']:.2f} / {variant['force_mae']:.3f} |" in text
    assert "reach the study on both errors" in text
    assert ablation_script.run_variant("study_rcut_one_weight", "Mo", tmp / "ablation", shared_data / "mlearn",
                                       [])[2] == 0.0


def test_fit_is_the_weighted_least_squares_solution(run, shared_data):
    tmp, results = run
    train = read_mlearn(shared_data / "mlearn" / "Mo" / "training.json", element="Mo")[:10]
    entry = results["Mo/qsnap"]
    potential = load(tmp / "models" / "mlearn_mo_qsnap.pt")
    rows = RowSet.build(train, snap_rows(train, potential.descriptor, quadratic=True))
    group_weights = entry["settings"]["group_weights"]           # {group: [energy, force, stress]}
    assert sorted(group_weights) == sorted({c.group for c in train})
    groups = [c.group for c in train]
    w = {kind: np.array([group_weights[groups[c]][k] for c in cfg])
         for k, (kind, cfg) in enumerate((("energy", rows.energy_config), ("force", rows.force_config),
                                          ("stress", rows.stress_config)))}
    A = np.concatenate([w["energy"][:, None] * rows.energy, w["force"][:, None] * rows.force,
                        w["stress"][:, None] * rows.stress])
    b = np.concatenate([w["energy"] * rows.energy_target, w["force"] * rows.force_target,
                        w["stress"] * rows.stress_target])
    alpha = entry["settings"]["ridge_alpha"]         # relative to each column's squared norm
    n = A.shape[1]
    assert entry["settings"]["scale_columns"] and alpha == relative_ridge(entry["settings"]["ridge_relative"], n)
    scale = 1 / np.linalg.norm(A, axis=0)
    y, *_ = np.linalg.lstsq(np.concatenate([A * scale, np.sqrt(alpha) * np.eye(n)]), np.concatenate([b, np.zeros(n)]),
                            rcond=None)
    x = scale * y
    ours = potential.head.coefficients().detach().numpy()[0]
    # 2Jmax 4, quadratic: 15 + 105 + 1 columns from 10 configurations -> full column rank
    assert np.linalg.matrix_rank(A) == A.shape[1]
    np.testing.assert_allclose(A @ ours, A @ x, rtol=0, atol=1e-8 * np.abs(A @ x).max())
    assert entry["train_energy_mae"] == pytest.approx(1000 * np.abs(rows.energy @ ours - rows.energy_target).mean(),
                                                      rel=1e-9)
    # the CV choice is the best-scoring candidate of its table
    scores = [r[6] for r in entry["cv_table"]]
    best = entry["cv_table"][int(np.argmin(scores))]
    assert tuple(best[:3]) == tuple(entry["weights"]) and best[3] == entry["settings"]["ridge_relative"]


def test_snap_rows_match_torch_potential(shared_data):
    configs = read_mlearn(shared_data / "mlearn" / "Si" / "test.json", element="Si")[:3]   # triclinic cells
    descriptor = make_bispectrum("Si", 4.8, 4)
    head = QuadraticHead(1, descriptor.num_descriptors)
    torch.manual_seed(0)
    coeffs = torch.randn(1, 1 + head.num_features)
    head.set_coefficients(coeffs)
    potential = Potential(descriptor, head)
    rows = snap_rows(configs, descriptor, quadratic=True)
    out = potential(make_batch(configs, ["Si"], descriptor.cutoff), forces=True, stress=True)
    c = coeffs[0].numpy()
    n = np.array([cfg.num_atoms for cfg in configs])
    np.testing.assert_allclose([r.energy @ c for r in rows], out["energy"].detach().numpy() / n, rtol=1e-10)
    np.testing.assert_allclose(np.concatenate([r.forces @ c for r in rows]),
                               out["forces"].detach().numpy().reshape(-1), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.stack([r.stress @ c for r in rows]), out["stress"].detach().numpy(),
                               rtol=1e-9, atol=1e-11)


def test_union_rows_are_the_ace_qsnap_potentials_predictions(shared_data):
    """ACE+qSNAP's rows ``[1, ACE, qSNAP features]`` (ACE's from torch, qSNAP's from LAMMPS ``compute snap``) times
    the blocks head's coefficients are the energies, forces and stresses of the torch potential, and of its two
    parts added."""
    from mlearn_study.mlearn import make_ace_qsnap, union_rows
    from mliap_torch.models.parts import potential_parts

    configs = read_mlearn(shared_data / "mlearn" / "Si" / "test.json", element="Si")[:2]
    potential = make_ace_qsnap("Si", 5.0, 4.2, 4, basis=SMALL_ACE)
    torch.manual_seed(1)
    coefficients = torch.randn(1, 1 + potential.head.num_features)
    potential.head.set_coefficients(coefficients)
    x = coefficients[0].numpy()
    rows = union_rows(configs, potential)
    assert rows[0].forces.shape[1] == x.shape[0]
    batch = make_batch(configs, ["Si"], 5.0)
    out = potential(batch)
    parts = [p(batch) for p in potential_parts(potential)]
    n = np.array([c.num_atoms for c in configs])
    for total in (out, {k: sum(p[k] for p in parts) for k in ("energy", "forces", "stress")}):
        np.testing.assert_allclose([r.energy @ x for r in rows], total["energy"].detach().numpy() / n, rtol=1e-9)
        np.testing.assert_allclose(np.concatenate([r.forces @ x for r in rows]),
                                   total["forces"].detach().numpy().reshape(-1), rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(np.stack([r.stress @ x for r in rows]), total["stress"].detach().numpy(),
                                   rtol=1e-8, atol=1e-11)


def test_ace_qsnap_cell_is_the_cross_validated_fit_of_its_parts_descriptors(shared_data, tmp_path):
    """An ACE+qSNAP cell (small ACE basis, 10 Mo configurations) takes the cutoffs and 2Jmax it is given, its
    weights are the best-scoring candidate of its cross-validation, its test errors are its potential's, and its
    experiment config composes to the same descriptor, weights and ridge."""
    from hydra import compose, initialize_config_dir

    from mlearn_study.mlearn import fit_ace_qsnap_cell, score_on_test
    from mliap_torch.cli.schema import validate

    train = read_mlearn(shared_data / "mlearn" / "Mo" / "training.json", element="Mo")[:10]
    test = read_mlearn(shared_data / "mlearn" / "Mo" / "test.json", element="Mo")[:4]
    grid = ((100.0, 1.0, 0.0, 1e-10), (300.0, 1.0, 0.0, 1e-8))
    cell, potential = fit_ace_qsnap_cell("Mo", train, test, 4.6, 4.3, 4, basis=SMALL_ACE, grid=grid, folds=2)
    ace, snap = potential.descriptor.part_descriptors()
    assert (ace.cutoff, snap.cutoff, snap.twojmax) == (4.6, 4.3, 4)
    assert cell.num_parameters == 1 + potential.head.num_features
    scores = score_on_test(potential, test)
    assert cell.energy_mae == pytest.approx(scores["energy_mae"], rel=1e-12)
    best = min(cell.cv_table, key=lambda r: r[6])
    assert tuple(best[:3]) == tuple(cell.weights) and best[3] == cell.settings["ridge_relative"]
    script = _script()
    entry = json.loads(json.dumps(dataclasses.asdict(cell)))
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "cell_under_test.yaml").write_text(script.experiment_config(entry))   # not the package's own
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra.searchpath=[file://{tmp_path}]", "experiment=cell_under_test"])
    cfg = validate(cfg)
    parts = cfg.descriptor["parts"]
    assert [p["type"] for p in parts] == ["ace", "bispectrum"] and cfg.model.blocks == ["linear", "quadratic"]
    assert (parts[0]["rcut"], parts[1]["rcutfac"], parts[1]["twojmax"]) == (4.6, 4.3, 4)
    assert cfg.model.solver["alpha"] == pytest.approx(cell.settings["ridge_alpha"], rel=1e-12)


def test_twojmax_candidates_below_two_or_beyond_the_coefficient_cap_are_skipped(shared_data):
    configs = read_mlearn(shared_data / "mlearn" / "Mo" / "training.json", element="Mo")[:6]
    # qSNAP on 2Jmax 2 has 1 + 5 + 15 = 21 coefficients, on 4 1 + 14 + 105 = 120: a cap of 100 leaves 2 only
    cell, potential = fit_snap_cell("Mo", "qsnap", configs, configs[:2], twojmax=2, rcut_offsets=(0.0,),
                                    twojmax_offsets=(-2, 2), folds=2, max_coefficients=100)
    assert sorted(cell.settings["twojmax_cv"]) == ["2"] and cell.settings["twojmax"] == 2
    assert cell.num_parameters == 21 == 1 + potential.head.num_features
    cell, potential = fit_snap_cell("Mo", "qsnap", configs, configs[:2], twojmax=2, rcut_offsets=(0.0,),
                                    twojmax_offsets=(2,), folds=2, max_coefficients=120)
    scores = {int(k): v[2] for k, v in cell.settings["twojmax_cv"].items()}
    assert sorted(scores) == [2, 4] and cell.settings["twojmax"] == min(scores, key=scores.get)
    assert potential.descriptor.twojmax == cell.settings["twojmax"]


def test_cost_pass_times_the_study_kernel_also_at_another_twojmax():
    """``study_cost_us`` is the native kernel at the study's cutoff and 2Jmax, also when the fitted
    model's 2Jmax (here 2) has a different number of coefficients than the study's (6)."""
    import argparse

    script = _script()
    descriptor = make_bispectrum("Mo", 4.3, 2)
    potential = Potential(descriptor, QuadraticHead(1, descriptor.num_descriptors))
    cell = {"element": "Mo", "model": "qsnap", "settings": {"rcut": 4.3, "twojmax": 2}, "notes": []}
    args = argparse.Namespace(md_steps=2, md_steps_unified=1, md_atoms=54)
    script.measure_cost(cell, potential, args)
    assert cell["notes"] == []        # before the fix: a shape error, noted, and no study_cost_us
    assert cell["cost_route"] == "snap" and cell["cost_us"] > 0 and cell["study_cost_us"] > 0


def test_missing_stress_rows_are_left_out(shared_data):
    configs = read_mlearn(shared_data / "mlearn" / "Cu" / "training.json", element="Cu")[:2]
    assert all(c.stress is None for c in configs)     # Cu training has no stresses
    descriptor = make_bispectrum("Cu", 4.1, 2)
    rows = RowSet.build(configs, snap_rows(configs, descriptor, quadratic=False))
    assert rows.stress.shape == (0, 1 + descriptor.num_descriptors)
    assert rows.force.shape[0] == 3 * sum(c.num_atoms for c in configs)
    selection, _ = select_weights(rows, len(configs), grid=[(100.0, 1.0, 1.0, 0.0)], folds=1)
    assert selection.weights == (100.0, 1.0, 1.0)


def test_experiment_configs_record_the_benchmark_choices(shared_data):
    """Every generated mliap_torch/configs/experiment/mlearn_<el>_<model>.yaml composes, validates and carries the
    descriptor settings, weights/ridge or network of the committed benchmark result it was written from."""
    from hydra import compose, initialize_config_dir

    from mlearn_study.experiment import (
        LINEAR_OF,
        compose_experiment,
        config_group_weights,
        descriptor_section,
        solver_section,
    )
    from mlearn_study.mlearn import (
        ACE_CUTOFF_OFFSETS,
        ENSEMBLE_MEMBERS,
        EV_PER_A3_IN_GPA,
        SNAP_CUTOFF_OFFSETS,
        SNAP_TWOJMAX_OFFSETS,
        study_settings,
    )
    from mliap_torch.cli.schema import validate

    script = _script()
    results = json.loads((ROOT / "docs" / "mlearn_benchmark" / "results.json").read_text())
    paths = sorted(p for p in (CONFIG_DIR / "experiment").glob("mlearn_*.yaml") if script.CONFIG_MARK in p.read_text())
    assert paths, "no generated mlearn experiment configs"
    for path in paths:
        _, el, model = path.stem.split("_", 2)
        if model == "best":
            continue                                  # test_best_experiment_is_the_tables_best_model
        entry = results[f"{el.capitalize()}/{model}"]
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = validate(compose("train", overrides=[f"experiment={path.stem}"]))
        assert cfg.data.element == entry["element"] and cfg.model.name == path.stem
        descriptor = dict(cfg.descriptor)
        if model == "ensemble":                       # the element's member experiments, equal weights
            assert cfg.ensemble.members == [f"mlearn_{el}_{m}" for m in ENSEMBLE_MEMBERS] == \
                [f"mlearn_{el}_{m}" for m in entry["settings"]["members"]]
            assert cfg.ensemble.weights is None and entry["settings"]["member_weights"] == [0.5, 0.5]
            assert all((CONFIG_DIR / "experiment" / f"{m}.yaml").is_file() for m in cfg.ensemble.members)
            continue
        if model == "ace_qsnap":                      # the large ACE's cutoff and basis, qSNAP's cutoff and 2Jmax
            ace, qsnap = (results[f"{el.capitalize()}/{m}"]["settings"] for m in ("ace_td", "qsnap"))
            parts = descriptor["parts"]
            assert [p["type"] for p in parts] == ["ace", "bispectrum"] and cfg.model.blocks == ["linear", "quadratic"]
            assert parts[0]["rcut"] == ace["rcut"] and {k: parts[0][k] for k in ace["basis"]} == ace["basis"]
            assert (parts[1]["rcutfac"], parts[1]["twojmax"]) == (qsnap["rcut"], qsnap["twojmax"])
        elif model == "ace_td":                       # linear ACE's cross-validated cutoff, the prior's power
            assert descriptor["rcut"] == entry["settings"]["rcut"] == results[f"{el.capitalize()}/ace"]["settings"]["rcut"]
            assert {k: descriptor[k] for k in entry["settings"]["basis"]} == entry["settings"]["basis"]
            scores = {float(k): v for k, v in entry["settings"]["prior_cv_scores"].items()}
            assert cfg.model.solver.get("prior_power", 0.0) == entry["settings"]["prior_power"] == min(scores, key=scores.get)
        elif model in LINEAR_OF:          # the experiment the study ran, on its linear fit's descriptor and weights
            ran, _ = compose_experiment(model, entry["settings"]["experiment"])
            for section in ("data", "model", "trainer"):
                assert getattr(cfg, section) == getattr(ran, section)
            assert descriptor == dict(ran.descriptor)
            linear = results[f"{el.capitalize()}/{LINEAR_OF[model]}"]
            assert {k: descriptor[k] for k in descriptor_section(linear)} == descriptor_section(linear)
            for group, weights in config_group_weights(linear).items():
                assert list(cfg.data.group_weights[group]) == pytest.approx(weights, rel=1e-12)
            assert cfg.model.solver == solver_section(linear)
            assert (cfg.model.scheduler.name, cfg.trainer.early_stopping_patience) == ("cosine", None)
        elif model.startswith("ace"):
            assert descriptor["rcut"] == entry["settings"]["rcut"]
            assert round(descriptor["rcut"] - study_settings(entry["element"], "snap")[0], 4) in ACE_CUTOFF_OFFSETS
            scores = {float(k): v for k, v in entry["settings"]["cutoff_cv_scores"].items()}
            assert min(scores, key=scores.get) == pytest.approx(descriptor["rcut"])
            assert {k: descriptor[k] for k in entry["settings"]["basis"]} == entry["settings"]["basis"]
        else:
            assert (descriptor["rcutfac"], descriptor["twojmax"]) == (entry["settings"]["rcut"], entry["settings"]["twojmax"])
            rcut, twojmax = study_settings(entry["element"], "qsnap" if model == "qsnap" else "snap")
            # cutoff cross-validated among the study's ± offsets at its 2Jmax, then 2Jmax at that cutoff
            settings = entry["settings"]
            by_rcut = {float(k): v[2] for k, v in settings["cutoff_cv"].items()}
            assert {round(r - rcut, 4) for r in by_rcut} == set(SNAP_CUTOFF_OFFSETS)
            by_twojmax = {int(k): v[2] for k, v in settings["twojmax_cv"].items()}
            assert twojmax in by_twojmax and set(by_twojmax) - {twojmax} <= {twojmax + d for d in SNAP_TWOJMAX_OFFSETS}
            assert by_twojmax[twojmax] == min(by_rcut.values())
            best = min(by_twojmax, key=by_twojmax.get)
            assert descriptor["twojmax"] == best
            assert descriptor["rcutfac"] == pytest.approx(min(by_rcut, key=by_rcut.get))
            assert (descriptor["radelem"], descriptor["rfac0"], descriptor["rmin0"], descriptor["bzeroflag"]) == \
                (0.5, 0.99363, 0.0, False)
        if model in ("snap", "qsnap", "ace", "ace_td", "ace_qsnap"):
            per_group = entry["settings"].get("group_weights") or {}
            for group in ("AIMD-NVT", "Elastic", "Surface", "Vacancy"):
                we, wf, ws = per_group.get(group, entry["weights"])
                assert list(cfg.data.group_weights[group]) == pytest.approx([we, wf, ws * EV_PER_A3_IN_GPA], rel=1e-12)
            assert cfg.model.solver.get("alpha", 0.0) == pytest.approx(entry["settings"]["ridge_alpha"], rel=1e-12)
            assert cfg.model.solver.get("scale_columns", False) == entry["settings"].get("scale_columns", False)


def test_best_experiment_is_the_tables_best_model():
    """``experiment=mlearn_<el>_best`` is, for every element of the table, the experiment of the result
    with the lowest max(E/E_bar, F₂/F_bar) against the better of GAP and MTP (the accuracy issue's bar)."""
    from hydra import compose, initialize_config_dir

    from mlearn_study import mlearn_published as published
    from mliap_torch.cli.schema import validate

    script = _script()
    results = json.loads((ROOT / "docs" / "mlearn_benchmark" / "results.json").read_text())
    for el in published.ELEMENTS:
        e_bar = min(published.ENERGY_MAE["GAP"][el], published.ENERGY_MAE["MTP"][el])
        f_bar = published.FORCE_MAE_RANGE[el][0]
        ours = {k.split("/")[1]: r for k, r in results.items() if k.startswith(f"{el}/")}
        score = {m: max(r["energy_mae"] / e_bar, round(r["force_mae"], 2) / f_bar) for m, r in ours.items()}
        best = min(score, key=lambda m: (score[m], ours[m]["energy_mae"]))
        path = CONFIG_DIR / "experiment" / f"mlearn_{el.lower()}_best.yaml"
        text = path.read_text()
        assert f"experiment=mlearn_{el.lower()}_{best};" in text and text == script.best_config(ours[best])
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = validate(compose("train", overrides=[f"experiment=mlearn_{el.lower()}_best"]))
        assert cfg.model.name == f"mlearn_{el.lower()}_best" and cfg.data.element == el


def test_native_snap_route_reproduces_torch(run, shared_data, tmp_path, monkeypatch):
    """The fitted qSNAP run through LAMMPS ``pair_style snap`` (the cost route) gives the torch energies and forces."""
    from mlearn_study.mlearn import deploy_route
    from mliap_torch.export.lammps_export import export_lammps
    from mliap_torch.lammps_eval import evaluate_in_lammps

    tmp, _ = run
    potential = load(tmp / "models" / "mlearn_mo_qsnap.pt")
    assert deploy_route(potential) == "snap"
    include = export_lammps(potential, tmp_path, routes=("snap",)).routes["snap"].include_file
    configs = read_mlearn(shared_data / "mlearn" / "Mo" / "test.json", element="Mo")[:2]
    monkeypatch.chdir(tmp_path)
    lammps = evaluate_in_lammps(configs, ["Mo"], include.read_text().splitlines())
    out = potential(make_batch(configs, ["Mo"], potential.cutoff), forces=True, stress=False)
    np.testing.assert_allclose([r["energy"] for r in lammps], out["energy"].detach().numpy(), rtol=1e-11)
    np.testing.assert_allclose(np.concatenate([r["forces"] for r in lammps]), out["forces"].detach().numpy(),
                               rtol=1e-9, atol=1e-10)


def test_ace_cutoff_is_chosen_by_training_cross_validation():
    """A 2.6 Å cutoff sees almost no Li neighbours (nearest ones at ~3 Å): cross-validation on the
    training set must reject it for the study's 5.1 Å, and report both scores (≥ 2 by construction)."""
    from conftest import SHARED_DATA as shared_data
    from mlearn_study.mlearn import select_ace_cutoff

    train = read_mlearn(shared_data / "mlearn" / "Li" / "training.json")[:12]
    basis = {"nradmax_by_orders": [4, 2], "lmax_by_orders": [0, 2], "radial_basis": "ChebExpCos",
             "radial_parameters": 5.25, "dcut": 0.01}
    data = select_ace_cutoff("Li", train, [2.6, 5.1], basis=basis, folds=3)
    assert data.descriptor.cutoff == pytest.approx(5.1)
    assert set(data.cutoff_scores) == {2.6, 5.1}
    assert 2.0 <= data.cutoff_scores[5.1] < data.cutoff_scores[2.6]


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("element", ["Ni", "Cu", "Li", "Mo", "Si", "Ge"])
def test_best_experiment_reproduces_the_table(element, tmp_path):
    """``python train.py experiment=mlearn_<el>_best``, as a user runs it, gives the table's test errors of the
    element's best model: to 1e-6 for an exact fit (the same rows, weights and solver), to the accuracy issue's
    2 % for a network (the same Lightning run; only the thread count may differ)."""
    from cli_helpers import metrics, run_cli

    results = json.loads((ROOT / "docs" / "mlearn_benchmark" / "results.json").read_text())
    entry = _script().best_model(results, element)
    proc = run_cli([f"experiment=mlearn_{element.lower()}_best", "export.lammps=false", f"hydra.run.dir={tmp_path}"],
                   timeout=3500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    test = metrics(tmp_path)["test"]["all"]
    tolerance = 0.02 if entry["model"] in ("snap_nn", "ace_nn", "ensemble") else 1e-6
    assert 1000 * test["energy_mae"] == pytest.approx(entry["energy_mae"], rel=tolerance)
    assert test["force_mae"] == pytest.approx(entry["force_mae"], rel=tolerance)
