"""The SO(3) power spectrum (``descriptor so3``) against LAMMPS' ML-IAP: per-atom descriptors, energies,
per-atom energies, forces and stress of ``pair_style mliap model linear|quadratic|nn ... descriptor so3`` on
rattled triclinic cells (1e-10 relative), LAMMPS' own so3 examples, file reading and writing, and finite
differences."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import spherical_in

import mliap_torch
from lammps_models import random_structures
from mliap_torch.data.batch import make_batch
from mliap_torch.descriptors.so3 import SO3, modified_spherical_bessel
from mliap_torch.export.snap_files import SnapFileError
from mliap_torch.lammps_descriptors import descriptors_in_lammps
from mliap_torch.lammps_eval import evaluate_in_lammps
from mliap_torch.models.heads import LinearHead, MLPHead, QuadraticHead
from mliap_torch.models.potential import Potential
from test_mliap_nn import assert_lammps_equals_torch, lammps_examples

TOLERANCE = 1e-10
# (elements, nmax, lmax, rcutfac, alpha, radelems, welems): one and two elements; radii 0.5 (pair cutoff =
# rcutfac), larger (pairs beyond rcutfac listed but zero) and smaller (cross pairs cut before rcutfac)
SETTINGS = [
    (["Cu"], 2, 3, 4.4, 1.0, [0.5], [1.0]),
    (["Cu", "Ni"], 3, 4, 4.6, 2.0, [0.5, 0.5], [29.0, 28.0]),
    (["Cu", "Ni"], 4, 2, 4.6, 1.5, [0.55, 0.45], [1.0, 2.0]),
    (["Cu", "Ni"], 3, 4, 4.2, 0.8, [0.6, 0.5], [3.0, 1.0]),
]


def descriptor_text(elements, nmax, lmax, rcutfac, alpha, radelems, welems) -> str:
    """A ``descriptor so3`` file, written here independently of mliap_torch's writer."""
    return (f"# test\nrcutfac {rcutfac}\nnmax {nmax}\nlmax {lmax}\nalpha {alpha}\nnelems {len(elements)}\n"
            f"elems {' '.join(elements)}\nradelems {' '.join(map(str, radelems))}\n"
            f"welems {' '.join(map(str, welems))}\n")


