"""AOTInductor packages (mliap_torch.export.compiled) reproduce the eager model: energies and ∂E/∂rij
for ACE with linear, quadratic and MLP heads, one and two elements, learned hyperparameters, pairs
beyond the cutoff, and sizes other than those used at export time."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lammps_models import _random_head
from mliap_torch.descriptors.ace import ACE
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.export import compiled
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL

ELEMENTS = {1: ["Cu"], 2: ["Cu", "Ni"]}


def _model(nel: int, head: str, trainable: bool = False, seed: int = 0) -> Potential:
    torch.manual_seed(seed)
    elements = ELEMENTS[nel]
    if trainable:
        rcut = [[4.2, 4.0], [4.0, 3.8]] if nel == 2 else 4.2
        desc = ACE(elements, nradmax_by_orders=[4, 2, 1], lmax_by_orders=[0, 2, 1], rcut=rcut,
                   trainable=["crad", "rcut"], max_cutoff=4.6)
        with torch.no_grad():
            desc.rcut_raw.add_(0.3 * torch.randn_like(desc.rcut_raw))
            desc.crad.add_(0.2 * torch.randn_like(desc.crad))
    else:
        desc = ACE(elements, nradmax_by_orders=[4, 2, 1], lmax_by_orders=[0, 2, 1], rcut=4.6)
    model_head = _random_head(head, nel, desc.num_descriptors)
    if head == "mlp":
        with torch.no_grad():
            model_head.set_scaling(0.1 * torch.randn(desc.num_descriptors, dtype=torch.float64),
                                   0.5 + torch.rand(desc.num_descriptors, dtype=torch.float64))
            model_head.offset.copy_(torch.tensor([-1.0, -2.0][:nel], dtype=torch.float64))
    zbl = ZBL(elements, [29.0, 28.0][:nel], inner=1.5, outer=2.5)   # not part of the package
    return Potential(desc, model_head, zbl)


def _inputs(nel: int, n: int, M: int, P: int, far: int, seed: int, dtype=torch.float64):
    """P pairs (the last ``far`` of them far beyond any cutoff, as LAMMPS' padding), n central atoms,
    M atoms in all; some pairs just beyond 4.6 Å and some within a two-element cutoff's range."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(P, 3, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    r = 1.6 + 3.6 * torch.rand(P, 1, generator=g, dtype=torch.float64)
    if far:
        r[-far:] = 1.0e3
    rij = direction * r
    pair_i = torch.randint(0, n, (P,), generator=g)
    pair_i[:n] = torch.arange(n)                       # every central atom has a pair
    return (rij.to(dtype), pair_i, torch.randint(0, M, (P,), generator=g),
            torch.randint(0, nel, (M,), generator=g), torch.randint(0, nel, (n,), generator=g))


def _eager(potential: Potential, rij, pair_i, pair_j, species, center_species):
    """The eager model (descriptor + head, training path) as the C++ side maps the inputs."""
    n = center_species.shape[0]
    model = Potential(potential.descriptor, potential.head)
    rij = rij.detach().to(torch.float64).requires_grad_(True)
    energies = model.atomic_energies(rij, pair_i, pair_j + n, torch.cat([center_species, species]), n)
    (grad,) = torch.autograd.grad(energies.sum(), rij)
    return energies.detach(), grad


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    scale = expected.abs().max().clamp_min(1e-300)
    err = (actual.to(torch.float64) - expected).abs().max()
    assert err <= rtol * scale, f"max error {float(err):.3e} > {rtol:.0e} × {float(scale):.3e}"


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory):
    """Session-wide compile cache, so a model is compiled once for all the tests that use it."""
    root = tmp_path_factory.mktemp("compiled_cache")
    old = os.environ.get("MLIAP_TORCH_CACHE")
    os.environ["MLIAP_TORCH_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("MLIAP_TORCH_CACHE", None)
    else:
        os.environ["MLIAP_TORCH_CACHE"] = old


def _compile(potential: Potential, folder: Path, name: str, dtype: str = "float64"):
    path = compiled.compile_potential(potential, folder / f"{name}.pt2", dtype=dtype)
    return torch._inductor.aoti_load_package(str(path))


# each case compiles a package (~25-40 s on one core); the slow ones add head × element-count combinations
SLOW = pytest.mark.slow
CASES = [(1, "linear", False), (2, "quadratic", False), (2, "mlp", True), (2, "linear", True),
         pytest.param(2, "linear", False, marks=SLOW), pytest.param(1, "quadratic", False, marks=SLOW),
         pytest.param(1, "mlp", False, marks=SLOW), pytest.param(2, "mlp", False, marks=SLOW)]


@pytest.mark.parametrize("nel,head,trainable", CASES)
def test_package_matches_eager(package_dir, tmp_path, nel, head, trainable):
    potential = _model(nel, head, trainable)
    package = _compile(potential, tmp_path, f"{nel}_{head}_{trainable}")
    for n, M, P, far in ((2, 2, 2, 0), (5, 11, 40, 6), (23, 60, 400, 50)):
        inputs = _inputs(nel, n, M, P, far, seed=n)
        energies, grad = package(*inputs)
        assert energies.dtype == grad.dtype == torch.float64
        assert energies.shape == (n,) and grad.shape == (P, 3)
        expected_e, expected_g = _eager(potential, *inputs)
        _close(energies, expected_e, 1e-10)
        _close(grad, expected_g, 1e-10)
        if far:
            assert torch.equal(grad[-far:], torch.zeros_like(grad[-far:]))


def test_metadata_and_cache(package_dir, tmp_path):
    potential = _model(2, "linear", trainable=True)
    first = compiled.compile_potential(potential, tmp_path / "a.pt2")
    cached = list((package_dir / "compiled").glob("*.pt2"))
    again = compiled.compile_potential(potential, tmp_path / "b.pt2")
    assert list((package_dir / "compiled").glob("*.pt2")) == cached      # no second compilation
    assert first.read_bytes() == again.read_bytes()
    meta = torch._inductor.aoti_load_package(str(again)).get_metadata()
    assert meta["mliap_torch.format"] == "mliap_torch.lammps_plugin.compiled"
    assert meta["mliap_torch.version"] == "1"
    assert meta["mliap_torch.elements"] == "Cu Ni"
    assert meta["mliap_torch.dtype"] == "float64"
    cutoffs = [float(c) for c in meta["mliap_torch.cutoffs"].split()]
    assert cutoffs == pytest.approx(potential.descriptor.pair_cutoffs().reshape(-1).tolist(), abs=1e-15)
    # other weights → other key
    module = compiled.exportable_module(potential)
    with torch.no_grad():
        potential.head.bias.add_(1.0)
    assert compiled.content_key(compiled.exportable_module(potential), "float64") != \
        compiled.content_key(module, "float64")


def test_float32_package(package_dir, tmp_path):
    potential = _model(2, "mlp")
    package = _compile(potential, tmp_path, "f32", dtype="float32")
    inputs = _inputs(2, 9, 30, 200, 20, seed=3, dtype=torch.float32)
    energies, grad = package(*inputs)
    assert energies.dtype == grad.dtype == torch.float32
    expected_e, expected_g = _eager(potential, *inputs)
    _close(energies, expected_e, 1e-5)
    _close(grad, expected_g, 1e-5)
    assert torch._inductor.aoti_load_package(str(tmp_path / "f32.pt2")).get_metadata()["mliap_torch.dtype"] == "float32"


def test_unsupported_models_name_the_model(tmp_path):
    bispectrum = Bispectrum(["Cu"], twojmax=2, rcutfac=4.0, radelem=[0.5], wj=[1.0])
    with pytest.raises(TypeError, match="Bispectrum"):
        compiled.compile_potential(Potential(bispectrum, LinearHead(1, bispectrum.num_descriptors)),
                                   tmp_path / "x.pt2")
    ace = ACE(["Cu"], nradmax_by_orders=[2, 1], lmax_by_orders=[0, 1], rcut=4.0)
    with pytest.raises(TypeError, match="head"):
        compiled.compile_potential(Potential(ace, torch.nn.Identity()), tmp_path / "y.pt2")
    assert not list(tmp_path.iterdir())


def test_separate_weights_compile_once(package_dir, tmp_path):
    """weights="separate": models differing only in weights (learned cutoffs included) share one compiled
    architecture; the weights file with load_constants gives each model's results."""
    first, second = _model(2, "mlp", trainable=True, seed=0), _model(2, "mlp", trainable=True, seed=5)
    compiled.compile_potential(first, tmp_path / "first.pt2", weights="separate")
    archs = sorted((package_dir / "compiled").glob("arch-*.pt2"))
    path = compiled.compile_potential(second, tmp_path / "second.pt2", weights="separate")
    assert sorted((package_dir / "compiled").glob("arch-*.pt2")) == archs and len(archs) == 1
    package = torch._inductor.aoti_load_package(str(path))
    meta = package.get_metadata()
    assert meta["mliap_torch.weights"] == "separate" and "mliap_torch.cutoffs" not in meta
    values = torch.load(compiled.weights_path(path), weights_only=True)
    cutoffs = values.pop("mliap_torch.cutoffs")
    assert cutoffs.tolist() == pytest.approx(second.descriptor.pair_cutoffs().reshape(-1).tolist(), abs=1e-15)
    assert set(values) == set(package.get_constant_fqns())
    inputs = _inputs(2, 7, 20, 150, 10, seed=4)
    # as packaged: the first model's weights; after load_constants: the second's
    _close(package(*inputs)[0], _eager(first, *inputs)[0], 1e-10)
    # the compile check (tolerance 1e-6 relative) tells the first model's constants from the second's
    module = compiled.exportable_module(second, "float64")
    assert not compiled._matches(package, module, "float64")
    package.load_constants(values, check_full_update=True)
    assert compiled._matches(package, module, "float64")
    energies, grad = package(*inputs)
    expected_e, expected_g = _eager(second, *inputs)
    _close(energies, expected_e, 1e-10)
    _close(grad, expected_g, 1e-10)
