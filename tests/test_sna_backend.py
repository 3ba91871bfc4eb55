"""When ``Bispectrum.pair_jacobian`` runs through LAMMPS' SNA (sna_backend) and when through torch.

The values of both routes are compared with autograd in ``test_bispectrum_gradients.py``
(``test_pair_jacobian_equals_autograd[...-sna]``: one and two elements, switchinner, chemflag with bnorm)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lammps_models import random_structures
from mliap_torch.data.batch import make_batch
from mliap_torch.data.configuration import Configuration
from mliap_torch.descriptors import sna_backend
from mliap_torch.descriptors.bispectrum import Bispectrum

pytestmark = [pytest.mark.lammps]


def ta_case():
    d = Bispectrum(["Ta"], twojmax=4, rcutfac=4.6, radelem=[0.5], wj=[1.0])
    configs: list[Configuration] = random_structures(["Ta"], 1, 41)
    batch = make_batch(configs, ["Ta"], d.cutoff)
    return d, batch


def test_the_sna_route_runs_when_lammps_is_built_and_equals_the_torch_route():
    d, batch = ta_case()
    assert sna_backend.available()
    assert d._sna_route(batch.rij().detach())
    B, dB = d.pair_jacobian(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    d.sna_jacobian = False
    B_torch, dB_torch = d.pair_jacobian(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    assert float((B - B_torch).abs().max()) <= 1e-12 * float(B_torch.abs().max())
    assert float((dB - dB_torch).abs().max()) <= 1e-12 * float(dB_torch.abs().max())
    assert float(dB.abs().max()) > 0.0


def test_the_environment_switch_and_gradients_keep_the_torch_route(monkeypatch):
    d, batch = ta_case()
    rij = batch.rij().detach()
    assert d._sna_route(rij)
    assert not d._sna_route(rij.clone().requires_grad_(True))        # something to differentiate
    assert not d._sna_route(rij.to(torch.float32))
    monkeypatch.setenv(sna_backend.ENV_SWITCH, "0")
    assert not sna_backend.available()
    assert not d._sna_route(rij)


def test_threads_share_the_atoms_with_identical_results():
    """One SNA per OpenMP thread: the atoms' results do not depend on how many threads computed them."""
    d, batch = ta_case()
    threads = torch.get_num_threads()
    args = (batch.rij().detach(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
    try:
        torch.set_num_threads(1)
        one = d.pair_jacobian(*args)
        torch.set_num_threads(2)
        two = d.pair_jacobian(*args)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_the_extension_compiles_from_a_copy_in_its_cache_folder():
    """ninja rebuilds when a source's path changes: two checkouts of the same code (same cache key) must
    share one build instead of rebuilding each other's."""
    module = sna_backend.extension()
    build = Path(module.__file__).parent
    ninja = (build / "build.ninja").read_text()
    copy = build / sna_backend.SOURCE.name
    assert copy.read_text() == sna_backend.SOURCE.read_text()
    assert str(copy) in ninja and str(sna_backend.SOURCE) not in ninja


def test_starting_lammps_keeps_torchs_thread_count():
    """LAMMPS' constructor sets OpenMP's thread count to 1; the SNA route must not leave torch (at its default
    count, which follows OpenMP's) single-threaded."""
    code = ("import torch; before = torch.get_num_threads(); from mliap_torch.descriptors import sna_backend; "
            "assert sna_backend.available(); print(before, torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after = proc.stdout.split()[-2:]
    if int(before) < 2:
        pytest.skip("one core: nothing to lose")
    assert after == before
