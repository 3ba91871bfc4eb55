"""``mliap_torch.write_pace``: potentials written as pacemaker B-basis ``.yaml`` and C-tilde ``.yace`` files that
pyace's own evaluators (``ACEBBasisSet``, ``ACECTildeBasisSet`` in ``PyACECalculator``) evaluate to the torch
potential's energy, forces and stress (1e-8 relative; measured ≈1e-14 for energies, ≈1e-10 for forces, the
rest is pyace's spline tabulation of the radial functions), and that ``read_pace`` reads back as the same potential.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pyace")
from pyace import ACEBBasisSet, ACECTildeBasisSet  # noqa: E402

import mliap_torch  # noqa: E402
from mliap_torch.data.batch import make_batch  # noqa: E402
from mliap_torch.data.configuration import Configuration  # noqa: E402
from mliap_torch.descriptors.ace import ACE  # noqa: E402
from mliap_torch.descriptors.bispectrum import Bispectrum  # noqa: E402
from mliap_torch.errors import ModelFileError  # noqa: E402
from mliap_torch.models.embedding import EmbeddingHead  # noqa: E402
from mliap_torch.models.heads import LinearHead, MLPHead, QuadraticHead  # noqa: E402
from mliap_torch.models.pace_core import PaceCoreRepulsion  # noqa: E402
from mliap_torch.models.potential import Potential  # noqa: E402
from mliap_torch.models.zbl import ZBL  # noqa: E402
from test_pace_files import (  # noqa: E402
    assert_same,
    evaluate,
    pyace_reference,
    random_basis,
    random_spec,
    structures,
    write_files,
)


def pyace_of_files(yaml_path, yace_path) -> list:
    """pyace's B-basis evaluator of the ``.yaml`` and its C-tilde evaluator of the ``.yace`` (LAMMPS' format)."""
    return [ACEBBasisSet(str(yaml_path)), ACECTildeBasisSet(str(yace_path))]


@pytest.mark.parametrize("seed", range(6))
def test_written_pacemaker_potentials_equal_pyace_and_read_back(seed: int, tmp_path) -> None:
    """Random pacemaker potentials (1–3 elements, 1–4 densities, both embeddings, core repulsion, both inner
    cutoff types) as torch potentials, written back: pyace evaluates both files as the torch potential does."""
    spec = random_spec(seed)
    potential = mliap_torch.read_pace(write_files(random_basis(spec, seed), tmp_path)[0])
    assert isinstance(potential.head, EmbeddingHead) and isinstance(potential.reference, PaceCoreRepulsion)
    # the torch potential is changed after reading, so that the files cannot be copies of the original ones
    with torch.no_grad():
        potential.head.coefficients.mul_(1.5)
    yaml_path = mliap_torch.write_pace(potential, tmp_path / "written.yaml")
    yace_path = mliap_torch.write_pace(potential, tmp_path / "written.yace")
    readers = pyace_of_files(yaml_path, yace_path)
    reread = [mliap_torch.read_pace(yaml_path), mliap_torch.read_pace(yace_path)]
    for atoms in structures(list(potential.elements), seed):
        mine = evaluate(potential, atoms)
        for basis in readers:
            assert_same(mine, pyace_reference(basis, atoms))
        for other in reread:
            assert_same(evaluate(other, atoms), mine, rtol=1e-12)


def generated_linear_ace(trained_rcut: bool) -> Potential:
    """A binary linear ACE built by mliap_torch's own basis generator (not from pyace): SBessel and ChebExpCos
    bonds, a distance inner cutoff, random pair-symmetric radial coefficients, random weights and per-element
    energies, and with ``trained_rcut`` learned cutoffs moved away from their start."""
    rng = np.random.default_rng(7)
    ace = ACE(["Al", "Ni"], nradmax_by_orders=[4, 2, 2, 1], lmax_by_orders=[0, 2, 1, 1], nradbase=5,
              radial_basis=[["SBessel", "ChebExpCos"], ["ChebExpCos", "ChebPow"]],
              radial_parameters=[[1.0, 3.5], [3.5, 2.5]], rcut=[[4.6, 4.3], [4.3, 4.8]], dcut=0.2,
              r_in=[[2.0, 2.1], [2.1, 2.2]], delta_in=0.3, trainable=["crad", "rcut"] if trained_rcut else None)
    crad = torch.as_tensor(rng.normal(size=tuple(ace.crad.shape)))
    ace.set_radial_coefficients(0.5 * (crad + crad.transpose(0, 1)))
    if trained_rcut:
        with torch.no_grad():
            raw = ace.rcut_raw + torch.tensor([[0.3, -0.2], [-0.2, 0.4]], dtype=torch.float64)
            ace.rcut_raw.copy_(raw)
        assert not torch.allclose(ace.current_rcut(), ace.radial.rcut)
    head = LinearHead(2, ace.num_descriptors)
    head.set_coefficients(torch.as_tensor(np.concatenate([[[-3.7], [-5.2]], rng.normal(size=(2, ace.num_descriptors))
                                                          * 0.05], axis=1)))
    return Potential(ace, head)


@pytest.mark.parametrize("trained_rcut", [False, True])
def test_linear_ace_of_mliap_torch_equals_pyace(trained_rcut: bool, tmp_path) -> None:
    """A linear model (F = ρ, one density) on mliap_torch's generated B functions: the ``.yace`` holds the
    per-element energies as E0; a ``.yaml``, which cannot hold them, is refused until they are zero."""
    potential = generated_linear_ace(trained_rcut)
    atoms_list = structures(list(potential.elements), 3)
    yace_path = mliap_torch.write_pace(potential, tmp_path / "linear.yace")
    for atoms in atoms_list:
        assert_same(evaluate(potential, atoms), pyace_reference(ACECTildeBasisSet(str(yace_path)), atoms))
    with pytest.raises(ModelFileError, match=r"linear.yaml: the per-element energies .*write the C-tilde"):
        mliap_torch.write_pace(potential, tmp_path / "linear.yaml")
    with torch.no_grad():
        potential.head.bias.zero_()
    yaml_path = mliap_torch.write_pace(potential, tmp_path / "linear.yaml")
    reread = mliap_torch.read_pace(yaml_path)
    for atoms in atoms_list:
        mine = evaluate(potential, atoms)
        assert_same(mine, pyace_reference(ACEBBasisSet(str(yaml_path)), atoms))
        assert_same(evaluate(reread, atoms), mine, rtol=1e-12)


def test_what_pace_cannot_express_is_refused(tmp_path) -> None:
    linear = generated_linear_ace(False)
    ace, K = linear.descriptor, linear.descriptor.num_descriptors
    cases = [
        (Potential(Bispectrum(["Al", "Ni"], twojmax=2, rcutfac=4.0, radelem=[0.5, 0.5], wj=[1.0, 0.9]),
                   LinearHead(2, 5)), TypeError, r"ACE descriptors, not Bispectrum \(bispectrum\)"),
        (Potential(ace, QuadraticHead(2, K)), TypeError, r"not a QuadraticHead; quadratic and MLP heads"),
        (Potential(ace, MLPHead(2, K, hidden=(4,))), TypeError, r"not a MLPHead"),
        (Potential(ace, linear.head, ZBL(["Al", "Ni"], [13.0, 28.0], 1.5, 2.5)), TypeError,
         r"not a 'zbl' reference potential"),
    ]
    for potential, error, message in cases:
        with pytest.raises(error, match=message):
            mliap_torch.write_pace(potential, tmp_path / "x.yace")
    asymmetric = generated_linear_ace(False)
    crad = asymmetric.descriptor.crad.clone()
    crad[0, 1, 0, 0, 0] += 0.1
    asymmetric.descriptor.set_radial_coefficients(crad)
    with pytest.raises(ValueError, match=r"radial coefficients crad of Al-Ni and Ni-Al differ; PACE has one bond"):
        mliap_torch.write_pace(asymmetric, tmp_path / "x.yace")
    # a potential read from a C-tilde file has explicit couplings, no LS
    basis = random_basis(random_spec(1), 1)
    yaml_path, yace_path = write_files(basis, tmp_path)
    with pytest.raises(TypeError, match=r"explicit complex-harmonic coupling"):
        mliap_torch.write_pace(mliap_torch.read_pace(yace_path), tmp_path / "x.yace")
    cored = mliap_torch.read_pace(yaml_path)
    with torch.no_grad():
        cored.head.bias.fill_(-1.0)
    with pytest.raises(ValueError, match=r"bias\) and a core repulsion.*PACE adds E0 after it"):
        mliap_torch.write_pace(cored, tmp_path / "x.yace")
    with pytest.raises(ModelFileError, match=r"x.pt: write_pace writes pacemaker"):
        mliap_torch.write_pace(linear, tmp_path / "x.pt")


def test_E0_is_added_after_the_core_density_cutoff_as_in_pace(tmp_path) -> None:
    """PACE adds a C-tilde file's ``E0`` after the cutoff f_cut(ρ_core) (``ACECTildeEvaluator``): with
    ``rho_core_cut`` among the atoms' core densities (one atom switched off, four partly), ``read_pace`` of such a
    ``.yace`` and a potential with a core repulsion whose ``energy_shift`` is written as ``E0`` equal pyace."""
    seed = 4
    potential = mliap_torch.read_pace(write_files(random_basis(random_spec(seed), seed), tmp_path)[0])
    atoms = structures(list(potential.elements), seed)[1]
    batch = make_batch([Configuration.from_ase(atoms)], potential.elements, potential.cutoff)
    rho = potential.reference(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)[:, 0]  # [ρ_core, f_cut]
    r = np.sort(rho.detach().numpy())
    cut, low = 0.5 * (r[-2] + r[-1]), 0.5 * (r[-6] + r[-5])
    basis = random_basis(random_spec(seed, rho_core_cut=cut, drho_core_cut=cut - low), seed)
    folder = tmp_path / "cut"
    folder.mkdir()
    yaml_path, yace_path = write_files(basis, folder)
    text, n = yace_path.read_text(), len(potential.elements)
    zeros = f"E0: [{', '.join(['0'] * n)}]"
    assert zeros in text
    yace_path.write_text(text.replace(zeros, f"E0: [{', '.join(['-3.25'] * n)}]"))
    read = mliap_torch.read_pace(yace_path)
    assert isinstance(read.reference, PaceCoreRepulsion) and read.reference.energy_shift.tolist() == [-3.25] * n
    assert_same(evaluate(read, atoms), pyace_reference(ACECTildeBasisSet(str(yace_path)), atoms))
    written = mliap_torch.read_pace(yaml_path)
    with torch.no_grad():
        written.reference.energy_shift.fill_(1.5)
    out = mliap_torch.write_pace(written, tmp_path / "e0.yace")
    assert f"E0: [{', '.join(['1.5'] * n)}]" in out.read_text()
    mine = evaluate(written, atoms)
    assert_same(mine, pyace_reference(ACECTildeBasisSet(str(out)), atoms))
    switched = float(((rho > low) & (rho < cut)).sum() + (rho >= cut).sum())
    assert switched == 5 and mine["energy"] == pytest.approx(
        evaluate(mliap_torch.read_pace(yaml_path), atoms)["energy"] + 1.5 * len(atoms), rel=1e-12)


def test_zbl_inner_cutoff_is_written(tmp_path) -> None:
    """``inner_cutoff_type: zbl`` (ZBL taking over by the nearest neighbour) with per-element E0 (the reference's
    ``energy_shift``): written, pyace evaluates both files as torch, on structures with atoms on ACE alone, partly and
    fully on ZBL."""
    seed = 1
    spec = random_spec(seed)
    rng = np.random.default_rng(seed + 50)
    for bond in spec["bonds"].values():
        bond.update(inner_cutoff_type="zbl", r_in=float(rng.uniform(2.1, 2.3)), delta_in=float(rng.uniform(0.2, 0.4)))
        bond["core-repulsion"] = [float(rng.uniform(0.5, 1.5)), 1.0]
    potential = mliap_torch.read_pace(write_files(random_basis(spec, seed), tmp_path)[0])
    assert isinstance(potential.reference, PaceCoreRepulsion) and potential.reference.inner_cutoff_type == "zbl"
    yaml_path = mliap_torch.write_pace(potential, tmp_path / "zbl.yaml")
    with torch.no_grad():
        potential.reference.energy_shift.copy_(torch.tensor([-3.25, 1.5], dtype=torch.float64))
    yace_path = mliap_torch.write_pace(potential, tmp_path / "zbl.yace")
    assert "E0: [-3.25, 1.5]" in yace_path.read_text() and "inner_cutoff_type: zbl" in yace_path.read_text()
    switches: list[float] = []
    for atoms in structures(list(potential.elements), seed):
        mine = evaluate(potential, atoms)
        assert_same(mine, pyace_reference(ACECTildeBasisSet(str(yace_path)), atoms))
        shift = -3.25 * (atoms.symbols == "Al").sum() + 1.5 * (atoms.symbols == "Cu").sum()
        from_yaml = pyace_reference(ACEBBasisSet(str(yaml_path)), atoms)
        assert_same(mine, {**from_yaml, "energy": from_yaml["energy"] + shift})
        batch = make_batch([Configuration.from_ase(atoms)], potential.elements, potential.cutoff)
        switches += potential.reference(batch.rij(), batch.pair_i, batch.pair_j, batch.species,
                                        batch.total_atoms)[:, 1].tolist()
    f = np.array(switches)
    assert (f == 1).any() and ((f > 0) & (f < 1)).any() and (f == 0).any()
