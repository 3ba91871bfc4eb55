"""The ``pace`` LAMMPS route: ``pair_style pace`` (ML-PACE, built by scripts/build_lammps.sh from the python-ace
sdist's evaluator) with the ``.yace`` that ``write_pace`` writes gives the torch potential's energies, per-atom
energies, forces and stress (1e-8 relative) on random periodic triclinic cells, and the same on 1, 2 and 4 MPI
ranks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pyace")
import mliap_torch  # noqa: E402
from lammps_models import random_structures  # noqa: E402
from mliap_torch.data.batch import make_batch  # noqa: E402
from mliap_torch.export.lammps_export import export_lammps, unsupported_routes  # noqa: E402
from mliap_torch.export.run_export import deploy_route, export_run  # noqa: E402
from mliap_torch.lammps import lammps_has_package, plugin_library  # noqa: E402
from mliap_torch.lammps_binary import BUILD_HINT  # noqa: E402
from mliap_torch.lammps_eval import evaluate_in_lammps  # noqa: E402
from mliap_torch.models.embedding import EmbeddingHead  # noqa: E402
from mliap_torch.models.heads import MLPHead  # noqa: E402
from mliap_torch.models.pace_core import PaceCoreRepulsion  # noqa: E402
from mliap_torch.models.potential import Potential  # noqa: E402
from mliap_torch.models.zbl import ZBL  # noqa: E402
from mpi_cases import assert_rank_equal, check_route  # noqa: E402
from test_export_lammps import assert_matches  # noqa: E402
from test_pace_files import random_basis, random_spec, write_files  # noqa: E402
from test_pace_write import generated_linear_ace  # noqa: E402

pytestmark = pytest.mark.lammps


def require_ml_pace() -> None:
    """Fail (not skip): scripts/build_lammps.sh builds ML-PACE, so a LAMMPS without it is a stale build."""
    assert lammps_has_package("ML-PACE"), f"LAMMPS lacks the ML-PACE package (pair_style pace); {BUILD_HINT}"


def two_density_potential(tmp_path) -> Potential:
    """Al-Cu with two densities per element (both embedding families), SBessel/ChebExpCos bonds, a density
    inner cutoff and core repulsion; the coefficients changed in torch after reading the pacemaker file."""
    spec = random_spec(1)
    for k, embedding in enumerate(spec["embeddings"].values()):
        embedding.update(npot=["FinnisSinclair", "FinnisSinclairShiftedScaled"][k], ndensity=2,
                         fs_parameters=[1.0, 1.0, -0.8, [0.5, 1.6][k]])
    potential = mliap_torch.read_pace(write_files(random_basis(spec, 1), tmp_path)[0])
    assert isinstance(potential.head, EmbeddingHead) and potential.head.ndensity == 2
    assert isinstance(potential.reference, PaceCoreRepulsion)
    with torch.no_grad():
        potential.head.coefficients.mul_(torch.linspace(0.5, 1.5, potential.head.coefficients.shape[-1]))
    return potential


def test_pair_style_pace_equals_torch(tmp_path) -> None:
    require_ml_pace()
    potential = two_density_potential(tmp_path)
    configs = random_structures(potential.elements, 2, seed=11)
    assert all(abs(np.linalg.det(c.cell)) > 0 and c.pbc.all() for c in configs)
    folder = tmp_path / "lammps"
    route = export_lammps(potential, folder, routes=("pace",)).routes["pace"]
    assert route.pair_commands == ["pair_style pace", "pair_coeff * * model.yace Al Cu"]
    assert (folder / "model.pace.pair.lammps").read_text().splitlines() == route.pair_commands
    results = evaluate_in_lammps(configs, potential.elements, route.pair_commands, directory=folder)
    assert_matches(results, potential, configs, rtol=1e-8)
    rho_core = [potential.reference(*_pairs(potential, c))[:, 0].max() for c in configs]  # [ρ_core, f_cut]
    assert max(float(r) for r in rho_core) > 1e-3  # the core repulsion takes part


def _pairs(potential: Potential, config) -> tuple:
    """The reference's arguments (pair list and species) for one configuration."""
    batch = make_batch([config], potential.elements, potential.cutoff)
    return batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms


