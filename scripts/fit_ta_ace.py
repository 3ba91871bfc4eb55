"""Linear ACE fits of FitSNAP's Ta data (Ta_Linear_JCP2014) next to FitSNAP's ACE reference metrics.

Usage:
    .venv/bin/python scripts/fit_ta_ace.py [--fits a b c d] [--threads 1]

Fits (each reads the FitSNAP input through ``fitsnap_setup``: data, group weights, ZBL, solver):

- (a) ``Ta_PACE/Ta.in`` (SVD, ZBL 4.0–4.8 Å, ranks 1–6) with our basis generated from its ``[ACE]`` spec;
- (b) ``Ta_PACE_RIDGE/Ta.in`` (RIDGE α = 1e-4, smartweights, inner cutoff, ranks 1–4) with our basis;
- (c) FitSNAP's exact 68 functions (``Ta_PACE/reference/coupling_coefficients.yace``), Ta_PACE settings;
- (d) FitSNAP's exact 141 functions of the RIDGE fit, Ta_PACE_RIDGE settings. FitSNAP wrote no
  coupling file there; its ``Ta_pot.yace`` holds each function's couplings times the fitted
  coefficient, so dividing by ``Ta_pot.acecoeff`` recovers the descriptors
  (:func:`~mliap_torch.fitsnap.ace.fitsnap_basis_from_potential`).

For (c) and (d) the table also evaluates FitSNAP's own coefficients on our design rows (a check of
the descriptors independent of the fit). Prints one Markdown table: functions, *ALL unweighted
training energy MAE/RMSE (eV/atom) and force MAE/RMSE (eV/Å), next to FitSNAP's ``Ta_metrics.md``,
and the wall time of each fit (reading the data, descriptors and rows, solve, metrics).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mliap_torch.descriptors.ace import ACE  # noqa: E402
from mliap_torch.descriptors.ace_files import ace_from_yace, read_acecoeff  # noqa: E402
from mliap_torch.fitsnap.ace import fitsnap_basis_from_potential  # noqa: E402
from mliap_torch.fitsnap.setup import FitSNAPSetup, fitsnap_setup  # noqa: E402
from mliap_torch.fitting.exact_fit import FitResult  # noqa: E402
from mliap_torch.fitting.metrics import ALL, read_fitsnap_metrics, row_metrics  # noqa: E402
from mliap_torch.models.heads import LinearHead  # noqa: E402
from mliap_torch.models.potential import Potential  # noqa: E402

DATA = Path(os.environ.get("MLIAP_TORCH_SHARED_DATA", ROOT.parent / "shared" / "data")) / "fitsnap"
METRICS = (("Energy", "mae"), ("Energy", "rmse"), ("Force", "mae"), ("Force", "rmse"))


def with_descriptor(setup: FitSNAPSetup, ace: ACE) -> FitSNAPSetup:
    """``setup`` with its descriptor replaced (same reference potential, new linear head)."""
    potential = Potential(ace, LinearHead(len(ace.elements), ace.num_descriptors), setup.potential.reference)
    return dataclasses.replace(setup, potential=potential)


def unweighted(table, split: str = "Training") -> list[float]:
    return [table.value(ALL, "Unweighted", split, q, m) for q, m in METRICS]


def coefficient_metrics(result: FitResult, coefficients: torch.Tensor) -> list[float]:
    """*ALL unweighted training metrics of other coefficients (1, 1 + K) on the fit's design rows."""
    rows = result.rows
    pred = rows.A @ coefficients.reshape(-1).to(rows.A)
    return unweighted(row_metrics(pred, rows.b, rows.w, rows.kind, rows.group, result.group_names, rows.test))


def fit(which: str) -> list[tuple[str, int, list[float], str]]:
    """Table rows ``(label, functions, metrics, time)`` of one fit (and its FitSNAP-coefficient check)."""
    pace, ridge = DATA / "Ta_PACE", DATA / "Ta_PACE_RIDGE"
    t0 = time.perf_counter()
    check = None
    if which == "a":
        label, setup = "(a) ours, Ta_PACE/Ta.in spec (SVD, ZBL)", fitsnap_setup(pace / "Ta.in")
    elif which == "b":
        label, setup = "(b) ours, Ta_PACE_RIDGE/Ta.in spec (RIDGE)", fitsnap_setup(ridge / "Ta.in")
    elif which == "c":
        ace = ace_from_yace(pace / "reference" / "coupling_coefficients.yace")
        label, setup = "(c) FitSNAP's basis, Ta_PACE settings (SVD, ZBL)", with_descriptor(fitsnap_setup(pace / "Ta.in"), ace)
        check = read_acecoeff(pace / "reference" / "Ta_pot.acecoeff", ace)
    else:
        ace, check = fitsnap_basis_from_potential(ridge / "reference" / "Ta_pot.yace", ridge / "reference" / "Ta_pot.acecoeff")
        label, setup = "(d) FitSNAP's basis, Ta_PACE_RIDGE settings (RIDGE)", with_descriptor(fitsnap_setup(ridge / "Ta.in"), ace)
    result = setup.fit()
    seconds = time.perf_counter() - t0
    functions = setup.potential.descriptor.num_descriptors
    print(f"{label}: {functions} functions, solver {setup.solver} (rank {result.solution.rank} of "
          f"{result.solution.singular_values.numel()}), {seconds:.1f} s "
          f"(design {result.timings['design']:.1f} s, solve {result.timings['solve']:.2f} s)", flush=True)
    out = [(label, functions, unweighted(result.metrics), f"{seconds:.1f}")]
    if check is not None:
        out.append((f"{label[:3]} FitSNAP's coefficients on our rows", functions, coefficient_metrics(result, check), "—"))
    return out


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", nargs="+", choices=("a", "b", "c", "d"), default=["a", "b", "c", "d"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)

    references = {}
    for name, functions in (("Ta_PACE", 68), ("Ta_PACE_RIDGE", 141)):
        ref = read_fitsnap_metrics(DATA / name / "reference" / "Ta_metrics.md")
        references[name] = (f"FitSNAP reference, {name}/reference/Ta_metrics.md", functions,
                            [ref[(ALL, "Unweighted", "Training", q)][m] for q, m in METRICS], "—")
    rows = []
    for which in args.fits:
        if which in ("a", "c") and references.get("Ta_PACE"):
            rows.append(references.pop("Ta_PACE"))
        if which in ("b", "d") and references.get("Ta_PACE_RIDGE"):
            rows.append(references.pop("Ta_PACE_RIDGE"))
        rows += fit(which)

    print(f"\n{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {cpu_name()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} thread(s), float64\n")
    print("| fit | functions | energy MAE (eV/atom) | energy RMSE (eV/atom) | force MAE (eV/Å) | force RMSE (eV/Å) | time (s) |")
    print("|:--|--:|--:|--:|--:|--:|--:|")
    for label, functions, values, seconds in rows:
        print(f"| {label} | {functions} | " + " | ".join(f"{v:.6g}" for v in values) + f" | {seconds} |")


if __name__ == "__main__":
    main()
