"""Extrapolation grade γ (issue 24, part 1): MaxVol against brute force, active sets of linear, quadratic and
MLP heads on bispectrum, ACE and SO(3) descriptors, model files, the ASE calculator and a training run."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from hydra import compose, initialize_config_dir

import mliap_torch
from cli_helpers import QUICK, run_cli
from mliap_torch.cli.schema import validate
from mliap_torch.cli.train import CONFIG_DIR
from mliap_torch.data.builtin import builtin_dataset
from mliap_torch.descriptors.ace import ACE
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.descriptors.so3 import SO3
from mliap_torch.models.embedding import EmbeddingHead
from mliap_torch.models.heads import LinearHead, MLPHead, QuadraticHead
from mliap_torch.models.potential import Potential
from mliap_torch.training.run import run
from mliap_torch.uncertainty.active_set import ActiveSet
from mliap_torch.uncertainty.build import build_active_set, configuration_grades, grade_statistics
from mliap_torch.uncertainty.maxvol import active_set_inverse, maxvol


def cu_cell(a: float = 3.61, rattle: float = 0.0, shear: float = 0.0, seed: int = 0):
    """2×2×2 conventional fcc Cu (32 atoms), lattice ``a`` Å, simple shear ``xy``, rattled by ``rattle`` Å."""
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 2))
    strain = np.eye(3)
    strain[0, 1] = shear
    atoms.set_cell(np.asarray(atoms.cell) @ strain, scale_atoms=True)
    atoms.positions += np.random.default_rng(seed).normal(scale=rattle, size=atoms.positions.shape)
    return atoms


@pytest.mark.parametrize("n, r, seed", [(6, 2, 0), (8, 3, 1), (9, 4, 2), (7, 3, 3)])
def test_maxvol_against_brute_force(n, r, seed):
    A = np.random.default_rng(seed).standard_normal((n, r))
    rows, C = maxvol(A, tol=1.0 + 1e-12)
    assert len(set(rows.tolist())) == r
    np.testing.assert_allclose(C, A @ np.linalg.inv(A[rows]), atol=1e-10)
    np.testing.assert_allclose(C[rows], np.eye(r), atol=1e-10)
    assert np.abs(C).max() <= 1.0 + 1e-9
    volumes = {s: abs(np.linalg.det(A[list(s)])) for s in itertools.combinations(range(n), r)}
    best = max(volumes, key=volumes.__getitem__)
    # A dominant submatrix (every |c| ≤ 1) has at least r^(-r/2) of the largest volume (Goreinov et al.), and
    # the largest-volume one is dominant: by Cramer's rule its coefficients are ratios of volumes, all ≤ 1.
    assert volumes[tuple(sorted(rows))] >= volumes[best] / r ** (r / 2)
    assert np.abs(A @ np.linalg.inv(A[list(best)])).max() <= 1.0 + 1e-9
    # The γ of the active set module is that max |c|.
    active = ActiveSet.from_features([A], tol=1.0 + 1e-12)
    gamma = active(torch.from_numpy(A), torch.zeros(n, dtype=torch.int64))
    np.testing.assert_allclose(gamma.numpy(), np.abs(C).max(1), atol=1e-10)


def test_rank_deficient_and_short_feature_matrices():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((40, 3))
    # a constant column and a repeated one: rank 4 of 6 columns
    X = np.hstack([np.ones((40, 1)), base, base[:, :1], np.zeros((40, 1))])
    rows, M = active_set_inverse(X)
    assert M.shape == (6, 4) and len(rows) == 4
    assert np.abs(X @ M).max() <= 1.01
    short = rng.standard_normal((3, 8))         # fewer atoms than features: every atom is in the active set
    rows, M = active_set_inverse(short)
    assert sorted(rows.tolist()) == [0, 1, 2]
    np.testing.assert_allclose(np.abs(short @ M).max(1), 1.0, atol=1e-10)
    active = ActiveSet.from_features([X, np.zeros((0, 6))])
    assert active.size.tolist() == [4, 0]
    gamma = active(torch.from_numpy(X[:2]), torch.tensor([0, 1]))
    assert gamma[0] <= 1.01 and torch.isinf(gamma[1])   # no training atoms of element 1


@pytest.fixture(scope="module")
def training_set():
    """Every fourth configuration of the built-in data (Cu and Cu–Ni, all groups)."""
    return builtin_dataset()[::4]


def descriptor(kind: str):
    if kind == "bispectrum":
        return Bispectrum(["Cu", "Ni"], twojmax=4, rcutfac=4.1, radelem=[0.5, 0.5], wj=[1.0, 1.0])
    if kind == "ace":
        return ACE(["Cu", "Ni"], nradmax_by_orders=[4, 2, 1], lmax_by_orders=[0, 2, 1], rcut=4.6)
    return SO3(["Cu", "Ni"], nmax=3, lmax=2, rcutfac=4.6, alpha=1.5, radelem=[0.5, 0.5], wj=[1.0, 1.0])


def potential_with(kind: str, head: str) -> Potential:
    torch.manual_seed(0)
    desc = descriptor(kind)
    K = desc.num_descriptors
    heads = {"linear": lambda: LinearHead(2, K), "quadratic": lambda: QuadraticHead(2, K),
             "mlp": lambda: MLPHead(2, K, hidden=(16, 8), linear_term=False),
             "embedding": lambda: random_embedding_head(K)}
    return Potential(desc, heads[head]()).to(torch.float64)


def random_embedding_head(K: int) -> EmbeddingHead:
    """pacemaker's default embedding (two densities, E = ρ₁ + √ρ₂ smoothed) with random density coefficients."""
    head = EmbeddingHead(2, K, "FinnisSinclairShiftedScaled", [1.0, 1.0, 1.0, 0.5])
    head.set_density_coefficients(torch.randn(2, 2, K, dtype=torch.float64) / K)
    return head


