"""docs/pacemaker.md: a pacemaker potential (its default embedding, core repulsion, random coefficients) read by
``mliap_torch.read_pace`` from its B-basis ``.yaml`` and its C-tilde ``.yace``, compared with pyace's calculator.

Run: ``PYTHONPATH=. python docs/examples/pacemaker_compare.py [folder]`` (needs pyace; writes the two files to
``folder``, default the current directory).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from ase.build import bulk
from pyace import ACEBBasisSet, PyACECalculator
from pyace.multispecies_basisextension import create_multispecies_basis_config

import mliap_torch

folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
spec = {
    "deltaSplineBins": 1e-5, "elements": ["Al", "Ni"],
    "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
    "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [1.0], "rcut": 5.0, "dcut": 0.01, "r_in": 2.2, "delta_in": 0.5,
                      "core-repulsion": [100.0, 1.0]}},
    "functions": {"ALL": {"nradmax_by_orders": [6, 3, 2, 1], "lmax_by_orders": [0, 3, 2, 1]}},
}
config = create_multispecies_basis_config(spec)
rng = np.random.default_rng(0)
crads: dict[str, list] = {}
for block in config.funcspecs_blocks:   # random coefficients, radial ones the same for Al-Ni and Ni-Al
    key = " ".join(sorted(block.block_name.split()))
    crads.setdefault(key, rng.normal(size=np.array(block.radcoefficients).shape).tolist())
    block.radcoefficients = crads[key]
    block.set_func_coeffs(0.02 * rng.normal(size=np.array(block.get_func_coeffs()).shape))
basis = ACEBBasisSet(config)
config.save(str(folder / "AlNi.yaml"))
basis.to_ACECTildeBasisSet().save_yaml(str(folder / "AlNi.yace"))

atoms = bulk("Al", "fcc", a=3.95, cubic=True) * (2, 2, 2)
atoms.symbols[::3] = "Ni"
atoms.rattle(0.3, seed=1)
atoms.calc = PyACECalculator(basis)
ref = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}

for name in ("AlNi.yaml", "AlNi.yace"):
    potential = mliap_torch.read_pace(folder / name)
    print(f"{name}: {type(potential.descriptor).__name__} ({potential.descriptor.num_descriptors} columns) + "
          f"{type(potential.head).__name__} {potential.head.embedding[0]} {potential.head.fs_parameters[0]} + "
          f"{type(potential.reference).__name__}")
    calc = mliap_torch.Calculator(potential)
    atoms.calc = calc
    mine = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}
    for key in ("energy", "forces", "stress"):
        diff = np.abs(np.asarray(mine[key]) - ref[key]).max() / np.abs(ref[key]).max()
        print(f"  {key:7s} pyace {np.ravel(ref[key])[0]: .10f}  mliap_torch {np.ravel(mine[key])[0]: .10f}  "
              f"max relative difference {diff:.1e}")
