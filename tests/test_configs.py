"""Every config in mliap_torch/configs/ composes with hydra.compose, validates, and builds its cheap parts; bad configs
give one clear paragraph (no traceback)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mliap_torch.cli.schema import ConfigError, validate
from mliap_torch.cli.train import CONFIG_DIR
from mliap_torch.training.setup import build_descriptor, build_potential
from mliap_torch.training.trainer import build_trainer

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = CONFIG_DIR


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def composed(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=False)


def test_every_group_has_the_documented_options():
    assert {"builtin", "fitsnap_json", "mlearn", "extxyz"} <= set(options("data"))
    assert {"bispectrum", "ace"} <= set(options("descriptor"))
    assert {"snap_linear", "snap_quadratic", "snap_nn", "ace_linear", "ace_nn"} <= set(options("model"))
    assert {"cpu", "gpu", "ddp", "ddp_cpu"} <= set(options("trainer"))
    assert {"ta_jcp2014_linear", "ta_jcp2014_nn", "mlearn_ni_qsnap"} <= set(options("experiment"))


def test_default_config_is_linear_snap_on_builtin_data_with_the_exact_solver():
    cfg = validate(composed([]))
    assert (cfg.data.format, cfg.descriptor["type"], cfg.model.head, cfg.model.fit) == \
        ("builtin", "bispectrum", "linear", "exact")
    assert not cfg.model.refine and cfg.ckpt_path is None


@pytest.mark.parametrize("group", ["data", "descriptor", "model", "trainer"])
def test_every_option_composes_and_validates(group, tmp_path):
    for option in options(group):
        overrides = [f"{group}={option}"]
        if group == "data" and option != "builtin":
            overrides += [f"data.path={tmp_path}"]
        if group == "data" and option == "mlearn":
            for name in ("training.json", "test.json"):
                (tmp_path / "Ni").mkdir(exist_ok=True)
                (tmp_path / "Ni" / name).write_text("[]")
            overrides += ["data.element=Ni"]
        cfg = validate(composed(overrides))
        section = getattr(cfg, group)
        if group == "data":
            assert section.format == OmegaConf.load(CONFIGS / "data" / f"{option}.yaml")["format"]
        elif group == "descriptor":
            assert section["type"] == option
        elif group == "model":
            assert cfg.model.name == option
            expected = "concatenated" if option == "ace_qsnap" else "ace" if option.startswith("ace") else "bispectrum"
            assert cfg.descriptor["type"] == expected
        else:
            raw = OmegaConf.load(CONFIGS / "trainer" / f"{option}.yaml")
            assert cfg.trainer.accelerator == raw.get("accelerator", "cpu")


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment, shared_data):
    cfg = validate(composed([f"experiment={experiment}"]))
    assert cfg.model.name.startswith(experiment.split("_")[0])
    assert cfg.data.path is not None and Path(cfg.data.path).exists()


def test_ddp_cpu_trainer_is_two_gloo_processes(tmp_path):
    cfg = validate(composed(["trainer=ddp_cpu"]))
    trainer = build_trainer(cfg.trainer, tmp_path)
    assert trainer.num_devices == 2 and trainer.accelerator.__class__.__name__ == "CPUAccelerator"
    assert type(trainer.strategy).__name__ == "DDPStrategy"
    assert trainer.strategy._get_process_group_backend() == "gloo"


def test_cheap_parts_instantiate(tmp_path):
    """Descriptors of every descriptor config, heads of every model config, and the cpu trainer."""
    cfg = validate(composed(["descriptor.twojmax=2"]))
    d = build_descriptor(cfg.descriptor, ["Cu", "Ni"])
    assert d.num_descriptors == 5 and d.cutoff == pytest.approx(cfg.descriptor["rcutfac"])
    for model in ("snap_linear", "snap_quadratic", "snap_nn"):
        cfg = validate(composed([f"model={model}", "descriptor.twojmax=2"]))
        pot = build_potential(cfg.descriptor, cfg.model.head, ["Cu", "Ni"], cfg.model.hidden, cfg.model.activation,
                              cfg.model.reference)
        assert pot.head.type_name == cfg.model.head
        x = torch.zeros(3, 5, dtype=torch.float64)
        assert pot.head(x, torch.tensor([0, 1, 0])).shape == (3,)
    ace = build_descriptor(validate(composed(["model=ace_linear"])).descriptor, ["Cu", "Ni"])
    assert ace.type_name == "ace" and ace.num_descriptors > 0 and ace.cutoff == pytest.approx(4.5)
    trainer = build_trainer(validate(composed([])).trainer, tmp_path)
    assert trainer.max_epochs == 30 and trainer.num_devices == 1


@pytest.mark.parametrize("overrides, fragment", [
    (["trainer.max_epochs=abc"], "'trainer.max_epochs'"),
    (["+model.learning_rate=0.1"], "'model.learning_rate'"),
    (["data=fitsnap_json"], "'data.path' must be given"),
    (["data=extxyz", "data.path=no/such/file.xyz"], "does not exist"),
    (["model.head=cubic"], "'model.head' is 'cubic'"),
    (["model=snap_nn", "model.fit=exact"], "no least-squares"),
    (["data.val_fraction=1.5"], "'data.val_fraction'"),
    (["+descriptor.jmax=3"], "'descriptor.jmax'"),
])
def test_config_errors_name_the_key(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        validate(composed(overrides))
    message = str(info.value)
    assert fragment in message and "\n" not in message.strip()


def test_command_line_reports_a_config_error_as_one_paragraph(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "trainer.max_epochs=abc",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.startswith("Configuration error in 'trainer.max_epochs'")
    assert len(err.splitlines()) == 1


def test_console_script_dispatches_train_and_reports_config_errors(tmp_path, monkeypatch, capsys):
    from mliap_torch.cli.main import main

    monkeypatch.setattr(sys, "argv", ["mliap_torch"])
    with pytest.raises(SystemExit) as info:
        main(["train", "data.batch_size=0", f"hydra.run.dir={tmp_path}"])
    assert info.value.code == 2
    assert "'data.batch_size' is 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["fit"])
    assert info.value.code == 2 and "unknown command 'fit'" in capsys.readouterr().err