@pytest.mark.parametrize("kind, head", [("bispectrum", "linear"), ("bispectrum", "quadratic"), ("bispectrum", "mlp"),
                                        ("ace", "linear"), ("ace", "embedding"), ("so3", "linear")])
def test_training_atoms_interpolate_and_compressed_cells_extrapolate(kind, head, training_set, one_thread):
    """γ of linear and quadratic heads depends on the descriptors only (no fit needed); the MLP's random
    hidden layers stand in for trained ones."""
    potential = potential_with(kind, head)
    if head == "mlp":
        from mliap_torch.training.setup import descriptor_statistics

        potential.head.set_scaling(*descriptor_statistics(potential, training_set))
    active = build_active_set(potential, training_set, progress=False)
    assert active is not None and potential.active_set is active
    grades = configuration_grades(potential, training_set, progress=False)
    assert max(g.max() for g in grades) <= 1.01
    assert grade_statistics(grades)["above"]["1.01"] == {"atoms": 0, "configs": 0}
    assert potential.extrapolation_grade([cu_cell(3.0)]).max() > 5
    assert potential.extrapolation_grade([cu_cell(3.61, shear=0.5, rattle=0.02)]).max() > 2


def test_heads_features_for_gamma():
    B = torch.randn(5, 4, dtype=torch.float64)
    species = torch.tensor([0, 1, 0, 1, 1])
    linear = LinearHead(2, 4).grade_features(B, species)
    torch.testing.assert_close(linear, torch.cat([torch.ones(5, 1), B], 1))
    assert QuadraticHead(2, 4).grade_features(B, species).shape == (5, 1 + 4 + 10)
    mlp = MLPHead(2, 4, hidden=(6, 3), linear_term=True)
    features = mlp.grade_features(B, species)
    assert features.shape == (5, 1 + 3 + 4)
    for e in (0, 1):   # the last hidden layer of each atom's own element network
        hidden = mlp.networks[e][:4]((B[species == e] - mlp.shift) / mlp.scale)
        torch.testing.assert_close(features[species == e, 1:4], hidden)


def test_embedding_features_are_the_gradient_of_each_atom_energy_in_the_head_parameters():
    """pacemaker's B-projections: ∂E_i/∂(E0, c_pk) of the atom's own element, checked against autograd's
    per-atom Jacobian of the head's forward (a second, independent route to the same numbers)."""
    torch.manual_seed(1)
    B = torch.randn(6, 4, dtype=torch.float64)
    species = torch.tensor([0, 1, 0, 1, 1, 0])
    head = EmbeddingHead(2, 4, ["FinnisSinclairShiftedScaled", "FinnisSinclair"], [[1.0, 1.0, 0.7, 0.5], [0.3, 1.5]])
    head.set_density_coefficients(torch.randn(2, 2, 4, dtype=torch.float64))
    features = head.grade_features(B, species)
    assert features.shape == (6, 1 + 2 * 4)
    for i, e in enumerate(species.tolist()):
        bias_grad, coefficient_grad = torch.autograd.grad(head(B[i:i + 1], species[i:i + 1]).sum(),
                                                          [head.bias, head.coefficients])
        expected = torch.cat([bias_grad[e:e + 1], coefficient_grad[e].flatten()])
        torch.testing.assert_close(features[i], expected, rtol=1e-12, atol=1e-14)


