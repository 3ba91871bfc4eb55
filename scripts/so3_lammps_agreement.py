"""Agreement of the SO3 descriptor with LAMMPS' ``descriptor so3``, over nmax, lmax and alpha.

For each setting: two rattled, strained fcc Cu-Ni cells (32 atoms), a random linear model written as
``pair_style mliap model linear ... descriptor so3``; prints a Markdown table of the largest differences
between LAMMPS and torch relative to the largest torch value, for per-atom descriptors, energies,
per-atom energies, forces and stress.

Usage: ``python scripts/so3_lammps_agreement.py [--folder /tmp/so3_agreement]``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.so3 import SO3
from mliap_torch.export.snap_files import write_mliap
from mliap_torch.lammps_descriptors import descriptors_in_lammps
from mliap_torch.lammps_eval import evaluate_in_lammps
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.potential import Potential

ELEMENTS = ["Cu", "Ni"]
# (nmax, lmax, rcutfac, alpha)
SETTINGS = [(3, 4, 5.0, 2.0), (3, 2, 4.1, 2.0), (2, 3, 4.4, 1.0), (4, 2, 4.6, 2.0), (4, 4, 4.6, 1.0),
            (3, 4, 4.2, 0.8), (3, 5, 4.2, 0.8), (2, 6, 4.6, 2.0), (2, 6, 4.6, 0.8), (5, 3, 4.6, 2.0),
            (6, 2, 4.6, 2.0)]


def structures(count: int, seed: int) -> list[Configuration]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
        atoms.set_chemical_symbols(rng.choice(ELEMENTS, size=len(atoms)).tolist())
        atoms.set_cell(atoms.cell @ (np.eye(3) + 0.05 * rng.standard_normal((3, 3))), scale_atoms=True)
        atoms.positions += 0.15 * rng.standard_normal(atoms.positions.shape)
        out.append(Configuration.from_ase(atoms, index=k))
    return out


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def measure(nmax: int, lmax: int, rcutfac: float, alpha: float, folder: Path) -> dict[str, float]:
    descriptor = SO3(ELEMENTS, nmax, lmax, rcutfac, alpha, radelem=[0.5, 0.5], wj=[1.0, 2.0])
    head = LinearHead(2, descriptor.num_descriptors)
    torch.manual_seed(nmax * 10 + lmax)
    coeffs = 1e-3 * torch.randn(2, descriptor.num_descriptors + 1, dtype=torch.float64)
    coeffs[:, 0] = torch.tensor([-3.0, -4.0])
    head.set_coefficients(coeffs)
    potential = Potential(descriptor, head)
    model, desc = write_mliap(potential, folder / f"so3_{nmax}_{lmax}_{alpha}")
    configs = structures(2, seed=1)
    lmp = evaluate_in_lammps(configs, ELEMENTS, [f"pair_style mliap model linear {model.name} descriptor so3 "
                                                 f"{desc.name}", "pair_coeff * * Cu Ni"], directory=folder)
    batch = make_batch(configs, ELEMENTS, potential.cutoff)
    out = potential(batch)
    B = descriptor(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms).detach().numpy()
    worst = {"descriptors": 0.0, "energy": 0.0, "atomic energies": 0.0, "forces": 0.0, "stress": 0.0}
    start = 0
    for k, (res, config) in enumerate(zip(lmp, configs)):
        atoms = slice(start, start + config.num_atoms)
        start += config.num_atoms
        rows = descriptors_in_lammps(config, ELEMENTS, f"so3 {desc.name}", descriptor.num_descriptors, folder)
        found = {"descriptors": relative(rows, B[atoms]),
                 "energy": relative(np.array(res["energy"]), out["energy"][k].detach().numpy()),
                 "atomic energies": relative(res["atomic_energies"], out["atomic_energies"][atoms].detach().numpy()),
                 "forces": relative(res["forces"], out["forces"][atoms].detach().numpy()),
                 "stress": relative(res["stress"], out["stress"][k].detach().numpy())}
        worst = {key: max(worst[key], found[key]) for key in worst}
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/so3_agreement"))
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    columns = ["descriptors", "energy", "atomic energies", "forces", "stress"]
    print("| nmax | lmax | rcutfac (Å) | alpha (Å⁻²) | " + " | ".join(columns) + " |")
    print("|---:|---:|---:|---:|" + "---:|" * len(columns))
    for nmax, lmax, rcutfac, alpha in SETTINGS:
        worst = measure(nmax, lmax, rcutfac, alpha, args.folder)
        print(f"| {nmax} | {lmax} | {rcutfac} | {alpha} | " + " | ".join(f"{worst[c]:.1e}" for c in columns) + " |")


if __name__ == "__main__":
    main()
