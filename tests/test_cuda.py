"""The modules on a CUDA device against the same modules on the CPU: bispectrum and ACE descriptors
(forward, forces, stress, per-pair Jacobian), heads, an exact fit, the ASE calculator and a short
Lightning training run with ``trainer.accelerator=gpu``.

Every test here is marked ``cuda`` and skips, with the reason, where ``torch.cuda.is_available()``
is false (this development machine and CI have no GPU). ``scripts/gpu_check.sh`` runs them on a
GPU machine (docs/gpu.md). ``MLIAP_TORCH_TEST_DEVICE=cpu`` runs them with the CPU in the GPU's place
(CPU against CPU: it checks the tests' own code, not CUDA; gpu_check.sh never sets it).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import QUICK, metrics, run_cli
from fit_helpers import label, structures
from fit_helpers import potential as radial_potential
from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors.ace import ACE
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.fitting.exact_fit import fit_exact
from mliap_torch.models.embedding import EmbeddingHead
from mliap_torch.models.heads import LinearHead, MLPHead, QuadraticHead
from mliap_torch.models.pace_core import PaceCoreRepulsion
from mliap_torch.models.potential import Potential
from snap_reference import random_structure, triclinic_cell
from test_bispectrum_gradients import SETTINGS as BISPECTRUM  # the CPU gradient tests' settings

pytestmark = pytest.mark.cuda
DEVICE = os.environ.get("MLIAP_TORCH_TEST_DEVICE", "cuda")
"""The device compared with the CPU (the ``cuda`` marker skips these tests when it is a CUDA device and none is there)."""


def config_for(elements: list[str], seed: int = 0, natoms: int = 48) -> Configuration:
    rng = np.random.default_rng(seed)
    cell = triclinic_cell(rng, [9.0, 9.5, 10.0])
    pos, species = random_structure(rng, natoms, cell, min_dist=1.8, nelements=len(elements))
    return Configuration(positions=pos, cell=cell, pbc=[True] * 3, symbols=np.array(elements)[species])


def with_head(descriptor, head: str = "linear", seed: int = 0) -> Potential:
    ne, k = len(descriptor.elements), descriptor.num_descriptors
    if head == "mlp":
        model = MLPHead(ne, k, hidden=(16, 16))
        torch.manual_seed(seed)
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.1)
        return Potential(descriptor, model)
    model = QuadraticHead(ne, k) if head == "quadratic" else LinearHead(ne, k)
    gen = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(ne, 1 + model.num_features, generator=gen, dtype=torch.float64) * 0.01
    if head == "quadratic":
        coeffs[:, 1 + k:] *= 1e-2
    model.set_coefficients(coeffs)
    return Potential(descriptor, model)


def evaluate(potential: Potential, config: Configuration, device: str, dtype=torch.float64) -> dict[str, np.ndarray]:
    model = potential.to(device=device, dtype=dtype)
    batch = make_batch([config], model.elements, model.cutoff, dtype=dtype).to(device)
    out = model(batch, forces=True, stress=True)
    assert out["forces"].device.type == torch.device(device).type
    return {key: value.detach().cpu().double().numpy() for key, value in out.items()}


def assert_close(got: dict[str, np.ndarray], ref: dict[str, np.ndarray], rtol: float) -> None:
    for key in ("energy", "atomic_energies", "forces", "stress"):
        scale = max(np.abs(ref[key]).max(), 1e-12)
        assert np.abs(got[key] - ref[key]).max() <= rtol * scale, f"{key}: {np.abs(got[key] - ref[key]).max():.3e}"


@pytest.mark.parametrize("head", ["linear", "quadratic", "mlp"])
@pytest.mark.parametrize("name", list(BISPECTRUM))
def test_bispectrum_potential_on_cuda_equals_cpu(name: str, head: str) -> None:
    kw = BISPECTRUM[name]
    config = config_for(kw["elements"], seed=1)
    ref = evaluate(with_head(Bispectrum(**kw), head), config, "cpu")
    got = evaluate(with_head(Bispectrum(**kw), head), config, DEVICE)
    assert_close(got, ref, rtol=1e-10)


@pytest.mark.parametrize("name", list(BISPECTRUM))
def test_bispectrum_pair_jacobian_on_cuda_equals_cpu(name: str) -> None:
    kw = BISPECTRUM[name]
    config = config_for(kw["elements"], seed=2, natoms=24)   # chemflag: K backward passes on the CPU side
    results = []
    for device in ("cpu", DEVICE):
        descriptor = Bispectrum(**kw).to(device)
        batch = make_batch([config], descriptor.elements, descriptor.cutoff).to(device)
        B, dB = descriptor.pair_jacobian(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        assert dB.device.type == torch.device(device).type
        results.append((B.cpu(), dB.cpu()))
    (B_cpu, dB_cpu), (B_gpu, dB_gpu) = results
    assert dB_cpu.abs().max() > 0
    torch.testing.assert_close(B_gpu, B_cpu, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(dB_gpu, dB_cpu, rtol=1e-10, atol=1e-11)


def test_bispectrum_float32_on_cuda_is_close_to_float64() -> None:
    kw = BISPECTRUM["one-element"]
    config = config_for(kw["elements"], seed=3)
    ref = evaluate(with_head(Bispectrum(**kw)), config, "cpu")
    got = evaluate(with_head(Bispectrum(**kw)), config, DEVICE, dtype=torch.float32)
    assert_close(got, ref, rtol=1e-4)


@pytest.mark.parametrize("elements", [["Al"], ["Al", "Ni"]])
def test_ace_potential_and_pair_jacobian_on_cuda_equal_cpu(elements: list[str]) -> None:
    def make() -> ACE:
        ace = ACE(elements, nradmax_by_orders=[4, 2, 2, 1], lmax_by_orders=[0, 2, 2, 1], radial_basis="ChebExpCos",
                  radial_parameters=2.0, rcut=4.2, dcut=0.4)
        gen = torch.Generator().manual_seed(0)
        ace.set_radial_coefficients(torch.randn(ace.crad.shape, generator=gen, dtype=torch.float64))
        return ace

    config = config_for(elements, seed=4)
    ref = evaluate(with_head(make()), config, "cpu")
    got = evaluate(with_head(make()), config, DEVICE)
    assert_close(got, ref, rtol=1e-10)
    jac = []
    for device in ("cpu", DEVICE):
        ace = make().to(device)
        batch = make_batch([config], ace.elements, ace.cutoff).to(device)
        B, dB = ace.pair_jacobian(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        jac.append((B.cpu(), dB.cpu()))
    torch.testing.assert_close(jac[1][0], jac[0][0], rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(jac[1][1], jac[0][1], rtol=1e-10, atol=1e-11)


def test_pace_potential_on_cuda_equals_cpu() -> None:
    """ACE + PACE's embedding (both families, three densities) + core repulsion with an active energy cutoff."""
    def make() -> Potential:
        ace = ACE(["Al", "Ni"], nradmax_by_orders=[4, 2, 1], lmax_by_orders=[0, 2, 1], rcut=4.2, dcut=0.4)
        gen = torch.Generator().manual_seed(1)
        ace.set_radial_coefficients(torch.randn(ace.crad.shape, generator=gen, dtype=torch.float64))
        head = EmbeddingHead(2, ace.num_descriptors, ["FinnisSinclairShiftedScaled", "FinnisSinclair"],
                             [[1.0, 1.0, 1.0, 0.5, -0.5, 1.5], [1.0, 0.8, 0.7, 1.3]])
        head.set_density_coefficients(0.1 * torch.randn(head.coefficients.shape, generator=gen, dtype=torch.float64))
        core = PaceCoreRepulsion(["Al", "Ni"], [[50.0] * 2] * 2, [[1.0] * 2] * 2, [[4.2] * 2] * 2, [[2.6] * 2] * 2,
                                 [[0.5] * 2] * 2, "distance", rho_core_cut=[0.8, 1.0], drho_core_cut=[0.5, 0.5])
        return Potential(ace, head, core)

    config = config_for(["Al", "Ni"], seed=5)
    assert_close(evaluate(make(), config, DEVICE), evaluate(make(), config, "cpu"), rtol=1e-10)


