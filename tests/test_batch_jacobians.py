"""Descriptor Jacobians computed per batch (data sets whose store would exceed ``model.max_stored_gb``) train
exactly as stored ones: same batches, loss, head gradients, forces, and the same Lightning epoch."""
from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from mliap_torch.cli.schema import validate
from mliap_torch.cli.train import CONFIG_DIR
from mliap_torch.data.builtin import builtin_dataset
from mliap_torch.models.zbl import ZBL
from mliap_torch.training.datamodule import AtomsDataModule
from mliap_torch.training.module import loss_terms
from mliap_torch.training.precompute import JacobianCollate
from mliap_torch.training.run import run
from mliap_torch.training.setup import build_potential, initialize_mlp

ROOT = Path(__file__).resolve().parent.parent
ELEMENTS = ["Cu", "Ni"]
SETTINGS = {"type": "bispectrum", "twojmax": 4, "rcutfac": 4.1, "radelem": 0.5, "wj": [1.0, 0.9]}


def datamodule(potential, configs, max_stored_gb: float, dtype: torch.dtype) -> AtomsDataModule:
    dm = AtomsDataModule(configs[:-3], configs[-3:], [], ELEMENTS, potential.cutoff, sorted({c.group for c in configs}),
                         batch_size=3, dtype=dtype, stored_descriptors=potential, max_stored_gb=max_stored_gb)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_per_batch_jacobians_give_the_stored_route_batches_loss_gradients_and_forces(dtype):
    configs = builtin_dataset()[::20]
    potential = build_potential(SETTINGS, "mlp", ELEMENTS, hidden=[8], linear_term=True)
    potential.reference = ZBL(ELEMENTS, z=[29.0, 28.0], inner=1.5, outer=2.2)
    initialize_mlp(potential, configs, batch_size=4)
    stored = datamodule(potential, configs, 8.0, dtype)
    per_batch = datamodule(potential, configs, 1e-6, dtype)           # the store would take ~1 MB
    assert not isinstance(stored.collate, JacobianCollate) and isinstance(per_batch.collate, JacobianCollate)
    assert all(it.descriptor_jacobian is not None for it in stored.datasets["train"].items)
    assert all(it.descriptor_jacobian is None for d in per_batch.datasets.values() for it in d.items)

    model = potential.to(dtype)
    checked = 0
    for loader in ("val_dataloader", "train_dataloader"):
        a_batches, b_batches = list(getattr(stored, loader)()), list(getattr(per_batch, loader)())
        assert [b.config_id.tolist() for b in a_batches] == [b.config_id.tolist() for b in b_batches]
        for a, b in zip(a_batches, b_batches):
            assert b.descriptor_jacobian is not None and b.descriptor_jacobian.dtype == dtype
            torch.testing.assert_close(b.descriptors, a.descriptors, rtol=0, atol=0)
            torch.testing.assert_close(b.descriptor_jacobian, a.descriptor_jacobian, rtol=0, atol=0)
            results = []
            for batch in (a, b):
                model.zero_grad()
                pred = model(batch, create_graph=True)
                loss = sum(loss_terms(pred, batch).values())
                loss.backward()
                grads = torch.cat([p.grad.flatten() for p in model.head.parameters() if p.grad is not None])
                results.append((loss.detach(), pred["forces"].detach(), pred["stress"].detach(), grads))
            for x, y in zip(*results):
                torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-12)
            assert float(results[0][3].abs().max()) > 0
            checked += 1
    assert checked >= 4


def config(overrides: list[str]):
    tiny = ["model=snap_nn", "descriptor.twojmax=2", "data.max_configs=16", "data.batch_size=4", "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "plots=false", "export.lammps=false"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return validate(compose("train", overrides=tiny + overrides))


def logged(run_dir: Path, key: str) -> float:
    with open(run_dir / "logs" / "metrics.csv") as fh:
        return next(float(r[key]) for r in csv.DictReader(fh) if r.get(key))


def test_lightning_epoch_on_per_batch_jacobians_equals_the_stored_route(tmp_path, caplog):
    """``model.max_stored_gb=0``: the run computes Jacobians per batch (in a DataLoader worker process) and its
    epoch (training and validation losses, trained model) is the stored route's."""
    with caplog.at_level(logging.INFO, logger="mliap_torch.training.datamodule"):
        per_batch = run(config(["model.max_stored_gb=0", "data.num_workers=1"]), tmp_path / "per_batch")
    assert "computing them for each batch" in caplog.text and "storing descriptors" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mliap_torch.training.datamodule"):
        stored = run(config([]), tmp_path / "stored")
    assert "storing descriptors" in caplog.text
    assert per_batch is not None and stored is not None
    for key in ("train/loss", "val/loss", "val/f_mae"):
        assert logged(tmp_path / "per_batch", key) == pytest.approx(logged(tmp_path / "stored", key), rel=1e-9)
    for name, value in stored.potential.head.state_dict().items():
        torch.testing.assert_close(per_batch.potential.head.state_dict()[name], value, rtol=1e-9, atol=1e-12)
    assert per_batch.metrics["test"]["all"]["force_mae"] == pytest.approx(stored.metrics["test"]["all"]["force_mae"],
                                                                           rel=1e-9)


@pytest.mark.slow
def test_ddp_ranks_compute_their_own_batches_and_match_the_stored_route(tmp_path):
    """``trainer=ddp_cpu``: both processes take the per-batch route and train as the stored route does."""
    losses = {}
    for name, extra in (("per_batch", ["model.max_stored_gb=0"]), ("stored", [])):
        run_dir = tmp_path / name
        cmd = [sys.executable, str(ROOT / "train.py"), "model=snap_nn", "trainer=ddp_cpu", "trainer.max_epochs=2",
               "descriptor.twojmax=2", "data.max_configs=16", "data.batch_size=4", "trainer.enable_progress_bar=false",
               "plots=false", "export.lammps=false", *extra, f"hydra.run.dir={run_dir}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-3000:]
        logs = [(run_dir / log).read_text() for log in ("train.log", "train_ddp_process_1.log")]
        assert all(("computing them for each batch" in log) == (name == "per_batch") for log in logs)
        with open(run_dir / "logs" / "metrics.csv") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("train/loss")]
        losses[name] = [float(r["train/loss"]) for r in sorted(rows, key=lambda r: int(r["epoch"]))]
    assert len(losses["per_batch"]) == 2
    assert losses["per_batch"] == pytest.approx(losses["stored"], rel=1e-9)
