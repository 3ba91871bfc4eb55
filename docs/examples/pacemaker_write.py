"""docs/pacemaker.md: a potential built in mliap_torch (ACE from its own basis generator, pacemaker's default
embedding with random density coefficients, PACE's core repulsion) written by ``mliap_torch.write_pace`` as a
B-basis ``.yaml`` and a C-tilde ``.yace``, evaluated by pyace (both files) and by LAMMPS ``pair_style pace`` (the
``pace`` route of ``export_lammps``), and compared with torch.

Run: ``PYTHONPATH=. python docs/examples/pacemaker_write.py [folder]`` (needs pyace, and LAMMPS with ML-PACE as
``scripts/build_lammps.sh`` builds it; writes the files to ``folder``, default the current directory).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from pyace import ACEBBasisSet, ACECTildeBasisSet, PyACECalculator

import mliap_torch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.ace import ACE
from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.lammps_eval import evaluate_in_lammps
from mliap_torch.models.embedding import EmbeddingHead
from mliap_torch.models.pace_core import PaceCoreRepulsion

folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
elements = ["Al", "Ni"]
rng = np.random.default_rng(0)
ace = ACE(elements, nradmax_by_orders=[6, 3, 2, 1], lmax_by_orders=[0, 2, 2, 1], radial_basis="SBessel",
          rcut=5.0, r_in=2.2, delta_in=0.5)
crad = torch.as_tensor(rng.normal(size=tuple(ace.crad.shape)))
ace.set_radial_coefficients(0.5 * (crad + crad.transpose(0, 1)))   # PACE's bonds: Al-Ni = Ni-Al
head = EmbeddingHead(2, ace.num_descriptors)                          # F = ρ₁ + √ρ₂ (pacemaker's default)
head.set_density_coefficients(torch.as_tensor(0.02 * rng.normal(size=tuple(head.coefficients.shape))))
pair = [[5.0] * 2] * 2
core = PaceCoreRepulsion(elements, [[100.0] * 2] * 2, [[1.0] * 2] * 2, pair, [[2.2] * 2] * 2, [[0.5] * 2] * 2,
                         "distance", [100000.0] * 2, [250.0] * 2)
potential = mliap_torch.Potential(ace, head, core)

yaml_path = mliap_torch.write_pace(potential, folder / "AlNi.yaml")
yace_path = mliap_torch.write_pace(potential, folder / "AlNi.yace")
route = export_lammps(potential, folder / "lammps", routes=("pace",)).routes["pace"]
print(f"wrote {yaml_path.name}, {yace_path.name}; LAMMPS: {'; '.join(route.pair_commands)}")

atoms = bulk("Al", "fcc", a=3.95, cubic=True) * (2, 2, 2)
atoms.symbols[::3] = "Ni"
atoms.set_cell(atoms.cell @ (np.eye(3) + 0.04 * rng.normal(size=(3, 3))), scale_atoms=True)   # triclinic
atoms.rattle(0.3, seed=1)
atoms.calc = mliap_torch.Calculator(potential)
mine = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}
others = {}
for name, basis in (("pyace .yaml", ACEBBasisSet(str(yaml_path))), ("pyace .yace", ACECTildeBasisSet(str(yace_path)))):
    atoms.calc = PyACECalculator(basis)
    others[name] = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}
others["LAMMPS pace"] = evaluate_in_lammps([Configuration.from_ase(atoms)], elements, route.pair_commands,
                                           directory=folder / "lammps")[0]
print(f"mliap_torch: energy {mine['energy']:.10f} eV, max |F| {np.abs(mine['forces']).max():.10f} eV/Å")
for name, ref in others.items():
    diffs = [np.abs(np.asarray(ref[key]) - mine[key]).max() / np.abs(mine[key]).max()
             for key in ("energy", "forces", "stress")]
    print(f"  {name:12s} energy {ref['energy']:.10f}  max relative difference: energy {diffs[0]:.1e}, "
          f"forces {diffs[1]:.1e}, stress {diffs[2]:.1e}")
