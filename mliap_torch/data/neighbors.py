"""Neighbor pair lists (from vesin) and the differentiable pair vectors built from them."""
from __future__ import annotations

import numpy as np
import torch
from vesin_torch import NeighborList


def neighbor_pairs(positions: np.ndarray | torch.Tensor, cell: np.ndarray | torch.Tensor,
                   pbc: np.ndarray | torch.Tensor, cutoff: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full neighbor list (each pair in both directions) of one structure.

    Args:
        positions: (natoms, 3) Å.
        cell: (3, 3) cell vectors as rows, Å. Ignored along non-periodic directions.
        pbc: (3,) periodic flags, or one flag for all directions.
        cutoff: neighbor cutoff, Å. Pairs with distance < cutoff are listed; a cutoff larger than
            the cell is handled (several periodic images of the same atom appear).

    Returns:
        pair_i, pair_j: (npairs,) int64 atom indices; shifts: (npairs, 3) int64 cell shifts, such that
        ``r_ij = x[j] - x[i] + shifts @ cell``. An atom is never paired with itself in the same image.
    """
    pos = torch.as_tensor(np.asarray(positions) if not torch.is_tensor(positions) else positions,
                          dtype=torch.float64).detach().cpu().contiguous()
    box = torch.as_tensor(np.asarray(cell) if not torch.is_tensor(cell) else cell,
                          dtype=torch.float64).detach().cpu().reshape(3, 3).contiguous()
    flags = pbc.detach().cpu().numpy() if torch.is_tensor(pbc) else pbc
    periodic = torch.as_tensor(np.broadcast_to(np.asarray(flags, dtype=bool), (3,)).copy())
    if len(pos) == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty, torch.zeros((0, 3), dtype=torch.int64)
    if not periodic.any():
        box = torch.zeros((3, 3), dtype=torch.float64)
    elif bool((periodic & (box.norm(dim=1) == 0)).any()):
        raise ValueError("a periodic direction has a zero cell vector")
    nl = NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s = nl.compute(points=pos, box=box, periodic=periodic, quantities="ijS", copy=True)
    return i.to(torch.int64), j.to(torch.int64), s.to(torch.int64)


def pair_vectors(positions: torch.Tensor, cell: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor,
                 shifts: torch.Tensor, pair_config: torch.Tensor | None = None) -> torch.Tensor:
    """Pair vectors ``r_ij = x[j] - x[i] + shifts @ cell``, differentiable w.r.t. positions and cell.

    Args:
        positions: (natoms, 3) Å.
        cell: (3, 3) or (nconfigs, 3, 3) Å, rows are cell vectors.
        pair_i: (npairs,) atom indices, first atom of each pair.
        pair_j: (npairs,) atom indices, second atom of each pair.
        shifts: (npairs, 3) integer cell shifts (any dtype).
        pair_config: (npairs,) configuration index of each pair; required when ``cell`` is batched.

    Returns:
        rij: (npairs, 3) Å.
    """
    shifts = shifts.to(positions.dtype)
    if cell.dim() == 2:
        offset = shifts @ cell
    else:
        offset = torch.einsum("pa,pab->pb", shifts, cell[pair_config])
    return positions[pair_j] - positions[pair_i] + offset
