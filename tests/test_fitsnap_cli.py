"""``mliap_torch fitsnap INPUT.in`` and the :mod:`mliap_torch.fitsnap` package.

The Ta example (``../shared/data/fitsnap/Ta_Linear_JCP2014``) runs in a subprocess from an empty
folder; its written ``Ta_pot.snapcoeff`` and ``Ta_metrics.md`` are parsed and compared with FitSNAP's
``reference/`` files: coefficients to 1e-8 relative, every metric to 1e-5 relative (FitSNAP prints
6 significant digits). Force rows of the perfect-lattice groups (Volume_*) are round-off on both
sides (reference RMSE < 1e-10 eV/Å) and are only checked to be round-off.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_cli, user_error
from conftest import SHARED_DATA
from mliap_torch.errors import DataError
from mliap_torch.fitsnap import run_fitsnap
from mliap_torch.fitsnap.input import resolve_data_path
from mliap_torch.fitting.metrics import read_fitsnap_metrics

TA = SHARED_DATA / "fitsnap" / "Ta_Linear_JCP2014"
CLI = "mliap_torch.cli.main"

MINIMAL_INPUT = """\
[BISPECTRUM]
numTypes = 1
twojmax = 2
rcutfac = 4.0
radelem = 0.5
wj = 1.0
type = Ta
{bispectrum}
[CALCULATOR]
calculator = LAMMPSSNAP
energy = 1
force = 1
stress = 0
{sections}
[PATH]
dataPath = {data_path}

[GROUPS]
group_sections = name training_size testing_size eweight fweight vweight
group_types = str float float float float float
Bulk = 1.0 0.0 1 1 1
"""


def snapcoeff_values(path: Path) -> np.ndarray:
    """The coefficients of a one-element ``.snapcoeff`` file (numbers only; comments and header skipped)."""
    lines = [ln.split("#")[0].split() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    ncoeff = int(lines[0][1])
    return np.array([float(ln[0]) for ln in lines[2:2 + ncoeff]])


def write_input(folder: Path, data_path: str = "JSON", bispectrum: str = "", sections: str = "") -> Path:
    path = folder / "case.in"
    path.write_text(MINIMAL_INPUT.format(bispectrum=bispectrum, sections=sections, data_path=data_path))
    return path


@pytest.mark.shared_data
def test_fitsnap_command_reproduces_fitsnap_ta_linear(tmp_path: Path) -> None:
    """The Ta example run from another folder: FitSNAP's file names, coefficients and metrics."""
    proc = run_cli(["fitsnap", str(TA / "Ta-example.in")], module=CLI, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Ta_metrics.md", "Ta_pot.mod", "Ta_pot.snapcoeff",
                                                         "Ta_pot.snapparam"]
    assert "pair_style hybrid/overlay zbl 4.0 4.8 snap" in (tmp_path / "Ta_pot.mod").read_text()
    ours, ref = (snapcoeff_values(folder / "Ta_pot.snapcoeff") for folder in (tmp_path, TA / "reference"))
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=0)

    got, expected = (read_fitsnap_metrics(folder / "Ta_metrics.md") for folder in (tmp_path, TA / "reference"))
    assert set(got) == set(expected)
    for (group, weighting, split, quantity), values in expected.items():
        roundoff = quantity == "Force" and expected[(group, "Unweighted", split, quantity)]["rmse"] < 1e-10
        row = got[(group, weighting, split, quantity)]
        assert row["ncount"] == values["ncount"]
        for metric in ("mae", "rmse", "rsq"):
            if roundoff:
                assert metric == "rsq" or row[metric] < 1e-10, (group, weighting, quantity, metric)
            else:
                assert row[metric] == pytest.approx(values[metric], rel=1e-5), (group, weighting, quantity, metric)
    assert "*ALL training energy" in proc.stdout


def test_missing_input_file_is_one_paragraph(tmp_path: Path) -> None:
    message = user_error(run_cli(["fitsnap", "nowhere.in"], module=CLI, cwd=tmp_path))
    assert "nowhere.in" in message and "no such FitSNAP input file" in message


@pytest.mark.parametrize("edit, section, key, fragment", [
    ({"sections": "[NETWORK]\nlayers = 3\n"}, "NETWORK", None, "unknown or unsupported section"),
    ({"bispectrum": "switchinnerflag = 1\n"}, "BISPECTRUM", "switchinnerflag", "unknown or unsupported key"),
    ({"sections": "[SOLVER]\nsolver = PYTORCH\n"}, "SOLVER", "solver", "not supported"),
    ({"sections": "[SCRAPER]\nscraper = XYZ\n"}, "SCRAPER", "scraper", "not supported"),
    ({"sections": "[OUTFILE]\nmetrics_style = CSV\n"}, "OUTFILE", "metrics_style", "not supported"),
    ({"sections": "[REFERENCE]\npair_style = hybrid/overlay zero 6.0 eam\n"}, "REFERENCE", "pair_style", "eam"),
    ({"data_path": "no_such_folder"}, "PATH", "dataPath", "no_such_folder"),
], ids=["section", "key", "solver", "scraper", "metrics_style", "reference", "data_path"])
def test_bad_input_names_file_section_and_key(tmp_path: Path, edit: dict, section: str, key: str | None,
                                              fragment: str) -> None:
    path = write_input(tmp_path, **edit)
    with pytest.raises(DataError) as info:
        run_fitsnap(path, tmp_path / "out")
    message = str(info.value)
    assert str(path) in message and section in message and fragment in message and "\n" not in message
    if key is not None:
        assert key in message
    assert not (tmp_path / "out").exists()


def test_bad_input_on_the_command_line_exits_2(tmp_path: Path) -> None:
    path = write_input(tmp_path, bispectrum="bikflag = 1\n")
    message = user_error(run_cli(["fitsnap", str(path)], module=CLI, cwd=tmp_path))
    assert "case.in [section BISPECTRUM] field 'bikflag'" in message


def test_data_path_beside_the_input_then_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    """FitSNAP joins dataPath to the input's folder; an older cwd-relative dataPath still resolves."""
    (tmp_path / "case" / "JSON").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_data_path(tmp_path / "case" / "case.in", "JSON") == (tmp_path / "case" / "JSON").resolve()
    assert resolve_data_path(Path("case/case.in"), "data") == (tmp_path / "data").resolve()
    assert resolve_data_path(Path("case/case.in"), "none") == (tmp_path / "case" / "none").resolve()


def test_old_import_paths_give_the_same_objects() -> None:
    import mliap_torch.fitsnap as fitsnap
    from mliap_torch.data import readers
    from mliap_torch.data.readers import fitsnap_input
    from mliap_torch.fitsnap import ace, input, potential, setup
    from mliap_torch.fitting import exact_fit, fitsnap_ace

    assert exact_fit.fitsnap_setup is setup.fitsnap_setup is fitsnap.fitsnap_setup
    assert exact_fit.FitSNAPSetup is setup.FitSNAPSetup and exact_fit.fitsnap_solver is setup.fitsnap_solver
    assert exact_fit.fitsnap_potential is potential.fitsnap_potential
    assert exact_fit.zbl_from_fitsnap_reference is potential.zbl_from_fitsnap_reference
    assert fitsnap_ace.ace_from_fitsnap is ace.ace_from_fitsnap
    assert fitsnap_input.read_fitsnap_input is input.read_fitsnap_input is readers.read_fitsnap_input
    assert readers.read_fitsnap_data is fitsnap.read_fitsnap_data
    with pytest.raises(AttributeError):
        exact_fit.no_such_name  # noqa: B018
