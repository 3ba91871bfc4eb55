"""Gradients of the Bispectrum descriptor: forces and stress vs finite differences, double backward,
invariances, float32, cutoff behaviour and the compiled kernels. No LAMMPS needed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors import sna_backend
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.models.heads import LinearHead, QuadraticHead
from mliap_torch.models.potential import Potential
from snap_reference import pair_list, random_structure, triclinic_cell

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = {
    "one-element": dict(elements=["Ta"], twojmax=6, rcutfac=4.67637, radelem=[0.5], wj=[1.0]),
    "two-elements-switchinner": dict(elements=["A", "B"], twojmax=4, rcutfac=4.5, radelem=[0.5, 0.42],
                                     wj=[1.0, 0.8], switchinnerflag=True, sinner=[2.2, 2.0], dinner=[0.4, 0.3]),
    "chem-bnorm-rmin0": dict(elements=["A", "B"], twojmax=4, rcutfac=4.5, radelem=[0.5, 0.45], wj=[1.0, 0.7],
                             chemflag=True, bnormflag=True, rmin0=0.5),
}


def make_potential(kw, quadratic=False, seed=0) -> Potential:
    d = Bispectrum(**kw)
    gen = torch.Generator().manual_seed(seed)
    ne, k = len(d.elements), d.num_descriptors
    head = QuadraticHead(ne, k) if quadratic else LinearHead(ne, k)
    coeffs = torch.randn(ne, 1 + head.num_features, generator=gen, dtype=torch.float64) * 0.01
    if quadratic:
        coeffs[:, 1 + k:] *= 1e-2
    head.set_coefficients(coeffs)
    return Potential(d, head)


def make_config(kw, seed=0, natoms=24) -> Configuration:
    rng = np.random.default_rng(seed)
    cell = triclinic_cell(rng, [8.0, 8.5, 9.0])
    pos, species = random_structure(rng, natoms, cell, min_dist=1.8, nelements=len(kw["elements"]))
    return Configuration(positions=pos, cell=cell, pbc=[True] * 3, symbols=np.array(kw["elements"])[species])


def energy_of(potential, config) -> float:
    batch = make_batch([config], potential.elements, potential.cutoff)
    return float(potential(batch, forces=False, stress=False)["energy"][0])


@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_forces_equal_finite_differences(name, quadratic):
    kw = SETTINGS[name]
    potential = make_potential(kw, quadratic)
    config = make_config(kw, seed=1)
    out = potential(make_batch([config], potential.elements, potential.cutoff))
    forces = out["forces"].detach().numpy()
    h = 1e-5
    fd = np.zeros((6, 3))
    for a in range(6):
        for k in range(3):
            plus, minus = config.positions.copy(), config.positions.copy()
            plus[a, k] += h
            minus[a, k] -= h
            e_plus = energy_of(potential, Configuration(plus, config.cell, config.pbc, config.symbols))
            e_minus = energy_of(potential, Configuration(minus, config.cell, config.pbc, config.symbols))
            fd[a, k] = -(e_plus - e_minus) / (2 * h)
    assert np.abs(forces[:6] - fd).max() <= 1e-6 * np.abs(forces).max()


@pytest.mark.parametrize("name", list(SETTINGS))
def test_stress_equals_strain_derivative(name):
    kw = SETTINGS[name]
    potential = make_potential(kw, quadratic=False, seed=2)
    config = make_config(kw, seed=3)
    stress = potential(make_batch([config], potential.elements, potential.cutoff))["stress"][0].detach().numpy()
    volume = config.volume
    h = 1e-6
    grad = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                deform = np.eye(3)
                deform[a, b] += sign * h
                strained = Configuration(config.positions @ deform, config.cell @ deform, config.pbc, config.symbols)
                energies.append(energy_of(potential, strained))
            grad[a, b] = (energies[0] - energies[1]) / (2 * h)
    sym = 0.5 * (grad + grad.T) / volume
    fd = np.array([sym[0, 0], sym[1, 1], sym[2, 2], sym[1, 2], sym[0, 2], sym[0, 1]])
    assert np.abs(stress - fd).max() <= 1e-6 * np.abs(stress).max()


def test_double_backward_gradgradcheck():
    d = Bispectrum(["A", "B"], twojmax=4, rcutfac=1.3, radelem=[0.5, 0.6], wj=[1.0, 0.7], switchinnerflag=True,
                   sinner=[0.35, 0.4], dinner=[0.1, 0.2])
    rng = np.random.default_rng(0)
    n = 5
    pos = torch.tensor(rng.uniform(0, 1.6, (n, 3)), requires_grad=True)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    mask = i != j
    i, j = i[mask], j[mask]
    species = torch.tensor([0, 1, 0, 1, 1])

    def fn(p):
        return d(p[j] - p[i], i, j, species, n)

    assert torch.autograd.gradcheck(fn, (pos,))
    assert torch.autograd.gradgradcheck(fn, (pos,))


@pytest.mark.parametrize("name", ["one-element", "chem-bnorm-rmin0"])
def test_force_loss_gradient_wrt_coefficients(name):
    """Training on forces (create_graph=True): ∂(Σ F²)/∂β equals finite differences in β."""
    kw = SETTINGS[name]
    potential = make_potential(kw, seed=4)
    config = make_config(kw, seed=5, natoms=16)
    batch = make_batch([config], potential.elements, potential.cutoff)

    def loss():
        out = potential(batch, forces=True, stress=True, create_graph=True)
        return (out["forces"] ** 2).sum() + (out["stress"] ** 2).sum() * 1e3

    value = loss()
    (grad,) = torch.autograd.grad(value, potential.head.weight)
    h = 1e-6
    w = potential.head.weight
    for e, k in [(0, 0), (0, 3), (len(kw["elements"]) - 1, 5)]:
        with torch.no_grad():
            w[e, k] += h
        lp = float(loss().detach())
        with torch.no_grad():
            w[e, k] -= 2 * h
        lm = float(loss().detach())
        with torch.no_grad():
            w[e, k] += h
        fd = (lp - lm) / (2 * h)
        assert abs(float(grad[e, k]) - fd) <= 1e-6 * max(abs(fd), float(grad.abs().max()))


@pytest.mark.parametrize("name", list(SETTINGS))
def test_rotation_and_permutation_invariance(name):
    kw = SETTINGS[name]
    d = Bispectrum(**kw)
    config = make_config(kw, seed=6)
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    perm = rng.permutation(config.num_atoms)
    species = np.array([d.elements.index(s) for s in config.symbols])

    def descriptors(pos, cell, sp):
        rij, i, j = pair_list(pos, cell, d.cutoff)
        return d(rij, i, j, torch.as_tensor(sp), len(pos)).numpy()

    ref = descriptors(config.positions, config.cell, species)
    rotated = descriptors(config.positions @ q.T, config.cell @ q.T, species)
    permuted = descriptors(config.positions[perm], config.cell, species[perm])
    scale = np.abs(ref).max(0) + 1e-300
    assert np.max(np.abs(rotated - ref) / scale) < 1e-11
    assert np.max(np.abs(permuted - ref[perm]) / scale) < 1e-12
    # forces rotate with the structure
    potential = make_potential(kw, seed=8)
    f1 = potential(make_batch([config], potential.elements, potential.cutoff))["forces"].detach().numpy()
    rot = Configuration(config.positions @ q.T, config.cell @ q.T, config.pbc, config.symbols)
    f2 = potential(make_batch([rot], potential.elements, potential.cutoff))["forces"].detach().numpy()
    assert np.abs(f2 - f1 @ q.T).max() < 1e-10 * np.abs(f1).max()


def test_float32():
    kw = SETTINGS["two-elements-switchinner"]
    potential = make_potential(kw, seed=9)
    config = make_config(kw, seed=10)
    out64 = potential(make_batch([config], potential.elements, potential.cutoff))
    p32 = make_potential(kw, seed=9).to(torch.float32)
    assert p32.descriptor.term_coeff.dtype == torch.float32
    out32 = p32(make_batch([config], potential.elements, potential.cutoff, dtype=torch.float32))
    assert out32["energy"].dtype == torch.float32 and out32["forces"].dtype == torch.float32
    e64, e32 = float(out64["energy"][0]), float(out32["energy"][0])
    assert abs(e32 - e64) <= 1e-5 * abs(e64)
    f64, f32 = out64["forces"].detach().numpy(), out32["forces"].detach().double().numpy()
    assert np.abs(f32 - f64).max() <= 1e-3 * np.abs(f64).max()


def test_pairs_at_or_beyond_cutoff_contribute_nothing():
    kw = dict(elements=["A", "B"], twojmax=4, rcutfac=4.0, radelem=[0.5, 0.4], wj=[1.0, 0.6])
    d = Bispectrum(**kw)
    config = make_config(kw, seed=11)
    species = torch.as_tensor(np.array([d.elements.index(s) for s in config.symbols]))
    rij, i, j = pair_list(config.positions, config.cell, d.cutoff)
    rij_big, i_big, j_big = pair_list(config.positions, config.cell, d.cutoff + 1.5)  # + neighbor-list skin
    assert len(i_big) > len(i)
    b = d(rij, i, j, species, config.num_atoms)
    b_big = d(rij_big, i_big, j_big, species, config.num_atoms)
    # (the larger list comes in another order, so sums differ in rounding only)
    assert float(((b - b_big).abs() / b.abs().amax(0).clamp_min(1e-300)).max()) < 1e-13
    # a pair exactly at its cutoff: same descriptors with and without it
    rc = float(d.pair_cutoffs()[0, 0])
    extra = torch.tensor([[rc, 0.0, 0.0]])
    b0 = d(rij, i, j, species, config.num_atoms)
    first_a = int(torch.nonzero(species == 0)[0])
    b1 = d(torch.cat([rij, extra]), torch.cat([i, torch.tensor([first_a])]), torch.cat([j, torch.tensor([first_a])]),
           species, config.num_atoms)
    assert torch.equal(b0, b1)
    # cutoffs: rcutfac·(radelem_i + radelem_j)
    assert torch.allclose(d.pair_cutoffs(), torch.tensor([[4.0, 3.6], [3.6, 3.2]], dtype=torch.float64))
    assert d.cutoff == pytest.approx(4.0)


def test_settings_rebuild_and_save_load(tmp_path):
    import mliap_torch

    kw = SETTINGS["two-elements-switchinner"]
    potential = make_potential(kw, quadratic=True, seed=12)
    d = potential.descriptor
    assert Bispectrum(**d.settings()).settings() == d.settings()
    assert set(d.settings()) == {"elements", "twojmax", "rcutfac", "radelem", "wj", "rfac0", "rmin0", "switchflag",
                                 "bzeroflag", "bnormflag", "wselfallflag", "chemflag", "switchinnerflag", "sinner",
                                 "dinner"}
    path = mliap_torch.save(potential, tmp_path / "pot.pt")
    loaded = mliap_torch.load(path)
    config = make_config(kw, seed=13)
    batch = make_batch([config], potential.elements, potential.cutoff)
    assert torch.allclose(loaded(batch)["energy"], potential(batch)["energy"], rtol=1e-15, atol=0)


def test_num_descriptors_and_order():
    from mliap_torch.descriptors.sna_tables import bispectrum_triples

    expected = {2: 5, 4: 14, 6: 30, 8: 55, 10: 91, 12: 140}
    for twojmax, count in expected.items():
        assert len(bispectrum_triples(twojmax)) == count
    assert bispectrum_triples(2) == [(0, 0, 0), (1, 0, 1), (1, 1, 2), (2, 0, 2), (2, 2, 2)]
    d = Bispectrum(["A", "B"], twojmax=2, rcutfac=4.0, radelem=[0.5, 0.5], wj=[1, 1], chemflag=True)
    assert d.num_descriptors == 5 * 8


def test_twojmax_12_runs_and_matches_reference_path():
    kw = dict(elements=["Ni"], twojmax=12, rcutfac=3.6, radelem=[0.5], wj=[1.0])
    d = Bispectrum(**kw)
    config = make_config(kw, seed=14, natoms=8)
    rij, i, j = pair_list(config.positions, config.cell, d.cutoff)
    sp = torch.zeros(config.num_atoms, dtype=torch.long)
    b = d(rij, i, j, sp, config.num_atoms)
    ref = d.reference_forward(rij, i, j, sp, config.num_atoms)
    assert b.shape == (config.num_atoms, 140)
    assert torch.allclose(b, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))


@pytest.mark.slow
def test_compiled_kernels_match_eager():
    pytest.importorskip("torch._inductor")
    kw = dict(elements=["A", "B"], twojmax=4, rcutfac=4.5, radelem=[0.5, 0.45], wj=[1.0, 0.7], chemflag=True)
    potential = make_potential(kw, seed=15)
    config = make_config(kw, seed=16, natoms=20)
    batch = make_batch([config], potential.elements, potential.cutoff)
    eager = potential(batch)
    potential.descriptor.compile_kernels = True
    potential.descriptor.atoms_per_chunk = 8          # several chunks, the last one padded
    try:
        compiled = potential(batch)
    except Exception as exc:  # no working C++ compiler for Inductor on this machine
        pytest.skip(f"torch.compile unavailable: {exc}")
    for key in ("energy", "forces", "stress"):
        assert torch.allclose(compiled[key], eager[key], rtol=1e-12, atol=1e-12 * float(eager[key].abs().max()))
    # the one-pass Jacobian for fitting (single element) through the compiled Z kernel
    d = Bispectrum(["Ta"], twojmax=4, rcutfac=4.6, radelem=[0.5], wj=[1.0])
    cfg = make_config({"elements": ["Ta"]}, seed=18, natoms=20)
    rij, i, j = pair_list(cfg.positions, cfg.cell, d.cutoff)
    sp = torch.zeros(cfg.num_atoms, dtype=torch.long)
    d.sna_jacobian = False                             # the torch kernels, not LAMMPS' SNA
    b_eager, db_eager = d.pair_jacobian(rij, i, j, sp, cfg.num_atoms)
    d.compile_kernels = True
    b_comp, db_comp = d.pair_jacobian(rij, i, j, sp, cfg.num_atoms)
    assert torch.allclose(b_comp, b_eager, rtol=1e-12, atol=1e-12 * float(b_eager.abs().max()))
    assert torch.allclose(db_comp, db_eager, rtol=1e-12, atol=1e-12 * float(db_eager.abs().max()))


@pytest.mark.parametrize("route", ["torch", pytest.param("sna", marks=pytest.mark.lammps)])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_pair_jacobian_equals_autograd(name, route):
    """pair_jacobian's (B, ∂B_i/∂r_ij) equal autograd (one backward pass per component), through the torch
    kernels and through LAMMPS' SNA (sna_backend)."""
    kw = SETTINGS[name]
    d = Bispectrum(**kw)
    d.sna_jacobian = route == "sna"
    assert d.sna_jacobian is False or sna_backend.available()
    config = make_config(kw, seed=17, natoms=16)
    species = torch.as_tensor(np.array([d.elements.index(s) for s in config.symbols]))
    rij, i, j = pair_list(config.positions, config.cell, d.cutoff + 0.8)   # some pairs beyond the cutoff
    b, db = d.pair_jacobian(rij, i, j, species, config.num_atoms)
    r = rij.clone().requires_grad_(True)
    ref_b = d(r, i, j, species, config.num_atoms)
    total = ref_b.sum(0)
    ref = torch.stack([torch.autograd.grad(total[k], r, retain_graph=True)[0] for k in range(d.num_descriptors)], 2)
    if route == "torch":
        assert torch.equal(b, ref_b.detach())
    else:
        assert float((b - ref_b).abs().max()) <= 1e-12 * float(ref_b.abs().max())
    assert db.shape == (len(i), 3, d.num_descriptors)
    assert float((db - ref).abs().max()) <= 1e-12 * float(ref.abs().max())
    outside = rij.norm(dim=1) >= d.pair_cutoffs()[species[i], species[j]]
    assert outside.any() and torch.all(db[outside] == 0)
