"""Time the exact fits end to end (read data → descriptors and rows → solve → metrics) against FitSNAP.

Usage:
    .venv/bin/python scripts/bench_fit.py [--which linear quadratic] [--chunk-atoms 2000] [--threads N] [--device cuda]
    .venv/bin/python scripts/bench_fit.py --which wbe [--processes 1 2] [--every 1]

``--which wbe``: FitSNAP's W–Be fit (``WBe_PRB2019``, 531 642 atoms, 2Jmax 8) end to end on each of
``--processes`` process counts (``fit.processes``: configurations sharded, TSQR; one torch thread per
process), with the peak resident memory of each process, and in the same run LAMMPS ``compute snap``
on the same configurations with the same settings split over as many processes as FitSNAP splits them
over MPI ranks (contiguous blocks of configurations per rank, one LAMMPS per rank): FitSNAP's descriptor
stage, most of its time. The table gives the ratio of the whole fit to that stage. ``--every k`` takes
every k-th configuration (a quick run).

Reads ``../shared/data/fitsnap/Ta_Linear_JCP2014`` and ``Ta_Quadratic_JCP2018`` (FitSNAP inputs and
reference outputs), prints the stage timings, their ratio to FitSNAP's on this machine (linear:
≈10 s end to end, descriptors 3.5–6 s, fit 0.05 s; quadratic: descriptors 48 s, fit 8 s), and the
agreement of coefficients and metrics with FitSNAP's reference files. ``--device cuda`` moves the
potential to the GPU before the fit (descriptors, design rows and the streaming QR then run there; the
stage times are taken without an explicit device synchronisation, so a stage may absorb some of the
previous one's queued work) and prints the peak GPU memory. ``--check`` makes the exit status 1 when the
coefficients differ from FitSNAP's by more than 1e-4 of the largest (the quadratic system's condition
number is 5e11) or a metric by more than 1e-3 relative.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mliap_torch.fitsnap.setup import fitsnap_setup  # noqa: E402
from mliap_torch.fitting.metrics import read_fitsnap_metrics  # noqa: E402

DATA = Path(os.environ.get("MLIAP_TORCH_SHARED_DATA", ROOT.parent / "shared" / "data")) / "fitsnap"
CASES = {
    "linear": ("Ta_Linear_JCP2014", {"total": 10.0, "descriptors": (3.5, 6.0), "fit": 0.05}),
    "quadratic": ("Ta_Quadratic_JCP2018", {"total": 56.0, "descriptors": (48.0, 48.0), "fit": 8.0}),
}


def read_snapcoeff(path: Path) -> np.ndarray:
    """Coefficients of a one-element ``.snapcoeff`` file (comments and the header lines skipped)."""
    lines = [ln.split("#")[0].split() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    ncoeff = int(lines[0][1])
    return np.array([float(ln[0]) for ln in lines[2:2 + ncoeff]])


CHECK = {"coefficients": 1e-4, "metrics": 1e-3}
"""``--check`` tolerances: max |Δβ|/max|β| and the largest relative RMSE difference against FitSNAP's reference."""


