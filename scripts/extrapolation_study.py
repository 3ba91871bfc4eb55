"""How well the extrapolation grade γ tracks errors: a training run's model on its own test set and on
strained fcc Cu cells outside the training range (docs/uncertainty.md quotes the output).

    python train.py plots=false export.lammps=false hydra.run.dir=outputs/gamma_default
    python scripts/extrapolation_study.py outputs/gamma_default [--json out.json]

Per test configuration: the largest atomic γ and the force RMSE against its labels (eV/Å); their Spearman
rank correlation ρ (scipy.stats.spearmanr) over the test set, and over the test set together with the probe
cells (2×2×2 fcc Cu, rattled 0.02 Å, lattice constant 3.0-4.1 Å and xy shear 0-0.5, labelled with ASE's EMT
like the built-in data). The run folder's ``config.yaml`` and seed give the same split as the run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from omegaconf import OmegaConf
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mliap_torch  # noqa: E402
from mliap_torch.cli.schema import validate  # noqa: E402
from mliap_torch.data.configuration import Configuration  # noqa: E402
from mliap_torch.training.data import load_split_data  # noqa: E402
from mliap_torch.uncertainty.build import configuration_grades, grade_statistics  # noqa: E402

LATTICES = (3.0, 3.2, 3.4, 3.5, 3.61, 3.7, 3.8, 3.9, 4.1)
SHEARS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def probe(a: float, shear: float, seed: int) -> Configuration:
    """2×2×2 fcc Cu at lattice constant ``a`` Å with xy shear ``shear``, rattled 0.02 Å, EMT labels."""
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 2))
    strain = np.eye(3)
    strain[0, 1] = shear
    atoms.set_cell(np.asarray(atoms.cell) @ strain, scale_atoms=True)
    atoms.positions += np.random.default_rng(seed).normal(scale=0.02, size=atoms.positions.shape)
    atoms.calc = EMT()
    return Configuration(positions=atoms.positions, cell=np.asarray(atoms.cell), pbc=atoms.pbc,
                         symbols=atoms.get_chemical_symbols(), energy=atoms.get_potential_energy(),
                         forces=atoms.get_forces(), group=f"a={a} shear={shear}")


def force_rmse(potential: mliap_torch.Potential, configs: list[Configuration]) -> np.ndarray:
    """(nconfigs,) force RMSE of each configuration against its labels, eV/Å."""
    calc = mliap_torch.Calculator(potential)
    out = []
    for c in configs:
        atoms = c.to_ase()
        atoms.calc = calc
        out.append(float(np.sqrt(np.mean((atoms.get_forces() - np.asarray(c.forces)) ** 2))))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    potential = mliap_torch.load(args.run_dir / "model.pt")
    cfg = validate(OmegaConf.create(yaml.safe_load((args.run_dir / "config.yaml").read_text())))
    test = load_split_data(cfg.data, cfg.seed).test
    grades = configuration_grades(potential, test, progress=False)
    gamma_test = np.array([g.max() for g in grades])
    error_test = force_rmse(potential, test)
    rho_test = spearmanr(gamma_test, error_test)
    probes = [probe(a, 0.0, k) for k, a in enumerate(LATTICES)] + [probe(3.61, s, 20 + k) for k, s in enumerate(SHEARS)]
    gamma_probe = np.array([g.max() for g in configuration_grades(potential, probes, progress=False)])
    error_probe = force_rmse(potential, probes)
    rho_all = spearmanr(np.concatenate([gamma_test, gamma_probe]), np.concatenate([error_test, error_probe]))
    print(f"model {args.run_dir / 'model.pt'}: active set {potential.active_set.size.tolist()} atoms per element "
          f"{potential.elements}")
    stats = grade_statistics(grades)
    print(f"test set: {len(test)} configurations, {stats['atoms']} atoms; γ mean {stats['mean']:.3f}, "
          f"median {stats['median']:.3f}, p99 {stats['p99']:.3f}, max {stats['max']:.3f}; "
          f"atoms with γ > 1.01: {stats['above']['1.01']['atoms']}")
    print(f"Spearman ρ(max γ, force RMSE) over the test configurations: {rho_test.statistic:.3f} "
          f"(p = {rho_test.pvalue:.2g}, n = {len(test)})")
    print(f"Spearman ρ over test + {len(probes)} probe cells: {rho_all.statistic:.3f} "
          f"(p = {rho_all.pvalue:.2g}, n = {len(test) + len(probes)})")
    print("\n| probe (2×2×2 fcc Cu, rattled 0.02 Å) | max γ | force RMSE (eV/Å) |\n|---|---|---|")
    for c, g, e in zip(probes, gamma_probe, error_probe):
        print(f"| {c.group} | {g:.2f} | {e:.3f} |")
    by_group: dict[str, list[int]] = {}
    for k, c in enumerate(test):
        by_group.setdefault(c.group, []).append(k)
    print("\n| test group | configs | mean max γ | largest max γ | mean force RMSE (eV/Å) |\n|---|---|---|---|---|")
    for group, ks in sorted(by_group.items()):
        print(f"| {group} | {len(ks)} | {gamma_test[ks].mean():.3f} | {gamma_test[ks].max():.3f} | "
              f"{error_test[ks].mean():.4f} |")
    if args.json:
        args.json.write_text(json.dumps({
            "spearman_test": rho_test.statistic, "spearman_test_and_probes": rho_all.statistic, "test": stats,
            "probes": [{"case": c.group, "max_gamma": float(g), "force_rmse": float(e)}
                       for c, g, e in zip(probes, gamma_probe, error_probe)]}, indent=1))


if __name__ == "__main__":
    main()
