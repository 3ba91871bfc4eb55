"""The export step of a training run: LAMMPS files, a ready MD input, LAMMPS-vs-torch check, short MD,
and a check that the deployed route gives on several MPI ranks what it gives on one."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from ..data.configuration import Configuration
from ..lammps import lammps_has_package, lammps_status, plugin_library
from ..models.potential import Potential
from ..mpi import lammps_mpi_library, mpi_status
from .lammps_export import export_lammps, route_available
from .md_input import run_md, write_md_input
from .md_structures import md_structure, write_lammps_data
from .rank_check import RankCase, rank_check
from .verify import lammps_torch_differences


def deploy_route(routes: Mapping[str, Any]) -> str:
    """The fastest route written: native snap, else the plugin (when built here), else ``pair_style pace`` (when
    LAMMPS has ML-PACE), else the parts of a concatenated model overlaid (when LAMMPS has what they need), else
    LAMMPS' own ML-IAP model (e.g. ``mliap model nn``, ``descriptor so3``), else unified."""
    if "snap" in routes:
        return "snap"
    if "plugin" in routes and plugin_library() is not None:
        return "plugin"
    if "pace" in routes and lammps_has_package("ML-PACE"):
        return "pace"
    if "overlay" in routes and route_available(routes["overlay"]):
        return "overlay"
    if "mliap" in routes:
        return "mliap"
    return "unified"


def export_run(potential: Potential, run_dir: str | Path, check_configs: Sequence[Configuration],
               md_steps: int = 500, md_atoms: int = 256, temperature: float = 300.0, mpi_ranks: int = 2,
               ) -> dict[str, Any]:
    """Write ``<run_dir>/lammps/`` (all routes + ``in.md.lammps``) and, when LAMMPS is available,
    compare LAMMPS with torch on ``check_configs``, run ``md_steps`` NVE steps and compare the
    deployed route on ``mpi_ranks`` MPI ranks with 1 rank (:func:`mpi_rank_check`; 0 skips it).

    Returns a JSON-ready report: files, ``lammps_vs_torch`` (max differences per route), ``md``
    (energy drift per atom, cost per atom-step) and ``mpi`` (relative differences from 1 rank), or
    ``skipped`` with the reason.
    """
    folder = Path(run_dir) / "lammps"
    export = export_lammps(potential, folder)
    deploy = deploy_route(export.routes)
    structure = md_structure(potential.elements, md_atoms)
    md_input = write_md_input(folder, export.routes[deploy].include_file, structure, potential.elements,
                              temperature=temperature, steps=md_steps, thermo_every=max(md_steps // 20, 1))
    report: dict[str, Any] = {"folder": str(folder), "md_input": md_input.name, "deploy_route": deploy,
                              "routes": {name: [str(f.name) for f in r.files] for name, r in export.routes.items()}}
    ok, reason = lammps_status()
    if not ok:
        report["skipped"] = reason
        return report
    report["lammps_vs_torch"] = lammps_torch_differences(potential, export, list(check_configs))
    if md_steps > 0:
        md = run_md(folder, md_input.name)
        report["md"] = {"route": deploy, "atoms": md.natoms, "steps": md.steps, "timestep_fs": 1.0,
                        "max_energy_drift_per_atom": md.max_drift_per_atom,
                        "final_energy_drift_per_atom": md.final_drift_per_atom,
                        "us_per_atom_step": md.seconds_per_atom_step * 1e6}
    if mpi_ranks > 1:
        report["mpi"] = mpi_rank_check(folder, export.routes[deploy].include_file, structure, potential.elements,
                                       mpi_ranks, deploy)
    return report


def mpi_rank_check(folder: Path, include_file: Path, structure: Atoms, elements: list[str], ranks: int,
                   route: str, md_steps: int = 10) -> dict[str, Any]:
    """Run ``structure`` with the route's pair commands on 1 and ``ranks`` MPI ranks
    (``in.ranks.lammps``; step 0 and ``md_steps`` NVE steps) and report the relative differences:
    ``energy``, ``force`` (max|ΔF|/max|F| by atom id), ``pressure``, ``energy_md``, ``force_md``;
    or ``skipped`` with the reason when LAMMPS is a serial build or mpirun is missing."""
    ok, reason = mpi_status()
    if not ok:
        return {"route": route, "ranks": ranks, "skipped": reason}
    write_lammps_data(folder / "ranks.data", structure, elements)
    case = RankCase("md", "ranks.data")
    differences = rank_check(folder, include_file, [case], ranks=(1, ranks), md_steps=md_steps)["md"][ranks]
    return {"route": route, "ranks": ranks, "atoms": len(structure), "md_steps": md_steps,
            "library": lammps_mpi_library(), **differences}


def format_export_report(report: dict[str, Any]) -> str:
    """Human-readable summary of :func:`export_run`'s report."""
    lines = [f"LAMMPS files in {report['folder']} (MD input: {report['md_input']}, route {report['deploy_route']})"]
    if "skipped" in report:
        return "\n".join(lines + [f"LAMMPS check skipped: {report['skipped']}"])
    lines.append("| route | configs | max ΔE/atom (eV) | max ΔF (eV/Å) | max Δσ (eV/Å³) |")
    lines.append("|---|---|---|---|---|")
    for name, d in report["lammps_vs_torch"].items():
        if "skipped" in d:
            lines.append(f"| {name} | not checked: {d['skipped']} | | | |")
            continue
        lines.append(f"| {name} | {d['configurations']} | {d['energy_per_atom']:.1e} | {d['force']:.1e} | "
                     f"{d['stress']:.1e} |")
    if "md" in report:
        md = report["md"]
        lines.append(f"NVE MD in LAMMPS ({md['route']}): {md['atoms']} atoms, {md['steps']} steps of 1 fs, "
                     f"max total-energy drift {md['max_energy_drift_per_atom']:.1e} eV/atom, "
                     f"{md['us_per_atom_step']:.1f} µs/atom-step")
    if "mpi" in report:
        mpi = report["mpi"]
        if "skipped" in mpi:
            lines.append(f"MPI check skipped: {mpi['skipped']}")
        else:
            lines.append(f"{mpi['ranks']} MPI ranks vs 1 ({mpi['route']}, {mpi['atoms']} atoms): relative "
                         f"ΔE {mpi['energy']:.1e}, max ΔF {mpi['force']:.1e}, Δp {mpi['pressure']:.1e}; after "
                         f"{mpi['md_steps']} MD steps ΔE {mpi['energy_md']:.1e}, max ΔF {mpi['force_md']:.1e}")
    return "\n".join(lines)
