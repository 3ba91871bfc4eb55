"""One exact fit over several local processes (``fit_exact(processes=N)``, ``train.py fit.processes=N``):
real spawned gloo processes, no mocks. The fit, its predictions and metrics equal the one-process fit to 1e-10;
a rank that dies ends the fit with a clear error instead of a hang; bad settings are one-paragraph errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import mliap_torch
from cli_helpers import QUICK, run_cli, user_error
from fit_helpers import label, potential, structures
from mliap_torch.faults import KILL_ENV
from mliap_torch.fitting.exact_fit import balanced_edges, fit_exact
from mliap_torch.fitting.options import FitOptions
from mliap_torch.fitting.processes import RankError

GROUPS = ["g0", "g1", "g2"]


def _data(n=12):
    return label(structures(n, seed=11), potential(quadratic=True), noise=0.02)


def _fresh():
    model = potential(quadratic=True, seed=99)
    model.head.set_coefficients(torch.zeros_like(model.head.coefficients()))
    return model


def _close(a: float, b: float, rel: float = 1e-10, abs_: float = 1e-12) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= rel * abs(a) + abs_


def test_two_processes_equal_one_process():
    configs, test = _data(), [k % 4 == 3 for k in range(12)]
    one = fit_exact(_fresh(), configs, test=test, group_names=GROUPS, chunk_atoms=30)
    model = _fresh()
    two = fit_exact(model, configs, test=test, group_names=GROUPS, options=FitOptions(chunk_atoms=30, processes=2))
    scale = one.coefficients.abs().max()
    assert (two.coefficients - one.coefficients).abs().max() <= 1e-10 * scale
    assert (model.head.coefficients().detach() - one.coefficients).abs().max() <= 1e-10 * scale  # set on the head
    assert two.solution.num_rows == one.solution.num_rows and two.rows is None
    assert any("2 processes" in note for note in two.notes)
    # predictions of every row come back, in configuration order; metrics of all rows, train and test
    torch.testing.assert_close(two.predictions.config, one.predictions.config, rtol=0, atol=0)
    torch.testing.assert_close(two.predictions.pred, one.predictions.pred, rtol=1e-10, atol=1e-12)
    assert len(two.metrics.rows) == len(one.metrics.rows)
    for a, b in zip(one.metrics.rows, two.metrics.rows):
        assert {k: a[k] for k in ("group", "weighting", "split", "quantity", "ncount")} == \
            {k: b[k] for k in ("group", "weighting", "split", "quantity", "ncount")}
        assert _close(a["mae"], b["mae"]) and _close(a["rmse"], b["rmse"]), (a, b)


def test_shards_hold_about_equal_numbers_of_atoms():
    # WBe-like: large cells first, small ones after; equal numbers of configurations would give the first
    # rank 4 × 100 + 2 × 10 = 420 atoms and the second 60
    sizes = [100, 100, 100, 100, 10, 10, 10, 10, 10, 10, 10, 10]
    edges = balanced_edges(sizes, 2)
    assert edges[0] == 0 and edges[-1] == len(sizes)
    shares = [sum(sizes[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    assert shares == [300, 180]  # the running total first reaches 240 at the third cell
    for parts in (1, 3, 5, 20):
        edges = balanced_edges(sizes, parts)
        assert len(edges) == parts + 1 and edges == sorted(edges) and edges[-1] == len(sizes)
        target = sum(sizes) / parts
        for k in range(1, parts):  # block k ends where the running total first reaches k targets
            assert sum(sizes[:edges[k]]) >= k * target > sum(sizes[:edges[k] - 1])
    assert balanced_edges([], 3) == [0, 0, 0, 0]


def test_fit_options_are_one_place_for_defaults_and_checks():
    assert FitOptions().solver == "qr" and FitOptions().processes == 1 and FitOptions().threads is None
    assert FitOptions.build({"solver": "svd"}, rcond=1e-13) == FitOptions(solver="svd", rcond=1e-13)
    assert FitOptions(processes=4, threads=None).threads_per_process() >= 1
    assert FitOptions(processes=4, threads=3).threads_per_process() == 3
    for bad, name in (({"processes": 0}, "processes"), ({"processes": 1.5}, "processes"), ({"threads": 0}, "threads"),
                      ({"solver": "lu"}, "solver"), ({"keep_rows": "yes"}, "keep_rows"), ({"alpha": -1}, "alpha")):
        with pytest.raises(ValueError, match=f"'{name}'"):
            FitOptions(**bad)
    with pytest.raises(TypeError, match="unknown fit option"):
        fit_exact(_fresh(), _data(2), group_names=GROUPS, solvr="qr")


def test_a_killed_rank_ends_the_fit_with_a_clear_error(monkeypatch):
    monkeypatch.setenv(KILL_ENV, "fit.design.rank1")  # rank 1 SIGKILLs itself after its first design chunk
    with pytest.raises(RankError, match="fit process 1 of 2 ended with exit status -9"):
        fit_exact(_fresh(), _data(), group_names=GROUPS, chunk_atoms=30, processes=2)


def _coefficients(run_dir: Path) -> torch.Tensor:
    return mliap_torch.load(run_dir / "model.pt").head.coefficients().detach()


def test_cli_two_processes_write_one_run_folder_equal_to_one_process(tmp_path):
    runs = {}
    for n in (1, 2):
        run_dir = tmp_path / f"p{n}"
        proc = run_cli(["model=snap_linear", f"fit.processes={n}", f"hydra.run.dir={run_dir}", *QUICK], timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[n] = run_dir
    assert sorted(p.name for p in runs[2].iterdir()) == sorted(p.name for p in runs[1].iterdir())
    one, two = _coefficients(runs[1]), _coefficients(runs[2])
    assert (two - one).abs().max() <= 1e-10 * one.abs().max()
    m1, m2 = (json.loads((runs[n] / "metrics.json").read_text()) for n in (1, 2))
    for split in ("train", "test"):
        for group, values in m1["summary"][split].items():
            for key, value in values.items():
                assert _close(value, m2["summary"][split][group][key]), (split, group, key)
    for a, b in zip(m1["table"]["rows"], m2["table"]["rows"]):
        assert a["ncount"] == b["ncount"] and _close(a["mae"], b["mae"]) and _close(a["rmse"], b["rmse"]), (a, b)


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "two"])
def test_bad_fit_processes_is_one_paragraph(tmp_path, value):
    message = user_error(run_cli([f"fit.processes={value}", *QUICK], cwd=tmp_path, timeout=120))
    assert "'fit.processes'" in message
    assert not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]  # checked before anything ran


def test_execution_settings_in_model_solver_point_to_the_fit_section(tmp_path):
    message = user_error(run_cli(["+model.solver.processes=2", f"hydra.run.dir={tmp_path / 'run'}", *QUICK],
                                 timeout=120))
    assert "'model.solver.processes'" in message and "fit.processes" in message
