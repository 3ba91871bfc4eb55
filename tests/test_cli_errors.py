"""Every user error on the command line is one paragraph with exit status 2, raised before any work it
would waste: out-of-range settings, bad data, Hydra's own override errors, bad run folders for export."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from cli_helpers import QUICK, run_cli, user_error
from mliap_torch.cli.schema import ConfigError, require_accelerator, validate
from mliap_torch.cli.train import CONFIG_DIR

RANGE_ERRORS = [
    (["descriptor.twojmax=-2"], "'descriptor.twojmax' is -2"),
    (["descriptor.rcutfac=-1"], "'descriptor.rcutfac' is -1"),
    (["descriptor.rfac0=1.5"], "'descriptor.rfac0' is 1.5"),
    (["descriptor.radelem=[0.5,-0.1]"], "'descriptor.radelem' is -0.1"),
    (["trainer.max_epochs=-3"], "'trainer.max_epochs' is -3"),
    (["data.max_configs=-5"], "'data.max_configs' is -5"),
    (["data.num_workers=-1"], "'data.num_workers' is -1"),
    (["data.checks.min_distance=-1"], "'data.checks.min_distance' is -1"),
    (["model=snap_nn", "model.optimizer.lr=0"], "'model.optimizer.lr' is 0"),
    (["model=snap_nn", "model.hidden=[16,0]"], "'model.hidden' is 0"),
    (["model=snap_nn", "model.loss.energy=0", "model.loss.forces=0"], "'model.loss' weights are all 0"),
    (["model.scheduler.factor=2"], "'model.scheduler.factor' is 2"),
    (["trainer.accelerator=tpux"], "'trainer.accelerator' is 'tpux'"),
    (["trainer.divergence_factor=0.5"], "'trainer.divergence_factor' is 0.5"),
    (["export.md_atoms=0"], "'export.md_atoms' is 0"),
    (["seed=-1"], "'seed' is -1"),
    (["descriptor=ace", "descriptor.rcut=-4"], "'descriptor.rcut' is -4"),
    (["descriptor=ace", "descriptor.lmax_by_orders=[0,-2]"], "'descriptor.lmax_by_orders'"),
]


def composed(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize("overrides, fragment", RANGE_ERRORS, ids=[o[0][-1] for o in RANGE_ERRORS])
def test_out_of_range_settings_are_config_errors(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(composed(overrides))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_unavailable_accelerator_is_a_config_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the error is about machines without one")
    with pytest.raises(ConfigError, match="no gpu device is available"):
        require_accelerator("gpu")
    require_accelerator("cpu")


def test_settings_are_checked_before_the_data_is_read(tmp_path: Path) -> None:
    """A bad max_epochs with an unreadable data file: the setting is reported, the file never read."""
    bad = tmp_path / "broken.xyz"
    bad.write_text("this is not an extended XYZ file\n")
    proc = run_cli(["data=extxyz", f"data.path={bad}", "trainer.max_epochs=-3", f"hydra.run.dir={tmp_path / 'run'}"])
    assert "'trainer.max_epochs' is -3" in user_error(proc)


def test_data_error_from_a_reader_is_one_paragraph(tmp_path: Path) -> None:
    bad = tmp_path / "broken.xyz"
    bad.write_text("2\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3 energy=-1.0 pbc=\"T T T\"\n"
                   "Cu 0 0 0\nCu 1.8 1.8 nan\n")
    proc = run_cli(["data=extxyz", f"data.path={bad}", f"hydra.run.dir={tmp_path / 'run'}", *QUICK])
    message = user_error(proc)
    assert str(bad) in message and "[configuration 0]" in message and "'positions'" in message


def test_gpu_training_without_a_gpu_stops_before_reading_data(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_cli(["model=snap_nn", "trainer.accelerator=gpu", f"hydra.run.dir={tmp_path / 'run'}", *QUICK])
    assert "no gpu device is available" in user_error(proc)
    assert not (tmp_path / "run" / "split.json").exists()


def test_hydra_override_errors_exit_with_status_2(tmp_path: Path) -> None:
    proc = run_cli(["no_such_key=1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 2 and "Could not override 'no_such_key'" in proc.stderr
    proc = run_cli(["model=no_such_model", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 2 and "no_such_model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_export_of_a_bad_run_folder_is_one_paragraph(tmp_path: Path) -> None:
    def export(path: Path) -> str:
        return user_error(run_cli(["export", str(path)], module="mliap_torch.cli.main"))

    assert "no such file or folder" in export(tmp_path / "missing")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("seed: 1\n")
    assert "did not finish" in export(unfinished)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.pt").write_bytes(b"not a torch file")
    message = export(garbage)
    assert str(garbage / "model.pt") in message and "not a mliap_torch model file" in message


def test_a_config_error_leaves_no_run_folder_behind(tmp_path: Path) -> None:
    assert "'descriptor.twojmax' is -2" in user_error(run_cli(["descriptor.twojmax=-2"], cwd=tmp_path))
    assert not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]


def test_export_says_which_routes_cannot_express_the_model(tmp_path: Path) -> None:
    run_dir = tmp_path / "nn"
    proc = run_cli(["model=snap_nn", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}", *QUICK])
    assert proc.returncode == 0, proc.stderr[-3000:]
    message = user_error(run_cli(["export", str(run_dir), "--routes", "snap"], module="mliap_torch.cli.main"))
    assert "route(s) snap cannot express this model (bispectrum descriptor with a MLPHead)" in message
    proc = run_cli(["export", str(run_dir)], module="mliap_torch.cli.main")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "snap     not written" in proc.stdout and "mliap    not written" in proc.stdout
    assert (run_dir / "lammps" / "model.mliap_unified.pkl").is_file()
    assert not (run_dir / "lammps" / "model.snapcoeff").exists()
