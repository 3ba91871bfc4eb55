"""Train an MLP head on precomputed descriptors and their position Jacobians (energies + forces).

With ``E = Σ_i E_i(B_i)`` the forces are ``F_j = Σ_p dB_p · ∂E_{i(p)}/∂B_{i(p)}`` over the sparse
Jacobian blocks ``dB_p = −∂B_i/∂x_j`` (:class:`~mlearn_study.snap_rows.SnapJacobian`), so an
epoch costs the MLP and one contraction, not a descriptor evaluation: this is how FitSNAP trains its
networks. The loss is ``λ_E · mean((ΔE/N)²) + mean(ΔF²)`` (eV/atom, eV/Å); the weights of the epoch
with the lowest validation loss are kept.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mliap_torch.data.configuration import Configuration
from mliap_torch.models.heads import MLPHead

from .snap_rows import SnapJacobian


@dataclass
class JacobianSet:
    """Descriptors, Jacobian blocks and labels of a list of configurations, concatenated.

    Attributes:
        B: (natoms, K).  species: (natoms,) all zero (one element).
        pair_i, pair_j: (P,) global atom indices of the Jacobian blocks.  dB: (P, 3, K).
        atom_config: (natoms,) configuration of each atom.  num_atoms: (nconfigs,).
        energy: (nconfigs,) eV/atom.  forces: (natoms, 3) eV/Å.
    """

    B: torch.Tensor
    species: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    dB: torch.Tensor
    atom_config: torch.Tensor
    num_atoms: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor

    @classmethod
    def build(cls, configs: Sequence[Configuration], jacobians: Sequence[SnapJacobian],
              dtype: torch.dtype = torch.float64) -> JacobianSet:
        offsets = np.cumsum([0] + [c.num_atoms for c in configs])
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
        i = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.long)  # noqa: E731
        natoms = offsets[-1]
        return cls(B=t(np.concatenate([j.B for j in jacobians])), species=torch.zeros(natoms, dtype=torch.long),
                   pair_i=i(np.concatenate([j.atom_i + o for j, o in zip(jacobians, offsets)])),
                   pair_j=i(np.concatenate([j.atom_j + o for j, o in zip(jacobians, offsets)])),
                   dB=t(np.concatenate([j.dB for j in jacobians])),
                   atom_config=i(np.repeat(np.arange(len(configs)), [c.num_atoms for c in configs])),
                   num_atoms=i([c.num_atoms for c in configs]),
                   energy=t([c.energy / c.num_atoms for c in configs]),
                   forces=t(np.concatenate([np.asarray(c.forces) for c in configs])))

    def subset(self, configs: torch.Tensor) -> JacobianSet:
        """The configurations ``configs`` (indices), renumbered."""
        keep_c = torch.zeros(len(self.num_atoms), dtype=torch.bool)
        keep_c[configs] = True
        keep_a = keep_c[self.atom_config]
        new_atom = torch.cumsum(keep_a.long(), 0) - 1
        new_config = torch.cumsum(keep_c.long(), 0) - 1
        keep_p = keep_a[self.pair_i]
        return JacobianSet(B=self.B[keep_a], species=self.species[keep_a], pair_i=new_atom[self.pair_i[keep_p]],
                           pair_j=new_atom[self.pair_j[keep_p]], dB=self.dB[keep_p],
                           atom_config=new_config[self.atom_config[keep_a]], num_atoms=self.num_atoms[keep_c],
                           energy=self.energy[keep_c], forces=self.forces[keep_a])


def predict(head: MLPHead, data: JacobianSet, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(energies per atom (nconfigs,) eV/atom, forces (natoms, 3) eV/Å) of ``head`` on ``data``."""
    B = data.B.detach().requires_grad_(True)
    with torch.enable_grad():
        atomic = head(B, data.species)
        (g,) = torch.autograd.grad(atomic.sum(), B, create_graph=create_graph)
    contrib = torch.einsum("pak,pk->pa", data.dB, g[data.pair_i])
    forces = torch.zeros_like(data.forces).index_add(0, data.pair_j, contrib)
    energy = torch.zeros_like(data.energy).index_add(0, data.atom_config, atomic) / data.num_atoms
    return energy, forces


