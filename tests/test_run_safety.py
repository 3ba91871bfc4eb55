"""Run folders and checkpoints a careful user can trust: no code runs from a crafted checkpoint,
simultaneous runs never share a folder, a diverging run stops with an error and exports nothing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import mliap_torch
from cli_helpers import QUICK, metrics, run_cli, start_cli, user_error
from mliap_torch.cli.run_dir import claim_run_dir
from mliap_torch.data.batch import make_batch
from mliap_torch.data.builtin import builtin_dataset
from mliap_torch.data.groups import Split
from mliap_torch.errors import TrainingDivergedError
from mliap_torch.training.guards import check_step_loss

NETWORK = ["model=snap_nn", "trainer.early_stopping_patience=null", *QUICK]


class OpensAFile:
    """Unpickling this calls ``open(marker, "w")``: arbitrary code from a file, made visible by the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def crafted_pickle(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "payload": OpensAFile(marker)}, path)
    torch.load(path, weights_only=False).get("payload").close()   # the file really runs code when trusted ...
    assert marker.is_file()
    marker.unlink()                                                # ... which the tests below must prevent
    return path


def point_best_model_path(checkpoint: Path, target: Path) -> None:
    """Rewrite the ModelCheckpoint callback states of ``checkpoint`` so that best_model_path is ``target``."""
    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    states = [v for k, v in blob["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert states
    for state in states:
        state["best_model_path"] = str(target)
    torch.save(blob, checkpoint)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-epoch snap_nn run folder (config.yaml, checkpoints/best.ckpt and last.ckpt)."""
    run_dir = tmp_path_factory.mktemp("runs") / "nn"
    proc = run_cli([*NETWORK, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def copy_run(run_dir: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, to)
    return to


def test_resume_never_runs_code_from_a_crafted_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    evil = crafted_pickle(tmp_path / "evil.ckpt", marker)

    # 1. The checkpoint's callback state points best_model_path at the crafted file (outside the run):
    #    the resume finishes (no epochs left) without reading it.
    run_a = copy_run(trained_run, tmp_path / "a")
    point_best_model_path(run_a / "checkpoints" / "last.ckpt", evil)
    proc = run_cli([*NETWORK, "trainer.max_epochs=2", f"ckpt_path={run_a / 'checkpoints' / 'last.ckpt'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not marker.exists()
    assert (run_a / "model.pt").is_file()   # resumed in its own run folder

    # 2. The crafted file is the run's own best.ckpt: refused with a clear error.
    run_b = copy_run(trained_run, tmp_path / "b")
    crafted_pickle(run_b / "checkpoints" / "best.ckpt", marker)
    point_best_model_path(run_b / "checkpoints" / "last.ckpt", run_b / "checkpoints" / "best.ckpt")
    message = user_error(run_cli([*NETWORK, "trainer.max_epochs=2",
                                  f"ckpt_path={run_b / 'checkpoints' / 'last.ckpt'}"]))
    assert "best.ckpt" in message and "cannot be loaded safely" in message
    assert not marker.exists()

    # 3. The crafted file given as the checkpoint itself.
    message = user_error(run_cli([*NETWORK, f"ckpt_path={evil}", f"hydra.run.dir={tmp_path / 'c'}"]))
    assert str(evil) in message and "weights_only=True" in message
    assert not marker.exists()


def test_resume_with_another_model_is_a_clear_error(trained_run: Path, tmp_path: Path) -> None:
    run_dir = copy_run(trained_run, tmp_path / "run")
    proc = run_cli([*NETWORK, "model.hidden=[8]", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"])
    message = user_error(proc)
    assert "written for a different model" in message and "head.hidden" in message


def evaluate_test_energy_mae(run_dir: Path) -> float:
    """Test energy MAE (eV/atom) of run_dir/model.pt on the configurations its split.json names."""
    model = mliap_torch.load(run_dir / "model.pt")
    split = Split.from_json(run_dir / "split.json")
    by_key = {f"{c.source}#{c.index}": c for c in builtin_dataset()}
    test = [by_key[split.keys[k]] for k in split.test]
    batch = make_batch(test, model.elements, model.cutoff)
    energy = model(batch, forces=False)["energy"].detach()
    return float(np.mean(np.abs(((energy - batch.energy) / batch.num_atoms).numpy())))


@pytest.mark.parametrize("runs", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_simultaneous_runs_get_their_own_folders(tmp_path: Path, runs: int) -> None:
    """Runs started together on one cold cache, all asking for the same folder name."""
    base = tmp_path / "outputs" / "same"
    procs = [start_cli([*QUICK, f"seed={k}", f"hydra.run.dir=${{mliap_torch.run_dir:'{base}'}}"],
                       cache=tmp_path / "cache") for k in range(runs)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    folders = sorted(base.parent.iterdir())
    assert [f.name for f in folders] == ["same"] + [f"same_{k}" for k in range(1, runs)]
    seeds = set()
    for folder in folders:
        seed = yaml.safe_load((folder / "config.yaml").read_text())["seed"]
        seeds.add(seed)
        assert Split.from_json(folder / "split.json").seed == seed
        assert metrics(folder)["test"]["all"]["energy_mae"] == pytest.approx(evaluate_test_energy_mae(folder),
                                                                            rel=1e-9)
    assert seeds == set(range(runs))


def test_claimed_folders_are_distinct_and_resumes_reuse_their_folder(tmp_path: Path) -> None:
    base = tmp_path / "out" / "t"
    first = claim_run_dir(str(base))
    assert claim_run_dir(str(base)) == first   # one answer per process
    (tmp_path / "out" / "u").mkdir()
    assert claim_run_dir(str(tmp_path / "out" / "u")) == str(tmp_path / "out" / "u_1")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    assert claim_run_dir(str(base), str(run / "checkpoints" / "last.ckpt")) == str(run)


def test_diverging_training_stops_with_an_error_and_exports_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli([*NETWORK, "model.optimizer.lr=1e6", "trainer.max_epochs=4", "export.lammps=true",
                    f"hydra.run.dir={run_dir}"])
    message = user_error(proc)
    assert message.startswith("Training diverged in epoch 0") and "model.optimizer.lr=1000000.0" in message
    assert not (run_dir / "model.pt").exists() and not (run_dir / "lammps").exists()
    assert not (run_dir / "metrics.json").exists()


def test_non_finite_step_loss_stops_training() -> None:
    check_step_loss(torch.tensor(0.5), 0, 0, 1e-3)
    with pytest.raises(TrainingDivergedError, match="epoch 3, batch 7: the loss is nan"):
        check_step_loss(torch.tensor(float("nan")), 3, 7, 1e-3)