def test_pace_route_overlays_zbl_and_refuses_what_pace_cannot_express(tmp_path) -> None:
    """A linear ACE of mliap_torch's generator with per-element energies (E0 in the .yace) and a ZBL reference
    (``hybrid/overlay zbl ... pace``); an MLP head is left to the other routes."""
    require_ml_pace()
    linear = generated_linear_ace(False)
    potential = Potential(linear.descriptor, linear.head, ZBL(["Al", "Ni"], [13.0, 28.0], 1.5, 2.5))
    configs = random_structures(potential.elements, 2, seed=12)
    route = export_lammps(potential, tmp_path, routes=("pace",)).routes["pace"]
    assert route.pair_commands[0] == "pair_style hybrid/overlay zbl 1.5 2.5 pace"
    results = evaluate_in_lammps(configs, potential.elements, route.pair_commands, directory=tmp_path)
    assert_matches(results, potential, configs, rtol=1e-8)
    mlp = Potential(linear.descriptor, MLPHead(2, linear.descriptor.num_descriptors, hidden=(4,)))
    assert unsupported_routes(mlp, ("pace", "unified")) == ["pace"]
    assert "pace" not in export_lammps(mlp, tmp_path / "mlp", routes=("pace",)).routes


@pytest.mark.mpi
def test_pair_style_pace_on_1_2_4_ranks(tmp_path) -> None:
    """The pace route under domain decomposition: a triclinic box and a slab in vacuum (ranks without atoms) on 2
    and 4 MPI ranks equal 1 rank (1e-10 at step 0, 1e-8 after 10 NVE steps)."""
    require_ml_pace()
    potential = two_density_potential(tmp_path)
    assert_rank_equal(check_route(tmp_path / "ranks", potential, "pace", ("triclinic", "slab")), "pace-embedding-core")


def test_run_export_step_writes_checks_and_deploys_pace(tmp_path) -> None:
    """The LAMMPS step of a training run (``export_run``, as after ``python train.py model=ace_pace``) writes the
    pace route, checks it against torch and deploys it for the MD and the 2-rank check unless the plugin (which
    compiles PACE's embedding too, and comes first) is built."""
    require_ml_pace()
    potential = two_density_potential(tmp_path)
    report = export_run(potential, tmp_path / "run", random_structures(potential.elements, 1, seed=4), md_steps=20,
                        md_atoms=108)
    deploy = "plugin" if "plugin" in report["routes"] and plugin_library() is not None else "pace"
    assert report["deploy_route"] == deploy and report["routes"]["pace"] == ["model.yace"]
    check = report["lammps_vs_torch"]["pace"]
    assert check["configurations"] == 1 and check["force_relative"] < 1e-8 and check["energy_per_atom"] < 1e-8
    assert report["md"]["route"] == deploy and report["md"]["steps"] == 20
    mpi = report["mpi"]
    assert mpi["route"] == deploy and max(mpi["energy"], mpi["force"], mpi["pressure"]) < 1e-10
    routes = {name: None for name in ("pace", "unified")}
    assert deploy_route(routes) == "pace"  # without the plugin, pair_style pace is deployed


def test_train_ace_pace_writes_and_checks_the_pace_route(tmp_path) -> None:
    """``python train.py model=ace_pace`` (composed as the command line does, one epoch on 8 built-in
    configurations): its LAMMPS step writes ``lammps/model.pace.pair.lammps``, checks it against torch and runs
    the MD and the 2-rank check with the deployed route."""
    require_ml_pace()
    from hydra import compose, initialize_config_dir

    from mliap_torch.cli.schema import validate
    from mliap_torch.cli.train import CONFIG_DIR
    from mliap_torch.training.run import run

    overrides = ["model=ace_pace", "descriptor.nradmax_by_orders=[3,1]", "descriptor.lmax_by_orders=[0,1]",
                 "data.max_configs=8", "data.batch_size=4", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                 "plots=false", "export.md_steps=20", "export.md_atoms=108"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = validate(compose("train", overrides=overrides))
    report = run(cfg, tmp_path).metrics["lammps"]
    assert (tmp_path / "lammps" / "model.pace.pair.lammps").read_text().startswith("pair_style pace\n")
    check = report["lammps_vs_torch"]["pace"]
    assert check["configurations"] >= 1 and check["force_relative"] < 1e-8 and check["energy_per_atom"] < 1e-10
    assert report["md"]["route"] == report["mpi"]["route"] == report["deploy_route"] in ("plugin", "pace")
