"""ACE descriptor against pyace (PACE): B projections, coupling coefficients, basis generation,
and energy/forces/stress of a linear ACE model against pyace's calculator."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

pyace = pytest.importorskip("pyace")
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402
from pyace import ACEBBasisSet, PyACECalculator  # noqa: E402
from pyace.multispecies_basisextension import create_multispecies_basis_config  # noqa: E402

from mliap_torch.data.batch import make_batch  # noqa: E402
from mliap_torch.data.configuration import Configuration  # noqa: E402
from mliap_torch.descriptors.ace import ACE, pyace_linear_coefficients  # noqa: E402
from mliap_torch.descriptors.ace_basis import BFunction, monomials  # noqa: E402
from mliap_torch.descriptors.spherical_harmonics import complex_from_real  # noqa: E402
from mliap_torch.models.heads import LinearHead  # noqa: E402
from mliap_torch.models.potential import Potential  # noqa: E402

EMBEDDING = {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}}

SPECS = {
    "unary_chebexpcos_rank5": {
        "elements": ["Al"],
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 4.6, "dcut": 0.3}},
        "functions": {"ALL": {"nradmax_by_orders": [5, 2, 2, 1, 1], "lmax_by_orders": [0, 3, 2, 1, 1]}},
    },
    "unary_sbessel_inner_cutoff": {
        "elements": ["Ta"],
        "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [1.0], "rcut": 4.8, "dcut": 0.01,
                          "r_in": 2.4, "delta_in": 0.3}},
        "functions": {"ALL": {"nradmax_by_orders": [4, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]}},
    },
    "unary_chebexpcos_rank6": {
        "elements": ["Ta"],
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [3.06], "rcut": 4.6, "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [4, 2, 1, 1, 1, 1], "lmax_by_orders": [0, 2, 2, 2, 1, 1]}},
    },
    "binary_mixed_bonds": {
        "elements": ["Al", "Ni"],
        "bonds": {"ALL": {"radbase": "ChebPow", "radparameters": [2.0], "rcut": 4.5, "dcut": 0.3},
                  ("Al", "Ni"): {"radbase": "ChebExpCos", "radparameters": [3.0], "rcut": 4.0, "dcut": 0.2}},
        "functions": {"ALL": {"nradmax_by_orders": [3, 2, 2, 1], "lmax_by_orders": [0, 2, 2, 1]}},
    },
}


@functools.cache
def pyace_basis(name: str, seed: int = 0) -> ACEBBasisSet:
    """pyace basis of a spec with random (pair-symmetric) radial and function coefficients (not modified by tests)."""
    spec = SPECS[name]
    config = create_multispecies_basis_config({"deltaSplineBins": 1e-5, "embeddings": EMBEDDING, **spec})
    return ACEBBasisSet(randomize_coefficients(config, np.random.default_rng(seed), 0.1))


def randomize_coefficients(config, rng: np.random.Generator, scale: float):
    """``config`` (a pyace BBasisConfiguration) with normal random radial coefficients, the same for both
    orders of an element pair, and normal random function coefficients times ``scale``; returned."""
    crads: dict[str, list] = {}
    for block in config.funcspecs_blocks:
        key = " ".join(sorted(block.block_name.split()))
        crads.setdefault(key, rng.normal(size=np.array(block.radcoefficients).shape).tolist())
        block.radcoefficients = crads[key]
        block.set_func_coeffs(rng.normal(size=np.array(block.get_func_coeffs()).shape) * scale)
    return config


def structures(elements: list[str]) -> list[Atoms]:
    fcc = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 1, 1)
    fcc.symbols[:] = elements[0]
    if len(elements) > 1:
        fcc.symbols[[1, 3, 6]] = elements[1]
    fcc.rattle(0.12, seed=3)
    cluster = Atoms([elements[k % len(elements)] for k in range(5)],
                    positions=np.random.default_rng(4).uniform(-1.6, 1.6, size=(5, 3)) + [0, 0, 0])
    cluster.positions[1:] += 0.9 * cluster.positions[1:] / np.linalg.norm(cluster.positions[1:], axis=1)[:, None]
    return [fcc, cluster]


def pyace_results(basis: ACEBBasisSet, atoms: Atoms) -> dict:
    atoms = atoms.copy()
    calc = PyACECalculator(basis)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    stress = atoms.get_stress() if atoms.pbc.all() else None
    return {"projections": [np.array(p) for p in calc.projections], "energy": energy,
            "forces": atoms.get_forces(), "stress": stress}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_projections_energy_forces_stress_match_pyace(name: str) -> None:
    basis = pyace_basis(name)
    ace = ACE.from_pyace(basis)
    head = LinearHead(len(ace.elements), ace.num_descriptors)
    head.set_coefficients(pyace_linear_coefficients(basis, ace))
    potential = Potential(ace, head)
    for atoms in structures(ace.elements):
        ref = pyace_results(basis, atoms)
        batch = make_batch([Configuration.from_ase(atoms)], ace.elements, ace.cutoff)
        B = ace(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms).detach().numpy()
        for i, p in enumerate(ref["projections"]):
            scale = np.abs(p).max()
            np.testing.assert_allclose(B[i, :len(p)], p, rtol=1e-8, atol=1e-10 * scale)
            assert np.all(B[i, len(p):] == 0)
        out = potential(batch, forces=True, stress=True)
        assert out["energy"].item() == pytest.approx(ref["energy"], rel=1e-9)
        fscale = np.abs(ref["forces"]).max()
        np.testing.assert_allclose(out["forces"].detach().numpy(), ref["forces"], rtol=1e-7, atol=1e-8 * fscale)
        if ref["stress"] is not None:
            np.testing.assert_allclose(out["stress"][0].detach().numpy(), ref["stress"], rtol=1e-7,
                                       atol=1e-8 * np.abs(ref["stress"]).max())


def test_coupling_polynomials_match_pyace_generalised_cg() -> None:
    """Σ gen_cg · Π A (pyace's complex, half-m-space tables) equals our real-harmonic polynomial."""
    basis = pyace_basis("binary_mixed_bonds")
    nr, lmax = basis.nradmax, basis.lmax
    rng = np.random.default_rng(7)
    A_real = rng.normal(size=(2, nr, (lmax + 1) ** 2))
    A_complex = np.zeros_like(A_real, dtype=complex)
    for l in range(lmax + 1):
        A_complex[:, :, l * l:(l + 1) ** 2] = A_real[:, :, l * l:(l + 1) ** 2] @ complex_from_real(l).T
    flat = A_real.ravel()
    checked = 0
    for mu in range(2):
        for f in basis.basis[mu]:
            ref = 0.0
            for ms, c in zip(np.array(f.ms_combs), np.array(f.gen_cgs)):
                prod = np.prod([A_complex[f.mus[t], f.ns[t] - 1, f.ls[t] ** 2 + f.ls[t] + ms[t]] for t in range(f.rank)])
                ref += (c * prod).real
            poly = monomials(BFunction(tuple(f.mus), tuple(f.ns), tuple(f.ls), tuple(f.LS)), nr, lmax)
            mine = sum(c * np.prod(flat[list(k)]) for k, c in poly.items())
            assert mine == pytest.approx(ref, rel=1e-12, abs=1e-12)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("name", ["unary_chebexpcos_rank5", "unary_chebexpcos_rank6", "binary_mixed_bonds"])
def test_generated_basis_spans_pyace_basis(name: str) -> None:
    """The compact-spec basis has pyace's number of functions per (elements, n, l) multiset and the
    same span (pyace's functions are linear combinations of ours and vice versa)."""
    spec = SPECS[name]
    basis = pyace_basis(name)
    fn = spec["functions"]["ALL"]
    ace = ACE(basis.elements_name, fn["nradmax_by_orders"], fn["lmax_by_orders"])
    nr, lmax = ace.nradmax, ace.lmax
    assert (basis.nradmax, basis.lmax, basis.nradbase) == (nr, lmax, ace.nradbase)
    for e in range(len(ace.elements)):
        theirs = [BFunction(tuple(f.mus), tuple(f.ns), tuple(f.ls), tuple(f.LS))
                  for f in list(basis.basis_rank1[e]) + list(basis.basis[e])]
        ours = ace.functions[e]
        assert len(ours) == len(theirs)

        def group(f: BFunction) -> tuple:
            return tuple(sorted(zip(f.mus, f.ns, f.ls)))

        groups = {group(f) for f in theirs}
        assert groups == {group(f) for f in ours}
        for g in groups:
            polys = {"ours": [monomials(f, nr, lmax) for f in ours if group(f) == g and f.rank > 1],
                     "theirs": [monomials(f, nr, lmax) for f in theirs if group(f) == g and f.rank > 1]}
            if not polys["ours"]:
                continue
            keys = sorted({k for ps in polys.values() for p in ps for k in p})
            mats = {who: np.array([[p.get(k, 0.0) for k in keys] for p in ps]) for who, ps in polys.items()}
            rank_ours = np.linalg.matrix_rank(mats["ours"], tol=1e-9)
            assert rank_ours == len(polys["ours"]) == len(polys["theirs"])
            assert np.linalg.matrix_rank(np.vstack([mats["ours"], mats["theirs"]]), tol=1e-9) == rank_ours


def test_from_yaml_file_and_settings_round_trip(tmp_path) -> None:
    basis = pyace_basis("binary_mixed_bonds", seed=2)
    path = tmp_path / "potential.yaml"
    basis.to_BBasisConfiguration().save(str(path))
    ace = ACE.from_pyace(path)
    rebuilt = ACE(**ace.settings())
    rebuilt.load_state_dict(ace.state_dict())
    atoms = structures(ace.elements)[0]
    batch = make_batch([Configuration.from_ase(atoms)], ace.elements, ace.cutoff)
    args = (batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    ref = pyace_results(basis, atoms)["projections"]
    B = rebuilt(*args).detach().numpy()
    for i, p in enumerate(ref):
        np.testing.assert_allclose(B[i, :len(p)], p, rtol=1e-8, atol=1e-10 * np.abs(p).max())
    assert torch.equal(rebuilt(*args), ace(*args))


def test_compact_specification_matches_pyace_on_shared_functions() -> None:
    """ACE built from the compact keywords (not from pyace) reproduces pyace's projections for every
    function both bases contain with identical (mus, ns, ls, LS)."""
    name = "binary_mixed_bonds"
    basis = pyace_basis(name)
    fn = SPECS[name]["functions"]["ALL"]
    # pyace sorts the elements: Al, Ni; bonds: ChebPow λ=2, r_c=4.5 except Al–Ni ChebExpCos λ=3, r_c=4
    ace = ACE(["Al", "Ni"], fn["nradmax_by_orders"], fn["lmax_by_orders"],
              radial_basis=[["ChebPow", "ChebExpCos"], ["ChebExpCos", "ChebPow"]],
              radial_parameters=[[2.0, 3.0], [3.0, 2.0]], rcut=[[4.5, 4.0], [4.0, 4.5]],
              dcut=[[0.3, 0.2], [0.2, 0.3]])
    ace.set_radial_coefficients(torch.as_tensor(np.array(basis.radial_functions.crad)))
    atoms = structures(ace.elements)[0]
    batch = make_batch([Configuration.from_ase(atoms)], ace.elements, ace.cutoff)
    B = ace(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms).detach().numpy()
    ref = pyace_results(basis, atoms)["projections"]
    shared = 0
    for i, e in enumerate(batch.species.tolist()):
        theirs = {(tuple(f.mus), tuple(f.ns), tuple(f.ls), tuple(f.LS)): k
                  for k, f in enumerate(list(basis.basis_rank1[e]) + list(basis.basis[e]))}
        for col, f in enumerate(ace.functions[e]):
            k = theirs.get((f.mus, f.ns, f.ls, f.LS))
            if k is not None:
                assert B[i, col] == pytest.approx(ref[i][k], rel=1e-8, abs=1e-10 * np.abs(ref[i]).max())
                shared += 1
    assert shared > 0.5 * sum(len(p) for p in ref)


def test_from_pyace_rejects_ctilde_files(tmp_path) -> None:
    path = tmp_path / "potential.yace"
    path.write_text("elements: [Al]\n")
    with pytest.raises(ValueError, match="potential.yace.*no B functions"):
        ACE.from_pyace(path)
    with pytest.raises(FileNotFoundError, match="no PACE basis file"):
        ACE.from_pyace(tmp_path / "missing.yaml")


@pytest.mark.parametrize("embedding, message", [
    ({"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}, "ndensity 2"),
    ({"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 0.5], "ndensity": 1}, "fs_parameters"),
])
def test_nonlinear_pace_potentials_are_refused_not_read_as_their_first_density(embedding, message) -> None:
    """A PACE potential with a nonlinear embedding (pacemaker's default: two densities, F = ρ₁ + √ρ₂) is not
    c·B: reading its first density's coefficients would be a different potential."""
    spec = SPECS["unary_chebexpcos_rank5"]
    config = create_multispecies_basis_config({"deltaSplineBins": 1e-5, "embeddings": {"ALL": embedding}, **spec})
    basis = ACEBBasisSet(config)
    ace = ACE.from_pyace(basis)
    with pytest.raises(ValueError, match=message):
        pyace_linear_coefficients(basis, ace)
