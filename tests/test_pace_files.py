"""Pacemaker potentials read by ``mliap_torch.read_pace`` against pyace's calculator.

Random pacemaker potentials (1–3 elements, 1–4 densities per element, both embedding families with random
``fs_parameters``, ChebExpCos/ChebPow/SBessel radial bases, ``distance`` and ``density`` inner cutoffs, core
repulsion, random radial and function coefficients) are written as B-basis ``.yaml`` and C-tilde ``.yace``;
both files read by ``read_pace`` must give pyace's energy, forces and stress to 1e-8 (relative; measured
≈1e-15 for energies and ≈1e-10 for forces, the rest is pyace's spline tabulation with deltaSplineBins 1e-5).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pyace = pytest.importorskip("pyace")
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402
from pyace import ACEBBasisSet, PyACECalculator  # noqa: E402
from pyace.multispecies_basisextension import create_multispecies_basis_config  # noqa: E402

import mliap_torch  # noqa: E402
from mliap_torch.data.batch import make_batch  # noqa: E402
from mliap_torch.data.configuration import Configuration  # noqa: E402
from mliap_torch.descriptors.ace_files import ace_from_yace  # noqa: E402
from mliap_torch.errors import ModelFileError  # noqa: E402
from mliap_torch.models.embedding import EMBEDDINGS, EmbeddingHead  # noqa: E402
from mliap_torch.models.pace_core import PaceCoreRepulsion  # noqa: E402
from mliap_torch.registry import head_class, reference_class  # noqa: E402
from test_ace_pyace import randomize_coefficients  # noqa: E402

ELEMENTS = ["Al", "Cu", "Ni"]
RADIAL = ["ChebExpCos", "ChebPow", "SBessel"]
FUNCTIONS = {1: ([4, 3, 2, 1], [0, 2, 2, 1]), 2: ([3, 2, 1], [0, 2, 1]), 3: ([2, 1, 1], [0, 1, 1])}


def random_spec(seed: int, rho_core_cut: float = 100000.0, drho_core_cut: float = 250.0) -> dict:
    """A pacemaker basis specification drawn from ``seed``: elements, embeddings, bonds and functions."""
    rng = np.random.default_rng(seed)
    elements = ELEMENTS[:1 + seed % 3]
    embeddings = {}
    for k, element in enumerate(elements):
        ndensity = 1 + (seed + k) % 4  # the six seeds cover 1-4 densities
        fs = []
        for _ in range(ndensity):
            m = 1.0 if rng.random() < 0.2 else float(rng.uniform(0.3, 2.0))
            fs += [float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.5)), m]
        embeddings[element] = {"npot": str(rng.choice(EMBEDDINGS)), "fs_parameters": fs, "ndensity": ndensity,
                               "rho_core_cut": rho_core_cut, "drho_core_cut": drho_core_cut}
    distance = seed % 2 == 0

    def bond() -> dict:
        out = {"radbase": str(rng.choice(RADIAL)), "radparameters": [float(rng.uniform(2.0, 6.0))],
               "rcut": float(rng.uniform(4.2, 5.0)), "dcut": float(rng.uniform(0.05, 0.3)),
               "core-repulsion": [float(rng.uniform(20.0, 100.0)), float(rng.uniform(0.5, 2.0))]}
        if distance:
            out.update(r_in=float(rng.uniform(2.0, 2.4)), delta_in=float(rng.uniform(0.2, 0.5)))
        else:
            out.update(inner_cutoff_type="density")
        return out

    bonds = {"ALL": bond()}
    if len(elements) > 1:
        bonds[(elements[0], elements[-1])] = bond()
    nradmax, lmax = FUNCTIONS[len(elements)]
    return {"deltaSplineBins": 1e-5, "elements": elements, "embeddings": embeddings, "bonds": bonds,
            "functions": {"ALL": {"nradmax_by_orders": nradmax, "lmax_by_orders": lmax}}}


def random_basis(spec: dict, seed: int) -> ACEBBasisSet:
    """The pyace basis of ``spec`` with random radial (pair-symmetric) and function coefficients."""
    config = create_multispecies_basis_config(spec)
    return ACEBBasisSet(randomize_coefficients(config, np.random.default_rng(seed + 1000), 0.5))


def structures(elements: list[str], seed: int) -> list[Atoms]:
    """Two periodic structures with random species: a rattled fcc supercell and a random triclinic cell whose
    closest pairs (≥ 1.7 Å) are inside the core repulsion's range."""
    rng = np.random.default_rng(seed)
    fcc = bulk("Al", "fcc", a=3.9, cubic=True) * (2, 1, 1)
    fcc.rattle(0.25, seed=seed)
    cell = np.diag([6.0, 6.4, 6.8]) + rng.uniform(-0.6, 0.6, size=(3, 3))
    positions: list[np.ndarray] = []
    while len(positions) < 12:
        x = rng.uniform(0, 1, size=3) @ cell
        if all(_min_image(x - p, cell) > 1.7 for p in positions):
            positions.append(x)
    random = Atoms("Al12", positions=positions, cell=cell, pbc=True)
    for atoms in (fcc, random):
        atoms.symbols[:] = [elements[k] for k in rng.integers(0, len(elements), size=len(atoms))]
    return [fcc, random]


