"""Lightning training end to end on tiny subsets of the built-in data (2Jmax 2): DDP on two CPU processes,
resume from last.ckpt, fast_dev_run smoke tests, and the run folder checked against an independent
re-evaluation of the saved model."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import mliap_torch
from mliap_torch.cli.schema import validate
from mliap_torch.cli.train import CONFIG_DIR
from mliap_torch.data.batch import make_batch
from mliap_torch.data.builtin import builtin_dataset
from mliap_torch.data.configuration import Configuration
from mliap_torch.data.groups import Split
from mliap_torch.training.data import load_split_data
from mliap_torch.training.module import PotentialModule, loss_terms
from mliap_torch.training.run import run
from mliap_torch.training.setup import build_potential, descriptor_statistics, element_energy_offsets, initialize_mlp

ROOT = Path(__file__).resolve().parent.parent
TINY = ["descriptor.twojmax=2", "data.max_configs=16", "data.batch_size=4", "trainer.enable_progress_bar=false",
        "plots=false", "export.lammps=false"]


def config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return validate(compose("train", overrides=TINY + overrides))


def epoch_losses(run_dir: Path, key: str = "train/loss") -> list[float]:
    with open(run_dir / "logs" / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get(key)]
    return [float(r[key]) for r in sorted(rows, key=lambda r: int(r["epoch"]))]


@pytest.mark.slow
def test_ddp_cpu_two_processes_train_and_checkpoint_loads(tmp_path):
    """`trainer=ddp_cpu` through the command line: two gloo processes, loss decreases, checkpoint = model.pt."""
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, str(ROOT / "train.py"), "model=snap_nn", "trainer=ddp_cpu", "trainer.max_epochs=4",
           "model.optimizer.lr=0.01", *TINY, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| test |" in proc.stdout  # the error table is printed at the end
    assert (run_dir / "train_ddp_process_1.log").is_file()  # the second rank ran
    losses = epoch_losses(run_dir)
    assert len(losses) == 4 and losses[-1] < losses[0]

    # Each process sees half of the training configurations per epoch (DistributedSampler).
    data = load_split_data(config([]).data, seed=42)
    per_rank = -(-len(data.fit) // 2)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4 * -(-per_rank // 4)

    module = PotentialModule.load_from_checkpoint(run_dir / "checkpoints" / "best.ckpt", map_location="cpu")
    saved = mliap_torch.load(run_dir / "model.pt")
    batch = make_batch(data.test, saved.elements, saved.cutoff)
    a, b = module.potential(batch), saved(batch)
    torch.testing.assert_close(a["energy"], b["energy"], rtol=0, atol=1e-12)
    torch.testing.assert_close(a["forces"], b["forces"], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_resume_from_last_checkpoint_reaches_the_same_step_count(tmp_path):
    common = ["model=snap_nn", "trainer.early_stopping_patience=null"]
    full = run(config(common + ["trainer.max_epochs=3"]), tmp_path / "full")
    run(config(common + ["trainer.max_epochs=1"]), tmp_path / "part")
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    resumed = run(config(common + ["trainer.max_epochs=3", f"ckpt_path={last}"]), tmp_path / "resumed")

    def state(path: Path) -> dict:
        return torch.load(path, map_location="cpu", weights_only=True)

    a, b = state(tmp_path / "full" / "checkpoints" / "last.ckpt"), state(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] > state(last)["global_step"] > 0
    assert a["epoch"] == b["epoch"]
    assert len(epoch_losses(tmp_path / "resumed")) == 2  # epochs 1 and 2 only: the first came from the checkpoint
    assert full.metrics["test"]["all"]["energy_mae"] < 1.0 and resumed.metrics["test"]["all"]["energy_mae"] < 1.0


@pytest.mark.parametrize("overrides", [["model=snap_nn", "dtype=float32"], ["model=snap_quadratic", "model.refine=true"],
                                       ["model=snap_linear", "model.refine=true", "model.scheduler.name=cosine"]])
def test_fast_dev_run(overrides, tmp_path):
    result = run(config(overrides + ["trainer.fast_dev_run=true"]), tmp_path)
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "metrics.json").is_file()
    for split in ("train", "test"):
        assert np.isfinite(result.metrics[split]["all"]["energy_mae"])
        assert np.isfinite(result.metrics[split]["all"]["force_mae"])


def test_default_exact_fit_run_folder_matches_an_independent_evaluation(tmp_path):
    """Linear SNAP by least squares: the saved model, the split record and the metrics agree."""
    result = run(config(["plots=true", "data.max_configs=32"]), tmp_path, resolved_config={"note": "test"})
    for name in ("config.yaml", "split.json", "model.pt", "metrics.md", "metrics.json", "parity.png"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "checkpoints").exists()  # no gradient training by default

    model = mliap_torch.load(tmp_path / "model.pt")
    split = Split.from_json(tmp_path / "split.json")
    configs = builtin_dataset()
    data = load_split_data(config(["data.max_configs=32"]).data, seed=42)
    by_key = {f"{c.source}#{c.index}": c for c in configs}
    test = [by_key[split.keys[k]] for k in split.test]
    assert [c.positions.tolist() for c in test] == [c.positions.tolist() for c in data.test]
    batch = make_batch(test, model.elements, model.cutoff)
    out = model(batch)
    e_mae = np.mean(np.abs(((out["energy"] - batch.energy) / batch.num_atoms).detach().numpy()))
    f_mae = np.mean(np.abs((out["forces"] - batch.forces).detach().numpy()))
    reported = json.loads((tmp_path / "metrics.json").read_text())["summary"]["test"]["all"]
    assert reported["energy_mae"] == pytest.approx(e_mae, rel=1e-9)
    assert reported["force_mae"] == pytest.approx(f_mae, rel=1e-9)
    assert result.metrics["test"]["all"]["energy_mae"] == pytest.approx(e_mae, rel=1e-9)
    # Even 2Jmax 2 on 25 configurations beats predicting the mean energy per atom.
    spread = np.mean(np.abs(batch.energy / batch.num_atoms - (batch.energy / batch.num_atoms).mean()).numpy())
    assert e_mae < spread


def test_loss_terms_match_a_direct_computation():
    configs = builtin_dataset()[:3]
    configs[1].energy_weight, configs[2].force_weight, configs[0].stress_weight = 4.0, 0.5, 2.0
    configs[2] = Configuration(configs[2].positions, configs[2].cell, configs[2].pbc, configs[2].symbols,
                               energy=configs[2].energy, forces=configs[2].forces, stress=None,
                               force_weight=0.5)
    batch = make_batch(configs, ["Cu", "Ni"], 3.0)
    rng = np.random.default_rng(0)
    pred = {"energy": batch.energy + torch.as_tensor(rng.normal(size=3)),
            "forces": batch.forces + torch.as_tensor(rng.normal(size=batch.forces.shape)),
            "stress": batch.stress + torch.as_tensor(rng.normal(size=(3, 6)))}
    terms = loss_terms(pred, batch)
    n = np.array([c.num_atoms for c in configs])
    de = (pred["energy"] - batch.energy).numpy() / n
    assert terms["energy"].item() == pytest.approx(np.mean(np.array([1.0, 4.0, 1.0]) * de ** 2))
    df = ((pred["forces"] - batch.forces).numpy() ** 2).mean(1)
    w = np.repeat([1.0, 1.0, 0.5], n)
    assert terms["forces"].item() == pytest.approx(np.mean(w * df))
    ds = ((pred["stress"] - batch.stress).numpy() ** 2).mean(1)
    assert terms["stress"].item() == pytest.approx((2.0 * ds[0] + ds[1]) / 2)  # third has no stress


def test_mlp_initialisation_scaling_and_energy_offsets():
    configs = builtin_dataset()[::25]
    elements = ["Cu", "Ni"]
    truth = np.array([-3.5, -4.25])
    counts = np.array([[np.sum(c.symbols == e) for e in elements] for c in configs])
    exact = [Configuration(c.positions, c.cell, c.pbc, c.symbols, energy=float(k @ truth)) for c, k in zip(configs, counts)]
    assert counts[:, 1].any()  # the subset holds alloys, so both offsets are determined
    np.testing.assert_allclose(element_energy_offsets(exact, elements), truth, atol=1e-10)

    settings = {"type": "bispectrum", "twojmax": 2, "rcutfac": 4.1, "radelem": 0.5, "wj": 1.0}
    pot = build_potential(settings, "mlp", elements, hidden=[8])
    mean, std = descriptor_statistics(pot, configs, batch_size=3)
    batch = make_batch(configs, elements, pot.cutoff)
    B = pot.descriptor(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    torch.testing.assert_close(mean, B.mean(0))
    torch.testing.assert_close(std, B.std(0, unbiased=False))
    initialize_mlp(pot, exact, batch_size=3)
    torch.testing.assert_close(pot.head.offset, torch.as_tensor(truth), atol=1e-10, rtol=0)
    torch.testing.assert_close(pot.head.shift, mean)


def test_mlp_with_linear_term_starts_at_the_exact_linear_fit(tmp_path):
    """initialize_mlp with ``linear_term``: the network equals the exact linear fit (energies, forces)
    before training, with the scaling folded into its linear part."""
    from mliap_torch.fitting.exact_fit import fit_exact

    configs = builtin_dataset()[::10]
    settings = {"type": "bispectrum", "twojmax": 4, "rcutfac": 4.1, "radelem": 0.5, "wj": 1.0}
    mlp = build_potential(settings, "mlp", ["Cu", "Ni"], hidden=[8], linear_term=True)
    initialize_mlp(mlp, configs, batch_size=8)
    linear = build_potential(settings, "linear", ["Cu", "Ni"])
    fit_exact(linear, configs, bias=True)
    batch = make_batch(configs, ["Cu", "Ni"], mlp.cutoff)
    a, b = mlp(batch, stress=False), linear(batch, stress=False)
    assert float(b["forces"].abs().max()) > 0.1
    torch.testing.assert_close(a["energy"].detach(), b["energy"].detach(), rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(a["forces"].detach(), b["forces"].detach(), rtol=1e-9, atol=1e-10)
    assert any(float(p.abs().max()) > 0 for p in mlp.head.networks.parameters())   # hidden layers stay random
    mliap_torch.save(mlp, tmp_path / "mlp.pt")
    loaded = mliap_torch.load(tmp_path / "mlp.pt")
    assert loaded.head.linear_term
    torch.testing.assert_close(loaded(batch, stress=False)["energy"].detach(), a["energy"].detach(), rtol=1e-12, atol=0)


def test_training_keeps_its_start_when_no_epoch_beats_it_on_validation(tmp_path, caplog):
    """A network whose linear term starts at the exact fit, trained with a rate that wrecks it: every epoch is
    worse on validation than the start, so the run returns the start (the exact linear fit) and no checkpoint;
    with a sane rate an epoch beats the start and the run returns the best checkpoint's weights."""
    import logging

    from mliap_torch.fitting.exact_fit import fit_exact

    wrecked = config(["model=snap_nn", "model.optimizer.lr=0.3", "trainer.max_epochs=2", "data.val_fraction=0.25",
                      "trainer.divergence_factor=1e12", "active_set.enabled=false"])
    with caplog.at_level(logging.INFO, logger="mliap_torch.training.run"):
        result = run(wrecked, tmp_path / "wrecked")
    assert result is not None and result.checkpoint is None
    assert "stay better on validation than every epoch" in caplog.text
    val = [float(v) for v in epoch_losses(tmp_path / "wrecked", "val/loss")]
    assert len(val) == 2
    data = load_split_data(wrecked.data, wrecked.seed)
    linear = build_potential(dict(wrecked.descriptor), "linear", result.potential.elements)
    fit_exact(linear, data.fit, bias=True)
    batch = make_batch(data.val, result.potential.elements, linear.cutoff)
    torch.testing.assert_close(result.potential(batch, stress=False)["energy"].detach(),
                               linear(batch, stress=False)["energy"].detach(), rtol=1e-10, atol=1e-9)
    sane = run(config(["model=snap_nn", "trainer.max_epochs=3", "data.val_fraction=0.25", "active_set.enabled=false"]),
               tmp_path / "sane")
    assert sane is not None and sane.checkpoint is not None and sane.checkpoint.name == "best.ckpt"
    # the start's score is the loss Lightning logs: the returned (best) weights score the best val/loss
    module = PotentialModule(sane.potential.settings(), loss_weights={"energy": 10.0, "forces": 1.0, "stress": 0.0},
                             use_config_weights=False)
    module.potential.load_state_dict(sane.potential.state_dict())
    batches = [make_batch(data.val[k:k + 4], sane.potential.elements, sane.potential.cutoff)
               for k in range(0, len(data.val), 4)]
    assert module.mean_loss(batches) == pytest.approx(min(epoch_losses(tmp_path / "sane", "val/loss")), rel=1e-9)


