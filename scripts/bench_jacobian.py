#!/usr/bin/env python
"""Per-atom cost of the bispectrum's descriptor stage for fits: ``Bispectrum.pair_jacobian`` (B and ∂B_i/∂r_ij)
against LAMMPS ``compute snap`` (FitSNAP's descriptor stage) on the same structure, in the same process.

Cases (the fit-at-scale issue's):
- ``wbe``: FitSNAP's WBe settings (2Jmax 8, W and Be, rcutfac 4.812, radelem 0.5 / 0.418, wj 1 / 0.959) on
  250-atom bcc W with a fifth of the atoms Be, rattled (about 26 neighbours per atom);
- ``ta``: FitSNAP's Ta settings (2Jmax 6, rcutfac 4.67637) on 250-atom bcc Ta, rattled;
- ``inp``: LAMMPS' ``examples/snap/InP_JCPA2020.snapparam`` (2Jmax 6, rcutfac 1.0, radelem 3.81205 /
  3.82945, wj 1 / 0.929316, chemflag, bnormflag, wselfallflag, bzeroflag) on zincblende InP (a = 5.87 Å,
  4×4×4 cells, 512 atoms), rattled.

Routes: ``sna`` (pair_jacobian through LAMMPS' SNA, mliap_torch/descriptors/sna_backend.py, the default
when LAMMPS is built) and ``torch`` (the torch kernels; chemflag falls back to K backward passes there,
minutes per structure, so it is left out for ``inp`` unless ``--torch-chemflag``). ``compute snap`` is
timed as ``run 0`` with the compute evaluated minus ``run 0`` without it (neighbour lists in both).
One thread (``--threads``); best of ``--repeats``.

With ``--ace`` it also times ``ACE.pair_jacobian`` for the mlearn study's two ACE bases (ranks 1-4,
``mlearn_study.mlearn.ACE_BASIS``, 77 functions; total degree, ``ACE_TD_BASIS``, 1004 functions; at the
element's SNAP cutoff) against K backward passes through the whole descriptor, one per function (the
generic ``Descriptor.pair_jacobian`` in its simplest form; the largest difference of the two is printed),
next to the bispectrum's (the study's SNAP settings, LAMMPS' SNA route) on each element's 250-atom bulk
cell; there is no LAMMPS reference for ACE here (the build has no ML-PACE).

    .venv/bin/python scripts/bench_jacobian.py                 # all three cases
    .venv/bin/python scripts/bench_jacobian.py --cases wbe --repeats 5
    .venv/bin/python scripts/bench_jacobian.py --cases --ace Ni Mo Si
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_masses, atomic_numbers

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors import sna_backend
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.lammps import lammps_cell, start

CASES = {
    "wbe": dict(elements=["W", "Be"], twojmax=8, rcutfac=4.812302818, radelem=[0.5, 0.417932464],
                wj=[1.0, 0.9590493408], bzeroflag=True),
    "ta": dict(elements=["Ta"], twojmax=6, rcutfac=4.67637, radelem=[0.5], wj=[1.0], bzeroflag=True),
    "inp": dict(elements=["In", "P"], twojmax=6, rcutfac=1.0, radelem=[3.81205, 3.82945], wj=[1.0, 0.929316],
                chemflag=True, bnormflag=True, wselfallflag=True, bzeroflag=True),
}


def structure(case: str) -> Atoms:
    """The case's rattled periodic structure."""
    rng = np.random.default_rng(0)
    if case == "wbe":
        atoms = bulk("W", "bcc", a=3.16, cubic=True).repeat((5, 5, 5))
        atoms.symbols[rng.choice(len(atoms), size=len(atoms) // 5, replace=False)] = "Be"
    elif case == "ta":
        atoms = bulk("Ta", "bcc", a=3.316, cubic=True).repeat((5, 5, 5))
    else:
        atoms = bulk("InP", "zincblende", a=5.87, cubic=True).repeat((4, 4, 4))
    atoms.rattle(0.05, seed=1)
    return atoms


def compute_snap_command(d: Bispectrum) -> str:
    """``compute snap`` with the descriptor's settings (LAMMPS types 1..n are its elements)."""
    s = d.settings()
    n = len(d.elements)
    words = ["compute desc all snap", repr(s["rcutfac"]), repr(s["rfac0"]), str(s["twojmax"]),
             *(repr(float(r)) for r in s["radelem"]), *(repr(float(w)) for w in s["wj"]),
             f"rmin0 {s['rmin0']!r}", f"bzeroflag {int(s['bzeroflag'])}", f"switchflag {int(s['switchflag'])}",
             f"bnormflag {int(s['bnormflag'])}", f"wselfallflag {int(s['wselfallflag'])}"]
    if s["chemflag"]:
        words.append(f"chem {n} " + " ".join(str(k) for k in range(n)))
    return " ".join(words)


def load_structure(lmp, elements: list[str], cell: np.ndarray, positions: np.ndarray, symbols: list[str],
                   cutoff: float) -> None:
    """Set ``lmp`` up (after ``clear``) with one periodic structure, types 1..n = ``elements``, ``pair_style zero``."""
    lower, rot = lammps_cell(np.asarray(cell, dtype=np.float64))
    (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in lower)
    lmp.commands_list(["clear", "units metal", "atom_style atomic", "atom_modify map array sort 0 0.0",
                       "boundary p p p", f"region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box",
                       f"create_box {len(elements)} box"])
    for k, e in enumerate(elements):
        lmp.command(f"mass {k + 1} {float(atomic_masses[atomic_numbers[e]])!r}")
    x = (np.asarray(positions, dtype=np.float64) @ rot).reshape(-1)
    n = len(symbols)
    lmp.create_atoms(n, list(range(1, n + 1)), [elements.index(s) + 1 for s in symbols], x.tolist(), None, None, True)
    lmp.commands_list([f"pair_style zero {cutoff!r}", "pair_coeff * *", "thermo_style custom step pe"])


def time_compute_snap(d: Bispectrum, atoms: Atoms, repeats: int) -> float:
    """Seconds per atom of ``compute snap`` (best of ``repeats``), neighbour lists subtracted."""
    lmp = start()
    try:
        load_structure(lmp, d.elements, atoms.cell[:], atoms.positions, atoms.get_chemical_symbols(), d.cutoff)
        lmp.command("run 0")

        def best(with_compute: bool) -> float:
            times = []
            for _ in range(repeats):
                if with_compute:  # compute snap adds its own pressure compute at setup: defined anew per run
                    lmp.commands_list([compute_snap_command(d), "thermo_style custom step pe c_desc[1][1]"])
                t0 = time.perf_counter()
                lmp.command("run 0")
                times.append(time.perf_counter() - t0)
                if with_compute:
                    lmp.commands_list(["thermo_style custom step pe", "uncompute desc", "uncompute desc_press"])
            return min(times)

        return (best(True) - best(False)) / len(atoms)
    finally:
        lmp.close()


def best_seconds(run, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``run()`` (no gradients)."""
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    return min(times)


def time_pair_jacobian(d, atoms: Atoms, route: str | None, repeats: int) -> float:
    """Seconds per atom of ``d.pair_jacobian`` (best of ``repeats``; pair list excluded); ``route`` ``sna`` or
    ``torch`` for a bispectrum, None for other descriptors."""
    if route is not None:
        d.sna_jacobian = route == "sna"
    batch = make_batch([Configuration.from_ase(atoms)], d.elements, d.cutoff)
    rij = batch.rij().detach()
    return best_seconds(lambda: d.pair_jacobian(rij, batch.pair_i, batch.pair_j, batch.species, batch.total_atoms),
                        repeats) / len(atoms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES))
    parser.add_argument("--ace", nargs="*", default=[], metavar="ELEMENT",
                        help="mlearn elements for the ACE rows (Ni Cu Li Mo Si Ge)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--torch-chemflag", action="store_true", help="also time the torch route on chemflag")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if not sna_backend.available():
        parser.error("the LAMMPS SNA route is unavailable here (build LAMMPS with scripts/build_lammps.sh)")
    print(f"{args.threads} thread(s), best of {args.repeats}; load average {os.getloadavg()[0]:.2f} at the start")
    print("\n| case | atoms | neighbours/atom | compute snap µs/atom | route | pair_jacobian µs/atom | ratio |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for case in args.cases:
        d = Bispectrum(**CASES[case])
        atoms = structure(case)
        batch = make_batch([Configuration.from_ase(atoms)], d.elements, d.cutoff)
        r2 = (batch.rij() ** 2).sum(-1)
        rc = d.rcut[batch.species[batch.pair_i], batch.species[batch.pair_j]]
        neighbours = float((r2 < rc * rc).sum()) / len(atoms)
        lammps = time_compute_snap(d, atoms, args.repeats)
        routes = ["sna"] + (["torch"] if not d.chemflag or args.torch_chemflag else [])
        for route in routes:
            ours = time_pair_jacobian(d, atoms, route, args.repeats)
            print(f"| {case} | {len(atoms)} | {neighbours:.1f} | {lammps * 1e6:.0f} | {route} | {ours * 1e6:.0f} | "
                  f"{ours / lammps:.2f} |", flush=True)
    if args.ace:
        ace_rows(args.ace, args.repeats)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def ace_rows(elements: list[str], repeats: int) -> None:
    """µs/atom of ACE.pair_jacobian (forward mode through the product tree) for the mlearn study's two ACE
    bases, against K backward passes on the same cell (:func:`backward_pass_comparison`, the agreement
    printed), and of the bispectrum's at the study's SNAP settings, per element."""
    from mlearn_study.mlearn import ACE_BASIS, ACE_TD_BASIS, bulk_cell, make_ace, make_bispectrum, study_settings

    print("\n| element | atoms | ACE functions | ACE pair_jacobian µs/atom | K backward passes µs/atom | speed-up "
          "| max abs difference | SNAP 2Jmax | bispectrum (SNA) µs/atom |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for element in elements:
        atoms = bulk_cell(element, 250)
        rcut, twojmax = study_settings(element, "snap")
        snap = time_pair_jacobian(make_bispectrum(element, rcut, twojmax), atoms, "sna", repeats)
        for basis in (ACE_BASIS, ACE_TD_BASIS):
            ace = make_ace(element, rcut, basis)
            ours = time_pair_jacobian(ace, atoms, None, repeats)
            generic, difference = backward_pass_comparison(ace, atoms)
            print(f"| {element} | {len(atoms)} | {ace.num_descriptors} | {ours * 1e6:.0f} | {generic * 1e6:.0f} | "
                  f"{generic / ours:.1f} | {difference:.1e} | {twojmax} | {snap * 1e6:.0f} |", flush=True)


def backward_pass_jacobian(d, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                           num_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B and dB (npairs, 3, K) by K backward passes of ``Σ_i B_ik`` through the whole descriptor, one at a time
    (the vmap-batched form of ``Descriptor.pair_jacobian`` needs K copies of the graph: 24 GB for 1004
    functions on 256 atoms)."""
    rij = rij.detach().requires_grad_(True)
    with torch.enable_grad():
        total = d(rij, pair_i, pair_j, species, num_atoms)
        columns = [torch.autograd.grad(total[:, k].sum(), rij, retain_graph=True)[0] for k in range(total.shape[1])]
    return total.detach(), torch.stack(columns, dim=2)


def backward_pass_comparison(ace, atoms: Atoms) -> tuple[float, float]:
    """Seconds per atom of one :func:`backward_pass_jacobian` (pair list excluded) and the largest |dB|
    difference between it and ``ACE.pair_jacobian``."""
    batch = make_batch([Configuration.from_ase(atoms)], ace.elements, ace.cutoff)
    args = (batch.rij().detach(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    t0 = time.perf_counter()
    _, generic = backward_pass_jacobian(ace, *args)
    seconds = time.perf_counter() - t0
    _, ours = ace.pair_jacobian(*args)
    return seconds / len(atoms), float((ours - generic).abs().max())


if __name__ == "__main__":
    main()