def _min_image(d: np.ndarray, cell: np.ndarray) -> float:
    frac = np.linalg.solve(cell.T, d)
    return float(np.linalg.norm((frac - np.round(frac)) @ cell))


def pyace_reference(basis: ACEBBasisSet, atoms: Atoms) -> dict[str, np.ndarray | float]:
    atoms = atoms.copy()
    atoms.calc = PyACECalculator(basis)
    return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}


def evaluate(potential: mliap_torch.Potential, atoms: Atoms) -> dict[str, np.ndarray | float]:
    batch = make_batch([Configuration.from_ase(atoms)], potential.elements, potential.cutoff)
    out = potential(batch)
    return {"energy": out["energy"].item(), "forces": out["forces"].detach().numpy(),
            "stress": out["stress"][0].detach().numpy()}


def assert_same(mine: dict, ref: dict, rtol: float = 1e-8) -> None:
    assert mine["energy"] == pytest.approx(ref["energy"], rel=rtol)
    for key in ("forces", "stress"):
        scale = np.abs(ref[key]).max()
        np.testing.assert_allclose(mine[key], ref[key], rtol=0, atol=rtol * scale, err_msg=key)


def write_files(basis: ACEBBasisSet, folder) -> tuple:
    yaml_path, yace_path = folder / "potential.yaml", folder / "potential.yace"
    basis.to_BBasisConfiguration().save(str(yaml_path))
    basis.to_ACECTildeBasisSet().save_yaml(str(yace_path))
    return yaml_path, yace_path


