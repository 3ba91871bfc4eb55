"""Physical sanity checks of configurations, run where their neighbour lists are built.

Data that parse fine can still be nonsense for a potential: two atoms at the same position (a
duplicated line), positions in the wrong unit, a periodic cell whose vectors are linearly dependent,
or a cell so much smaller than the cutoff that every atom sees thousands of periodic images (the
neighbour list and the descriptors then take all memory). Each check raises a
:class:`~mliap_torch.errors.SanityError` that names the file, the configuration, the field and the
setting that turns the check off.

Limits: :class:`SanityLimits` (command line: ``data.checks.min_distance``,
``data.checks.max_pairs_per_atom``; ``null`` turns a check off). The defaults pass every data set in
``../shared/data`` (closest pair 1.77 Å, at most ~90 pairs per atom within 6 Å) and the built-in set.
The limits in force are those of the innermost :func:`sanity_limits` block, else the defaults.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from ..errors import SanityError
from .configuration import Configuration

PAIR_LIST_BYTES = 40
"""Bytes per pair of a neighbour list (pair_i, pair_j: int64; shifts: 3 × int64)."""
COLLINEAR_TOLERANCE = 1e-8
"""A periodic cell whose normalised volume |det| / Π|a_k| is below this counts as collapsed."""


@dataclass(frozen=True)
class SanityLimits:
    """Thresholds of the sanity checks; ``None`` turns a check off.

    Attributes:
        min_distance: smallest allowed interatomic distance, Å.
        max_pairs_per_atom: largest allowed mean number of neighbours within the cutoff per atom.
    """

    min_distance: float | None = 0.5
    max_pairs_per_atom: int | None = 1000


DEFAULT_LIMITS = SanityLimits()
_current: ContextVar[SanityLimits] = ContextVar("mliap_torch_sanity_limits", default=DEFAULT_LIMITS)


@contextmanager
def sanity_limits(limits: SanityLimits) -> Iterator[SanityLimits]:
    """Use ``limits`` for every configuration processed inside the ``with`` block."""
    token = _current.set(limits)
    try:
        yield limits
    finally:
        _current.reset(token)


def current_limits() -> SanityLimits:
    """The limits in force (innermost :func:`sanity_limits`, else :data:`DEFAULT_LIMITS`)."""
    return _current.get()


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.0f} TB"


def _too_many_pairs(config: Configuration, per_atom: float, cutoff: float, limit: int, estimated: bool) -> SanityError:
    lengths = ", ".join(f"{x:.2f}" for x in np.linalg.norm(config.cell, axis=1))
    total = per_atom * config.num_atoms
    what = "an estimated" if estimated else ""
    return SanityError(
        f"{config.where} field 'cell': {what} {per_atom:.0f} neighbour pairs per atom within the {cutoff:g} Å "
        f"cutoff, more than data.checks.max_pairs_per_atom = {limit}. The cell (vector lengths {lengths} Å) is "
        f"far smaller than the cutoff or too dense, so every atom sees many periodic images: the neighbour list "
        f"alone would take {_human_bytes(total * PAIR_LIST_BYTES)} and the descriptors several kB per pair. "
        f"Check the cell and its units, or raise the limit (data.checks.max_pairs_per_atom=null turns the check "
        f"off).".replace("  ", " "))


def check_cell(config: Configuration, cutoff: float, limits: SanityLimits | None = None) -> None:
    """Before the neighbour list: periodic cell vectors independent; estimated pairs per atom within limits.

    The estimate for fully periodic cells is the mean density times the cutoff sphere,
    ``natoms / V · 4/3 π rc³``, which is what the neighbour list gives for homogeneous matter.
    """
    limits = limits or current_limits()
    pbc = np.asarray(config.pbc, dtype=bool)
    if not pbc.any():
        return
    vectors = config.cell[pbc]
    norms = np.linalg.norm(vectors, axis=1)
    if np.any(norms == 0):
        raise SanityError(f"{config.where} field 'cell': periodic direction(s) {np.flatnonzero(pbc).tolist()} have "
                          f"a zero cell vector; give the cell or make those directions non-periodic.")
    gram = np.linalg.det(vectors @ vectors.T)
    normalised = np.sqrt(max(gram, 0.0)) / np.prod(norms)
    if normalised < COLLINEAR_TOLERANCE:
        raise SanityError(f"{config.where} field 'cell': the periodic cell vectors {vectors.tolist()} are linearly "
                          f"dependent (zero volume); the cell is wrong in the file.")
    if limits.max_pairs_per_atom is not None and pbc.all():
        estimate = config.num_atoms / config.volume * 4.0 / 3.0 * np.pi * cutoff ** 3
        if estimate > limits.max_pairs_per_atom:
            raise _too_many_pairs(config, estimate, cutoff, limits.max_pairs_per_atom, estimated=True)


def check_pairs(config: Configuration, cutoff: float, pair_i: np.ndarray, pair_j: np.ndarray, shifts: np.ndarray,
                limits: SanityLimits | None = None) -> None:
    """After the neighbour list: pairs per atom and the closest interatomic distance within limits.

    Args:
        pair_i: (npairs,) atom indices, first atom of each pair.
        pair_j: (npairs,) atom indices, second atom of each pair.
        shifts: (npairs, 3) integer cell shifts.
    """
    limits = limits or current_limits()
    natoms = config.num_atoms
    if limits.max_pairs_per_atom is not None and natoms and len(pair_i) / natoms > limits.max_pairs_per_atom:
        raise _too_many_pairs(config, len(pair_i) / natoms, cutoff, limits.max_pairs_per_atom, estimated=False)
    if limits.min_distance is None or len(pair_i) == 0:
        return
    rij = config.positions[pair_j] - config.positions[pair_i] + shifts @ config.cell
    distances = np.linalg.norm(rij, axis=1)
    closest = int(np.argmin(distances))
    if distances[closest] < limits.min_distance:
        i, j = int(pair_i[closest]), int(pair_j[closest])
        raise SanityError(
            f"{config.where} field 'positions': atoms {min(i, j)} and {max(i, j)} are {distances[closest]:.3f} Å "
            f"apart, closer than data.checks.min_distance = {limits.min_distance} Å (a duplicated atom, or "
            f"positions in the wrong unit?). Fix the data, or lower the limit (data.checks.min_distance=null "
            f"turns the check off).")
