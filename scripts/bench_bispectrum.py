#!/usr/bin/env python
"""Time SNAP energy + forces in mliap_torch against LAMMPS ``pair_style snap`` on the same structures.

Systems: (a) 2000-atom bcc Ta (2Jmax 6, rcutfac 4.67637, radelem 0.5), (b) 2048-atom fcc Ni
(2Jmax 8, rcutfac 4.1, radelem 0.5, i.e. a 4.1 Å cutoff), atoms displaced by a few hundredths of Å.
mliap_torch: a :class:`Potential` (Bispectrum + LinearHead with random coefficients), energy and
forces by autograd, neighbor list prebuilt (timed separately). LAMMPS: the same coefficients written
with :func:`write_snap`, ``run 10`` timed per atom-step, in this process and with the same thread
count. Both wall-clock and CPU time are reported (on a shared machine wall time includes waiting).

Usage::

    python scripts/bench_bispectrum.py                    # CPU, 1 thread, eager and compiled
    python scripts/bench_bispectrum.py --device cuda      # torch on the GPU (LAMMPS stays on the CPU)
    python scripts/bench_bispectrum.py --threads 2 --modes eager
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYSTEMS = {
    "Ta": dict(lattice="bcc", a=3.316, reps=10, twojmax=6, rcutfac=4.67637, mass=180.95),
    "Ni": dict(lattice="fcc", a=3.52, reps=8, twojmax=8, rcutfac=4.1, mass=58.69),
}
BASIS = {"bcc": [[0, 0, 0], [0.5, 0.5, 0.5]], "fcc": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]}


def build_structure(spec: dict, seed: int = 0, displacement: float = 0.05):
    import numpy as np

    rng = np.random.default_rng(seed)
    n = spec["reps"]
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
    basis = np.array(BASIS[spec["lattice"]], dtype=float)
    pos = ((grid[:, None, :] + basis[None]) * spec["a"]).reshape(-1, 3)
    pos += rng.normal(0.0, displacement, pos.shape)
    cell = np.eye(3) * spec["a"] * n
    return pos, cell


def make_potential(element: str, spec: dict, seed: int = 1):
    import torch

    from mliap_torch.descriptors.bispectrum import Bispectrum
    from mliap_torch.models.heads import LinearHead
    from mliap_torch.models.potential import Potential

    d = Bispectrum([element], twojmax=spec["twojmax"], rcutfac=spec["rcutfac"], radelem=[0.5], wj=[1.0],
                   rfac0=0.99363)
    head = LinearHead(1, d.num_descriptors)
    gen = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(1, 1 + d.num_descriptors, generator=gen, dtype=torch.float64) * 0.01
    head.set_coefficients(coeffs)
    return Potential(d, head)


def time_torch(potential, pos, cell, element, device: str, compiled: bool, repeats: int):
    import numpy as np
    import torch

    from mliap_torch.data.batch import make_batch
    from mliap_torch.data.configuration import Configuration

    config = Configuration(positions=pos, cell=cell, pbc=[True] * 3, symbols=[element] * len(pos))
    t0 = time.perf_counter()
    batch = make_batch([config], potential.elements, potential.cutoff)
    t_neighbors = time.perf_counter() - t0
    batch = batch.to(device)
    potential = potential.to(device)
    potential.descriptor.compile_kernels = compiled
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step():
        out = potential(batch, forces=True, stress=False)
        sync()
        return out

    t0 = time.perf_counter()
    out = step()                       # warm-up (includes compilation in compiled mode)
    t_first = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = step()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    natoms = len(pos)
    return {
        "wall_us": 1e6 * float(np.median(walls)) / natoms,
        "cpu_us": 1e6 * float(np.median(cpus)) / natoms,
        "first_s": t_first,
        "neighbors_us": 1e6 * t_neighbors / natoms,
        "energy": float(out["energy"][0].detach()),
        "forces": out["forces"].detach().cpu().numpy(),
    }


def time_lammps(potential, pos, cell, element, mass: float, steps: int):
    import numpy as np

    from mliap_torch.export.snap_files import write_snap
    from mliap_torch.lammps import atom_order, create_atoms_in_lammps, start

    with tempfile.TemporaryDirectory() as tmp:
        coeff, param = write_snap(potential, Path(tmp) / "bench")
        lmp = start()
        try:
            create_atoms_in_lammps(lmp, pos, cell, np.ones(len(pos), dtype=int), [mass])
            lmp.commands_list([
                "pair_style snap", f"pair_coeff * * {coeff} {param} {element}",
                "neighbor 1.0 bin", "neigh_modify every 10 delay 0 check yes",
                "velocity all create 10.0 4928459 loop geom", "fix nve all nve", "thermo 1000", "run 0",
            ])
            energy = float(lmp.get_thermo("pe"))
            nlocal = lmp.extract_global("nlocal")
            forces = np.array(lmp.numpy.extract_atom("f")[:nlocal], dtype=np.float64)[atom_order(lmp)]
            w0, c0 = time.perf_counter(), time.process_time()
            lmp.command(f"run {steps}")
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        finally:
            lmp.close()
    per = 1e6 / (steps * len(pos))
    return {"wall_us": wall * per, "cpu_us": cpu * per, "energy": energy, "forces": forces}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenMP threads (default 1)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"],
                        help="torch modes: eager ops, and/or the Z kernels through torch.compile")
    parser.add_argument("--repeats", type=int, default=3, help="timed torch evaluations (median reported)")
    parser.add_argument("--lammps-steps", type=int, default=10)
    parser.add_argument("--no-lammps", action="store_true", help="time torch only")
    args = parser.parse_args(argv)

    os.environ["OMP_NUM_THREADS"] = str(args.threads)   # before LAMMPS / OpenMP start
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available in this torch build / machine", file=sys.stderr)
        return 2
    have_lammps = False
    if not args.no_lammps:
        from mliap_torch.lammps import lammps_status

        have_lammps, why = lammps_status()
        if not have_lammps:
            print(f"# LAMMPS unavailable ({why}); timing torch only")

    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"# torch {torch.__version__}, device {args.device} ({device_name}), threads {args.threads}, float64")
    rows = []
    for element in args.systems:
        spec = SYSTEMS[element]
        pos, cell = build_structure(spec)
        potential = make_potential(element, spec)
        ref = time_lammps(potential, pos, cell, element, spec["mass"], args.lammps_steps) if have_lammps else None
        for mode in args.modes:
            res = time_torch(make_potential(element, spec), pos, cell, element, args.device, mode == "compiled",
                             args.repeats)
            check = ""
            if ref is not None:
                de = abs(res["energy"] - ref["energy"]) / abs(ref["energy"])
                df = np.abs(res["forces"] - ref["forces"]).max() / np.abs(ref["forces"]).max()
                check = f"{max(de, df):.1e}"
            rows.append((f"{element} ({len(pos)} atoms, 2J={spec['twojmax']})", mode, res, ref, check))

    header = ("| system | torch mode | torch wall µs/atom | torch CPU µs/atom | LAMMPS wall µs/atom-step | "
              "LAMMPS CPU µs/atom-step | ratio wall | ratio CPU | first call s | max rel. diff |")
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, mode, res, ref, check in rows:
        lw = f"{ref['wall_us']:.1f}" if ref else "–"
        lc = f"{ref['cpu_us']:.1f}" if ref else "–"
        rw = f"{res['wall_us'] / ref['wall_us']:.2f}" if ref else "–"
        rc = f"{res['cpu_us'] / ref['cpu_us']:.2f}" if ref else "–"
        print(f"| {name} | {mode} | {res['wall_us']:.1f} | {res['cpu_us']:.1f} | {lw} | {lc} | {rw} | {rc} | "
              f"{res['first_s']:.1f} | {check or '–'} |")
    print("# neighbor list (vesin, not in the torch times): "
          + ", ".join(f"{name.split()[0]} {res['neighbors_us']:.1f} µs/atom" for name, mode, res, _, _ in rows
                      if mode == rows[0][1]))
    print("# ratio = torch / LAMMPS; 'max rel. diff' = largest relative energy/force difference to LAMMPS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
