"""The Bispectrum descriptor and SNAP potentials against the real LAMMPS (``compute sna/atom``, ``pair_style snap``).

Random periodic structures, orthorhombic and triclinic (rotated away from LAMMPS' lower-triangular
form), float64; everything must agree to 1e-10 relative.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.export.snap_files import write_snap
from mliap_torch.models.heads import LinearHead, QuadraticHead
from mliap_torch.models.potential import Potential
from snap_reference import lammps_energy_forces_virial, lammps_sna_atom, pair_list, random_structure, triclinic_cell

pytestmark = [pytest.mark.lammps, pytest.mark.usefixtures("one_thread")]


TOL = 1e-10


def max_rel(ours: np.ndarray, ref: np.ndarray, axis=None) -> float:
    """max |ours - ref| relative to the largest |ref| (per column with ``axis=0``)."""
    scale = np.abs(ref).max(axis=axis, keepdims=axis is not None)
    scale = np.where(scale > 0, scale, 1.0)
    return float(np.max(np.abs(ours - ref) / scale))


def _compute_args(d: Bispectrum) -> str:
    """``compute sna/atom`` arguments equivalent to a Bispectrum (one LAMMPS type per element)."""
    ne = len(d.elements)
    args = [repr(d.rcutfac), repr(d.rfac0), str(d.twojmax)] + [repr(r) for r in d.radelem] + [repr(w) for w in d.wj]
    args += ["rmin0", repr(d.rmin0), "switchflag", str(int(d.switchflag)), "bzeroflag", str(int(d.bzeroflag)),
             "bnormflag", str(int(d.bnormflag)), "wselfallflag", str(int(d.wselfallflag))]
    if d.chemflag:
        args += ["chem", str(ne)] + [str(e) for e in range(ne)]
    if d.switchinnerflag:
        args += ["switchinnerflag", "1", "sinner"] + [repr(v) for v in d.sinner] + ["dinner"] + [repr(v) for v in d.dinner]
    return " ".join(args)


CASES = {
    "one-element-2J6": dict(elements=["Ta"], twojmax=6, rcutfac=4.67637, radelem=[0.5], wj=[1.0]),
    "two-elements": dict(elements=["W", "Be"], twojmax=6, rcutfac=4.8, radelem=[0.5, 0.417932464],
                         wj=[1.0, 0.9590493408]),
    "chem-bnorm-wselfall": dict(elements=["A", "B"], twojmax=4, rcutfac=4.5, radelem=[0.5, 0.45], wj=[1.0, 0.7],
                                chemflag=True, bnormflag=True, wselfallflag=True),
    "chem-bnorm": dict(elements=["A", "B"], twojmax=4, rcutfac=4.5, radelem=[0.5, 0.45], wj=[1.0, 0.7],
                       chemflag=True, bnormflag=True),
    "bzero-off": dict(elements=["Ta"], twojmax=6, rcutfac=4.6, radelem=[0.5], wj=[1.0], bzeroflag=False),
    "switch-off": dict(elements=["Ta"], twojmax=6, rcutfac=4.6, radelem=[0.5], wj=[1.0], switchflag=False),
    "switchinner": dict(elements=["A", "B"], twojmax=6, rcutfac=4.5, radelem=[0.5, 0.45], wj=[1.0, 0.8],
                        switchinnerflag=True, sinner=[2.3, 2.1], dinner=[0.35, 0.5]),
    "rmin0": dict(elements=["Ta"], twojmax=6, rcutfac=4.6, radelem=[0.5], wj=[1.0], rmin0=0.9, rfac0=0.95),
    "2J2": dict(elements=["Ta"], twojmax=2, rcutfac=4.6, radelem=[0.5], wj=[1.0]),
    "2J8": dict(elements=["Ni"], twojmax=8, rcutfac=4.1, radelem=[0.5], wj=[1.0]),
    "2J10": dict(elements=["Ni"], twojmax=10, rcutfac=4.1, radelem=[0.5], wj=[1.0]),
}


@pytest.mark.parametrize("triclinic", [False, True], ids=["orthorhombic", "triclinic"])
@pytest.mark.parametrize("name", list(CASES))
def test_descriptors_match_compute_sna_atom(name, triclinic):
    kw = CASES[name]
    rng = np.random.default_rng(zlib.crc32(f"{name}-{triclinic}".encode()))
    lengths = [8.0, 8.5, 9.0]
    cell = triclinic_cell(rng, lengths) if triclinic else np.diag(lengths)
    natoms = 16 if kw["twojmax"] >= 10 else 30
    pos, species = random_structure(rng, natoms, cell, min_dist=1.9, nelements=len(kw["elements"]))
    d = Bispectrum(**kw)
    rij, i, j = pair_list(pos, cell, d.cutoff)
    if kw.get("switchinnerflag"):
        r = rij.norm(dim=1)
        lo = min(s - w for s, w in zip(kw["sinner"], kw["dinner"]))
        hi = max(s + w for s, w in zip(kw["sinner"], kw["dinner"]))
        assert ((r > lo) & (r < hi)).any(), "no pair inside the inner switching region"
    if kw.get("rmin0", 0) > 0:
        assert (rij.norm(dim=1) < 2 * kw["rmin0"] + 1.0).any()
    ours = d(rij, i, j, torch.as_tensor(species), natoms).numpy()
    ref = lammps_sna_atom(pos, cell, species, len(kw["elements"]), _compute_args(d), d.cutoff)
    assert ours.shape == ref.shape == (natoms, d.num_descriptors)
    assert max_rel(ours, ref, axis=0) <= TOL
    # the reference (plain autograd) implementation agrees as well
    assert max_rel(d.reference_forward(rij, i, j, torch.as_tensor(species), natoms).detach().numpy(), ref,
                   axis=0) <= TOL


def _random_potential(d: Bispectrum, quadratic: bool, seed: int) -> Potential:
    gen = torch.Generator().manual_seed(seed)
    ne, k = len(d.elements), d.num_descriptors
    head = QuadraticHead(ne, k) if quadratic else LinearHead(ne, k)
    coeffs = torch.randn(ne, 1 + head.num_features, generator=gen, dtype=torch.float64) * 0.01
    coeffs[:, 0] = torch.randn(ne, generator=gen, dtype=torch.float64)
    if quadratic:
        coeffs[:, 1 + k:] *= 1e-3
    head.set_coefficients(coeffs)
    return Potential(d, head)


def _potential_efv(potential: Potential, pos, cell, species):
    """Energy, forces and virial W = -dE/dε from the torch potential."""
    from mliap_torch.data.batch import make_batch
    from mliap_torch.data.configuration import Configuration

    config = Configuration(positions=pos, cell=cell, pbc=[True] * 3,
                           symbols=np.array(potential.elements)[species])
    batch = make_batch([config], potential.elements, potential.cutoff)
    out = potential(batch)
    stress = out["stress"][0].detach().numpy()          # ASE Voigt xx yy zz yz xz xy, = (1/V) dE/dε
    xx, yy, zz, yz, xz, xy = stress
    volume = abs(np.linalg.det(cell))
    virial = -volume * np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return float(out["energy"][0].detach()), out["forces"].detach().numpy(), virial


@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
@pytest.mark.parametrize("name", ["one-element-2J6", "two-elements", "switchinner", "rmin0", "2J8"])
def test_energy_forces_virial_match_pair_snap(name, quadratic, tmp_path):
    kw = CASES[name]
    rng = np.random.default_rng(zlib.crc32(f"{name}-{quadratic}-efv".encode()))
    cell = triclinic_cell(rng, [8.5, 9.0, 9.5])
    pos, species = random_structure(rng, 28, cell, min_dist=1.9, nelements=len(kw["elements"]))
    potential = _random_potential(Bispectrum(**kw), quadratic, seed=len(name))
    coeff, param = write_snap(potential, tmp_path / "pot")
    energy, forces, virial = _potential_efv(potential, pos, cell, species)
    e_ref, f_ref, w_ref = lammps_energy_forces_virial(pos, cell, species, potential.elements, "snap",
                                                      f"{coeff} {param}")
    assert abs(energy - e_ref) <= TOL * abs(e_ref)
    assert max_rel(forces, f_ref) <= TOL
    assert max_rel(virial, w_ref) <= TOL


@pytest.mark.parametrize("name", ["chem-bnorm", "chem-bnorm-wselfall"])
def test_chemsnap_energy_matches_and_forces_are_its_gradient(name, tmp_path):
    """ChemSNAP through ``pair_style snap``: energies agree to 1e-10; forces are -∂E/∂x of LAMMPS' energy.

    LAMMPS 4Feb2025's chemflag forces (``SNA::compute_yi``) are not the gradient of its own
    chemflag energy (they differ from a finite difference of LAMMPS' energies by O(1) relative),
    so our forces are checked against central differences of the LAMMPS energy instead.
    """
    kw = CASES[name]
    rng = np.random.default_rng(7)
    cell = np.diag([8.5, 9.0, 9.5])
    pos, species = random_structure(rng, 16, cell, min_dist=1.9, nelements=2)
    potential = _random_potential(Bispectrum(**kw), False, seed=3)
    coeff, param = write_snap(potential, tmp_path / "pot")
    args = ("snap", f"{coeff} {param}")
    energy, forces, _ = _potential_efv(potential, pos, cell, species)
    e_ref = lammps_energy_forces_virial(pos, cell, species, potential.elements, *args)[0]
    assert abs(energy - e_ref) <= TOL * abs(e_ref)
    h = 1e-5
    fd = np.zeros((3, 3))
    for a in range(3):
        for k in range(3):
            plus, minus = pos.copy(), pos.copy()
            plus[a, k] += h
            minus[a, k] -= h
            e_plus = lammps_energy_forces_virial(plus, cell, species, potential.elements, *args)[0]
            e_minus = lammps_energy_forces_virial(minus, cell, species, potential.elements, *args)[0]
            fd[a, k] = -(e_plus - e_minus) / (2 * h)
    assert max_rel(forces[:3], fd) <= 1e-6
