"""Reading and writing SNAP potential files (``pair_style snap`` and ``pair_style mliap ... descriptor sna``),
checked against LAMMPS evaluating the same files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import mliap_torch
from mliap_torch.export.snap_files import SnapFileError, read_mliap, read_snap, write_mliap, write_snap
from mliap_torch.models.heads import LinearHead, QuadraticHead
from snap_reference import lammps_energy_forces_virial, random_structure, triclinic_cell

TOL = 1e-10


pytestmark = pytest.mark.usefixtures("one_thread")


def _num_b(twojmax: int) -> int:
    from mliap_torch.descriptors.sna_tables import bispectrum_triples

    return len(bispectrum_triples(twojmax))


def write_files(tmp_path: Path, elements, radii, weights, params: str, quadratic: bool, twojmax: int,
                seed: int, name: str = "pot") -> tuple[Path, Path]:
    """Hand-written .snapcoeff/.snapparam (comments, blank lines, quotes) with random coefficients."""
    rng = np.random.default_rng(seed)
    k = _num_b(twojmax)
    ncoeff = 1 + k + (k * (k + 1) // 2 if quadratic else 0)
    lines = ["# generated for a test", "", f"{len(elements)} {ncoeff}   # nelements ncoeff"]
    for el, rad, w in zip(elements, radii, weights):
        lines.append(f"'{el}' {rad} {w}")
        coeffs = rng.normal(0, 0.01, ncoeff)
        coeffs[0] = rng.normal(-3, 1)
        if quadratic:
            coeffs[1 + k:] *= 1e-3
        lines += [f"  {float(c)!r}   # B[{n}]" for n, c in enumerate(coeffs)]
    coeff = tmp_path / f"{name}.snapcoeff"
    coeff.write_text("\n".join(lines) + "\n")
    param = tmp_path / f"{name}.snapparam"
    param.write_text(f"""
# required
rcutfac {params.split()[0]}
twojmax {twojmax}

# optional
{" ".join(params.split()[1:]).replace(";", chr(10))}
quadraticflag {int(quadratic)}
""")
    return coeff, param


def structure(seed: int, elements, natoms=24):
    rng = np.random.default_rng(seed)
    cell = triclinic_cell(rng, [8.5, 9.0, 9.5])
    pos, species = random_structure(rng, natoms, cell, min_dist=1.9, nelements=len(elements))
    return pos, cell, species


def calculator_results(potential, pos, cell, species):
    from ase import Atoms

    atoms = Atoms(symbols=[potential.elements[s] for s in species], positions=pos, cell=cell, pbc=True)
    atoms.calc = mliap_torch.Calculator(potential)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


def compare_with_lammps(potential, pos, cell, species, pair_style, pair_coeff):
    energy, forces, stress = calculator_results(potential, pos, cell, species)
    e_ref, f_ref, w_ref = lammps_energy_forces_virial(pos, cell, species, potential.elements, pair_style, pair_coeff)
    s_ref = -w_ref / abs(np.linalg.det(cell))     # ASE stress, tension positive
    s_ref = np.array([s_ref[0, 0], s_ref[1, 1], s_ref[2, 2], s_ref[1, 2], s_ref[0, 2], s_ref[0, 1]])
    assert abs(energy - e_ref) <= TOL * abs(e_ref)
    assert np.abs(forces - f_ref).max() <= TOL * np.abs(f_ref).max()
    assert np.abs(stress - s_ref).max() <= TOL * np.abs(s_ref).max()


FILE_CASES = {
    "one-element": (["Ta"], [0.5], [1.0], "4.67637 rfac0 0.99363;rmin0 0.0;bzeroflag 0", 6),
    "two-elements": (["W", "Be"], [0.5, 0.417932464], [1.0, 0.959049], "4.8 bzeroflag 1;switchflag 1", 6),
    "two-elements-inner": (["Mo", "Nb"], [0.5, 0.47], [1.0, 0.9],
                           "4.6 switchinnerflag 1;sinner 2.2 2.0;dinner 0.4 0.35;bnormflag 0", 4),
}


@pytest.mark.lammps
@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
@pytest.mark.parametrize("case", list(FILE_CASES))
def test_read_snap_matches_pair_snap(case, quadratic, tmp_path):
    elements, radii, weights, params, twojmax = FILE_CASES[case]
    coeff, param = write_files(tmp_path, elements, radii, weights, params, quadratic, twojmax, seed=len(case))
    potential = read_snap(coeff, param)
    assert isinstance(potential.head, QuadraticHead if quadratic else LinearHead)
    assert potential.elements == elements
    pos, cell, species = structure(len(case) + quadratic, elements)
    compare_with_lammps(potential, pos, cell, species, "snap", f"{coeff} {param}")


@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
@pytest.mark.parametrize("case", list(FILE_CASES))
def test_round_trip(case, quadratic, tmp_path):
    elements, radii, weights, params, twojmax = FILE_CASES[case]
    coeff, param = write_files(tmp_path, elements, radii, weights, params, quadratic, twojmax, seed=3)
    first = read_snap(coeff, param)
    c2, p2 = write_snap(first, tmp_path / "out" / "again")
    second = read_snap(c2, p2)
    assert second.descriptor.settings() == first.descriptor.settings()
    assert torch.equal(second.head.coefficients(), first.head.coefficients())
    m3, d3 = write_mliap(second, tmp_path / "out" / "mliap")
    third = read_mliap(m3, d3)
    assert third.descriptor.settings() == first.descriptor.settings()
    assert torch.equal(third.head.coefficients(), first.head.coefficients())
    assert type(third.head) is type(first.head)
    pos, cell, species = structure(4, elements, natoms=12)
    e1 = calculator_results(first, pos, cell, species)[0]
    e3 = calculator_results(third, pos, cell, species)[0]
    assert e1 == e3


@pytest.mark.lammps
@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
@pytest.mark.parametrize("case", ["one-element", "two-elements-inner"])
def test_mliap_files_match_pair_mliap(case, quadratic, tmp_path):
    elements, radii, weights, params, twojmax = FILE_CASES[case]
    coeff, param = write_files(tmp_path, elements, radii, weights, params, quadratic, twojmax, seed=5)
    potential = read_snap(coeff, param)
    model, descriptor = write_mliap(potential, tmp_path / "pot")
    kind = "quadratic" if quadratic else "linear"
    pos, cell, species = structure(6, elements)
    compare_with_lammps(read_mliap(model, descriptor), pos, cell, species,
                        f"mliap model {kind} {model} descriptor sna {descriptor}", "")


def test_read_handwritten_mliap_files(tmp_path):
    model = tmp_path / "x.mliap.model"
    model.write_text("# comment\n\n2 6\n" + "\n".join(f"{0.1 * k!r}  # c{k}" for k in range(12)) + "\n")
    descriptor = tmp_path / "x.mliap.descriptor"
    descriptor.write_text("""# SNAP descriptor
