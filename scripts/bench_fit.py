"""Time the exact Ta fits end to end (read data → descriptors and rows → solve → metrics) against FitSNAP.

Usage:
    .venv/bin/python scripts/bench_fit.py [--which linear quadratic] [--chunk-atoms 2000] [--threads N]

Reads ``../shared/data/fitsnap/Ta_Linear_JCP2014`` and ``Ta_Quadratic_JCP2018`` (FitSNAP inputs and
reference outputs), prints the stage timings, their ratio to FitSNAP's on this machine (linear:
≈10 s end to end, descriptors 3.5–6 s, fit 0.05 s; quadratic: descriptors 48 s, fit 8 s), and the
agreement of coefficients and metrics with FitSNAP's reference files.
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


def run(which: str, chunk_atoms: int) -> list[str]:
    folder, fitsnap = CASES[which]
    case = DATA / folder
    t0 = time.perf_counter()
    setup = fitsnap_setup(case / "Ta-example.in")
    t_read = time.perf_counter() - t0
    result = setup.fit(chunk_atoms=chunk_atoms)
    total = time.perf_counter() - t0
    ref = read_snapcoeff(case / "reference" / "Ta_pot.snapcoeff")
    ours = result.coefficients[0].numpy()
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
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--which", nargs="+", choices=sorted(CASES), default=["linear", "quadratic"])
    parser.add_argument("--chunk-atoms", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}\n")
    for which in args.which:
        print("\n".join(run(which, args.chunk_atoms)), flush=True)


if __name__ == "__main__":
    main()
