"""SNAP / ML-IAP file readers and writers: round trips, FitSNAP's reference file, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lammps_models import random_potential, random_structures
from mliap_torch.data.batch import make_batch
from mliap_torch.export.snap_files import SnapFileError, read_mliap, read_snap, write_mliap, write_snap
from mliap_torch.models.heads import QuadraticHead


def energies(potential, configs):
    return potential(make_batch(configs, potential.elements, potential.cutoff), stress=False)


@pytest.mark.parametrize("elements,head", [(["Ta"], "linear"), (["Cu", "Ni"], "quadratic")])
def test_round_trip_preserves_model(tmp_path, elements, head):
    potential = random_potential(elements, head, zbl=False, seed=3)
    configs = random_structures(elements, 1, seed=2)
    ref = energies(potential, configs)
    for read, write in ((read_snap, write_snap), (read_mliap, write_mliap)):
        again = read(*write(potential, tmp_path / f"m_{write.__name__}"))
        assert again.descriptor.settings() == potential.descriptor.settings()
        assert isinstance(again.head, type(potential.head))
        torch.testing.assert_close(again.head.coefficients(), potential.head.coefficients(), rtol=0, atol=0)
        out = energies(again, configs)
        torch.testing.assert_close(out["energy"], ref["energy"], rtol=1e-14, atol=0)
        torch.testing.assert_close(out["forces"], ref["forces"], rtol=1e-12, atol=1e-14)


@pytest.mark.shared_data
def test_reads_fitsnap_reference_potential(shared_data):
    ref = shared_data / "fitsnap" / "Ta_Linear_JCP2014" / "reference"
    potential = read_snap(ref / "Ta_pot.snapcoeff", ref / "Ta_pot.snapparam")
    s = potential.descriptor.settings()
    assert (s["elements"], s["twojmax"], s["rcutfac"], s["bzeroflag"]) == (["Ta"], 6, 4.67637, False)
    coeff_lines = [ln.split("#")[0].split() for ln in (ref / "Ta_pot.snapcoeff").read_text().splitlines()]
    numbers = [float(w[0]) for w in coeff_lines if len(w) == 1]
    np.testing.assert_array_equal(potential.head.coefficients().detach().numpy()[0], numbers)


def test_quadratic_flag_and_count_mismatch(tmp_path):
    potential = random_potential(["Ta"], "quadratic", zbl=False, seed=1, twojmax=2)
    coeff, param = write_snap(potential, tmp_path / "q")
    assert isinstance(read_snap(coeff, param).head, QuadraticHead)
    param.write_text(param.read_text().replace("quadraticflag 1", "quadraticflag 0"))
    with pytest.raises(SnapFileError, match=r"q\.snapcoeff.*coefficients per element.*linear"):
        read_snap(coeff, param)


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("twojmax", "twojmx"), r"\.snapparam:\d+: unknown keyword 'twojmx'"),
    (lambda t: t.replace("rcutfac", "#rcutfac"), r"required keyword 'rcutfac'"),
    (lambda t: t.replace("rfac0 0.99363", "rfac0 abc"), r"\.snapparam:\d+: rfac0 must be a number"),
])
def test_bad_snapparam(tmp_path, edit, message):
    coeff, param = write_snap(random_potential(["Ta"], "linear", zbl=False, seed=1, twojmax=2), tmp_path / "b")
    param.write_text(edit(param.read_text()))
    with pytest.raises(SnapFileError, match=message):
        read_snap(coeff, param)


def test_bad_snapcoeff(tmp_path):
    coeff, param = write_snap(random_potential(["Ta"], "linear", zbl=False, seed=1, twojmax=2), tmp_path / "c")
    lines = coeff.read_text().splitlines()
    coeff.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(SnapFileError, match=r"c\.snapcoeff: element Ta has \d+ of \d+ coefficients"):
        read_snap(coeff, param)
    coeff.write_text("\n".join(lines[:2] + ["Ta 0.5"] + lines[3:]) + "\n")
    with pytest.raises(SnapFileError, match=r"c\.snapcoeff:\d+: expected 'element radius weight'"):
        read_snap(coeff, param)
    with pytest.raises(FileNotFoundError, match="missing.snapcoeff"):
        read_snap(tmp_path / "missing.snapcoeff", param)