def run(which: str, chunk_atoms: int, device: str = "cpu", failures: list[str] | None = None) -> list[str]:
    folder, fitsnap = CASES[which]
    case = DATA / folder
    on_cuda = torch.device(device).type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    setup = fitsnap_setup(case / "Ta-example.in")
    setup.potential.to(device)
    t_read = time.perf_counter() - t0
    result = setup.fit(chunk_atoms=chunk_atoms)
    if on_cuda:
        torch.cuda.synchronize(device)
    total = time.perf_counter() - t0
    ref = read_snapcoeff(case / "reference" / "Ta_pot.snapcoeff")
    ours = result.coefficients[0].cpu().numpy()
    coeff_dev = float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))
    ref_metrics = read_fitsnap_metrics(case / "reference" / "Ta_metrics.md")
    worst = 0.0
    for key, values in ref_metrics.items():
        group, weighting, split, quantity = key
        if quantity == "Force" and values["rmse"] < 1e-10:
            continue  # forces of perfect lattices: both sides are round-off
        got = result.metrics.value(group, weighting, split, quantity, "rmse")
        worst = max(worst, abs(got - values["rmse"]) / abs(values["rmse"]))
    lo, hi = fitsnap["descriptors"]
    t = result.timings
    lines = [
        f"### Ta {which} ({folder}, {len(setup.configurations)} configurations, "
        f"{sum(c.num_atoms for c in setup.configurations)} atoms, {result.solution.num_rows} rows × "
        f"{result.rows.A.shape[1]} columns)",
        "",
        "| stage | mliap_torch (s) | FitSNAP (s) | ratio |",
        "|:--|--:|--:|--:|",
        f"| read data | {t_read:.2f} | — | — |",
        f"| descriptors + design rows | {t['design']:.2f} | {lo:g}–{hi:g} | {t['design'] / hi:.2f}–{t['design'] / lo:.2f} |",
        f"| solve ({setup.solver}, streaming QR + SVD of R) | {t['solve']:.3f} | {fitsnap['fit']:g} | {t['solve'] / fitsnap['fit']:.2f} |",
        f"| metrics | {t['metrics']:.3f} | — | — |",
        f"| end to end | {total:.2f} | {fitsnap['total']:g} | {total / fitsnap['total']:.2f} |",
        "",
        f"rank {result.solution.rank}, condition number {result.solution.cond:.4g}; max |Δβ|/max|β| vs "
        f"reference snapcoeff {coeff_dev:.2e}; largest relative RMSE difference vs reference metrics {worst:.2e}.",
        "",
    ]
    if failures is not None and (coeff_dev > CHECK["coefficients"] or worst > CHECK["metrics"]):
        failures.append(f"Ta {which}: coefficients {coeff_dev:.2e} (tolerance {CHECK['coefficients']:g}), "
                        f"metrics {worst:.2e} (tolerance {CHECK['metrics']:g})")
    if on_cuda:
        lines[-1:-1] = [f"device {device} ({torch.cuda.get_device_name(device)}), peak GPU memory "
                        f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB.", ""]
    return lines


def compute_snap_block(args: tuple) -> float:
    """Seconds of ``compute snap`` over a block of configurations in one LAMMPS (one FitSNAP rank's work)."""
    from bench_jacobian import load_structure
    from mliap_torch.lammps import start

    command, elements, cutoff, configs = args
    torch.set_num_threads(1)
    lmp = start()
    t0 = time.perf_counter()
    for config in configs:
        load_structure(lmp, elements, config.cell, config.positions, list(config.symbols), cutoff)
        lmp.commands_list([command, "thermo_style custom step pe c_desc[1][1]", "run 0"])
    seconds = time.perf_counter() - t0
    lmp.close()
    return seconds


def compute_snap_stage(descriptor, configurations: list, ranks: int) -> float:
    """Wall seconds of ``compute snap`` over ``configurations`` split into ``ranks`` contiguous blocks run at once."""
    import multiprocessing

    from bench_jacobian import compute_snap_command

    command = compute_snap_command(descriptor)
    bounds = np.linspace(0, len(configurations), ranks + 1).round().astype(int)
    blocks = [(command, list(descriptor.elements), float(descriptor.cutoff), configurations[a:b])
              for a, b in zip(bounds[:-1], bounds[1:])]
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(ranks) as pool:
        pool.map(compute_snap_block, blocks)
    return time.perf_counter() - t0


def run_wbe(processes: list[int], every: int, chunk_atoms: int) -> list[str]:
    """The WBe fit on each process count and LAMMPS ``compute snap`` on as many ranks (module doc)."""
    import resource

    from fit_wbe import wbe_setup

    setup = wbe_setup(Path("/tmp/mliap_torch_wbe"), every)
    natoms = sum(c.num_atoms for c in setup.configurations)
    ref = read_fitsnap_metrics(DATA / "WBe_PRB2019" / "reference" / "WBe_metrics.md")
    lines = [f"### WBe ({len(setup.configurations)} configurations, {natoms} atoms, 2Jmax 8, every {every})", "",
             "| processes | fit end to end (s) | design (s) | peak RSS per process (MB) | compute snap, as many ranks (s) "
             "| ratio | Energy RMSE (FitSNAP) | Force RMSE (FitSNAP) |",
             "|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for n in processes:
        t0 = time.perf_counter()
        result = setup.fit(chunk_atoms=chunk_atoms, keep_rows="disk", processes=n, threads=1)
        total = time.perf_counter() - t0
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        lammps = compute_snap_stage(setup.potential.descriptor, setup.configurations, n)
        rmse = {q: (result.metrics.value("*ALL", "Unweighted", "Training", q, "rmse"),
                    ref[("*ALL", "Unweighted", "Training", q)]["rmse"]) for q in ("Energy", "Force")}
        lines.append(f"| {n} | {total:.1f} | {result.timings['design']:.1f} | {peak:.0f} | {lammps:.1f} | "
                     f"{total / lammps:.2f} | {rmse['Energy'][0]:.4g} ({rmse['Energy'][1]:.4g}) | "
                     f"{rmse['Force'][0]:.4g} ({rmse['Force'][1]:.4g}) |")
        print(lines[-1], flush=True)
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--which", nargs="+", choices=[*sorted(CASES), "wbe"], default=["linear", "quadratic"])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2], help="process counts of the WBe fit")
    parser.add_argument("--every", type=int, default=1, help="WBe: every k-th configuration only")
    parser.add_argument("--chunk-atoms", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="torch device of the fit (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when coefficients or metrics differ from FitSNAP's reference")
    args = parser.parse_args()
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available in this torch build / machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, device {args.device}\n")
    failures: list[str] = []
    for which in args.which:
        if which == "wbe":
            print("\n".join(run_wbe(args.processes, args.every, args.chunk_atoms)), flush=True)
            continue
        print("\n".join(run(which, args.chunk_atoms, args.device, failures)), flush=True)
    if args.check:
        print("check against FitSNAP's reference: " + ("; ".join(failures) if failures else "ok"))
        if failures:
            sys.exit(1)


if __name__ == "__main__":
    main()
