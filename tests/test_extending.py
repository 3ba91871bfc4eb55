"""The registry (mliap_torch.registry) and the worked example of docs/extending.md: a descriptor defined in one
module of its own, registered with one line, trained from the command line."""
from __future__ import annotations

import os
import re
import sys

import pytest
import torch

from cli_helpers import metrics, run_cli
from conftest import ROOT
from mliap_torch import load
from mliap_torch.errors import ConfigError
from mliap_torch.registry import descriptor_class, head_class, import_plugins, names, reference_class, register_head

EXAMPLES = ROOT / "docs" / "examples"


def test_the_builtin_components_are_registered():
    from mliap_torch.descriptors.bispectrum import Bispectrum
    from mliap_torch.models.heads import MLPHead
    from mliap_torch.models.zbl import ZBL

    assert {"bispectrum", "ace"} <= set(names("descriptor"))
    assert names("head") == ["blocks", "linear", "mlp", "pace_embedding", "quadratic", "weighted_blocks"]
    assert names("reference potential") == ["pace_core", "zbl"]
    assert (descriptor_class("bispectrum"), head_class("mlp"), reference_class("zbl")) == (Bispectrum, MLPHead, ZBL)
    assert Bispectrum.type_name == "bispectrum" and MLPHead.type_name == "mlp" and ZBL.type_name == "zbl"
    with pytest.raises(ValueError, match=r"unknown head type 'cubic'; known: \['blocks', 'linear', 'mlp', 'pace_embedding', 'quadratic', 'weighted_blocks'\]"):
        head_class("cubic")


def test_a_name_cannot_be_registered_twice():
    from mliap_torch.models.heads import LinearHead

    with pytest.raises(ValueError, match="head type 'linear' is already registered"):
        @register_head("linear")
        class OtherLinear(LinearHead):
            pass


def test_a_plugin_that_cannot_be_imported_is_a_config_error():
    with pytest.raises(ConfigError, match="'plugins' names 'no_such_plugin_module'"):
        import_plugins(["no_such_plugin_module"])


def test_the_page_shows_the_example_module():
    page = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert (EXAMPLES / "gaussians.py").read_text(encoding="utf-8") in blocks
    assert (EXAMPLES / "descriptor" / "gaussians.yaml").read_text(encoding="utf-8") in \
        re.findall(r"```yaml\n(.*?)```", page, flags=re.S)


def test_a_plugin_descriptor_trains_from_the_command_line(tmp_path):
    """``plugins=[gaussians]`` registers the toy descriptor, ``hydra.searchpath`` finds its config group option; the
    MLP head starts from the exact linear fit (autograd pair Jacobian) and trains for a few epochs."""
    run_dir = tmp_path / "run"
    env = {"PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])}
    proc = run_cli(["plugins=[gaussians]", f"hydra.searchpath=[file://{EXAMPLES}]", "descriptor=gaussians",
                    "model=snap_nn", "model.hidden=[8]", "trainer.max_epochs=3", "data.max_configs=40",
                    "data.batch_size=4", "trainer.enable_progress_bar=false", "plots=false", "export.lammps=false",
                    f"hydra.run.dir={run_dir}"], cache=tmp_path / "cache", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert metrics(run_dir)["test"]["all"]["energy_mae"] < 0.05
    sys.path.insert(0, str(EXAMPLES))
    try:
        import gaussians  # noqa: F401  (registers the descriptor, as the plugins list did in the run)

        potential = load(run_dir / "model.pt")
    finally:
        sys.path.remove(str(EXAMPLES))
    assert potential.descriptor.type_name == "gaussians" and potential.descriptor.num_descriptors == 6
    assert potential.head.type_name == "mlp" and potential.settings()["head"]["hidden"] == [8]
    assert torch.isfinite(next(iter(potential.head.parameters()))).all()
