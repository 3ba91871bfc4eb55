"""Bad input: every error names the file, the configuration (or section) and the field."""
from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mliap_torch.data.configuration import Configuration
from mliap_torch.data.readers import (
    DataError,
    DroppedConfigurationWarning,
    read_ase,
    read_dataset,
    read_fitsnap_input,
    read_fitsnap_json,
    read_mlearn,
    write_extxyz,
)


def _fitsnap_doc(**changes: Any) -> dict:
    entry = {"Positions": [[0.0, 0.0, 0.0], [1.6, 1.6, 1.6]], "Lattice": [[3.3, 0, 0], [0, 3.3, 0], [0, 0, 3.3]],
             "AtomTypes": ["Ta", "Ta"], "NumAtoms": 2, "Energy": -23.7,
             "Forces": [[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]],
             "Stress": [[-100.0, 1.0, 2.0], [1.0, -90.0, 3.0], [2.0, 3.0, -80.0]]}
    styles = {"PositionsStyle": "angstrom", "LatticeStyle": "angstrom", "EnergyStyle": "electronvolt",
              "ForcesStyle": "electronvoltperangstrom", "StressStyle": "bar", "AtomTypeStyle": "chemicalsymbol"}
    for key, value in changes.items():
        target = styles if key.endswith("Style") else entry
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return {"Dataset": {"Data": [entry], "Label": "test", **styles}}


def _write_fitsnap(folder: Path, name: str, doc: Any) -> Path:
    group = folder / "GroupA"
    group.mkdir(parents=True, exist_ok=True)
    path = group / name
    path.write_text("# comment line\n" + (doc if isinstance(doc, str) else json.dumps(doc)))
    return path


def _expect(call: Callable[[], Any], path: Path, field: str | None, where: str | None = "configuration 0") -> str:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert str(path) in message, message
    if where is not None:
        assert f"[{where}]" in message, message
    if field is not None:
        assert f"'{field}'" in message, message
    return message


FITSNAP_CASES = [
    ("missing_positions", {"Positions": None}, "Positions", "is missing"),
    ("forces_shape", {"Forces": [[0.1, 0.0], [0.0, 0.1]]}, "Forces", "shape (2, 2)"),
    ("forces_rows", {"Forces": [[0.1, 0.0, 0.0]]}, "Forces", "shape (1, 3)"),
    ("stress_shape", {"Stress": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}, "Stress", "expected (3, 3)"),
    ("stress_asymmetric", {"Stress": [[1.0, 5.0, 0], [0, 1.0, 0], [0, 0, 1.0]]}, "Stress", "not symmetric"),
    ("unknown_element", {"AtomTypes": ["Ta", "Xx"]}, "AtomTypes", "'Xx'"),
    ("types_count", {"AtomTypes": ["Ta"]}, "AtomTypes", "1 entries for 2 atoms"),
    ("numatoms", {"NumAtoms": 3}, "NumAtoms", "is 3"),
    ("nan_energy", {"Energy": float("nan")}, "Energy", "not finite"),
    ("nan_forces", {"Forces": [[float("nan"), 0, 0], [0, 0, 0]]}, "Forces", "non-finite"),
    ("text_energy", {"Energy": "abc"}, "Energy", "must be a number"),
    ("singular_cell", {"Lattice": [[1, 0, 0], [2, 0, 0], [0, 0, 1]]}, "Lattice", "singular"),
    ("lattice_shape", {"Lattice": [[1, 0, 0], [0, 1, 0]]}, "Lattice", "shape (2, 3)"),
]


@pytest.mark.parametrize("name,changes,field,text", FITSNAP_CASES, ids=[c[0] for c in FITSNAP_CASES])
def test_fitsnap_bad_entries(tmp_path: Path, name: str, changes: dict, field: str, text: str) -> None:
    path = _write_fitsnap(tmp_path, f"{name}.json", _fitsnap_doc(**changes))
    message = _expect(lambda: read_fitsnap_json(tmp_path), path, field)
    assert text in message


