"""Design-matrix rows and descriptor Jacobians from LAMMPS ``compute snap`` / ``compute pace`` (FitSNAP's route).

mliap_torch's autograd rows (:mod:`mliap_torch.fitting.design`) take K backward passes through the
bispectrum (≈ 70 ms per atom at 2Jmax 8 on this machine); LAMMPS' ``compute snap`` computes the same
rows analytically in C++ in about a millisecond per atom, so the mlearn benchmark builds its SNAP and
qSNAP systems here. The rows use the :class:`~mliap_torch.descriptors.bispectrum.Bispectrum`
settings of the model (one element), and come back in the configuration's own frame:

- energy: ``[1, Σ_i f(B_i)/N]`` (eV/atom per unit coefficient);
- forces: ``(3N, 1 + F)`` rows, atom major, ``−∂/∂x`` of the energy features (eV/Å);
- stress: ``(6, 1 + F)`` rows, Voigt ``xx yy zz yz xz xy``, ASE convention (tension positive, eV/Å³).

``f`` is ``B`` (linear) or ``[B, ½B_a², B_aB_b]`` in ``.snapcoeff`` order (quadratic), so
``rows @ coefficients`` are the potential's predictions with :meth:`LinearHead.coefficients` ordering.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from mliap_torch.data.configuration import Configuration, full_to_voigt, voigt_to_full
from mliap_torch.lammps import lammps_cell, start


@dataclass
class SnapRows:
    """Rows of one configuration (columns: constant, then the head's features).

    Attributes:
        energy: (1 + F,) per-atom energy row, eV/atom.
        forces: (3N, 1 + F) force rows, eV/Å, atom major (x, y, z of atom 0, then atom 1, ...).
        stress: (6, 1 + F) stress rows, eV/Å³, ASE convention, Voigt xx yy zz yz xz xy.
    """

    energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray


def joined_columns(first: SnapRows, second: SnapRows) -> SnapRows:
    """Rows of the sum of two linear models of the same configuration: ``first``'s columns (constant
    included), then ``second``'s without its constant (one constant for the sum)."""
    return SnapRows(np.concatenate([first.energy, second.energy[1:]]),
                    np.concatenate([first.forces, second.forces[:, 1:]], axis=1),
                    np.concatenate([first.stress, second.stress[:, 1:]], axis=1))


def _settings(descriptor) -> dict:
    s = descriptor.settings()
    if len(s["elements"]) != 1:
        raise ValueError(f"snap_rows: one element expected, the descriptor has {s['elements']}")
    for flag in ("chemflag", "switchinnerflag", "bnormflag", "wselfallflag"):
        if s.get(flag):
            raise ValueError(f"snap_rows: {flag} is not supported by this row builder")
    return s


def compute_snap_command(descriptor, quadratic: bool) -> str:
    """The ``compute snap`` command for a one-element :class:`Bispectrum`."""
    s = _settings(descriptor)
    radelem = s["radelem"][0] if isinstance(s["radelem"], (list, tuple)) else s["radelem"]
    wj = s["wj"][0] if isinstance(s["wj"], (list, tuple)) else s["wj"]
    return (f"compute desc all snap {s['rcutfac']!r} {s['rfac0']!r} {s['twojmax']} {radelem!r} {wj!r} "
            f"rmin0 {s['rmin0']!r} bzeroflag {int(s['bzeroflag'])} quadraticflag {int(quadratic)} "
            f"switchflag {int(s['switchflag'])}")