@pytest.mark.parametrize("descriptor", ["radial", "bispectrum"])
def test_exact_fit_on_cuda_equals_cpu(descriptor: str) -> None:
    configs = label(structures(8, seed=11), radial_potential(quadratic=True), noise=0.02)
    groups = ["g0", "g1", "g2"]
    results = []
    for device in ("cpu", DEVICE):
        if descriptor == "radial":
            model = radial_potential(quadratic=True, seed=99)
        else:
            model = with_head(Bispectrum(["W", "Be"], twojmax=4, rcutfac=3.6, radelem=[0.5, 0.5], wj=[1.0, 0.6]),
                              "quadratic")
        model.head.set_coefficients(torch.zeros_like(model.head.coefficients()))
        model = model.to(device)
        result = fit_exact(model, configs, solver="svd", chunk_atoms=30, group_names=groups)
        assert model.head.coefficients().device.type == torch.device(device).type
        results.append(result)
    cpu, gpu = results
    torch.testing.assert_close(gpu.coefficients.cpu(), cpu.coefficients.cpu(), rtol=1e-7, atol=1e-9)
    assert len(cpu.metrics.rows) == len(gpu.metrics.rows) > 0
    for a, b in zip(cpu.metrics.rows, gpu.metrics.rows):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                assert np.isclose(b[key], value, rtol=1e-7, atol=1e-12), (a, b)
            else:
                assert b[key] == value
    assert np.isclose(gpu.metrics.value("*ALL", "Unweighted", "Training", "Force", "rmse"),
                      cpu.metrics.value("*ALL", "Unweighted", "Training", "Force", "rmse"), rtol=1e-8)


def test_ase_calculator_on_cuda_equals_cpu() -> None:
    from ase.build import bulk

    from mliap_torch.calculator import Calculator

    atoms = bulk("Ta", "bcc", a=3.316, cubic=True) * (3, 3, 3)
    atoms.rattle(0.05, seed=0)
    values = []
    for device in ("cpu", DEVICE):
        work = atoms.copy()
        work.calc = Calculator(with_head(Bispectrum(**BISPECTRUM["one-element"])), device=device)
        values.append((work.get_potential_energy(), work.get_forces(), work.get_stress()))
    (e0, f0, s0), (e1, f1, s1) = values
    assert abs(e1 - e0) <= 1e-10 * abs(e0)
    assert np.abs(f1 - f0).max() <= 1e-10 * np.abs(f0).max()
    assert np.abs(s1 - s0).max() <= 1e-10 * np.abs(s0).max()


def test_training_run_on_the_gpu(tmp_path: Path) -> None:
    """``train.py model=snap_nn trainer=gpu``: a short Lightning run on the GPU writes its metrics."""
    run_dir = tmp_path / "run"
    trainer = "gpu" if DEVICE.startswith("cuda") else "cpu"
    proc = run_cli(["model=snap_nn", f"trainer={trainer}", "trainer.max_epochs=2",
                    f"hydra.run.dir={run_dir}", *QUICK], cache=tmp_path / "cache", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    values = metrics(run_dir)
    assert values, "no metrics written"