@pytest.mark.parametrize("style", ["StressStyle", "EnergyStyle", "LatticeStyle", "ForcesStyle", "PositionsStyle",
                                   "AtomTypeStyle"])
def test_fitsnap_unknown_units(tmp_path: Path, style: str) -> None:
    path = _write_fitsnap(tmp_path, "units.json", _fitsnap_doc(**{style: "furlong"}))
    assert "furlong" in _expect(lambda: read_fitsnap_json(path), path, style, where=None)


def test_fitsnap_missing_style_for_present_field(tmp_path: Path) -> None:
    path = _write_fitsnap(tmp_path, "nostyle.json", _fitsnap_doc(StressStyle=None))
    assert "must be stated" in _expect(lambda: read_fitsnap_json(path), path, "StressStyle", where=None)
    ok = _write_fitsnap(tmp_path / "b", "ok.json", _fitsnap_doc(StressStyle=None, Stress=None))
    assert read_fitsnap_json(ok)[0].stress is None


def test_fitsnap_kbar_and_other_units(tmp_path: Path) -> None:
    bar = read_fitsnap_json(_write_fitsnap(tmp_path / "a", "a.json", _fitsnap_doc()))[0]
    doc = _fitsnap_doc(StressStyle="kbar", Stress=[[-0.1, 0.001, 0.002], [0.001, -0.09, 0.003], [0.002, 0.003, -0.08]])
    kbar = read_fitsnap_json(_write_fitsnap(tmp_path / "b", "b.json", doc))[0]
    np.testing.assert_allclose(kbar.stress, bar.stress, rtol=1e-12)
    assert bar.stress[0] > 0, "compression-positive -100 bar is tension +100 bar in ASE's convention"


def test_fitsnap_malformed_and_empty_files(tmp_path: Path) -> None:
    empty = _write_fitsnap(tmp_path, "empty.json", "")
    empty.write_text("")
    _expect(lambda: read_fitsnap_json(empty), empty, None, where=None)
    broken = _write_fitsnap(tmp_path / "b", "broken.json", '{"Dataset": {"Data": [')
    assert "not valid JSON" in _expect(lambda: read_fitsnap_json(broken), broken, None, where=None)
    nodata = _write_fitsnap(tmp_path / "c", "nodata.json", {"Dataset": {"Data": []}})
    _expect(lambda: read_fitsnap_json(nodata), nodata, "Data", where=None)
    nodataset = _write_fitsnap(tmp_path / "d", "x.json", {"Other": 1})
    _expect(lambda: read_fitsnap_json(nodataset), nodataset, "Dataset", where=None)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_fitsnap_json(tmp_path / "nowhere")
    with pytest.raises(DataError, match="'groups'"):
        read_fitsnap_json(tmp_path / "c", groups=["NoSuchGroup"])


def test_fitsnap_skip_reports_dropped_files(tmp_path: Path) -> None:
    _write_fitsnap(tmp_path, "good.json", _fitsnap_doc())
    bad = _write_fitsnap(tmp_path, "bad.json", _fitsnap_doc(Forces=[[1.0]]))
    with pytest.warns(DroppedConfigurationWarning) as record:
        configs = read_fitsnap_json(tmp_path, on_error="skip")
    assert len(configs) == 1 and configs[0].source.endswith("good.json")
    message = str(record[0].message)
    assert "1 configuration(s) dropped" in message and str(bad) in message and "'Forces'" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_fitsnap_json(tmp_path / "GroupA" / "good.json")


def _mlearn_doc(**changes: Any) -> dict:
    doc = {"structure": {"lattice": {"matrix": [[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0]]},
                         "sites": [{"species": [{"element": "Mo", "occu": 1}], "xyz": [0.0, 0.0, 0.0]},
                                   {"species": [{"element": "Mo", "occu": 1}], "xyz": [1.5, 1.5, 1.5]}]},
           "num_atoms": 2, "outputs": {"energy": -21.0, "forces": [[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]],
                                       "virial_stress": [1, 2, 3, 4, 5, 6]},
           "group": "Elastic", "element": "Mo"}
    for key, value in changes.items():
        target = doc["outputs"] if key in ("energy", "forces", "virial_stress") else doc
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return doc