@pytest.fixture(scope="module")
def graded_potential(training_set):
    potential = potential_with("bispectrum", "linear")
    build_active_set(potential, training_set, progress=False)
    return potential


def test_model_file_keeps_the_active_set_and_loads_weights_only(graded_potential, tmp_path):
    path = mliap_torch.save(graded_potential, tmp_path / "model.pt")
    blob = torch.load(path, weights_only=True)
    assert blob["settings"]["active_set"] == {"num_elements": 2, "num_features": 15}
    loaded = mliap_torch.load(path)
    cells = [cu_cell(3.61, rattle=0.05), cu_cell(3.2)]
    torch.testing.assert_close(loaded.extrapolation_grade(cells), graded_potential.extrapolation_grade(cells))
    # a file written before active sets (no settings entry, no buffers) loads without one
    del blob["settings"]["active_set"]
    blob["state_dict"] = {k: v for k, v in blob["state_dict"].items() if not k.startswith("active_set.")}
    torch.save(blob, tmp_path / "old.pt")
    old = mliap_torch.load(tmp_path / "old.pt")
    assert old.active_set is None and "active_set" not in old.settings()
    with pytest.raises(ValueError, match="no active set"):
        old.extrapolation_grade(cells)
    calc = mliap_torch.Calculator(old)
    atoms = cu_cell()
    atoms.calc = calc
    atoms.get_potential_energy()
    assert "extrapolation_grade" not in calc.results


def test_calculator_reports_gamma_per_atom(graded_potential):
    atoms = cu_cell(3.3, rattle=0.05)
    atoms.calc = mliap_torch.Calculator(graded_potential)
    atoms.get_forces()
    gamma = atoms.calc.results["extrapolation_grade"]
    assert gamma.shape == (len(atoms),)
    np.testing.assert_allclose(gamma, graded_potential.extrapolation_grade([atoms]).numpy(), rtol=1e-12)
    np.testing.assert_allclose(atoms.calc.get_property("extrapolation_grade", atoms), gamma)


def test_quick_training_run_writes_test_set_grades(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli([*QUICK, f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Extrapolation grade γ of the test set" in proc.stdout
    summary = json.loads((run_dir / "metrics.json").read_text())["summary"]["extrapolation_grade"]
    assert summary["test"]["atoms"] > 0 and summary["test"]["max"] >= summary["test"]["p99"] >= summary["test"]["median"]
    assert set(summary["active_set_size"]) == {"Cu", "Ni"}
    assert "## Extrapolation grade" in (run_dir / "metrics.md").read_text()
    assert mliap_torch.load(run_dir / "model.pt").active_set is not None
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = validate(compose("train", overrides=[*QUICK, "active_set.enabled=false"]))
    result = run(cfg, tmp_path / "off")
    assert result is not None and "extrapolation_grade" not in result.metrics
    assert mliap_torch.load(tmp_path / "off" / "model.pt").active_set is None


@pytest.mark.slow
def test_default_training_run_grades_rattled_and_compressed_cu(tmp_path):
    """Done-when of issue 24: ``python train.py`` (defaults; no plots, no LAMMPS step) then the calculator:
    max γ < 2 on rattled fcc Cu at 3.61 Å, > 5 compressed to 3.0 Å."""
    run_dir = tmp_path / "run"
    proc = run_cli(["plots=false", "export.lammps=false", f"hydra.run.dir={run_dir}"], timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    calc = mliap_torch.Calculator(mliap_torch.load(run_dir / "model.pt"))
    grades = {}
    for name, atoms in {"rattled": cu_cell(3.61, rattle=0.02), "compressed": cu_cell(3.0)}.items():
        atoms.calc = calc
        atoms.get_potential_energy()
        grades[name] = atoms.calc.results["extrapolation_grade"].max()
    assert grades["rattled"] < 2 and grades["compressed"] > 5, grades
