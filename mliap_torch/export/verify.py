"""Check an exported potential in LAMMPS against torch on a few configurations."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.batch import make_batch
from ..data.configuration import Configuration
from ..lammps import PLUGIN_HINT, lammps_has_package, plugin_library
from ..lammps_binary import BUILD_HINT
from ..lammps_eval import evaluate_in_lammps
from ..models.potential import Potential
from .lammps_export import ExportResult


def lammps_torch_differences(potential: Potential, export: ExportResult, configs: Sequence[Configuration],
                             ) -> dict[str, dict[str, Any]]:
    """Largest LAMMPS − torch differences per route on ``configs`` (fully periodic ones are used).

    Returns ``{route: {"energy_per_atom": eV, "atomic_energy": eV, "force": eV/Å, "stress": eV/Å³,
    "force_relative": |ΔF|max / |F|max, "configurations": n}}``; ``{"skipped": reason}`` for the plugin
    route (or an overlay with a plugin part) when the plugin has not been built and for the pace route (or an overlay
    with a pace part) when LAMMPS lacks ML-PACE.
    """
    periodic = [c for c in configs if c.pbc.all() and np.linalg.det(c.cell) > 0]
    if not periodic:
        return {}
    out = potential(make_batch(periodic, potential.elements, potential.cutoff))
    energy = out["energy"].detach().numpy()
    atomic = out["atomic_energies"].detach().numpy()
    forces = out["forces"].detach().numpy()
    stress = out["stress"].detach().numpy()
    offsets = np.concatenate([[0], np.cumsum([c.num_atoms for c in periodic])])
    report: dict[str, dict[str, Any]] = {}
    for name, route in export.routes.items():
        if "plugin" in route.requires and plugin_library() is None:
            report[name] = {"skipped": f"the LAMMPS plugin is not built; {PLUGIN_HINT}"}
            continue
        if "pace" in route.requires and not lammps_has_package("ML-PACE"):
            report[name] = {"skipped": f"LAMMPS lacks the ML-PACE package (pair_style pace); {BUILD_HINT}"}
            continue
        results = evaluate_in_lammps(periodic, potential.elements, route.pair_commands,
                                     activate_mliappy=name == "unified", directory=export.folder)
        de, da, df, ds = [], [], [], []
        for k, (res, config) in enumerate(zip(results, periodic)):
            sl = slice(offsets[k], offsets[k + 1])
            de.append(abs(res["energy"] - energy[k]) / config.num_atoms)
            da.append(np.abs(res["atomic_energies"] - atomic[sl]).max())
            df.append(np.abs(res["forces"] - forces[sl]).max())
            ds.append(np.abs(res["stress"] - stress[k]).max())
        report[name] = {"energy_per_atom": float(max(de)), "atomic_energy": float(max(da)),
                        "force": float(max(df)), "stress": float(max(ds)),
                        "force_relative": float(max(df) / max(np.abs(forces).max(), 1e-300)),
                        "configurations": len(periodic)}
    return report