MLEARN_CASES = [
    ("forces_shape", {"forces": [[0.0, 0.1]]}, "outputs.forces", "shape (1, 2)"),
    ("virial_len", {"virial_stress": [1, 2, 3]}, "outputs.virial_stress", "shape (3,)"),
    ("nan_virial", {"virial_stress": [1, 2, float("nan"), 4, 5, 6]}, "outputs.virial_stress", "non-finite"),
    ("energy_text", {"energy": "low"}, "outputs.energy", "must be a number"),
    ("no_outputs", {"outputs": None}, "outputs", "missing"),
    ("no_structure", {"structure": None}, "structure", "missing"),
    ("num_atoms", {"num_atoms": 5}, "num_atoms", "is 5"),
]


@pytest.mark.parametrize("name,changes,field,text", MLEARN_CASES, ids=[c[0] for c in MLEARN_CASES])
def test_mlearn_bad_documents(tmp_path: Path, name: str, changes: dict, field: str, text: str) -> None:
    path = tmp_path / "Mo" / "training.json"
    path.parent.mkdir()
    path.write_text(json.dumps([_mlearn_doc(), _mlearn_doc(**changes)]))
    assert text in _expect(lambda: read_mlearn(path), path, field, where="configuration 1")
    with pytest.warns(DroppedConfigurationWarning, match="configuration 1"):
        assert len(read_mlearn(path, on_error="skip")) == 1