def _lammps_arrays(configs: list[Configuration], element: str, cutoff: float, command: str):
    """Yield (config, rotation, global array of the compute ``desc``) per configuration.

    ``command`` defines ``compute desc all ...`` (``compute snap`` or ``compute pace``); the
    configuration is set up in its LAMMPS frame (``x' = x @ rotation``) with ``pair_style zero``.
    """
    import lammps as _lmp

    mass = float(atomic_masses[atomic_numbers[element]])
    lmp = start()
    try:
        for config in configs:
            if not np.all(config.pbc):
                raise ValueError(f"{config.where}: LAMMPS descriptor rows need a fully periodic configuration")
            if set(config.symbols) != {element}:
                raise ValueError(f"{config.where}: elements {sorted(set(config.symbols))}, expected only {element}")
            lower, rot = lammps_cell(np.asarray(config.cell, dtype=np.float64))
            n = config.num_atoms
            lmp.command("clear")
            lmp.commands_list(["units metal", "atom_style atomic", "atom_modify map array sort 0 0.0",
                               "boundary p p p"])
            (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in lower)
            lmp.command(f"region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box")
            lmp.command("create_box 1 box")
            lmp.command(f"mass 1 {mass!r}")
            x = (np.asarray(config.positions, dtype=np.float64) @ rot).reshape(-1)
            lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x.tolist(), None, None, True)
            lmp.commands_list([f"pair_style zero {cutoff!r}", "pair_coeff * *", command,
                               "thermo_style custom step pe c_desc[1][1]", "run 0"])
            a = np.array(lmp.numpy.extract_compute("desc", _lmp.LMP_STYLE_GLOBAL, _lmp.LMP_TYPE_ARRAY),
                         dtype=np.float64)
            yield config, rot, a
    finally:
        lmp.close()


def _rows(config: Configuration, rot: np.ndarray, a: np.ndarray) -> SnapRows:
    """:class:`SnapRows` of a ``compute snap``/``compute pace`` global array (bikflag 0, dgradflag 0)."""
    n = config.num_atoms
    feats = a[:, :-1]                           # last column: reference potential (zero here)
    ncol = feats.shape[1] + 1
    energy = np.zeros(ncol)
    energy[0] = 1.0
    energy[1:] = feats[0] / n
    f_rot = np.zeros((n, 3, ncol))
    f_rot[:, :, 1:] = feats[1:1 + 3 * n].reshape(n, 3, -1)
    forces = np.einsum("nak,ba->nbk", f_rot, rot).reshape(3 * n, ncol)
    virial = feats[1 + 3 * n:1 + 3 * n + 6]     # Σ x ⊗ F per column, Voigt xx yy zz yz xz xy, LAMMPS frame
    full = np.stack([voigt_to_full(virial[:, k]) for k in range(virial.shape[1])])
    full = np.einsum("ab,kbc,dc->kad", rot, full, rot)
    stress = np.zeros((6, ncol))
    stress[:, 1:] = -np.stack([full_to_voigt(m) for m in full], axis=1) / config.volume
    return SnapRows(energy, forces, stress)


def snap_rows(configs: list[Configuration], descriptor, quadratic: bool) -> list[SnapRows]:
    """Rows of every configuration (fully periodic, one element) from LAMMPS ``compute snap``.

    Args:
        configs: configurations of the descriptor's single element.
        descriptor: a one-element :class:`~mliap_torch.descriptors.bispectrum.Bispectrum`.
        quadratic: add the quadratic features (qSNAP).
    Returns:
        One :class:`SnapRows` per configuration, in the configuration's frame.
    """
    element = _settings(descriptor)["elements"][0]
    command = compute_snap_command(descriptor, quadratic)
    return [_rows(c, rot, a) for c, rot, a in _lammps_arrays(list(configs), element, descriptor.cutoff, command)]


def pace_rows(configs: list[Configuration], yace: str | Path, element: str, cutoff: float) -> list[SnapRows]:
    """Rows of a linear ACE model (``E_i = β0 + β·B_i``, B the functions of the C-tilde file ``yace``)
    from LAMMPS ``compute pace``; same layout as :func:`snap_rows`."""
    command = f"compute desc all pace {Path(yace).resolve()} 0 0"
    return [_rows(c, rot, a) for c, rot, a in _lammps_arrays(list(configs), element, cutoff, command)]
