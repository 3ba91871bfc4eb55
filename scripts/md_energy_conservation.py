#!/usr/bin/env python
"""NVE energy conservation of exported models in LAMMPS.

For each model (a ``model.pt`` or a run folder), export it, start an MD of about ``--atoms`` atoms at
``--temperature`` K and run ``--steps`` NVE steps of ``--timestep`` fs through every requested route;
report the largest and the final drift of the total energy per atom and the cost per atom-step.

    python scripts/md_energy_conservation.py outputs/snap_quadratic/<run> outputs/snap_nn/<run> \
        --atoms 1000 --steps 10000 --routes snap plugin unified
    python scripts/md_energy_conservation.py <run> --ranks 2      # on 2 MPI ranks (an MPI build of LAMMPS)
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mliap_torch.cli.export import find_model
from mliap_torch.export.lammps_export import ROUTES, export_lammps
from mliap_torch.export.md_input import run_md, write_md_input
from mliap_torch.export.md_structures import md_structure
from mliap_torch.models.io import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--atoms", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--timestep", type=float, default=1.0, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--routes", nargs="+", default=["snap", "unified"], choices=list(ROUTES))
    parser.add_argument("--out", type=Path, default=Path("md_conservation"))
    parser.add_argument("--threads", type=int, default=1, help="threads per rank")
    parser.add_argument("--ranks", type=int, default=None, help="MPI ranks (default: plain lmp)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["MLIAP_TORCH_NUM_THREADS"] = str(args.threads)
    print("| model | route | ranks | atoms | steps × fs | max drift (eV/atom) | final drift (eV/atom) | µs/atom-step |")
    print("|---|---|---|---|---|---|---|---|")
    for k, model in enumerate(args.models):
        path = find_model(model)
        potential = load(path)
        folder = args.out / f"{k}_{path.parent.name}"
        export = export_lammps(potential, folder, routes=tuple(args.routes))
        structure = md_structure(potential.elements, args.atoms)
        for route in export.routes:
            name = f"in.md.{route}"
            write_md_input(folder, export.routes[route].include_file, structure, potential.elements,
                           temperature=args.temperature, steps=args.steps, timestep_fs=args.timestep,
                           thermo_every=max(args.steps // 100, 1), name=name)
            report = run_md(folder, name, ranks=args.ranks)
            print(f"| {path} ({type(potential.head).__name__}) | {route} | {args.ranks or 1} | {report.natoms} | "
                  f"{report.steps} × {args.timestep} | {report.max_drift_per_atom:.2e} | "
                  f"{report.final_drift_per_atom:.2e} | {report.seconds_per_atom_step * 1e6:.1f} |", flush=True)


if __name__ == "__main__":
    main()
