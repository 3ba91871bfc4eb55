"""Evaluate configurations with a LAMMPS pair style, in mliap_torch's units and conventions.

Used to check exported models against torch: LAMMPS gets each configuration in its own (rotated,
lower-triangular) cell, and its energies, per-atom energies, forces and stress come back rotated
into the configuration's frame, with stress in ASE's convention (tension positive, eV/Å³).
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from .data.configuration import Configuration, full_to_voigt, voigt_to_full
from .lammps import atom_order, create_atoms_in_lammps, start

LAMMPS_METAL_NKTV2P = 1.6021765e6
"""LAMMPS' conversion of eV/Å³ to bar in metal units (its ``force->nktv2p``; not the CODATA 2018 value)."""


def evaluate_in_lammps(configs: Sequence[Configuration], elements: Sequence[str], pair_commands: Sequence[str],
                       activate_mliappy: bool = False, directory: str | Path | None = None) -> list[dict[str, np.ndarray]]:
    """Energies, per-atom energies, forces and stress of fully periodic configurations from LAMMPS.

    Args:
        configs: configurations (fully periodic, right-handed cells).
        elements: element symbols; LAMMPS type k+1 is ``elements[k]``.
        pair_commands: the ``pair_style``/``pair_coeff`` lines of the model.
        activate_mliappy: call ``lammps.mliap.activate_mliappy`` (needed for ``mliap unified`` from Python).
        directory: folder the pair commands' file names are relative to (default: the current one).

    Returns:
        One dict per configuration: ``energy`` eV, ``atomic_energies`` (natoms,) eV,
        ``forces`` (natoms, 3) eV/Å, ``stress`` (6,) eV/Å³ (ASE convention, Voigt xx yy zz yz xz xy).
    """
    with contextlib.chdir(directory or "."):
        return [_evaluate_one(config, elements, pair_commands, activate_mliappy) for config in configs]


def _evaluate_one(config: Configuration, elements: Sequence[str], pair_commands: Sequence[str],
                  activate_mliappy: bool) -> dict[str, np.ndarray]:
    import lammps

    type_of = {e: k + 1 for k, e in enumerate(elements)}
    if not config.pbc.all():
        raise ValueError(f"{config.where}: only fully periodic configurations can be evaluated in LAMMPS here")
    unknown = sorted(set(config.symbols) - set(type_of))
    if unknown:
        raise ValueError(f"{config.where}: elements {unknown} are not among {list(elements)}")
    lmp = start()
    try:
        if activate_mliappy:
            import lammps.mliap

            lammps.mliap.activate_mliappy(lmp)
        masses = [float(atomic_masses[atomic_numbers[e]]) for e in elements]
        rot = create_atoms_in_lammps(lmp, config.positions, config.cell, [type_of[s] for s in config.symbols],
                                     masses)
        lmp.commands_list(list(pair_commands))
        lmp.commands_list(["compute peatom all pe/atom", "compute virial all pressure NULL virial",
                           "thermo_style custom step pe", "run 0"])
        order = atom_order(lmp)
        forces = np.array(lmp.numpy.extract_atom("f")[: config.num_atoms])[order] @ rot.T
        peatom = np.array(lmp.numpy.extract_compute("peatom", lammps.LMP_STYLE_ATOM, lammps.LMP_TYPE_VECTOR))
        p = np.array(lmp.numpy.extract_compute("virial", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR))
        # LAMMPS' pressure vector: pxx pyy pzz pxy pxz pyz (bar, compression positive).
        p_voigt = np.array([p[0], p[1], p[2], p[5], p[4], p[3]])
        stress = full_to_voigt(rot @ (-voigt_to_full(p_voigt) / LAMMPS_METAL_NKTV2P) @ rot.T)
        return {"energy": float(lmp.get_thermo("pe")), "atomic_energies": peatom[: config.num_atoms][order],
                "forces": forces, "stress": stress}
    finally:
        lmp.close()
