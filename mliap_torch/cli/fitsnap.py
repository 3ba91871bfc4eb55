"""``mliap_torch fitsnap INPUT.in``: run a FitSNAP input file as it is and write FitSNAP's output files.

The output files (``<potential>.snapcoeff``, ``<potential>.snapparam``, ``<potential>.mod``, ``<metrics>``,
names from the input's ``[OUTFILE]`` section) go into the current folder, as FitSNAP's, or into
``--output DIR``.
A missing or bad input (unknown section or key, a setting the exact fit does not reproduce, bad data)
prints one paragraph naming the file, the section and the key, and exits with status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import USER_ERROR_STATUS, UserError
from ..fitsnap.run import FitSNAPRun, run_fitsnap


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="the FitSNAP input file (.in)")
    parser.add_argument("--output", type=Path, default=Path("."),
                        help="folder of the output files (default: the current folder, as FitSNAP)")
    parser.add_argument("--data-path", type=Path, default=None,
                        help="folder of the group folders, instead of the input's [PATH] dataPath")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar of the descriptor stage (default: when stderr is a terminal)")


def summary(run: FitSNAPRun) -> str:
    """What was fitted, how long each stage took, where the files are, and the training errors of all groups."""
    setup, result = run.setup, run.result
    configs = setup.configurations
    natoms = sum(c.num_atoms for c in configs)
    t = result.timings
    lines = [f"{len(configs)} configurations ({natoms} atoms, {len(setup.group_names)} groups, "
             f"{sum(setup.test)} for testing); {setup.potential.descriptor.type_name} descriptor, "
             f"{type(setup.potential.head).__name__}, {result.coefficients.numel()} coefficients, "
             f"solver {setup.solver} (rank {result.solution.rank}, condition number {result.solution.cond:.3g})",
             f"time: read {run.seconds['read']:.2f} s, descriptors and rows {t['design']:.2f} s, solve "
             f"{t['solve']:.3f} s, metrics {t['metrics']:.3f} s, write {run.seconds['write']:.3f} s, "
             f"total {run.seconds['total']:.2f} s",
             "wrote " + ", ".join(str(f) for f in run.files)]
    units = {"Energy": "eV/atom", "Force": "eV/Å", "Stress": "bar"}
    for row in result.metrics.rows:
        if row["group"] == "*ALL" and row["weighting"] == "Unweighted" and row["split"] == "Training":
            lines.append(f"*ALL training {row['quantity'].lower():6s} MAE {row['mae']:.6g}  RMSE {row['rmse']:.6g} "
                         f"{units[row['quantity']]}  (n = {row['ncount']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mliap_torch fitsnap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run = run_fitsnap(args.input, args.output, data_path=args.data_path, progress=args.progress)
    except UserError as exc:
        print(f"mliap_torch fitsnap: {exc}", file=sys.stderr)
        return USER_ERROR_STATUS
    print(summary(run))
    return 0
