"""Fit the W–Be SNAP of ``../shared/data/fitsnap/WBe_PRB2019`` with bounded memory, metrics next to FitSNAP's.

Usage:
    .venv/bin/python scripts/fit_wbe.py [--workdir /tmp/wbe] [--every 1] [--chunk-atoms 4000]

Unpacks ``JSON.tar.gz`` into ``--workdir`` (once), reads ``WBe-example.in`` (2J=8, two elements, ZBL,
44 weighted groups), streams the configurations through the design-matrix builder in chunks of
``--chunk-atoms`` atoms (rows are never all in memory: ``keep_rows="disk"`` spills each chunk's rows to a
temporary folder, so memory is one chunk plus the (n+1)² factor and the metrics pass reads the rows
back instead of recomputing them), solves with FitSNAP's SVD cutoff and
prints the peak resident memory, the timings and the ``*ALL`` metrics next to
``reference/WBe_metrics.md``. ``--every k`` fits every k-th configuration only (a quick run).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tarfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mliap_torch.fitsnap.setup import fitsnap_setup  # noqa: E402
from mliap_torch.fitting.metrics import read_fitsnap_metrics  # noqa: E402

DATA = Path(os.environ.get("MLIAP_TORCH_SHARED_DATA", ROOT.parent / "shared" / "data")) / "fitsnap" / "WBe_PRB2019"


def wbe_setup(workdir: Path, every: int = 1):
    """FitSNAP's WBe input with its data unpacked into ``workdir`` (once); every ``every``-th configuration."""
    json_dir = workdir / "JSON"
    if not json_dir.is_dir():
        workdir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(DATA / "JSON.tar.gz") as archive:
            archive.extractall(workdir, filter="data")
    setup = fitsnap_setup(DATA / "WBe-example.in", data_path=json_dir)
    if every > 1:
        setup.configurations = setup.configurations[::every]
        setup.test = setup.test[::every]
    return setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mliap_torch_wbe"))
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--chunk-atoms", type=int, default=4000)
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    t0 = time.perf_counter()
    setup = wbe_setup(args.workdir, args.every)
    t_read = time.perf_counter() - t0
    natoms = sum(c.num_atoms for c in setup.configurations)
    print(f"{len(setup.configurations)} configurations, {natoms} atoms, read in {t_read:.1f} s", flush=True)
    result = setup.fit(chunk_atoms=args.chunk_atoms, keep_rows="disk", progress=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = result.timings
    print(f"\ntimings (s): read {t_read:.1f}, design {t['design']:.1f}, solve {t['solve']:.2f}, "
          f"metrics pass {t['metrics']:.1f}, total {t['total'] + t_read:.1f}; peak RSS {peak_mb:.0f} MB; "
          f"rank {result.solution.rank}/{result.solution.x.numel()}, cond {result.solution.cond:.3g}\n")
    ref = read_fitsnap_metrics(DATA / "reference" / "WBe_metrics.md")
    print("| weighting | quantity | ncount (FitSNAP) | MAE | MAE (FitSNAP) | RMSE | RMSE (FitSNAP) |")
    print("|:--|:--|--:|--:|--:|--:|--:|")
    for weighting in ("Unweighted", "Weighted"):
        for quantity in ("Energy", "Force", "Stress"):
            r = ref[("*ALL", weighting, "Training", quantity)]
            row = {m: result.metrics.value("*ALL", weighting, "Training", quantity, m) for m in ("ncount", "mae", "rmse")}
            print(f"| {weighting} | {quantity} | {row['ncount']} ({int(r['ncount'])}) | {row['mae']:.4g} | {r['mae']:.4g} | "
                  f"{row['rmse']:.4g} | {r['rmse']:.4g} |")


if __name__ == "__main__":
    main()
