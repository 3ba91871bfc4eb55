"""Kill ``train.py`` with SIGKILL at named points (``MLIAP_TORCH_KILL_AT``, see mliap_torch.faults) —
data generation, cache write, mid-epoch, export — and show that a rerun (exact fit) or a resume (network)
reaches the uninterrupted run's final metrics and that no file is left corrupt."""
from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
import torch

import mliap_torch
from cli_helpers import QUICK, metrics, run_cli
from mliap_torch.faults import KILL_ENV

EXACT = [*QUICK]
NETWORK = ["model=snap_nn", "trainer.max_epochs=4", *QUICK]
BATCHES_PER_EPOCH = 8
"""40 configurations: 32 train, 3 of them validation, 29 in batches of 4."""


def outputs(tmp_path: Path) -> str:
    """A run-folder override that claims a fresh folder under tmp_path/outputs like the default does."""
    return f"hydra.run.dir=${{mliap_torch.run_dir:'{tmp_path / 'outputs' / 'run'}'}}"


def summary_values(summary: dict) -> dict[str, float]:
    return {f"{split}/{group}/{key}": value for split in ("train", "test") for group, values in summary[split].items()
            for key, value in values.items()}


def assert_same_metrics(a: dict, b: dict, rel: float) -> None:
    va, vb = summary_values(a), summary_values(b)
    assert va.keys() == vb.keys()
    for key in va:
        assert vb[key] == pytest.approx(va[key], rel=rel, abs=1e-14), key


def assert_nothing_corrupt(folder: Path, temporaries_allowed: bool = True) -> None:
    """Every JSON file parses, every model and checkpoint loads safely; without ``temporaries_allowed``
    no temporary file is left either (a killed writer's temporary stays until the next run cleans it)."""
    for path in folder.rglob("*.json"):
        json.loads(path.read_text())
    for path in folder.rglob("model.pt"):
        mliap_torch.load(path)
    for path in folder.rglob("*.ckpt"):
        torch.load(path, map_location="cpu", weights_only=True)
    if not temporaries_allowed:
        assert not [p for p in folder.rglob("*") if ".tmp" in p.name], list(folder.rglob("*"))


def killed(args: list[str], point: str, cache: Path) -> None:
    proc = run_cli(args, cache=cache, env={KILL_ENV: point})
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-3000:])


@pytest.fixture(scope="module")
def exact_reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("reference")
    proc = run_cli([*EXACT, outputs(tmp)], cache=tmp / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return metrics(tmp / "outputs" / "run")


@pytest.mark.parametrize("point", ["builtin.generate:3", "builtin.write", "export"])
def test_exact_fit_rerun_after_a_kill_reaches_the_same_metrics(point: str, tmp_path: Path, exact_reference: dict
                                                               ) -> None:
    cache = tmp_path / "cache"
    killed([*EXACT, outputs(tmp_path)], point, cache)
    assert_nothing_corrupt(tmp_path)
    proc = run_cli([*EXACT, outputs(tmp_path)], cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "outputs" / "run_1" / "model.pt").is_file()   # the rerun has its own folder
    assert_same_metrics(exact_reference, metrics(tmp_path / "outputs" / "run_1"), rel=1e-10)
    assert_nothing_corrupt(tmp_path, temporaries_allowed=False)


def epochs_logged(run_dir: Path) -> list[int]:
    with open(run_dir / "logs" / "metrics.csv") as fh:
        return [int(r["epoch"]) for r in csv.DictReader(fh) if r.get("train/loss")]


def test_network_resumed_after_a_kill_mid_epoch_reaches_the_same_metrics(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    reference = tmp_path / "reference"
    proc = run_cli([*NETWORK, f"hydra.run.dir={reference}"], cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run_dir = tmp_path / "outputs" / "run"
    killed([*NETWORK, outputs(tmp_path)], f"train.batch:{2 * BATCHES_PER_EPOCH + 3}", cache)   # in epoch 2
    assert_nothing_corrupt(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1
    proc = run_cli([*NETWORK, f"ckpt_path={last}"], cache=cache)   # resumes in its own folder
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted((tmp_path / "outputs").iterdir()) == [run_dir]

    assert epochs_logged(run_dir) == epochs_logged(reference) == [0, 1, 2, 3]
    assert_same_metrics(metrics(reference), metrics(run_dir), rel=1e-6)
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    best_ref = torch.load(reference / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert best["epoch"] == best_ref["epoch"]   # the best score was carried over the kill
    assert_nothing_corrupt(tmp_path, temporaries_allowed=False)
