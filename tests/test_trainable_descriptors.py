"""Trainable descriptor hyperparameters: gradients against finite differences, constraints, settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.descriptors.trainable import TrainableACE, TrainableBispectrum, frozen_copy
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.io import load, save
from mliap_torch.models.potential import Potential

ELEMENTS = ["Mo", "Nb"]


def _configuration(seed: int = 0) -> Configuration:
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat((2, 1, 1))
    rng = np.random.default_rng(seed)
    positions = atoms.positions + rng.normal(scale=0.12, size=atoms.positions.shape)
    symbols = np.array(["Mo", "Nb", "Nb", "Mo"])
    return Configuration(positions=positions, cell=np.array(atoms.cell), pbc=np.array([True] * 3), symbols=symbols)


def _bispectrum(**kw) -> TrainableBispectrum:
    return TrainableBispectrum(ELEMENTS, twojmax=4, rcutfac=2.3, radelem=[0.98, 0.9], wj=[1.0, 0.7], rfac0=0.95,
                               max_cutoff=4.6, **kw)


def _ace(**kw) -> TrainableACE:
    return TrainableACE(ELEMENTS, nradmax_by_orders=[3, 2, 1], lmax_by_orders=[0, 2, 1], rcut=[[4.2, 4.0], [4.0, 3.8]],
                        dcut=0.2, max_cutoff=4.6, **kw)


def _potential(descriptor) -> Potential:
    torch.manual_seed(0)
    head = LinearHead(len(ELEMENTS), descriptor.num_descriptors)
    with torch.no_grad():
        head.weight.normal_()
        head.bias.normal_()
    return Potential(descriptor, head)


def _loss(potential: Potential, batch) -> torch.Tensor:
    """Energy + force + stress loss against fixed pseudo-labels (exercises the double backward)."""
    out = potential(batch, forces=True, stress=True, create_graph=True)
    g = torch.Generator().manual_seed(1)
    fl = torch.randn(out["forces"].shape, generator=g, dtype=torch.float64)
    sl = torch.randn(out["stress"].shape, generator=g, dtype=torch.float64)
    return (out["energy"] ** 2).sum() + ((out["forces"] - fl) ** 2).sum() + ((out["stress"] - sl) ** 2).sum() * 1e3


def _check_fd(potential: Potential, names: list[str]) -> None:
    batch = make_batch([_configuration()], ELEMENTS, potential.cutoff)
    params = {n: getattr(potential.descriptor, n) for n in names}
    loss = _loss(potential, batch)
    grads = torch.autograd.grad(loss, list(params.values()))
    h = 1e-5
    for (name, p), g in zip(params.items(), grads):
        flat = p.data.view(-1)
        for k in range(flat.numel()):
            with torch.no_grad():
                p.requires_grad_(False)
                flat[k] += h
            lp = _loss(potential, batch).item()
            with torch.no_grad():
                flat[k] -= 2 * h
            lm = _loss(potential, batch).item()
            with torch.no_grad():
                flat[k] += h
                p.requires_grad_(True)
            fd = (lp - lm) / (2 * h)
            assert abs(g.view(-1)[k].item() - fd) <= 1e-6 * max(abs(fd), 1e-3), (name, k, g.view(-1)[k].item(), fd)


def test_bispectrum_hypergradients_match_finite_differences():
    _check_fd(_potential(_bispectrum()), ["wj_raw", "radelem_raw", "rfac0_raw"])


def test_ace_hypergradients_match_finite_differences():
    ace = _ace()
    with torch.no_grad():   # move crad away from the delta initialisation so every entry matters
        ace.crad.add_(0.3 * torch.randn(ace.crad.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    potential = _potential(ace)
    batch = make_batch([_configuration()], ELEMENTS, potential.cutoff)
    loss = _loss(potential, batch)
    (g_crad,) = torch.autograd.grad(loss, [ace.crad])
    # FD on every rcut entry and on a few crad entries
    _check_fd(potential, ["rcut_raw"])
    h = 1e-5
    flat = ace.crad.data.view(-1)
    for k in torch.nonzero(g_crad.view(-1)).squeeze(1)[:6].tolist():
        flat[k] += h
        lp = _loss(potential, batch).item()
        flat[k] -= 2 * h
        lm = _loss(potential, batch).item()
        flat[k] += h
        fd = (lp - lm) / (2 * h)
        assert abs(g_crad.view(-1)[k].item() - fd) <= 1e-6 * max(abs(fd), 1e-3)


def test_constraints_hold_for_any_raw_values():
    desc = _bispectrum()
    with torch.no_grad():
        desc.wj_raw.fill_(-40.0)
        desc.radelem_raw.copy_(torch.tensor([50.0, -50.0]))
        desc.rfac0_raw.fill_(20.0)
    h = {k: v.detach() for k, v in desc.hyperparameters().items()}
    assert bool((h["wj"] > 0).all())
    assert 0 < float(h["rfac0"]) < 1
    assert float(desc.pair_cutoffs().max()) <= desc.max_cutoff
    assert desc.cutoff == desc.max_cutoff
    with pytest.raises(ValueError, match="strictly inside"):
        TrainableBispectrum(["Mo"], 4, rcutfac=4.6, radelem=[0.5], wj=[1.0], max_cutoff=4.6)
    with pytest.raises(ValueError, match="cannot train"):
        TrainableBispectrum(["Mo"], 4, rcutfac=4.6, radelem=[0.5], wj=[1.0], trainable=["rcutfac"])


def test_settings_carry_learned_values_and_load_rebuilds_them(tmp_path):
    desc = _bispectrum()
    ace = _ace()
    with torch.no_grad():
        desc.wj_raw.add_(0.3)
        desc.radelem_raw.sub_(0.4)
        desc.rfac0_raw.sub_(0.5)
        ace.rcut_raw.sub_(0.3)
    for d in (desc, ace):
        pot = _potential(d)
        batch = make_batch([_configuration(3)], ELEMENTS, pot.cutoff)
        ref = pot(batch)
        path = save(pot, tmp_path / f"{d.type_name}.pt")
        loaded = load(path)
        assert type(loaded.descriptor) in (Bispectrum, type(d).__mro__[1])
        out = loaded(batch)
        torch.testing.assert_close(out["energy"], ref["energy"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out["forces"], ref["forces"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(frozen_copy(pot)(batch)["stress"], ref["stress"], rtol=1e-12, atol=1e-12)
    s = desc.settings()
    h = {k: v.detach() for k, v in desc.hyperparameters().items()}
    assert s["wj"] == [float(v) for v in h["wj"]] and s["rfac0"] == float(h["rfac0"])
    assert ace.settings()["rcut"] == [[float(v) for v in row] for row in ace.current_rcut().detach()]


def test_trainable_keyword_learns_the_named_hyperparameters_also_from_config_settings():
    from mliap_torch.descriptors.ace import ACE
    from mliap_torch.training.setup import build_descriptor

    ace = ACE(ELEMENTS, nradmax_by_orders=[3, 2], lmax_by_orders=[0, 1], rcut=4.0, trainable=["rcut"], max_cutoff=4.4)
    assert type(ace) is ACE and [n for n, _ in ace.named_parameters()] == ["rcut_raw"]
    assert type(ACE(ELEMENTS, nradmax_by_orders=[3, 2], lmax_by_orders=[0, 1], rcut=4.0)) is ACE
    built = build_descriptor({"type": "ace", "nradmax_by_orders": [3, 2], "lmax_by_orders": [0, 1], "rcut": 4.0,
                              "options": {"trainable": ["crad", "rcut"], "max_cutoff": 4.4}}, ELEMENTS)
    assert type(built) is ACE and built.trainable == ["crad", "rcut"] and built.cutoff == 4.4


def test_bispectrum_trainable_keyword_learns_the_named_hyperparameters_also_from_config_settings():
    from mliap_torch.descriptors.bispectrum import Bispectrum
    from mliap_torch.training.setup import build_descriptor

    plain = Bispectrum(["Mo"], 4, rcutfac=4.6, radelem=[0.5], wj=[1.0])
    assert type(plain) is Bispectrum and not list(plain.parameters())
    learned = Bispectrum(["Mo"], 4, rcutfac=4.6, radelem=[0.5], wj=[1.0], trainable=["wj", "rfac0"])
    assert type(learned) is Bispectrum and [n for n, _ in learned.named_parameters()] == ["wj_raw", "rfac0_raw"]
    built = build_descriptor({"type": "bispectrum", "twojmax": 4, "rcutfac": 4.6, "radelem": 0.5, "wj": 1.0,
                              "options": {"trainable": ["radelem"], "max_cutoff": 4.8}}, ["Mo"])
    assert type(built) is Bispectrum and built.trainable == ["radelem"] and built.cutoff == 4.8
