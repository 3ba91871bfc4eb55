"""ACE descriptor: harmonics and Clebsch–Gordan against independent references, invariances,
smooth cutoff, forces/stress against finite differences, dtypes, double backward, save/load."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import torch
from ase.build import bulk
from scipy.spatial.transform import Rotation
from sympy.physics.quantum.cg import CG

from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.ace import ACE
from mliap_torch.descriptors.ace_basis import clebsch_gordan, coupling_tree, generalized_cg
from mliap_torch.descriptors.spherical_harmonics import complex_from_real, real_spherical_harmonics
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.io import load, save
from mliap_torch.models.potential import Potential


def small_ace(radial_basis: str = "ChebExpCos", elements=("Al",), **kw) -> ACE:
    """A rank 1–4 basis with non-trivial (random) radial coefficients."""
    ace = ACE(list(elements), nradmax_by_orders=[4, 2, 2, 1], lmax_by_orders=[0, 2, 2, 1],
              radial_basis=radial_basis, radial_parameters=2.0, rcut=4.2, dcut=0.4, **kw)
    gen = torch.Generator().manual_seed(0)
    ace.set_radial_coefficients(torch.randn(ace.crad.shape, generator=gen, dtype=torch.float64))
    return ace


def args_of(ace: ACE, config: Configuration):
    batch = make_batch([config], ace.elements, ace.cutoff)
    return batch, (batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)


def rattled_fcc(symbols=("Al",), seed: int = 0) -> Configuration:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.symbols[:] = symbols[0]
    if len(symbols) > 1:
        atoms.symbols[[1, 2]] = symbols[1]
    atoms.rattle(0.1, seed=seed)
    return Configuration.from_ase(atoms)


def test_real_harmonics_match_scipy() -> None:
    rng = np.random.default_rng(0)
    u = rng.normal(size=(20, 3))
    u[0] = [0, 0, 1]  # pole
    u /= np.linalg.norm(u, axis=1)[:, None]
    Y = real_spherical_harmonics(torch.tensor(u), 6).numpy()
    theta, phi = np.arccos(np.clip(u[:, 2], -1, 1)), np.arctan2(u[:, 1], u[:, 0])
    for l in range(7):
        ref = np.stack([scipy.special.sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)], axis=1)
        np.testing.assert_allclose(Y[:, l * l:(l + 1) ** 2] @ complex_from_real(l).T, ref, atol=1e-13)


def test_clebsch_gordan_matches_sympy() -> None:
    for j1, m1, j2, m2, J in [(1, 1, 1, -1, 0), (2, -1, 1, 1, 2), (3, 2, 2, -1, 3), (2, 0, 2, 0, 4), (4, -3, 3, 1, 5)]:
        ref = float(CG(j1, m1, j2, m2, J, m1 + m2).doit())
        assert clebsch_gordan(j1, m1, j2, m2, J, m1 + m2) == pytest.approx(ref, abs=1e-14)
    assert coupling_tree(4) == ((0, 1, 4), (2, 3, 5), (4, 5, 6))
    assert coupling_tree(5) == ((0, 1, 5), (2, 3, 6), (5, 6, 7), (7, 4, 8))


@pytest.mark.parametrize("radial_basis", ["ChebExpCos", "ChebPow", "SBessel"])
def test_rotation_reflection_permutation_invariance(radial_basis: str) -> None:
    ace = small_ace(radial_basis, elements=("Al", "Ni"))
    config = rattled_fcc(("Al", "Ni"))
    _, (rij, pi, pj, species, n) = args_of(ace, config)
    B = ace(rij, pi, pj, species, n)
    scale = B.abs().max()
    assert scale > 0
    R = torch.tensor(Rotation.random(random_state=1).as_matrix())
    for Q in (R, -R, torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)) @ R):
        assert (ace(rij @ Q.T, pi, pj, species, n) - B).abs().max() <= 1e-12 * scale
    perm = torch.randperm(len(pi), generator=torch.Generator().manual_seed(2))
    assert (ace(rij[perm], pi[perm], pj[perm], species, n) - B).abs().max() <= 1e-12 * scale


def test_smooth_decay_at_cutoff_and_no_contribution_beyond() -> None:
    ace = small_ace("ChebExpCos")
    rc = ace.cutoff
    species = torch.zeros(2, dtype=torch.int64)
    pi, pj = torch.tensor([0, 1]), torch.tensor([1, 0])
    direction = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    direction = direction / direction.norm()

    def dimer(d: float):
        rij = torch.stack([direction * d, -direction * d]).requires_grad_(True)
        B = ace(rij, pi, pj, species, 2)
        (grad,) = torch.autograd.grad(B.sum(), rij)
        return B.detach(), grad

    values = [dimer(rc - h) for h in (4e-3, 2e-3, 1e-3)]
    # envelope × cosine switch: B vanishes at least like h², dB/dr at least like h
    ratios_B = values[0][0].abs().max() / values[1][0].abs().max(), values[1][0].abs().max() / values[2][0].abs().max()
    ratios_F = values[0][1].abs().max() / values[1][1].abs().max(), values[1][1].abs().max() / values[2][1].abs().max()
    assert all(r > 3.9 for r in ratios_B)
    assert all(r > 1.95 for r in ratios_F)
    for d in (rc, rc + 0.1):
        B, grad = dimer(d)
        assert torch.all(B == 0) and torch.all(grad == 0)


def _potential(ace: ACE, seed: int = 0) -> Potential:
    head = LinearHead(len(ace.elements), ace.num_descriptors)
    gen = torch.Generator().manual_seed(seed)
    head.set_coefficients(torch.randn(len(ace.elements), 1 + ace.num_descriptors, generator=gen, dtype=torch.float64))
    return Potential(ace, head)


def _energy(potential: Potential, config: Configuration) -> float:
    batch = make_batch([config], potential.elements, potential.cutoff)
    return potential(batch, forces=False, stress=False)["energy"].item()


@pytest.mark.parametrize("radial_basis", ["ChebExpCos", "SBessel"])
def test_forces_and_stress_match_finite_differences(radial_basis: str) -> None:
    potential = _potential(small_ace(radial_basis, elements=("Al", "Ni")))
    config = rattled_fcc(("Al", "Ni"), seed=5)
    batch = make_batch([config], potential.elements, potential.cutoff)
    out = potential(batch)
    h = 1e-5
    fd = np.zeros((4, 3))
    for a in range(4):  # a few atoms keep the test quick
        for k in range(3):
            plus, minus = config.positions.copy(), config.positions.copy()
            plus[a, k] += h
            minus[a, k] -= h
            fd[a, k] = -(_energy(potential, _moved(config, plus, config.cell)) -
                         _energy(potential, _moved(config, minus, config.cell))) / (2 * h)
    np.testing.assert_allclose(out["forces"][:4].detach().numpy(), fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())
    stress_fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = h
            ep = [_energy(potential, _moved(config, config.positions @ (np.eye(3) + s * eps).T,
                                             config.cell @ (np.eye(3) + s * eps).T)) for s in (1, -1)]
            stress_fd[a, b] = (ep[0] - ep[1]) / (2 * h) / config.volume
    stress_fd = 0.5 * (stress_fd + stress_fd.T)
    voigt = stress_fd[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    np.testing.assert_allclose(out["stress"][0].detach().numpy(), voigt, rtol=1e-6, atol=1e-6 * np.abs(voigt).max())


def _moved(config: Configuration, positions: np.ndarray, cell: np.ndarray) -> Configuration:
    return Configuration(positions=positions, cell=cell, pbc=config.pbc, symbols=list(config.symbols))


def test_float32_and_double_backward() -> None:
    ace = small_ace("ChebPow", elements=("Al", "Ni"), trainable_radial=True)
    potential = _potential(ace)
    config = rattled_fcc(("Al", "Ni"))
    batch = make_batch([config], potential.elements, potential.cutoff)
    out = potential(batch, create_graph=True)
    loss = (out["forces"] ** 2).sum() + (out["stress"] ** 2).sum()
    grads = torch.autograd.grad(loss, [potential.head.weight, ace.crad])
    assert all(torch.isfinite(g).all() and g.abs().max() > 0 for g in grads)
    out32 = potential.to(torch.float32)(batch.to(dtype=torch.float32))
    assert out32["energy"].dtype == torch.float32
    np.testing.assert_allclose(out32["forces"].detach().numpy(), out["forces"].detach().numpy(),
                               rtol=1e-3, atol=1e-4 * out["forces"].abs().max().item())


def test_settings_rebuild_and_save_load(tmp_path) -> None:
    ace = small_ace("ChebExpCos", elements=("Al", "Ni"), r_in=1.0, delta_in=0.2)
    potential = _potential(ace)
    rebuilt = ACE(**ace.settings())
    assert rebuilt.function_specifications() == ace.function_specifications()
    config = rattled_fcc(("Al", "Ni"))
    loaded = load(save(potential, tmp_path / "ace.pt"))
    batch = make_batch([config], potential.elements, potential.cutoff)
    assert torch.equal(loaded(batch)["forces"], potential(batch)["forces"])
    explicit = ACE(ace.elements, functions=ace.function_specifications(), nradbase=ace.nradbase,
                   radial_parameters=2.0, rcut=4.2, dcut=0.4, r_in=1.0, delta_in=0.2)
    explicit.load_state_dict(ace.state_dict())
    _, args = args_of(ace, config)
    assert torch.equal(explicit(*args), ace(*args))


def test_multi_element_columns_and_bad_input() -> None:
    ace = ACE(["Al", "Ni"], nradmax_by_orders=[3, 1], lmax_by_orders=[0, 1],
              rcut=[[4.0, 3.5], [3.5, 3.0]])
    assert ace.pair_cutoffs().tolist() == [[4.0, 3.5], [3.5, 3.0]]
    assert ace.num_descriptors == 6 + 6  # rank 1: 2 elements × 3 n; rank 2: 3 element pairs × l ∈ {0, 1}
    empty = torch.zeros(0, dtype=torch.int64)
    B = ace(torch.zeros((0, 3), dtype=torch.float64), empty, empty, torch.tensor([1, 1, 1]), 3)
    assert B.shape == (3, 12) and torch.all(B == 0)  # no pairs, and no atom of element 0
    # a Ni–Ni dimer at 2.9 Å (inside r_c(Ni, Ni) = 3.0): rank-1 Ni columns are g_k, Al columns zero
    rij = torch.tensor([[2.9, 0.0, 0.0], [-2.9, 0.0, 0.0]], dtype=torch.float64)
    B = ace(rij, torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([1, 1]), 2)
    g = ace.radial(torch.tensor([2.9], dtype=torch.float64), torch.tensor([1]), torch.tensor([1]))[0]
    columns = {tuple(f.mus) + tuple(f.ns): c for c, f in enumerate(ace.functions[1]) if f.rank == 1}
    assert torch.allclose(B[0, [columns[(1, n)] for n in (1, 2, 3)]], g, rtol=1e-15)
    assert torch.all(B[0, [columns[(0, n)] for n in (1, 2, 3)]] == 0)
    with pytest.raises(ValueError, match="rcut must be a scalar or a 2x2"):
        ACE(["Al", "Ni"], nradmax_by_orders=[2], lmax_by_orders=[0], rcut=[4.0, 3.0])
    with pytest.raises(ValueError, match="unknown radial basis"):
        ACE(["Al"], nradmax_by_orders=[2], lmax_by_orders=[0], radial_basis="Gaussian")
    with pytest.raises(ValueError, match="not in"):
        ACE(["Al"], functions=[{"elements": ["Al", "Cu"], "ns": [1], "ls": [0]}])


def test_explicit_coupling_equals_generalised_cg() -> None:
    """Functions given by complex-harmonic ``ms_combs``/``ctildes`` (C-tilde form) equal the same
    functions given by ``LS`` when the ctildes are the generalised Clebsch–Gordan coefficients."""
    ace = small_ace("ChebExpCos")
    explicit = []
    for spec in ace.function_specifications():
        if len(spec["ls"]) > 1:
            C = generalized_cg(tuple(spec["ls"]), tuple(spec["LS"]))
            nz = np.argwhere(C != 0)
            spec = {**spec, "LS": [], "ms_combs": (nz - np.array(spec["ls"])).tolist(),
                    "ctildes": C[tuple(nz.T)].tolist()}
        explicit.append(spec)
    other = ACE(ace.elements, functions=explicit, radial_parameters=2.0, rcut=4.2, dcut=0.4)
    other.load_state_dict(ace.state_dict())
    _, args = args_of(ace, rattled_fcc())
    B = ace(*args)
    assert torch.allclose(other(*args), B, rtol=1e-12, atol=1e-12 * B.abs().max().item())
    with pytest.raises(ValueError, match="ms_combs must be one m per l"):
        ACE(["Al"], functions=[{"elements": ["Al", "Al", "Al"], "ns": [1, 1], "ls": [1, 1],
                                "ms_combs": [[1, -1, 0]], "ctildes": [1.0]}])


def test_explicit_rank1_coupling_scales_the_function() -> None:
    """A rank-1 function with an explicit coupling ``ctildes = [c]`` is c times the plain one."""
    plain = ACE(["Al"], functions=[{"elements": ["Al", "Al"], "ns": [n], "ls": [0]} for n in (1, 2)], rcut=4.2)
    scaled = ACE(["Al"], functions=[{"elements": ["Al", "Al"], "ns": [n], "ls": [0], "ms_combs": [[0]],
                                     "ctildes": [c]} for n, c in ((1, 2.5), (2, -0.5))], rcut=4.2)
    _, args = args_of(plain, rattled_fcc())
    B = plain(*args)
    assert B.abs().min() > 0
    torch.testing.assert_close(scaled(*args), B * torch.tensor([2.5, -0.5], dtype=B.dtype), rtol=1e-14, atol=0.0)


@pytest.mark.parametrize("elements,ranks", [(("Al",), 4), (("Al", "Ni"), 4), (("Al", "Ni"), 1)])
def test_pair_jacobian_equals_autograd(elements, ranks):
    """The chain-rule Jacobian (∂B/∂A · ∂A_p/∂r_p, forward mode) against K reverse-mode passes through
    the whole descriptor."""
    from mliap_torch.descriptors.base import autograd_pair_jacobian

    ace = small_ace(elements=elements) if ranks == 4 else ACE(list(elements), nradmax_by_orders=[5],
                                                             lmax_by_orders=[0], rcut=4.2)
    config = rattled_fcc(elements, seed=3)
    _, args = args_of(ace, config)
    B, dB = ace.pair_jacobian(*args, pair_chunk=7)
    r = args[0].clone().requires_grad_(True)
    B_ref = ace(r, *args[1:])
    dB_ref = autograd_pair_jacobian(B_ref, r, ACE)
    assert dB_ref.abs().max() > 0.1
    torch.testing.assert_close(B, B_ref.detach(), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(dB, dB_ref, rtol=1e-10, atol=1e-12)


def test_trainable_ace_pair_jacobian_at_current_values():
    from mliap_torch.descriptors.base import autograd_pair_jacobian

    ace = ACE(["Al"], nradmax_by_orders=[4, 2, 2, 1], lmax_by_orders=[0, 2, 2, 1], rcut=4.2, trainable=["crad", "rcut"])
    _, args = args_of(ace, rattled_fcc(("Al",), seed=1))
    B, dB = ace.pair_jacobian(*args)
    r = args[0].clone().requires_grad_(True)
    dB_ref = autograd_pair_jacobian(ace(r, *args[1:]), r, type(ace))
    assert not dB.requires_grad and dB_ref.abs().max() > 0.1
    torch.testing.assert_close(dB, dB_ref, rtol=1e-10, atol=1e-12)
