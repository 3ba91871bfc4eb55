"""Systems and tolerances of the MPI rank checks (shared by the rank-equality tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.export.md_structures import md_structure, sheared, vacuum_slab, write_lammps_data
from mliap_torch.export.rank_check import RankCase, rank_check
from mliap_torch.models.potential import Potential

RANKS = (1, 2, 4)
STEP0_TOLERANCE = 1e-10      # relative, energy / max|ΔF|/max|F| / pressure, step 0
MD_TOLERANCE = 1e-8          # relative, after 10 NVE steps


def write_cases(folder: Path, elements: list[str], names: tuple[str, ...]) -> list[RankCase]:
    """Data files and :class:`RankCase` s for ``names`` among:

    - ``triclinic``: 256-atom sheared bulk cell; ``orthogonal``: the same unsheared;
    - ``newton_off``: the triclinic cell with ``newton off`` (which every ML-IAP / SNAP pair style refuses);
    - ``ghost_heavy``: 32 atoms (16 bcc), triclinic: on 4 ranks each owns ~8 atoms and sees hundreds of ghosts;
    - ``slab``: a slab in vacuum along x with ``processors * 1 1``: on 2 and 4 ranks, ranks own no atoms
      (on 4, one rank sees only ghosts and one sees nothing).
    """
    structures = {"triclinic": lambda: sheared(md_structure(elements, 256)),
                  "orthogonal": lambda: md_structure(elements, 256),
                  "newton_off": lambda: sheared(md_structure(elements, 256)),
                  "ghost_heavy": lambda: sheared(md_structure(elements, 32)),
                  "slab": lambda: vacuum_slab(elements)}
    cases = []
    for name in names:
        write_lammps_data(folder / f"{name}.data", structures[name](), elements)
        cases.append(RankCase(name, f"{name}.data", newton=name != "newton_off",
                              processors="* 1 1" if name == "slab" else "* * *"))
    return cases


def check_route(folder: Path, potential: Potential, route: str, case_names: tuple[str, ...]) -> dict:
    """Export ``potential`` by ``route``, run ``case_names`` on 1, 2 and 4 ranks; the differences from 1 rank."""
    export = export_lammps(potential, folder, routes=(route,))
    cases = write_cases(folder, potential.elements, case_names)
    return rank_check(folder, export.routes[route].include_file, cases, ranks=RANKS, md_steps=10, timeout=600)


def assert_rank_equal(differences: dict, label: str) -> None:
    """Every rank count equals 1 rank: 1e-10 at step 0 (energy, forces, pressure), 1e-8 after 10 steps.
    Prints the largest differences (seen with ``pytest -s``)."""
    worst = {key: max(d[key] for per_rank in differences.values() for d in per_rank.values())
             for key in ("energy", "force", "pressure", "energy_md", "force_md")}
    print(f"rank check {label} {sorted(differences)}: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    assert all(np.isfinite(v) for v in worst.values()), differences
    assert worst["energy"] < STEP0_TOLERANCE, differences
    assert worst["force"] < STEP0_TOLERANCE, differences
    assert worst["pressure"] < STEP0_TOLERANCE, differences
    assert worst["energy_md"] < MD_TOLERANCE, differences
    assert worst["force_md"] < MD_TOLERANCE, differences