def test_mlearn_bad_sites_elements_and_files(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    doc = _mlearn_doc()
    doc["structure"]["sites"][1]["species"][0]["element"] = "Qq"
    path.write_text(json.dumps([doc]))
    _expect(lambda: read_mlearn(path), path, "structure.sites[].species")
    del doc["structure"]["sites"][1]["xyz"]
    path.write_text(json.dumps([doc]))
    _expect(lambda: read_mlearn(path), path, "structure.sites")
    path.write_text(json.dumps([_mlearn_doc(element="Xe")]))
    assert "pass element=" in _expect(lambda: read_mlearn(path), path, "element", where=None)
    _expect(lambda: read_mlearn(path, element="Xe"), path, "element", where=None)
    path.write_text("")
    _expect(lambda: read_mlearn(path), path, None, where=None)
    path.write_text('{"not": "a list"}')
    _expect(lambda: read_mlearn(path), path, None, where=None)
    path.write_text("[{")
    _expect(lambda: read_mlearn(path), path, None, where=None)


def test_mlearn_null_stress_accepted(tmp_path: Path) -> None:
    path = tmp_path / "Cu.json"
    path.write_text(json.dumps([_mlearn_doc(virial_stress=None, element="Cu")]))
    [config] = read_mlearn(path)
    assert config.stress is None and config.energy == -21.0


def _extxyz(tmp_path: Path) -> Path:
    config = Configuration(positions=[[0, 0, 0], [1.8, 1.8, 0]], cell=np.eye(3) * 3.6, pbc=True,
                           symbols=["Cu", "Cu"], energy=-1.0, forces=np.zeros((2, 3)), stress=np.arange(6.0))
    path = tmp_path / "a.extxyz"
    write_extxyz([config, config], path)
    return path


@pytest.mark.parametrize("key", ["energy_key", "forces_key", "stress_key"])
def test_ase_missing_named_key(tmp_path: Path, key: str) -> None:
    path = _extxyz(tmp_path)
    message = _expect(lambda: read_ase(path, **{key: "dft_value"}), path, "dft_value")
    assert "key not in" in message


def test_ase_bad_values_and_files(tmp_path: Path) -> None:
    import ase.io
    from ase import Atoms

    atoms = Atoms("Cu2", positions=[[0, 0, 0], [1, 1, 1]], cell=np.eye(3) * 3, pbc=True)
    atoms.info["e"] = float("nan")
    atoms.info["s"] = np.arange(4.0)
    ase.io.write(tmp_path / "b.xyz", atoms, format="extxyz")
    path = tmp_path / "b.xyz"
    assert "not finite" in _expect(lambda: read_ase(path, energy_key="e"), path, "e")
    assert "expected 6" in _expect(lambda: read_ase(path, stress_key="s"), path, "s")
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    _expect(lambda: read_ase(empty), empty, None, where=None)
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("2\nLattice=\"1 0 0\" Properties=species:S:1:pos:R:3\nCu 0 0\n")
    assert "ASE could not read" in _expect(lambda: read_ase(garbage), garbage, None, where=None)
    with pytest.raises(FileNotFoundError):
        read_ase(tmp_path / "missing.xyz")


def test_extxyz_writer_rejects_unwritable_info(tmp_path: Path) -> None:
    config = Configuration(positions=[[0, 0, 0]], cell=np.eye(3), pbc=True, symbols=["Cu"],
                           source="s.json", index=4, info={"nested": {"a": 1}})
    with pytest.raises(ValueError, match=r"s.json \[configuration 4\].*'nested'"):
        write_extxyz([config], tmp_path / "x.extxyz")


FITSNAP_INPUT = """[BISPECTRUM]
numTypes = 1
twojmax = 6
type = Ta

[ESHIFT]
Ta = {eshift}

[PATH]
dataPath = JSON

[GROUPS]
group_sections = {sections}
group_types = {types}
smartweights = 0
random_sampling = 0
Bulk = {row}
"""


@pytest.mark.parametrize("fields,section,field,text", [
    ({"row": "1.0 0.0 100 1"}, "section GROUPS", "Bulk", "has 4 values, expected 5"),
    ({"row": "1.0 0.0 heavy 1 1"}, "section GROUPS", "Bulk", "'heavy' is not a float"),
    ({"types": "str float float float float complex"}, "section GROUPS", "group_types", "unknown type"),
    ({"sections": "group training_size testing_size eweight fweight vweight"}, "section GROUPS", "group_sections",
     "first column"),
    ({"eshift": "lots"}, "section ESHIFT", "Ta", "must be a number"),
])
def test_fitsnap_input_errors(tmp_path: Path, fields: dict, section: str, field: str, text: str) -> None:
    values = {"eshift": "0.0", "sections": "name training_size testing_size eweight fweight vweight",
              "types": "str float float float float float", "row": "1.0 0.0 100 1 1e-8", **fields}
    path = tmp_path / "bad.in"
    path.write_text(FITSNAP_INPUT.format(**values))
    assert text in _expect(lambda: read_fitsnap_input(path), path, field, where=section)


def test_fitsnap_input_malformed(tmp_path: Path) -> None:
    path = tmp_path / "bad.in"
    path.write_text("[GROUPS]\nBulk = 1\nBulk = 2\n")
    with pytest.raises(DataError, match="bad.in"):
        read_fitsnap_input(path)
    path.write_text("")
    _expect(lambda: read_fitsnap_input(path), path, None, where=None)
    path.write_text("[BISPECTRUM]\ntype = Ta Qx\n")
    _expect(lambda: read_fitsnap_input(path), path, "type", where="section BISPECTRUM")


def test_unknown_element_for_model(tmp_path: Path) -> None:
    from mliap_torch.data.dataset import ConfigurationDataset

    path = _write_fitsnap(tmp_path, "a.json", _fitsnap_doc())
    configs = read_fitsnap_json(path)
    with pytest.raises(ValueError, match=r"a.json \[configuration 0\] field 'symbols'.*\['Ta'\].*\['W', 'Be'\]"):
        ConfigurationDataset(configs, ["W", "Be"], 4.0)


def test_read_dataset_rejects_unknown_format_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown data format"):
        read_dataset(tmp_path, format="cif-folder")
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        read_dataset(tmp_path / "nothing.json", format="mlearn")


def test_fitsnap_non_json_entries_are_reported(tmp_path: Path) -> None:
    _write_fitsnap(tmp_path, "good.json", _fitsnap_doc())
    (tmp_path / "GroupA" / "notes.txt").write_text("not data")
    with pytest.warns(DroppedConfigurationWarning, match=r"notes.txt .*not a .json file"):
        assert len(read_fitsnap_json(tmp_path)) == 1
