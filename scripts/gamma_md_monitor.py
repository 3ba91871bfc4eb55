"""The extrapolation grade γ as an MD monitor in LAMMPS (docs/uncertainty.md quotes the output).

    python train.py plots=false export.lammps=false hydra.run.dir=outputs/gamma_default
    python scripts/gamma_md_monitor.py outputs/gamma_default [--threshold 3] [--hot 4000] [--timing]

Writes the plugin and snap routes of the run's model (which must have an active set) into
``<run>/gamma_monitor/``, copies ``lammps_plugin/inputs/in.gamma_monitor`` there and runs it with ``lmp``: NVT at
300 K, and with the thermostat ramped from 300 K to ``--hot`` over the 500 steps, with γ from the plugin's
``fix pair``; then the heated run again with ``pair_style snap`` and the variables of ``model.gamma.lammps``
(linear and quadratic models). Prints, per run, a table of step,
temperature and max γ (thermo output every 10 steps; the table shows every 50th step and every step of the
last 100), the largest γ of the run and the line of ``fix halt`` when it stopped the run.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mliap_torch  # noqa: E402
from mliap_torch.cli.export import find_model  # noqa: E402
from mliap_torch.export.lammps_export import export_lammps  # noqa: E402
from mliap_torch.lammps import run_lmp, thermo_table  # noqa: E402

INPUT = ROOT / "lammps_plugin" / "inputs" / "in.gamma_monitor"


def run_monitor(folder: Path, tend: float, threshold: float, route: str = "plugin"
                ) -> tuple[list[dict[str, float]], str | None]:
    """Thermo rows (step, temp, pe, press, v_gmax) of one run of in.gamma_monitor in ``folder``, and the
    ``fix halt`` message when it stopped the run (None: it ran to the end)."""
    proc = run_lmp(INPUT.name, cwd=folder, args=["-var", "tend", f"{tend:g}", "-var", "threshold", f"{threshold:g}",
                                                 "-var", "route", route], timeout=600)
    lines = proc.stdout.splitlines()
    halt = next((line.split(" (src")[0] for line in lines if line.startswith("Fix halt")), None)
    # the halt message comes before the last thermo row, inside the thermo block
    return thermo_table("\n".join(line for line in lines if not line.startswith("Fix halt"))), halt


TIMING = """units metal
atom_style atomic
lattice fcc 3.61
region box block 0 8 0 8 0 8
create_box 2 box
create_atoms 1 box
mass 1 63.546
mass 2 58.693
include model.{route}.pair.lammps
{monitor}
velocity all create 300 1
fix md all nve
thermo 100
run 10
run 200
"""

HALT = "variable gmax equal c_gmax\nfix stop all halt {every} v_gmax > 1e30"
MONITORS = {
    "plugin": {"plugin, no γ": "",
               "plugin, fix pair every 10": "fix g all pair 10 mliap/torch gamma 1\ncompute gmax all reduce max f_g\n"
                                            + HALT.format(every=10),
               "plugin, fix pair every step": "fix g all pair 1 mliap/torch gamma 1\ncompute gmax all reduce max f_g\n"
                                              + HALT.format(every=1)},
    "snap": {"pair_style snap, no γ": "",
             "pair_style snap, model.gamma.lammps every 10": "variable gamma_every index 10\ninclude model.gamma.lammps\n"
                                                            "compute gmax all reduce max v_gamma\n" + HALT.format(every=10)},
}
"""Per route: the monitors timed (label → LAMMPS lines); each reads max γ into a fix halt that never fires."""


def time_monitor(folder: Path, routes: tuple[str, ...], repeats: int = 3) -> dict[str, float]:
    """CPU seconds per MD step of 2048 fcc Cu atoms (NVE, 200 steps after 10 warm-up steps, thermo every 100)
    with the MONITORS of ``routes``: LAMMPS' loop time × its CPU use, the best of ``repeats`` runs (CPU time,
    not wall time, so that other processes on the machine count less)."""
    out = {}
    for route in routes:
        for label, monitor in MONITORS[route].items():
            (folder / "in.gamma_timing").write_text(TIMING.format(route=route, monitor=monitor))
            best = float("inf")
            for _ in range(repeats):
                lines = run_lmp("in.gamma_timing", cwd=folder, timeout=600).stdout.splitlines()
                loop = [line for line in lines if line.startswith("Loop time")][-1]
                cpu = [line for line in lines if "% CPU use" in line][-1]
                best = min(best, float(loop.split()[3]) * float(cpu.split("%")[0]) / 100 / 200)
            out[label] = best
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder or model.pt with an active set")
    parser.add_argument("--threshold", type=float, default=3.0, help="stop when max γ exceeds this")
    parser.add_argument("--hot", type=float, default=4000.0, help="thermostat target at the end of the heated run, K")
    parser.add_argument("--timing", action="store_true", help="also time 2048 atoms with and without γ")
    args = parser.parse_args(argv)
    model = find_model(args.run)
    potential = mliap_torch.load(model)
    if potential.active_set is None:
        sys.exit(f"{model} has no active set (train with active_set.enabled=true)")
    folder = model.parent / "gamma_monitor"
    folder.mkdir(exist_ok=True)
    export = export_lammps(potential, folder, routes=("plugin", "snap"))
    shutil.copy(INPUT, folder / INPUT.name)
    runs = [("plugin", "NVT 300 K", 300.0), ("plugin", f"NVT 300 K → {args.hot:g} K", args.hot)]
    if export.gamma_include is not None:
        runs.append(("snap", f"NVT 300 K → {args.hot:g} K", args.hot))
    for route, label, tend in runs:
        rows, halt = run_monitor(folder, tend, args.threshold, route)
        label += ", γ from fix pair (plugin)" if route == "plugin" else ", pair_style snap + model.gamma.lammps"
        print(f"\n{label}, fix halt on max γ > {args.threshold:g}:\n")
        last = rows[-1]["Step"]
        print("| step | T (K) | max γ |\n|---|---|---|")
        for row in rows:
            if row["Step"] % 50 == 0 or row["Step"] > last - 100:
                print(f"| {row['Step']:.0f} | {row['Temp']:.0f} | {row['v_gmax']:.3f} |")
        print(f"\nmax γ over the run (every 10 steps): {max(row['v_gmax'] for row in rows):.3f}")
        print(halt or f"ran to step {last:.0f}")
    if args.timing:
        routes = ("plugin", "snap") if export.gamma_include is not None else ("plugin",)
        times = time_monitor(folder, routes)
        print("\n| 2048 atoms, NVE | CPU ms per step | relative to the route without γ |\n|---|---|---|")
        for route in routes:
            base = times[next(iter(MONITORS[route]))]
            for label in MONITORS[route]:
                print(f"| {label} | {1000 * times[label]:.2f} | {times[label] / base:.3f} |")


if __name__ == "__main__":
    main()
