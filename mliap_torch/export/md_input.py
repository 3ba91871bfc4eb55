"""A ready-to-run LAMMPS MD input for an exported potential, and its energy-conservation report."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from ..lammps import run_lmp, thermo_table
from .md_structures import write_lammps_data


def write_md_input(folder: str | Path, include_file: str | Path, structure: Atoms, elements: list[str],
                   temperature: float = 300.0, steps: int = 1000, timestep_fs: float = 1.0,
                   ensemble: str = "nve", thermo_every: int = 100, seed: int = 4928459,
                   name: str = "in.md.lammps") -> Path:
    """Write ``structure.data`` and an MD input that includes the model's pair commands.

    Args:
        folder: where the model files are (the input is run from there).
        include_file: the ``*.pair.lammps`` file written by :func:`export_lammps`.
        structure: the starting structure (its elements must be among ``elements``).
        temperature: initial (and, for ``nvt``, target) temperature, K.
        steps: MD steps.  timestep_fs: time step, fs.  ensemble: ``nve`` or ``nvt``.
    Returns:
        Path of the input file.
    """
    if ensemble not in ("nve", "nvt"):
        raise ValueError(f"ensemble must be 'nve' or 'nvt', not {ensemble!r}")
    folder = Path(folder)
    write_lammps_data(folder / "structure.data", structure, elements)
    fix = ("fix integrate all nve" if ensemble == "nve"
           else f"fix integrate all nvt temp {temperature} {temperature} {100 * timestep_fs / 1000.0}")
    text = f"""# MD with the exported mliap_torch potential ({ensemble}, {steps} steps of {timestep_fs} fs).
# Run from this folder:  lmp -in {name}
# On N MPI ranks:        mpirun -np N lmp -in {name}
#   (the mpirun of the MPI that LAMMPS was built with; as root add --allow-run-as-root, with more
#   ranks than cores --oversubscribe; ML-IAP unified: the environment's bin/ first on PATH and
#   OMP_NUM_THREADS=1, since every rank runs its own torch)
units           metal
atom_style      atomic
boundary        p p p
read_data       structure.data
include         {Path(include_file).name}
neighbor        1.0 bin
neigh_modify    every 1 delay 0 check yes
velocity        all create {2 * temperature} {seed} mom yes rot yes dist gaussian
{fix}
timestep        {timestep_fs / 1000.0}
thermo_style    custom step time temp pe ke etotal press
thermo_modify   format float %.10g
thermo          {thermo_every}
run             {steps}
"""
    path = folder / name
    path.write_text(text)
    return path


@dataclass
class MDReport:
    """Energy conservation of an NVE run: drift of the total energy per atom, eV/atom."""

    steps: int
    natoms: int
    max_drift_per_atom: float
    final_drift_per_atom: float
    loop_seconds: float

    @property
    def seconds_per_atom_step(self) -> float:
        return self.loop_seconds / max(self.steps * self.natoms, 1)


def run_md(folder: str | Path, input_name: str = "in.md.lammps", timeout: float | None = None,
           ranks: int | None = None) -> MDReport:
    """Run the MD input with ``lmp`` (on ``ranks`` MPI ranks when given) and report total-energy drift and cost."""
    folder = Path(folder)
    proc = run_lmp(input_name, cwd=folder, timeout=timeout, ranks=ranks)
    rows = thermo_table(proc.stdout)
    if not rows:
        raise RuntimeError(f"no thermo output from {folder / input_name}")
    natoms = next(int(line.split()[-2]) for line in proc.stdout.splitlines() if line.startswith("Loop time"))
    loop = next(float(line.split()[3]) for line in proc.stdout.splitlines() if line.startswith("Loop time"))
    etot = np.array([r["TotEng"] for r in rows])
    drift = (etot - etot[0]) / natoms
    return MDReport(steps=int(rows[-1]["Step"]), natoms=natoms, max_drift_per_atom=float(np.abs(drift).max()),
                    final_drift_per_atom=float(drift[-1]), loop_seconds=loop)