rcutfac 4.1
twojmax 2
nelems 2
elems Ni Cu
radelems 0.5 0.45
welems 1.0 0.8
rfac0 0.99363
rmin0 0
bzeroflag 0
""")
    potential = read_mliap(model, descriptor)
    assert potential.elements == ["Ni", "Cu"]
    assert isinstance(potential.head, LinearHead) and potential.descriptor.num_descriptors == 5
    assert potential.head.coefficients()[1, 0].item() == pytest.approx(0.6)
    assert not potential.descriptor.bzeroflag and potential.descriptor.switchflag
    with pytest.raises(ValueError):
        read_mliap(model, descriptor, model_type="quadratic")


@pytest.mark.shared_data
def test_reference_ta_potential_loads(shared_data):
    ref = shared_data / "fitsnap" / "Ta_Linear_JCP2014" / "reference"
    potential = mliap_torch.read_snap(ref / "Ta_pot.snapcoeff", ref / "Ta_pot.snapparam")
    d = potential.descriptor
    assert potential.elements == ["Ta"] and d.twojmax == 6 and d.rcutfac == 4.67637
    assert d.num_descriptors == 30 and not d.bzeroflag and isinstance(potential.head, LinearHead)
    coeffs = potential.head.coefficients()
    assert coeffs.shape == (1, 31)
    assert coeffs[0, 0].item() == -2.97994848705222237
    assert coeffs[0, 1].item() == -0.0114374539722844198


@pytest.mark.lammps
@pytest.mark.shared_data
def test_reference_ta_potential_matches_lammps(shared_data):
    ref = shared_data / "fitsnap" / "Ta_Linear_JCP2014" / "reference"
    potential = mliap_torch.read_snap(ref / "Ta_pot.snapcoeff", ref / "Ta_pot.snapparam")
    rng = np.random.default_rng(0)
    a = 3.316
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = ((grid[:, None, :] + np.array([[0, 0, 0], [0.5, 0.5, 0.5]])[None]) * a).reshape(-1, 3)
    pos += rng.normal(0, 0.1, pos.shape)
    cell = np.eye(3) * 3 * a
    compare_with_lammps(potential, pos, cell, np.zeros(len(pos), dtype=np.int64), "snap",
                        f"{ref / 'Ta_pot.snapcoeff'} {ref / 'Ta_pot.snapparam'}")


# --------------------------------------------------------------------------------------------- bad input
GOOD_PARAM = "rcutfac 4.0\ntwojmax 2\n"
GOOD_COEFF = "1 6\nTa 0.5 1.0\n" + "\n".join(["0.1"] * 6) + "\n"


@pytest.mark.parametrize("coeff, param, message", [
    (GOOD_COEFF, "twojmax 2\n", "rcutfac"),
    (GOOD_COEFF, GOOD_PARAM + "foo 1\n", "unknown keyword 'foo'"),
    (GOOD_COEFF, GOOD_PARAM + "rfac0 abc\n", "got 'abc'"),
    (GOOD_COEFF, GOOD_PARAM + "rmin0\n", "has no value"),
    (GOOD_COEFF, GOOD_PARAM + "sinner 1.0\ndinner 0.5\n", "switchinnerflag is 0"),
    (GOOD_COEFF, GOOD_PARAM + "switchinnerflag 1\nsinner 1.0\n", "needs both sinner and dinner"),
    (GOOD_COEFF, GOOD_PARAM + "switchinnerflag 1\nsinner 1.0 2.0\ndinner 0.5\n", "one value per element"),
    (GOOD_COEFF, "rcutfac 4.0\ntwojmax 4\n", "needs 15 coefficients"),
    (GOOD_COEFF, GOOD_PARAM + "quadraticflag 1\n", "quadratic SNAP with 5 descriptors"),
    ("1 6\nTa 0.5 1.0\n0.1\n0.2\n", GOOD_PARAM, "ends after 2 of 6 coefficients"),
    ("1 6\nTa 0.5\n" + "0.1\n" * 6, GOOD_PARAM, "expected 'element radius weight'"),
    ("1 6\nTa 0.5 1.0\n" + "0.1 0.2\n" + "0.1\n" * 5, GOOD_PARAM, "one coefficient per line"),
    ("1 6\nTa 0.5 1.0\n" + "0.1\n" * 5 + "x\n", GOOD_PARAM, "got 'x'"),
    ("2 6\nTa 0.5 1.0\n" + "0.1\n" * 6 + "Ta 0.5 1.0\n" + "0.1\n" * 6, GOOD_PARAM, "element listed twice"),
    ("1 6 7\n", GOOD_PARAM, "header"),
    ("", GOOD_PARAM, "empty file"),
    (GOOD_COEFF + "0.3\n", GOOD_PARAM, "unexpected content"),
])
def test_bad_snap_files(tmp_path, coeff, param, message):
    c, p = tmp_path / "bad.snapcoeff", tmp_path / "bad.snapparam"
    c.write_text(coeff)
    p.write_text(param)
    with pytest.raises(SnapFileError) as err:
        read_snap(c, p)
    assert message in str(err.value)
    assert "bad.snap" in str(err.value)                 # names the file


def test_errors_name_the_line(tmp_path):
    c, p = tmp_path / "x.snapcoeff", tmp_path / "x.snapparam"
    c.write_text(GOOD_COEFF)
    p.write_text("# header\n\nrcutfac 4.0\ntwojmax 2\nbogus 3\n")
    with pytest.raises(SnapFileError, match=r"x\.snapparam:5: unknown keyword 'bogus'"):
        read_snap(c, p)
    c.write_text("1 6\nTa 0.5 1.0\n0.1\n0.1\n\n# comment\nnan?\n")
    p.write_text(GOOD_PARAM)
    with pytest.raises(SnapFileError, match=r"x\.snapcoeff:7: .*'nan\?'"):
        read_snap(c, p)
    with pytest.raises(FileNotFoundError):
        read_snap(tmp_path / "missing.snapcoeff", p)


@pytest.mark.parametrize("descriptor, message", [
    ("rcutfac 4\ntwojmax 2\nelems Ta\n", "elems before nelems"),
    ("rcutfac 4\ntwojmax 2\nnelems 1\nelems Ta\nradelems 0.5\n", "welems"),
    ("rcutfac 4\ntwojmax 2\nnelems 2\nelems Ta\n", "needs 2 values"),
    ("rcutfac 4\ntwojmax 2\nnelems 1\nelems Ta\nradelems 0.5\nwelems 1\nquadraticflag 1\n", "unknown keyword"),
])
def test_bad_mliap_descriptor(tmp_path, descriptor, message):
    d, m = tmp_path / "bad.mliap.descriptor", tmp_path / "bad.mliap.model"
    d.write_text(descriptor)
    m.write_text("1 6\n" + "0.1\n" * 6)
    with pytest.raises(SnapFileError, match=message):
        read_mliap(m, d)


def test_bad_mliap_model(tmp_path):
    d, m = tmp_path / "x.mliap.descriptor", tmp_path / "x.mliap.model"
    d.write_text("rcutfac 4\ntwojmax 2\nnelems 2\nelems A B\nradelems 0.5 0.5\nwelems 1 1\n")
    m.write_text("1 6\n" + "0.1\n" * 6)
    with pytest.raises(SnapFileError, match="1 element block"):
        read_mliap(m, d)
    m.write_text("2 7\n" + "0.1\n" * 14)
    with pytest.raises(SnapFileError, match="needs 6 coefficients"):
        read_mliap(m, d)


def test_writers_reject_other_models(tmp_path):
    from mliap_torch.descriptors.bispectrum import Bispectrum
    from mliap_torch.models.heads import MLPHead
    from mliap_torch.models.potential import Potential

    d = Bispectrum(["Ta"], 2, 4.0, [0.5], [1.0])
    with pytest.raises(TypeError, match="linear or quadratic"):
        write_snap(Potential(d, MLPHead(1, d.num_descriptors)), tmp_path / "x")
