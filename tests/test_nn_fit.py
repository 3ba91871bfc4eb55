"""Network training on stored descriptors and Jacobians (the mlearn benchmark's SNAP+NN and ACE+NN)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import torch

from mlearn_study import nn_fit
from mlearn_study.nn_fit import JacobianSet, train_mlp_head


def _jacobian_set(configs: int = 12, atoms: int = 3, k: int = 4, seed: int = 0) -> JacobianSet:
    """Random descriptors and Jacobian blocks of ``configs`` configurations of ``atoms`` atoms (every
    ordered pair of atoms of a configuration, itself included), labels from a smooth function of B."""
    g = torch.Generator().manual_seed(seed)
    natoms = configs * atoms
    B = torch.randn(natoms, k, generator=g)
    local = torch.cartesian_prod(torch.arange(atoms), torch.arange(atoms))
    offsets = torch.arange(configs).repeat_interleave(len(local)) * atoms
    pair_i, pair_j = local[:, 0].repeat(configs) + offsets, local[:, 1].repeat(configs) + offsets
    atom_config = torch.arange(configs).repeat_interleave(atoms)
    energy = torch.zeros(configs).index_add(0, atom_config, torch.sin(B).sum(1)) / atoms
    return JacobianSet(B=B, species=torch.zeros(natoms, dtype=torch.long), pair_i=pair_i, pair_j=pair_j,
                       dB=0.1 * torch.randn(len(pair_i), 3, k, generator=g), atom_config=atom_config,
                       num_atoms=torch.full((configs,), atoms), energy=energy, forces=torch.randn(natoms, 3, generator=g))


def test_training_uses_its_whole_time_budget_after_a_slow_first_epoch(monkeypatch):
    """A first epoch that takes half the budget (another process busy) must not fix the epoch count: the
    learning rate follows the elapsed fraction and training goes on until the budget is spent."""
    budget = 1.0
    start = time.perf_counter()
    calls = []

    def clock() -> float:
        calls.append(None)
        return time.perf_counter() + (0.5 * budget if len(calls) > 1 else 0.0)   # the first epoch "took" 0.5 s

    monkeypatch.setattr(nn_fit, "time", SimpleNamespace(perf_counter=clock))
    data = _jacobian_set()
    head, info = train_mlp_head(data.subset(torch.arange(10)), data.subset(torch.arange(10, 12)), hidden=(8,),
                                minutes=budget / 60, energy_weight=10.0)
    assert info.epochs > 5 and len(info.history) == info.epochs
    assert info.seconds >= budget and time.perf_counter() - start >= 0.5 * budget
    assert info.history[-1][0] < info.history[0][0]           # it trained
    assert next(head.parameters()).dtype == torch.float64