def test_mlp_linear_start_takes_the_solver_options():
    """``initialize_mlp(..., options)``: the linear term starts from the exact fit with those solver settings
    (a ridge here, ``model.solver`` in a run), not the plain least squares."""
    from mliap_torch.fitting.exact_fit import fit_exact
    from mliap_torch.fitting.options import FitOptions

    configs = builtin_dataset()[::10]
    settings = {"type": "bispectrum", "twojmax": 4, "rcutfac": 4.1, "radelem": 0.5, "wj": 1.0}
    ridge = FitOptions.build({"solver": "ridge", "alpha": 1e-2, "bias": True})
    mlp = build_potential(settings, "mlp", ["Cu", "Ni"], hidden=[8], linear_term=True)
    initialize_mlp(mlp, configs, batch_size=8, options=ridge)
    batch = make_batch(configs, ["Cu", "Ni"], mlp.cutoff)
    energies = {}
    for name, options in (("ridge", ridge), ("plain", None)):
        linear = build_potential(settings, "linear", ["Cu", "Ni"])
        fit_exact(linear, configs, options=options, bias=True)
        energies[name] = linear(batch, stress=False)["energy"].detach()
    assert float((energies["ridge"] - energies["plain"]).abs().max()) > 1e-3
    torch.testing.assert_close(mlp(batch, stress=False)["energy"].detach(), energies["ridge"], rtol=1e-10, atol=1e-9)


@pytest.mark.lammps
def test_run_exports_checks_and_runs_md_in_lammps(tmp_path):
    """The run's LAMMPS step: files of every route, LAMMPS = torch, a short NVE MD with small drift."""
    result = run(config(["data.max_configs=24", "export.lammps=true", "export.check_configs=2",
                         "export.md_steps=100", "export.md_atoms=108"]), tmp_path)
    report = json.loads((tmp_path / "metrics.json").read_text())["lammps"]
    assert report == json.loads(json.dumps(result.metrics["lammps"]))
    assert (tmp_path / "lammps" / "in.md.lammps").is_file()
    assert set(report["lammps_vs_torch"]) == {"unified", "snap", "mliap", "plugin"}
    for diff in report["lammps_vs_torch"].values():
        assert diff["configurations"] == 2 and diff["force_relative"] < 1e-8
    assert report["md"]["atoms"] == 108 and report["md"]["steps"] == 100
    assert report["md"]["max_energy_drift_per_atom"] < 1e-3
