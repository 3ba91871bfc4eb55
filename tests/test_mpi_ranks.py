"""Every LAMMPS export route gives on 2 and 4 MPI ranks what it gives on 1 (domain decomposition).

Each check exports a model fitted to the built-in data (:func:`lammps_models.fitted_model`), runs the same input with ``mpirun -np 1``, ``2`` and ``4`` and compares,
by atom id, the step-0 energy, forces and pressure tensor (1e-10 relative) and the energy and forces
after 10 NVE steps (1e-8). The CI share is one triclinic two-element box per route, plus the slab in
vacuum (ranks without atoms) and a ghost-heavy box on one native and one unified route; the full
matrix (1 and 2 elements, every head and descriptor, every case) is marked ``slow``. The plugin route
(``pair_style mliap/torch``) needs the plugin built (``scripts/build_plugin.sh``), as the test command does. ``newton off``
is refused by LAMMPS for all these pair styles (``pair_snap.cpp``, ``pair_mliap.cpp``: "requires
newton pair on"); the test checks that the refusal stops the run on every route.
"""
from __future__ import annotations

import itertools

import pytest

from lammps_models import fitted_model
from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.export.rank_check import write_rank_input
from mliap_torch.lammps import run_lmp
from mpi_cases import assert_rank_equal, check_route, write_cases

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]

CUNI = ["Cu", "Ni"]
ROUTES = {  # id: (route, descriptor, head, zbl) on the triclinic Cu-Ni box
    "snap-quadratic-zbl": ("snap", "bispectrum", "quadratic", True),
    "mliap-linear": ("mliap", "bispectrum", "linear", False),
    "mliap-quadratic-zbl": ("mliap", "bispectrum", "quadratic", True),
    "unified-bispectrum-linear": ("unified", "bispectrum", "linear", False),
    "unified-trainable-quadratic": ("unified", "trainable", "quadratic", False),
    "unified-ace-mlp-zbl": ("unified", "ace", "mlp", True),
    "plugin-mlp-zbl": ("plugin", "bispectrum", "mlp", True),
    "plugin-trainable-quadratic": ("plugin", "trainable", "quadratic", False),
    "plugin-ace-mlp-zbl": ("plugin", "ace", "mlp", True),
}
HARD_CASES = ("slab", "ghost_heavy")


def needs_plugin(route: str, *values):
    """``values`` as a pytest parameter, marked ``plugin`` when ``route`` is the plugin route."""
    return pytest.param(*values, marks=[pytest.mark.plugin] if route == "plugin" else [])


@pytest.mark.parametrize("name", [needs_plugin(ROUTES[name][0], name) for name in ROUTES])
def test_route_on_1_2_4_ranks(tmp_path, name):
    route, descriptor, head, zbl = ROUTES[name]
    potential = fitted_model(CUNI, descriptor, head, zbl, seed=21)
    assert_rank_equal(check_route(tmp_path, potential, route, ("triclinic",)), name)


@pytest.mark.parametrize("route,descriptor,head", [needs_plugin(r, r, d, h) for r, d, h in
                                                  (("snap", "bispectrum", "linear"), ("unified", "bispectrum", "mlp"),
                                                   ("plugin", "bispectrum", "mlp"), ("plugin", "ace", "mlp"))])
def test_empty_ranks_and_ghost_heavy(tmp_path, route, descriptor, head):
    potential = fitted_model(CUNI, descriptor, head, zbl=True, seed=22)
    assert_rank_equal(check_route(tmp_path, potential, route, HARD_CASES), f"{route}-{descriptor}-{head}-zbl")


@pytest.mark.parametrize("route", [needs_plugin(r, r) for r in ("snap", "mliap", "unified", "plugin")])
def test_newton_off_is_refused_on_every_rank(tmp_path, route):
    potential = fitted_model(CUNI, "bispectrum", "linear", zbl=True)
    export = export_lammps(potential, tmp_path, routes=(route,))
    cases = write_cases(tmp_path, CUNI, ("newton_off",))
    name = write_rank_input(tmp_path, export.routes[route].include_file, cases).name
    with pytest.raises(RuntimeError, match="requires newton pair on"):
        run_lmp(name, cwd=tmp_path, args=["-var", "tag", "np2"], ranks=2, timeout=300)


NATIVE = [(route, "bispectrum", head) for route, head in itertools.product(("snap", "mliap"), ("linear", "quadratic"))]
UNIFIED = [("unified", d, h) for d, h in itertools.product(("bispectrum", "ace", "trainable"), ("linear", "quadratic", "mlp"))]
PLUGIN = [("plugin", d, h) for d, h in itertools.product(("bispectrum", "ace", "trainable"), ("linear", "quadratic", "mlp"))]
ALL_CASES = ("triclinic", "orthogonal", "ghost_heavy", "slab")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("elements", [["Cu"], CUNI], ids=["Cu", "CuNi"])
@pytest.mark.parametrize("route,descriptor,head", [needs_plugin(c[0], *c) for c in NATIVE + UNIFIED + PLUGIN],
                         ids=lambda v: str(v))
def test_full_matrix_on_1_2_4_ranks(tmp_path, elements, route, descriptor, head):
    zbl = head != "linear"
    potential = fitted_model(elements, descriptor, head, zbl, seed=23)
    assert_rank_equal(check_route(tmp_path, potential, route, ALL_CASES),
                      f"{'-'.join(elements)} {route}-{descriptor}-{head}{'-zbl' if zbl else ''}")
