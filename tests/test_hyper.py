"""Hyperparameter training: the bilevel gradient against finite differences of the bilevel objective,
joint and bilevel descent lowering their losses."""
from __future__ import annotations

import numpy as np
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.trainable import TrainableBispectrum
from mliap_torch.models.heads import LinearHead, QuadraticHead
from mliap_torch.models.potential import Potential
from mliap_torch.training.hyper import (
    bilevel_gradient,
    bilevel_objective,
    descriptor_parameters,
    make_batches,
    train_bilevel,
    train_joint,
)


def _configs(n: int, seed: int) -> list[Configuration]:
    """Strained, rattled fcc Cu cells labelled by ASE's EMT."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6 * (1 + 0.03 * rng.normal()), cubic=True).repeat((2, 1, 1))
        atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
        atoms.calc = EMT()
        out.append(Configuration(positions=atoms.positions.copy(), cell=np.array(atoms.cell), pbc=np.array([True] * 3),
                                 symbols=np.array(atoms.get_chemical_symbols()), energy=atoms.get_potential_energy(),
                                 forces=atoms.get_forces(), stress=atoms.get_stress()))
    return out


def _potential(head_type=LinearHead) -> Potential:
    desc = TrainableBispectrum(["Cu"], 2, rcutfac=2.0, radelem=[0.95], wj=[1.0], rfac0=0.95, max_cutoff=4.1,
                               bzeroflag=False)
    return Potential(desc, head_type(1, desc.num_descriptors))


def _check_bilevel_gradient(pot: Potential, ridge: float) -> None:
    train, val = make_batches(pot, _configs(4, 0)), make_batches(pot, _configs(3, 1))
    loss, _, _ = bilevel_gradient(pot, train, val, ridge=ridge)
    assert abs(loss - bilevel_objective(pot, train, val, ridge=ridge)) <= 1e-10 * loss
    h = 1e-5
    for p in descriptor_parameters(pot):
        with torch.no_grad():
            p += h
        lp = bilevel_objective(pot, train, val, ridge=ridge)
        with torch.no_grad():
            p -= 2 * h
        lm = bilevel_objective(pot, train, val, ridge=ridge)
        with torch.no_grad():
            p += h
        fd = (lp - lm) / (2 * h)
        assert abs(float(p.grad) - fd) <= 1e-6 * abs(fd), (float(p.grad), fd)


def test_bilevel_gradient_matches_finite_differences_linear():
    _check_bilevel_gradient(_potential(), ridge=1e-6)


def test_bilevel_gradient_matches_finite_differences_quadratic():
    _check_bilevel_gradient(_potential(QuadraticHead), ridge=1e-3)


def test_bilevel_descent_lowers_validation_loss_and_sets_exact_head():
    pot = _potential()
    train, val = make_batches(pot, _configs(6, 0)), make_batches(pot, _configs(4, 1))
    result = train_bilevel(pot, train, val, steps=3, lr=0.2, ridge=1e-6)
    losses = [r.loss for r in result.history]
    assert min(losses[1:]) < losses[0]
    # the head is the exact solution at the best step: refitting cannot improve the validation loss
    assert abs(bilevel_objective(pot, train, val, ridge=1e-6) - min(losses)) <= 1e-9 * min(losses)


def test_joint_descent_moves_hyperparameters_and_lowers_loss():
    pot = _potential()
    batches = make_batches(pot, _configs(4, 2))
    train_bilevel(pot, batches, batches, steps=0)      # start from the exact head
    start = [p.detach().clone() for p in descriptor_parameters(pot)]
    result = train_joint(pot, batches, steps=6, lr=1e-5, hyper_lr=1e-3, weights=(10.0, 1.0, 10.0))
    assert result.history[-1].loss < 0.995 * result.history[0].loss
    assert all(not torch.equal(a, p.detach()) for a, p in zip(start, descriptor_parameters(pot)))