@dataclass
class NNTraining:
    """Settings and outcome of :func:`train_mlp_head` (losses per epoch, the best epoch, seconds)."""

    hidden: tuple[int, ...]
    energy_weight: float
    lr: float
    batch_configs: int
    epochs: int
    best_epoch: int
    best_val_loss: float
    seconds: float
    history: list[tuple[float, float]]


def _loss(head: MLPHead, data: JacobianSet, energy_weight: float, create_graph: bool) -> torch.Tensor:
    e, f = predict(head, data, create_graph=create_graph)
    return energy_weight * ((e - data.energy) ** 2).mean() + ((f - data.forces) ** 2).mean()


def train_mlp_head(train: JacobianSet, val: JacobianSet, hidden: Sequence[int] = (64, 64), energy_weight: float = 1000.0,
                   lr: float = 3e-3, batch_configs: int = 4, minutes: float = 3.0, max_epochs: int = 5000,
                   seed: int = 0, linear_start: torch.Tensor | None = None) -> tuple[MLPHead, NNTraining]:
    """Adam with a cosine learning-rate decay over a wall-time budget (``minutes``; at least two epochs, at
    most ``max_epochs``): the rate follows the elapsed fraction of the budget, so the whole budget is
    trained whatever one epoch costs (an epoch count fixed from a first epoch slowed by another process
    once cut a 4-minute budget to 40 s). Keeps the best validation epoch. Descriptor standardisation and
    the energy offset come from ``train``; the minibatches (``batch_configs`` configurations) are drawn
    once and visited in a new order every epoch. Trains in the data's dtype (float32 is about twice as fast); returns a float64 head.

    With ``linear_start`` ((1, 1 + K) ``[β0, β]`` of a linear fit) the head has a linear term set to
    that fit and zero network output (:meth:`MLPHead.start_from_linear`); the start competes as
    "epoch -1" for the best validation loss, so the result is never worse on validation."""
    torch.manual_seed(seed)
    K = train.B.shape[1]
    head = MLPHead(1, K, hidden=tuple(hidden), linear_term=linear_start is not None).to(train.B.dtype)
    head.set_scaling(train.B.mean(0), train.B.std(0))
    with torch.no_grad():
        if linear_start is not None:
            head.start_from_linear(linear_start)
        else:
            head.offset.fill_(float(train.energy.mean()))
            head.networks[0][-1].weight.mul_(0.1)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    n = len(train.num_atoms)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    start_loss = float(_loss(head, val, energy_weight, create_graph=False).detach()) if linear_start is not None else math.inf
    best = (start_loss, -1, {k: v.clone() for k, v in head.state_dict().items()})
    history: list[tuple[float, float]] = []
    budget = 60 * minutes
    epoch = 0
    members = torch.randperm(n, generator=gen)
    batches = [train.subset(members[start:start + batch_configs]) for start in range(0, n, batch_configs)]
    while epoch < max_epochs:
        total = 0.0
        for b in torch.randperm(len(batches), generator=gen).tolist():
            batch = batches[b]
            opt.zero_grad()
            loss = _loss(head, batch, energy_weight, create_graph=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch.num_atoms)
        val_loss = float(_loss(head, val, energy_weight, create_graph=False).detach())
        history.append((total / n, val_loss))
        if val_loss < best[0]:
            best = (val_loss, epoch, {k: v.clone() for k, v in head.state_dict().items()})
        epoch += 1
        elapsed = (time.perf_counter() - t0) / budget
        if elapsed >= 1 and epoch >= 2:
            break
        for group in opt.param_groups:
            group["lr"] = 1e-5 + 0.5 * (lr - 1e-5) * (1 + math.cos(math.pi * min(elapsed, 1.0)))
    head.load_state_dict(best[2])
    head = head.to(torch.float64)
    info = NNTraining(tuple(hidden), energy_weight, lr, batch_configs, epoch, best[1], best[0],
                      time.perf_counter() - t0, history)
    return head, info