@pytest.mark.parametrize("seed", range(6))
def test_random_pacemaker_potentials_equal_pyace(seed: int, tmp_path) -> None:
    spec = random_spec(seed)
    basis = random_basis(spec, seed)
    paths = write_files(basis, tmp_path)
    potentials = [mliap_torch.read_pace(p) for p in paths]
    for potential in potentials:
        assert isinstance(potential.head, EmbeddingHead)
        assert isinstance(potential.reference, PaceCoreRepulsion)
    elements = list(basis.elements_name)
    ndensities = [e["ndensity"] for e in spec["embeddings"].values()]
    assert potentials[0].head.ndensity == max(ndensities)
    core = 0.0
    for atoms in structures(elements, seed):
        ref = pyace_reference(basis, atoms)
        for potential in potentials:
            assert_same(evaluate(potential, atoms), ref)
        batch = make_batch([Configuration.from_ase(atoms)], elements, potentials[0].cutoff)
        rho_core = potentials[0].reference(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        core = max(core, float(rho_core[:, 0].max()))
    assert core > 1e-3  # the core repulsion takes part


def test_yace_E0_shifts_the_atoms_as_in_pyace(tmp_path) -> None:
    """The per-element ``E0`` of a C-tilde file (zero when pyace converts a B-basis) is each atom's energy shift."""
    from pyace import ACECTildeBasisSet

    basis = random_basis(random_spec(1), 1)
    yace = write_files(basis, tmp_path)[1]
    text = yace.read_text()
    assert "E0: [0, 0]" in text
    yace.write_text(text.replace("E0: [0, 0]", "E0: [-3.25, 1.5]"))
    potential = mliap_torch.read_pace(yace)
    atoms = structures(list(basis.elements_name), 1)[0]
    assert_same(evaluate(potential, atoms), pyace_reference(ACECTildeBasisSet(str(yace)), atoms))
    shift = -3.25 * (atoms.symbols == "Al").sum() + 1.5 * (atoms.symbols == "Cu").sum()
    assert evaluate(potential, atoms)["energy"] == pytest.approx(pyace_reference(basis, atoms)["energy"] + shift,
                                                                 rel=1e-12)


def test_energy_cutoff_of_the_core_density_equals_pyace(tmp_path) -> None:
    """``rho_core_cut`` set among the atoms' core densities, so that f_cut switches some atoms partly off."""
    seed = 4
    basis = random_basis(random_spec(seed), seed)
    potential = mliap_torch.read_pace(write_files(basis, tmp_path)[0])
    atoms = structures(list(basis.elements_name), seed)[1]
    batch = make_batch([Configuration.from_ase(atoms)], potential.elements, potential.cutoff)
    rho = potential.reference(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)[:, 0]
    r = np.sort(rho.detach().numpy())
    cut = 0.5 * (r[-2] + r[-1])  # the densest atom is switched off, the next four partly
    width = cut - 0.5 * (r[-6] + r[-5])
    spec = random_spec(seed, rho_core_cut=cut, drho_core_cut=width)
    basis = random_basis(spec, seed)
    folder = tmp_path / "cut"
    folder.mkdir()
    ref = pyace_reference(basis, atoms)
    for path in write_files(basis, folder):
        potential = mliap_torch.read_pace(path)
        switching = ((rho > cut - width) & (rho < cut)).sum()
        assert switching == 4 and (rho >= cut).sum() == 1
        assert_same(evaluate(potential, atoms), ref)


@pytest.mark.parametrize("seed", range(3))
def test_zbl_inner_cutoff_equals_pyace(seed: int, tmp_path) -> None:
    """``inner_cutoff_type: zbl``: ZBL (prefactor ``core-repulsion[0]``) takes over from ACE by the nearest
    neighbour's distance between r_in - δ_in and r_in. The structures have atoms with every neighbour beyond r_in
    (f = 1), partly switched ones and some fully on ZBL (f = 0); the .yace also gets per-element E0, which PACE adds
    after the switch."""
    from pyace import ACECTildeBasisSet

    spec = random_spec(seed)
    rng = np.random.default_rng(seed + 50)
    for bond in spec["bonds"].values():
        bond.update(inner_cutoff_type="zbl", r_in=float(rng.uniform(2.1, 2.3)), delta_in=float(rng.uniform(0.2, 0.4)))
        bond["core-repulsion"] = [float(rng.uniform(0.5, 1.5)), 1.0]
    basis = random_basis(spec, seed)
    yaml_path, yace_path = write_files(basis, tmp_path)
    n = len(basis.elements_name)
    zeros = "E0: [" + ", ".join(["0"] * n) + "]"
    shifts = [-3.25, 1.5, 0.75][:n]
    yace_path.write_text(yace_path.read_text().replace(zeros, "E0: [" + ", ".join(map(str, shifts)) + "]"))
    shifted = ACECTildeBasisSet(str(yace_path))
    switches: list[float] = []
    for atoms in structures(list(basis.elements_name), seed):
        potential = mliap_torch.read_pace(yaml_path)
        assert isinstance(potential.reference, PaceCoreRepulsion) and potential.reference.inner_cutoff_type == "zbl"
        assert_same(evaluate(potential, atoms), pyace_reference(basis, atoms))
        assert_same(evaluate(mliap_torch.read_pace(yace_path), atoms), pyace_reference(shifted, atoms))
        batch = make_batch([Configuration.from_ase(atoms)], potential.elements, potential.cutoff)
        core = potential.reference(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        switches += core[:, 1].tolist()
    f = np.array(switches)
    assert (f == 1).any() and ((f > 0) & (f < 1)).any() and (f == 0).any()


def test_embedding_head_is_trainable_and_round_trips(tmp_path) -> None:
    basis = random_basis(random_spec(5), 5)
    potential = mliap_torch.read_pace(write_files(basis, tmp_path)[0])
    assert head_class("pace_embedding") is EmbeddingHead and reference_class("pace_core") is PaceCoreRepulsion
    path = mliap_torch.save(potential, tmp_path / "model.pt")
    loaded = mliap_torch.load(path)
    atoms = structures(list(basis.elements_name), 5)[0]
    assert evaluate(loaded, atoms)["energy"] == evaluate(potential, atoms)["energy"]
    # zero coefficients (a fresh head): every density still has a gradient (the embeddings are smooth at ρ = 0)
    head = EmbeddingHead(2, 3, ["FinnisSinclair", "FinnisSinclairShiftedScaled"], [[1, 0.5, -1, 1.5], [2, 0.5]])
    B = torch.randn(5, 3, dtype=torch.float64)
    head(B, torch.tensor([0, 1, 0, 1, 0])).sum().backward()
    grad = head.coefficients.grad
    assert grad is not None and bool((grad[0] != 0).all()) and bool((grad[1, 0] != 0).all())
    assert bool((grad[1, 1] == 0).all())  # element 1 has one density


def test_what_pace_evaluates_differently_is_refused(tmp_path) -> None:
    yace = write_files(random_basis(random_spec(1), 1), tmp_path)[1]
    yace.write_text(yace.read_text().replace("inner_cutoff_type: density", "inner_cutoff_type: hard"))
    with pytest.raises(ModelFileError, match=r"potential.yace: bonds: inner_cutoff_type 'hard'"):
        mliap_torch.read_pace(yace)
    basis = random_basis(random_spec(2), 2)
    yace = write_files(basis, tmp_path)[1]
    text = yace.read_text()
    bad = tmp_path / "bad.yace"
    bad.write_text(text.replace("npoti: FinnisSinclair", "npoti: Polynomial", 1))
    with pytest.raises(ModelFileError, match=r"bad.yace: embeddings of .*npoti.*'Polynomial"):
        mliap_torch.read_pace(bad)
    with pytest.raises(ValueError, match=r"ndensity .*read_pace"):
        ace_from_yace(yace)
    (tmp_path / "x.ace").write_text("")
    with pytest.raises(ModelFileError, match="x.ace"):
        mliap_torch.read_pace(tmp_path / "x.ace")
    with pytest.raises(FileNotFoundError):
        mliap_torch.read_pace(tmp_path / "missing.yaml")


def test_embedding_head_starts_at_the_exact_linear_fit() -> None:
    """pacemaker's default [1, 1, 1, 0.5]: ρ₁ (F = ρ) takes the linear fit's coefficients, ρ₂ starts at 0 (F(0) = 0),
    so the embedding potential's energies are those of the exact linear ACE fit (a second potential, fitted by
    ``fit_exact``), before any gradient step."""
    from mliap_torch.data.builtin import builtin_dataset
    from mliap_torch.descriptors.ace import ACE
    from mliap_torch.fitting.exact_fit import fit_exact
    from mliap_torch.models.heads import LinearHead
    from mliap_torch.models.potential import Potential
    from mliap_torch.training.setup import initialize_embedding

    configs = builtin_dataset()[:12]
    descriptor = ACE(["Cu", "Ni"], nradmax_by_orders=[3, 1], lmax_by_orders=[0, 1], rcut=4.6)
    K = descriptor.num_descriptors
    embedded = Potential(descriptor, EmbeddingHead(2, K, "FinnisSinclairShiftedScaled", [1.0, 1.0, 1.0, 0.5]))
    initialize_embedding(embedded, configs)
    linear = Potential(descriptor, LinearHead(2, K)).to(torch.float64)
    fit_exact(linear, configs, bias=True)
    assert bool((embedded.head.coefficients[:, 1] == 0).all())
    batch = make_batch(builtin_dataset()[20:24], embedded.elements, embedded.cutoff)
    torch.testing.assert_close(embedded(batch, forces=False)["energy"], linear(batch, forces=False)["energy"],
                               rtol=1e-12, atol=1e-10)


def test_ace_pace_model_trains_from_the_command_line_config(tmp_path) -> None:
    """``model=ace_pace``: PACE's embedding head on ACE descriptors, started at the exact linear fit, then gradient steps;
    the saved model reloads with the same energies."""
    from hydra import compose, initialize_config_dir

    from mliap_torch.cli.schema import validate
    from mliap_torch.cli.train import CONFIG_DIR
    from mliap_torch.data.builtin import builtin_dataset
    from mliap_torch.training.run import run

    # no validation split: one epoch need not beat the exact linear start on validation, and a run keeps its
    # start when no epoch does (the trained weights are what this test looks at)
    overrides = ["model=ace_pace", "descriptor.nradmax_by_orders=[3,1]", "descriptor.lmax_by_orders=[0,1]",
                 "data.max_configs=8", "data.batch_size=4", "data.val_fraction=0.0", "trainer.max_epochs=1",
                 "trainer.enable_progress_bar=false", "plots=false", "export.lammps=false"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = validate(compose("train", overrides=overrides))
    result = run(cfg, tmp_path)
    head = result.potential.head
    assert isinstance(head, EmbeddingHead) and head.fs_parameters[0] == [1.0, 1.0, 1.0, 0.5]
    assert float(head.coefficients[:, 1].detach().abs().max()) > 0  # ρ₂ trained away from its zero start
    assert np.isfinite(result.metrics["train"]["all"]["energy_mae"])
    loaded = mliap_torch.load(tmp_path / "model.pt")
    configs = builtin_dataset()[:2]
    batch = make_batch(configs, loaded.elements, loaded.cutoff)
    torch.testing.assert_close(loaded(batch, forces=False)["energy"], result.potential(batch, forces=False)["energy"])
