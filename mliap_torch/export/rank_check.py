"""Check that an exported LAMMPS route gives on N MPI ranks what it gives on one.

Under domain decomposition each rank owns part of the atoms and sees the rest within the cutoff as
ghosts; the pair style must still give the energy, forces and pressure of the serial run. One LAMMPS
input holds several cases (:class:`RankCase`: a data file, ``newton`` and the ``processors`` grid),
each run for 0 steps and then ``md_steps`` NVE steps; it is run once per rank count and the results,
matched by atom id, are compared with the first run.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..lammps import run_lmp

PRESSURE_KEYS = ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")
OUTPUT_DIR = "ranks"
"""Subfolder of the run folder that receives the outputs ``<case>.<tag>.*.txt``."""


@dataclass(frozen=True)
class RankCase:
    """One system of a rank check.

    Attributes:
        name: label, also the prefix of its output files.
        data_file: LAMMPS data file (atom_style atomic, with masses), relative to the run folder.
        newton: LAMMPS ``newton`` pair setting; ``pair_style snap`` and ``mliap`` refuse ``off``.
        processors: the ``processors`` grid, e.g. ``"* 1 1"`` to split along x only (a slab in
            vacuum along x then leaves ranks without atoms).
    """

    name: str
    data_file: str
    newton: bool = True
    processors: str = "* * *"


@dataclass
class RankResult:
    """One case on one rank count: step 0, and after the MD steps.

    Attributes:
        energy: potential energy at step 0, eV.
        pressure: (6,) pressure tensor at step 0 (virial only: atoms start at rest), bar, LAMMPS order
            pxx pyy pzz pxy pxz pyz.
        forces: (natoms, 3) forces at step 0 in atom-id order, eV/Å.
        energy_md: potential energy after the MD steps, eV.  forces_md: (natoms, 3) forces then, eV/Å.
        ids: (natoms,) atom ids, ascending.
    """

    energy: float
    pressure: np.ndarray
    forces: np.ndarray
    energy_md: float
    forces_md: np.ndarray
    ids: np.ndarray


def _case_commands(case: RankCase, include_file: str, md_steps: int, temperature: float, seed: int) -> list[str]:
    out = f"{OUTPUT_DIR}/{case.name}.${{tag}}"
    values = " ".join(f"$({key}:%.17g)" for key in ("pe",) + PRESSURE_KEYS)
    dump = "modify sort id format float %.17g"
    return [
        f"# ---- case {case.name}: {case.data_file}, newton {'on' if case.newton else 'off'}, "
        f"processors {case.processors}",
        "clear",
        "units           metal",
        "atom_style      atomic",
        "boundary        p p p",
        f"newton          {'on' if case.newton else 'off'}",
        f"processors      {case.processors}",
        f"read_data       {case.data_file}",
        f"include         {include_file}",
        "neighbor        1.0 bin",
        "neigh_modify    every 1 delay 0 check yes",
        "thermo_style    custom step pe etotal press",
        "run             0",
        f'print           "{values}" file {out}.step0.txt screen no',
        f"write_dump      all custom {out}.forces0.txt id fx fy fz {dump}",
        f"velocity        all create {2 * temperature} {seed} mom yes rot no dist gaussian loop all",
        "fix             integrate all nve",
        "timestep        0.001",
        f"run             {md_steps}",
        f'print           "$(pe:%.17g)" file {out}.md.txt screen no',
        f"write_dump      all custom {out}.forcesmd.txt id fx fy fz {dump}",
    ]


def write_rank_input(folder: str | Path, include_file: str | Path, cases: Sequence[RankCase], md_steps: int = 10,
                     temperature: float = 300.0, seed: int = 4928459, name: str = "in.ranks.lammps") -> Path:
    """Write the rank-check input (run it with ``-var tag <label>``; outputs ``ranks/<case>.<label>.*.txt``).

    Args:
        folder: the folder of the model files and data files (the input is run there).
        include_file: the route's ``*.pair.lammps`` file.
        md_steps: NVE steps of 1 fs after the step-0 evaluation.
        temperature: velocities are drawn at twice this (K), the same on every rank count (``loop all``).
    """
    lines = [f"# Rank check: each case at step 0 and after {md_steps} NVE steps, outputs {OUTPUT_DIR}/<case>.${{tag}}.*.txt.",
             "# Run from this folder:  mpirun -np N lmp -in " + name + " -var tag npN"]
    for case in cases:
        lines += _case_commands(case, Path(include_file).name, md_steps, temperature, seed)
    (Path(folder) / OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _read_forces(path: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, skiprows=9, ndmin=2)
    return table[:, 0].astype(np.int64), table[:, 1:4]


def read_rank_result(folder: str | Path, case: RankCase, tag: str) -> RankResult:
    """The outputs of ``case`` from the run labelled ``tag``."""
    prefix = Path(folder) / OUTPUT_DIR / f"{case.name}.{tag}"
    step0 = np.loadtxt(f"{prefix}.step0.txt", ndmin=1)
    ids, forces = _read_forces(Path(f"{prefix}.forces0.txt"))
    ids_md, forces_md = _read_forces(Path(f"{prefix}.forcesmd.txt"))
    if not np.array_equal(ids, ids_md):
        raise RuntimeError(f"{prefix}: atom ids differ between step 0 and the end of the MD")
    return RankResult(energy=float(step0[0]), pressure=step0[1:7], forces=forces,
                      energy_md=float(np.loadtxt(f"{prefix}.md.txt", ndmin=1)[0]), forces_md=forces_md, ids=ids)


def run_on_ranks(folder: str | Path, input_name: str, cases: Sequence[RankCase], ranks: int,
                 timeout: float | None = None) -> dict[str, RankResult]:
    """Run the rank-check input on ``ranks`` MPI ranks; results per case name."""
    tag = f"np{ranks}"
    run_lmp(input_name, cwd=folder, args=["-var", "tag", tag], ranks=ranks, timeout=timeout)
    return {case.name: read_rank_result(folder, case, tag) for case in cases}


def _relative(a: np.ndarray | float, b: np.ndarray | float) -> float:
    """max|a − b| / max|b| (0 when both vanish)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.abs(b).max() if b.size else 0.0
    diff = np.abs(a - b).max() if b.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def rank_differences(result: RankResult, reference: RankResult) -> dict[str, float]:
    """Relative differences of ``result`` from ``reference`` (matched by atom id).

    Returns ``energy`` |ΔE|/|E| and ``force`` max|ΔF|/max|F| and ``pressure`` max|ΔP|/max|P| at step 0,
    ``energy_md`` and ``force_md`` after the MD steps.
    """
    if not np.array_equal(result.ids, reference.ids):
        raise ValueError("the runs hold different atom ids")
    return {"energy": _relative(result.energy, reference.energy),
            "force": _relative(result.forces, reference.forces),
            "pressure": _relative(result.pressure, reference.pressure),
            "energy_md": _relative(result.energy_md, reference.energy_md),
            "force_md": _relative(result.forces_md, reference.forces_md)}


def rank_check(folder: str | Path, include_file: str | Path, cases: Sequence[RankCase],
               ranks: Sequence[int] = (1, 2), md_steps: int = 10, timeout: float | None = None,
               ) -> dict[str, dict[int, dict[str, float]]]:
    """Run ``cases`` on each rank count in ``ranks`` and compare every run with the first.

    Returns ``{case: {ranks: rank_differences(...)}}`` for every rank count after the first.
    """
    name = write_rank_input(folder, include_file, cases, md_steps=md_steps).name
    runs = {n: run_on_ranks(folder, name, cases, n, timeout=timeout) for n in ranks}
    first = runs[ranks[0]]
    return {case.name: {n: rank_differences(runs[n][case.name], first[case.name]) for n in ranks[1:]}
            for case in cases}
