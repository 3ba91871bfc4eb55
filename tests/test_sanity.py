"""Physical sanity checks: overlapping atoms, collapsed cells and cells far smaller than the cutoff are
errors naming the file, the configuration and the field (with an opt-out); every shared data set and the
built-in set pass the defaults."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from cli_helpers import QUICK, metrics, run_cli, user_error
from mliap_torch.data.batch import process_configuration
from mliap_torch.data.builtin import builtin_dataset
from mliap_torch.data.configuration import Configuration
from mliap_torch.data.readers import read_ase, read_fitsnap_json, read_mlearn, write_extxyz
from mliap_torch.data.sanity import DEFAULT_LIMITS, SanityLimits, sanity_limits
from mliap_torch.errors import SanityError

MLEARN_ELEMENTS = ("Ni", "Cu", "Li", "Mo", "Si", "Ge")
CUTOFF = 6.0
"""Å: above every cutoff the project's models use (mlearn SNAP/ACE: 3.8–5.9 Å; WBe 4.8 Å)."""


def emt_configs(n: int = 12, seed: int = 0) -> list[Configuration]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        atoms.calc = EMT()
        out.append(Configuration(positions=atoms.positions, cell=np.asarray(atoms.cell), pbc=True,
                                 symbols=atoms.get_chemical_symbols(), energy=atoms.get_potential_energy(),
                                 forces=atoms.get_forces(), stress=atoms.get_stress(), group="bulk", index=k))
    return out


def test_duplicated_atom_is_reported_and_the_check_can_be_turned_off(tmp_path: Path) -> None:
    configs = emt_configs()
    bad = configs[5]
    bad.positions = np.vstack([bad.positions, bad.positions[3]])
    bad.symbols = np.append(bad.symbols, "Cu")
    bad.forces = np.vstack([bad.forces, np.zeros(3)])
    path = tmp_path / "dup.extxyz"
    write_extxyz(configs, path)
    args = ["data=extxyz", f"data.path={path}", *QUICK]
    message = user_error(run_cli([*args, f"hydra.run.dir={tmp_path / 'a'}"]))
    assert f"{path} [configuration 5] field 'positions'" in message
    assert "atoms 3 and 8 are 0.000 Å apart" in message and "data.checks.min_distance=null" in message
    proc = run_cli([*args, "data.checks.min_distance=null", f"hydra.run.dir={tmp_path / 'b'}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.isfinite(metrics(tmp_path / "b")["train"]["all"]["energy_mae"])


def test_collapsed_cell_in_extxyz_names_the_file(tmp_path: Path) -> None:
    configs = emt_configs(3)
    configs[1].cell = np.array([[3.6, 0, 0], [7.2, 0, 0], [0, 0, 3.6]])
    path = tmp_path / "flat.extxyz"
    write_extxyz(configs, path)
    read = read_ase(path)
    with pytest.raises(SanityError, match=r"flat.extxyz \[configuration 1\] field 'cell'.*linearly dependent"):
        for k, config in enumerate(read):
            process_configuration(config, ["Cu"], 4.0, config_id=k)


def test_cell_far_smaller_than_the_cutoff_fails_before_the_neighbour_list() -> None:
    tiny = Configuration(positions=[[0.0, 0.0, 0.0]], cell=np.eye(3) * 0.8, pbc=True, symbols=["Cu"],
                         source="tiny.xyz", index=7)
    with pytest.raises(SanityError, match=r"tiny.xyz \[configuration 7\] field 'cell': an estimated \d+ neighbour"):
        process_configuration(tiny, ["Cu"], 6.0)
    with sanity_limits(SanityLimits(max_pairs_per_atom=None)):   # the opt-out: all 1 790 images are listed
        item = process_configuration(tiny, ["Cu"], 6.0)
    assert len(item.pair_i) > DEFAULT_LIMITS.max_pairs_per_atom


def test_actual_pair_count_is_checked_too() -> None:
    """A slab cell (not fully periodic: no density estimate) whose listed pairs exceed the limit."""
    slab = Configuration(positions=[[0.0, 0.0, 0.0]], cell=np.diag([0.5, 0.5, 0.0]), pbc=[True, True, False],
                         symbols=["Cu"], source="slab.xyz")
    with pytest.raises(SanityError, match=r"slab.xyz \[configuration 0\] field 'cell': \d+ neighbour pairs per atom"):
        process_configuration(slab, ["Cu"], 10.0)


def closest_and_densest(configs: list[Configuration], elements: list[str]) -> tuple[float, float]:
    """Smallest distance (Å) and largest pairs per atom within CUTOFF, with the default checks on."""
    closest, densest = np.inf, 0.0
    for k, config in enumerate(configs):
        item = process_configuration(config, elements, CUTOFF, config_id=k)
        densest = max(densest, len(item.pair_i) / config.num_atoms)
        if len(item.pair_i):
            rij = config.positions[item.pair_j] - config.positions[item.pair_i] + item.shifts @ config.cell
            closest = min(closest, float(np.linalg.norm(rij, axis=1).min()))
    return closest, densest


@pytest.mark.shared_data
@pytest.mark.parametrize("element", MLEARN_ELEMENTS)
def test_every_mlearn_set_passes_the_default_checks(shared_data: Path, element: str) -> None:
    configs = [c for part in ("training", "test")
               for c in read_mlearn(shared_data / "mlearn" / element / f"{part}.json", element)]
    closest, densest = closest_and_densest(configs, [element])
    assert DEFAULT_LIMITS.min_distance < 1.7 < closest and densest < DEFAULT_LIMITS.max_pairs_per_atom


@pytest.mark.shared_data
def test_fitsnap_ta_and_the_builtin_set_pass_the_default_checks(shared_data: Path) -> None:
    ta = read_fitsnap_json(shared_data / "fitsnap" / "Ta_Linear_JCP2014" / "JSON")
    closest, densest = closest_and_densest(ta, ["Ta"])
    assert closest > 1.8 and densest < DEFAULT_LIMITS.max_pairs_per_atom
    closest, densest = closest_and_densest(builtin_dataset(), ["Cu", "Ni"])
    assert closest > 1.9 and densest < DEFAULT_LIMITS.max_pairs_per_atom


@pytest.mark.slow
@pytest.mark.shared_data
def test_fitsnap_wbe_passes_the_default_checks(shared_data: Path, tmp_path: Path) -> None:
    """WBe (25 422 configurations) holds the closest pair of all shared data (0.69 Å, Be in a W tetrahedron)."""
    with tarfile.open(shared_data / "fitsnap" / "WBe_PRB2019" / "JSON.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    folder = next(p for p in tmp_path.rglob("*") if p.is_dir() and any(p.glob("*/*.json")))
    closest, densest = closest_and_densest(read_fitsnap_json(folder), ["W", "Be"])
    assert DEFAULT_LIMITS.min_distance < closest < 0.7 and densest < DEFAULT_LIMITS.max_pairs_per_atom
