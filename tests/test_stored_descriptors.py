"""Training on stored descriptors and pair Jacobians gives what evaluating the descriptor gives."""
from __future__ import annotations

import pytest
import torch

from lammps_models import pace_potential, random_potential, random_structures
from mliap_torch.data.batch import collate, process_configuration
from mliap_torch.descriptors.ace import ACE
from mliap_torch.models.heads import MLPHead
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL
from mliap_torch.training.precompute import attach_descriptor_jacobians, descriptor_is_frozen


def ace_potential() -> Potential:
    torch.manual_seed(2)
    descriptor = ACE(["Cu", "Ni"], nradmax_by_orders=[4, 2, 1], lmax_by_orders=[0, 2, 1], rcut=4.6)
    return Potential(descriptor, MLPHead(2, descriptor.num_descriptors, hidden=(8,)),
                     ZBL(["Cu", "Ni"], z=[29.0, 28.0], inner=1.5, outer=2.2)).to(torch.float64)


@pytest.mark.parametrize("kind", ["linear+zbl", "quadratic", "mlp+zbl", "ace mlp+zbl", "ace pace"])
def test_stored_jacobian_path_equals_descriptor_path(kind):
    if kind == "ace pace":
        potential = pace_potential()
    elif kind.startswith("ace"):
        potential = ace_potential()
    else:
        head = kind.split("+")[0]
        potential = random_potential(["Cu", "Ni"], head, zbl=kind.endswith("zbl"), seed=5)
    assert descriptor_is_frozen(potential)
    configs = random_structures(["Cu", "Ni"], 3, seed=9)
    items = [process_configuration(c, potential.elements, potential.cutoff, config_id=k) for k, c in enumerate(configs)]
    direct_batch = collate(items)
    attach_descriptor_jacobians(items[:2], potential, chunk_atoms=20, progress=False)   # two chunks
    attach_descriptor_jacobians(items[2:], potential, progress=False)
    stored_batch = collate(items)
    assert direct_batch.descriptors is None and stored_batch.descriptor_jacobian.shape[0] == len(stored_batch.pair_i)

    results = []
    for batch in (direct_batch, stored_batch):
        potential.zero_grad()
        out = potential(batch, create_graph=True)
        loss = (out["forces"] ** 2).sum() + 1e3 * (out["stress"] ** 2).sum() + out["energy"].sum() ** 2
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in potential.head.parameters() if p.grad is not None])
        results.append(({k: v.detach() for k, v in out.items()}, grads))
    (direct, g_direct), (stored, g_stored) = results
    for key in ("energy", "atomic_energies", "forces", "stress"):
        torch.testing.assert_close(stored[key], direct[key], rtol=1e-10, atol=1e-12)
    assert g_direct.abs().max() > 0
    torch.testing.assert_close(g_stored, g_direct, rtol=1e-9, atol=1e-12)


def test_trainable_descriptor_ignores_stored_values():
    """A trained descriptor must not use stale stored descriptors."""
    potential = random_potential(["Cu", "Ni"], "mlp", zbl=False, seed=3)
    configs = random_structures(["Cu", "Ni"], 1, seed=1)
    items = [process_configuration(configs[0], potential.elements, potential.cutoff)]
    attach_descriptor_jacobians(items, potential, progress=False)
    batch = collate(items)
    batch.descriptors = torch.zeros_like(batch.descriptors)          # deliberately wrong stored values
    reference = potential(collate([process_configuration(configs[0], potential.elements, potential.cutoff)]))
    trainable = Potential(potential.descriptor.__class__(**potential.descriptor.settings(), trainable=["wj"]),
                          potential.head, None).to(torch.float64)
    assert not descriptor_is_frozen(trainable)
    out = trainable(batch)
    torch.testing.assert_close(out["forces"].detach(), reference["forces"].detach(), rtol=1e-10, atol=1e-12)