def random_coefficient_file(path: Path, nelements: int, ncoeff: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = [f"{nelements} {ncoeff}"]
    for e in range(nelements):
        lines += [repr(-1.0 - e)] + [repr(v) for v in (1e-3 * rng.normal(size=ncoeff - 1)).tolist()]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.lammps
@pytest.mark.parametrize("setting", SETTINGS)
def test_per_atom_descriptors_equal_lammps(tmp_path, setting):
    elements, nmax, lmax, rcutfac, alpha, radelems, welems = setting
    path = tmp_path / "so3.mliap.descriptor"
    path.write_text(descriptor_text(*setting))
    descriptor = SO3(elements, nmax, lmax, rcutfac, alpha, radelems, welems)
    config = random_structures(elements, 1, 41)[0]
    batch = make_batch([config], elements, descriptor.cutoff)
    torch_rows = descriptor(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms).numpy()
    lmp_rows = descriptors_in_lammps(config, elements, f"so3 {path.name}", descriptor.num_descriptors, tmp_path)
    assert np.abs(lmp_rows - torch_rows).max() <= TOLERANCE * np.abs(torch_rows).max()
    assert np.abs(torch_rows).max() > 1e-3


@pytest.mark.lammps
@pytest.mark.parametrize("setting", SETTINGS)
def test_random_linear_models_equal_lammps(tmp_path, setting):
    elements = setting[0]
    (tmp_path / "so3.mliap.descriptor").write_text(descriptor_text(*setting))
    descriptor = SO3(*setting)
    random_coefficient_file(tmp_path / "linear.mliap.model", len(elements), descriptor.num_descriptors + 1, seed=42)
    potential = mliap_torch.read_mliap(tmp_path / "linear.mliap.model", tmp_path / "so3.mliap.descriptor")
    assert isinstance(potential.descriptor, SO3) and isinstance(potential.head, LinearHead)
    assert potential.descriptor.settings() == descriptor.settings()
    commands = ["pair_style mliap model linear linear.mliap.model descriptor so3 so3.mliap.descriptor",
                f"pair_coeff * * {' '.join(elements)}"]
    assert_lammps_equals_torch(potential, commands, tmp_path, seed=43)


@pytest.mark.lammps
@pytest.mark.parametrize("model, descriptor, kind", [("Si.nn.mliap.model", "Si.nn.mliap.descriptor", "nn"),
                                                     ("Ni_Mo.mliap.model", "Ni_Mo.mliap.descriptor", "linear")])
def test_lammps_so3_examples_read_as_they_run(model, descriptor, kind):
    """LAMMPS' shipped so3 examples (PyXtal_FF's Si network; the Ni-Mo linear model)."""
    folder = lammps_examples()
    potential = mliap_torch.read_mliap(folder / model, folder / descriptor)
    assert isinstance(potential.descriptor, SO3)
    assert isinstance(potential.head, MLPHead if kind == "nn" else LinearHead)
    commands = [f"pair_style mliap model {kind} {model} descriptor so3 {descriptor}",
                f"pair_coeff * * {' '.join(potential.elements)}"]
    assert_lammps_equals_torch(potential, commands, folder, seed=44)


@pytest.mark.lammps
@pytest.mark.parametrize("head", ["quadratic", "nn"])
def test_so3_potentials_written_for_lammps_run_as_in_torch_and_read_back(tmp_path, head):
    elements = ["Cu", "Ni"]
    descriptor = SO3(elements, nmax=3, lmax=3, rcutfac=4.6, alpha=1.5, radelem=[0.5, 0.45], wj=[1.0, 2.0])
    torch.manual_seed(45)
    k = descriptor.num_descriptors
    if head == "quadratic":
        model = QuadraticHead(2, k)
        coeffs = 1e-4 * torch.randn(2, 1 + model.num_features, dtype=torch.float64)
        coeffs[:, 0] = torch.tensor([-3.0, -4.0])
        model.set_coefficients(coeffs)
    else:
        model = MLPHead(2, k, hidden=(6,), activation="tanh")
        batch = make_batch(random_structures(elements, 1, 46), elements, descriptor.cutoff)
        B = descriptor(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        with torch.no_grad():
            model.set_scaling(B.mean(0), B.std(0).clamp_min(1e-3))
    potential = Potential(descriptor, model)
    model_path, desc_path = mliap_torch.write_mliap(potential, tmp_path / "so3")
    commands = [f"pair_style mliap model {head} {model_path.name} descriptor so3 {desc_path.name}",
                "pair_coeff * * Cu Ni"]
    assert_lammps_equals_torch(potential, commands, tmp_path, seed=47)
    back = mliap_torch.read_mliap(model_path, desc_path)
    configs = random_structures(elements, 1, 48)
    e_back = back(make_batch(configs, elements, back.cutoff), forces=False)["energy"]
    e_torch = potential(make_batch(configs, elements, potential.cutoff), forces=False)["energy"]
    assert back.descriptor.settings() == descriptor.settings()
    assert torch.allclose(e_back, e_torch, rtol=1e-13, atol=0.0)


@pytest.mark.lammps
def test_quadratic_model_matches_lammps_mliap_quadratic_with_truncated_weights(tmp_path):
    """LAMMPS truncates welems to integers: 2.7 acts as 2 (and the descriptor warns)."""
    with pytest.warns(UserWarning, match="truncates"):
        descriptor = SO3(["Cu", "Ni"], 2, 2, 4.4, 1.0, [0.5, 0.5], [1.0, 2.7])
    assert descriptor.wjelem.tolist() == [1.0, 2.0]
    (tmp_path / "so3.mliap.descriptor").write_text(descriptor_text(["Cu", "Ni"], 2, 2, 4.4, 1.0, [0.5, 0.5], [1.0, 2.7]))
    k = descriptor.num_descriptors
    random_coefficient_file(tmp_path / "q.mliap.model", 2, 1 + k + k * (k + 1) // 2, seed=49)
    with pytest.warns(UserWarning, match="truncates"):
        potential = mliap_torch.read_mliap(tmp_path / "q.mliap.model", tmp_path / "so3.mliap.descriptor")
    assert isinstance(potential.head, QuadraticHead)
    configs = random_structures(["Cu", "Ni"], 1, 50)
    lmp = evaluate_in_lammps(configs, ["Cu", "Ni"], ["pair_style mliap model quadratic q.mliap.model descriptor so3 "
                                                     "so3.mliap.descriptor", "pair_coeff * * Cu Ni"], directory=tmp_path)
    out = potential(make_batch(configs, ["Cu", "Ni"], potential.cutoff))
    assert abs(lmp[0]["energy"] - out["energy"].item()) <= TOLERANCE * abs(out["energy"].item())
    forces = out["forces"].detach().numpy()
    assert np.abs(lmp[0]["forces"] - forces).max() <= TOLERANCE * np.abs(forces).max()


def test_forces_are_finite_differences_of_the_energy():
    elements = ["Cu", "Ni"]
    descriptor = SO3(elements, nmax=3, lmax=4, rcutfac=4.6, alpha=1.0, radelem=[0.5, 0.5], wj=[1.0, 2.0])
    head = LinearHead(2, descriptor.num_descriptors)
    torch.manual_seed(51)
    head.set_coefficients(torch.randn(2, descriptor.num_descriptors + 1, dtype=torch.float64))
    potential = Potential(descriptor, head)
    config = random_structures(elements, 1, 52)[0]
    out = potential(make_batch([config], elements, potential.cutoff))
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2), (11, 0)]:
        energies = []
        for sign in (1, -1):
            positions = config.positions.copy()
            positions[atom, axis] += sign * h
            moved = dataclasses.replace(config, positions=positions)
            energies.append(potential(make_batch([moved], elements, potential.cutoff), forces=False)["energy"].item())
        numeric = -(energies[0] - energies[1]) / (2 * h)
        assert abs(out["forces"][atom, axis].item() - numeric) <= 1e-6 * max(1.0, abs(numeric))


def test_modified_spherical_bessel_is_accurate_where_the_upward_recurrence_is_not():
    x = torch.tensor([1e-6, 1e-3, 0.05, 0.5, 1.0, 3.0, 7.9, 8.1, 12.0, 40.0, 200.0], dtype=torch.float64)
    values = modified_spherical_bessel(x, 8).numpy()
    exact = np.stack([spherical_in(l, x.numpy()) for l in range(9)], axis=1)
    assert np.abs(values / exact - 1).max() < 1e-13


def test_so3_files_are_recognised_and_bad_ones_name_file_and_line(tmp_path):
    desc = tmp_path / "d.mliap.descriptor"
    desc.write_text(descriptor_text(["Cu"], 2, 2, 4.4, 1.0, [0.5], [1.0]) + "twojmax 6\n")
    model = tmp_path / "m.mliap.model"
    random_coefficient_file(model, 1, 10, seed=53)
    with pytest.raises(SnapFileError, match=r"d.mliap.descriptor:10: unknown keyword 'twojmax'"):
        mliap_torch.read_mliap(model, desc)
    desc.write_text("rcutfac 4.4\nnelems 1\nelems Cu\nradelems 0.5\nwelems 1\nnmax 2\n")
    with pytest.raises(SnapFileError, match=r"\['lmax', 'alpha'\] missing"):
        mliap_torch.read_mliap(model, desc, descriptor_type="so3")
    with pytest.raises(ValueError, match="descriptor_type"):
        mliap_torch.read_mliap(model, desc, descriptor_type="ace")


@pytest.mark.lammps
def test_export_lammps_writes_so3_models_for_the_mliap_route(tmp_path):
    """``export_lammps``: SO3 potentials take the mliap route (``descriptor so3``, here with a ZBL overlay);
    snap and plugin routes are skipped."""
    from mliap_torch.export.lammps_export import export_lammps, unsupported_routes
    from mliap_torch.models.zbl import ZBL

    elements = ["Cu", "Ni"]
    descriptor = SO3(elements, nmax=2, lmax=3, rcutfac=4.4, alpha=1.2, radelem=[0.5, 0.45], wj=[1.0, 2.0])
    head = LinearHead(2, descriptor.num_descriptors)
    torch.manual_seed(54)
    coeffs = 1e-3 * torch.randn(2, descriptor.num_descriptors + 1, dtype=torch.float64)
    coeffs[:, 0] = torch.tensor([-3.0, -4.0])
    head.set_coefficients(coeffs)
    potential = Potential(descriptor, head, ZBL(elements, [29, 28], inner=1.5, outer=2.5))
    assert unsupported_routes(potential, ("snap", "mliap", "plugin")) == ["snap", "plugin"]
    commands = export_lammps(potential, tmp_path, routes=("mliap",)).routes["mliap"].pair_commands
    assert "descriptor so3 model.mliap.descriptor" in commands[0]
    assert_lammps_equals_torch(potential, commands, tmp_path, seed=55)


def test_no_pairs_double_backward_and_float32():
    descriptor = SO3(["Cu", "Ni"], nmax=3, lmax=3, rcutfac=4.6, alpha=1.0, radelem=[0.5, 0.5], wj=[1.0, 2.0])
    empty = torch.zeros(0, dtype=torch.int64)
    B = descriptor(torch.zeros((0, 3), dtype=torch.float64), empty, empty, torch.tensor([0, 1, 1]), 3)
    assert B.shape == (3, descriptor.num_descriptors) and not B.any()
    torch.manual_seed(56)
    potential = Potential(descriptor, MLPHead(2, descriptor.num_descriptors, hidden=(4,), activation="tanh"))
    batch = make_batch(random_structures(["Cu", "Ni"], 1, 57), ["Cu", "Ni"], potential.cutoff)
    (potential(batch, create_graph=True)["forces"] ** 2).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in potential.head.parameters())
    B64 = descriptor(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    single = SO3(**descriptor.settings()).to(torch.float32)
    B32 = single(batch.rij().float(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    assert B32.dtype == torch.float32
    assert (B32.double() - B64).abs().max() <= 1e-5 * B64.abs().max()


def test_radial_functions_have_exact_first_and_second_derivatives():
    """The radial part's backward is analytic (i_l' from i_(l±1)); gradcheck and gradgradcheck against
    finite differences, at distances whose Bessel arguments fall on both sides of the series threshold."""
    descriptor = SO3(["Cu"], nmax=3, lmax=4, rcutfac=4.6, alpha=1.0, radelem=[0.5], wj=[1.0])
    r = torch.tensor([0.3, 1.7, 2.6, 4.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(descriptor.radial, (r,))
    assert torch.autograd.gradgradcheck(descriptor.radial, (r,))


@pytest.mark.lammps
def test_so3_examples_reproduce_the_energies_in_lammps_shipped_logs():
    """``in.mliap.so3.Ni_Mo`` (PotEng -60.509577 eV, log.14Jun21) and ``in.mliap.so3.nn.Si`` (E_pair
    -3.8376374 eV/atom at step 0 on the perfect 64-atom diamond cell), in torch alone."""
    import ase.io
    from ase.build import bulk

    from mliap_torch.data.configuration import Configuration

    folder = lammps_examples()
    nimo = mliap_torch.read_mliap(folder / "Ni_Mo.mliap.model", folder / "Ni_Mo.mliap.descriptor")
    atoms = ase.io.read(folder / "Ni_Mo.data", format="lammps-data", atom_style="atomic")  # types → Mo, Ni by mass
    energy = nimo(make_batch([Configuration.from_ase(atoms)], nimo.elements, nimo.cutoff), forces=False)["energy"]
    assert round(energy.item(), 6) == -60.509577
    si = mliap_torch.read_mliap(folder / "Si.nn.mliap.model", folder / "Si.nn.mliap.descriptor")
    diamond = Configuration.from_ase(bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2)))
    energy = si(make_batch([diamond], ["Si"], si.cutoff), forces=False)["energy"]
    assert round(energy.item() / 64, 7) == -3.8376374
