"""Per-atom time of ACE energy + forces on bcc Ta, next to the SNAP bispectrum and pyace.

The ACE basis is the size of FitSNAP's ``Ta_PACE/Ta.in`` example (ranks 1–6, nmax 22 2 2 2 1 1,
lmax 0 2 2 2 1 1, ChebExpCos λ = 3.059, r_c = 4.605 Å: 139 B functions). Each model is a
``Potential(descriptor, LinearHead)`` with random coefficients; the pair list is built once and the
timed call is ``potential(batch, forces=True, stress=False)`` (descriptor, head and autograd
forces). pyace is timed on the same structure and basis through ``PyACECalculator`` (its own
neighbour list included), through its B-basis evaluator alone (``ACECalculator.compute``) and
through the C-tilde evaluator that PACE uses in production (B functions contracted with the
coefficients into one product basis; it computes energies and forces but no descriptors).

Usage: ``python scripts/bench_ace.py [--cells 10] [--repeats 5] [--threads N] [--device cuda]``; prints a markdown
table. With ``--device cuda`` the torch models run on the GPU (timed with ``torch.cuda.synchronize``);
pyace stays on the CPU.
"""
from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import numpy as np
import torch
from ase.build import bulk

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.ace import ACE
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.potential import Potential

TA_PACE = {"nradmax_by_orders": [22, 2, 2, 2, 1, 1], "lmax_by_orders": [0, 2, 2, 2, 1, 1],
           "radial_basis": "ChebExpCos", "radial_parameters": 3.059235105, "rcut": 4.604694451, "dcut": 0.01}


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """Best (minimum) wall time and best process CPU time of ``fn``, seconds, after one warm-up call.

    On a shared machine the CPU time (all models here run on one thread) is the steadier measure.
    ``sync`` waits for the device (``torch.cuda.synchronize`` for CUDA models) inside the timed span.
    """
    fn()
    sync()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def with_random_head(descriptor: torch.nn.Module, dtype: torch.dtype) -> Potential:
    head = LinearHead(1, descriptor.num_descriptors)
    gen = torch.Generator().manual_seed(0)
    head.set_coefficients(torch.randn(1, 1 + descriptor.num_descriptors, generator=gen, dtype=torch.float64) * 1e-2)
    return Potential(descriptor, head).to(dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10, help="bcc cubic cells per direction (2·n³ atoms)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (pyace is single-threaded)")
    parser.add_argument("--device", default="cpu", help="torch device of the mliap_torch models (cpu, cuda, cuda:1, ...)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available in this torch build / machine")
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    atoms = bulk("Ta", "bcc", a=3.316, cubic=True) * ((args.cells,) * 3)
    atoms.rattle(0.05, seed=0)
    natoms = len(atoms)
    config = Configuration.from_ase(atoms)
    rows: list[tuple[str, int, tuple[float, float], str]] = []

    ace = ACE(["Ta"], **TA_PACE)
    for dtype in (torch.float64, torch.float32):
        potential = with_random_head(ace, dtype).to(device)
        batch = make_batch([config], ["Ta"], ace.cutoff, dtype=dtype).to(device)
        t = timed(functools.partial(potential, batch, forces=True, stress=False), args.repeats, sync)
        rows.append((f"mliap_torch ACE ({str(dtype).split('.')[-1]})", ace.num_descriptors, t,
                     f"{batch.pair_i.numel()} pairs"))

    try:  # the SNAP bispectrum is another engineer's module; report it when it imports and runs
        from mliap_torch.descriptors.bispectrum import Bispectrum

        snap = Bispectrum(["Ta"], twojmax=6, rcutfac=4.67637, radelem=[0.5], wj=[1.0])
        snap_potential = with_random_head(snap, torch.float64).to(device)
        snap_batch = make_batch([config], ["Ta"], snap.cutoff).to(device)
        t = timed(lambda: snap_potential(snap_batch, forces=True, stress=False), args.repeats, sync)
        rows.append(("mliap_torch Bispectrum 2J=6 (float64)", snap.num_descriptors, t,
                     f"{snap_batch.pair_i.numel()} pairs"))
    except Exception as exc:  # noqa: BLE001 - any failure of the optional comparison is reported, not fatal
        rows.append(("mliap_torch Bispectrum 2J=6", 0, (float("nan"), float("nan")), f"not available: {type(exc).__name__}: {exc}"))

    try:
        from pyace import ACEBBasisSet, PyACECalculator
        from pyace.multispecies_basisextension import create_multispecies_basis_config
    except ImportError as exc:
        rows.append(("pyace", 0, (float("nan"), float("nan")), f"not available: {exc}"))
    else:
        bconf = create_multispecies_basis_config({
            "deltaSplineBins": 1e-3, "elements": ["Ta"],
            "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
            "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [TA_PACE["radial_parameters"]],
                              "rcut": TA_PACE["rcut"], "dcut": TA_PACE["dcut"]}},
            "functions": {"ALL": {"nradmax_by_orders": TA_PACE["nradmax_by_orders"],
                                  "lmax_by_orders": TA_PACE["lmax_by_orders"]}}})
        basis = ACEBBasisSet(bconf)
        nfunc = len(basis.basis_rank1[0]) + len(basis.basis[0])
        calc = PyACECalculator(basis)
        calc.compute_projections = False
        work = atoms.copy()
        work.calc = calc

        def pyace_full() -> None:
            work.positions[0, 0] += 1e-9  # invalidate ASE's cache
            work.get_forces()

        rows.append(("pyace PyACECalculator (ACEBEvaluator, incl. neighbour list)", nfunc, timed(pyace_full, args.repeats),
                     "float64, 1 thread"))
        rows.append(("pyace evaluator only (ACECalculator.compute)", nfunc,
                     timed(lambda: calc.ace.compute(calc.ae, compute_projections=False), args.repeats),
                     "float64, 1 thread"))
        ctilde = PyACECalculator(basis.to_ACECTildeBasisSet())
        ctilde.compute_projections = False
        work.calc = ctilde
        work.get_forces()
        rows.append(("pyace C-tilde evaluator only (PACE's production algorithm)", nfunc,
                     timed(lambda: ctilde.ace.compute(ctilde.ae, compute_projections=False), args.repeats),
                     "float64, 1 thread"))

    where = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"
    print(f"bcc Ta, {natoms} atoms, torch {torch.__version__}, mliap_torch on {where}, "
          f"{torch.get_num_threads()} threads\n")
    print("| model | descriptors | wall s / call | wall µs / atom | CPU s / call | CPU µs / atom | notes |")
    print("|---|---|---|---|---|---|---|")
    for name, k, (wall, cpu), note in rows:
        print(f"| {name} | {k} | {wall:.3f} | {1e6 * wall / natoms:.1f} | {cpu:.3f} | {1e6 * cpu / natoms:.1f} | {note} |")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
