"""Active learning (issue 24, item 3): EMT labels, MD stopped on γ, greedy MaxVol selection, the loop and the
``mliap_torch active-learn`` command on tiny settings (the 3-seed study is scripts/active_learning.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mliap_torch.cli.active_learn import main as active_learn_main
from mliap_torch.data.builtin import builtin_dataset
from mliap_torch.uncertainty.active_learning import (
    ActiveLearningSettings,
    emt_label,
    fit_and_evaluate,
    frame_features,
    greedy_gamma_selection,
    initial_set,
    run_active_learning,
    run_md,
    setup_from_config,
    start_structure,
)
from mliap_torch.uncertainty.build import build_active_set
from mliap_torch.uncertainty.maxvol import active_set_inverse

TINY = {"initial": 4, "per_iteration": 2, "md_steps": 8, "frame_every": 2, "cells": ("bulk", "alloy", "surface")}


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    return setup_from_config()


def test_emt_labels_match_the_builtin_data():
    for config in builtin_dataset()[::97]:
        label = emt_label(config.to_ase(), weights=(100.0, 1.0, 100.0))
        assert label.energy == pytest.approx(config.energy, abs=1e-10)
        np.testing.assert_allclose(label.forces, config.forces, atol=1e-10)
        np.testing.assert_allclose(label.stress, config.stress, atol=1e-12)
        assert (label.energy_weight, label.force_weight, label.stress_weight) == (100.0, 1.0, 100.0)


def test_greedy_selection_picks_the_largest_gamma_and_skips_a_duplicate():
    rng = np.random.default_rng(0)
    labelled = [rng.standard_normal((40, 5))]
    frames = [rng.standard_normal((3, 5)) * s for s in (0.3, 4.0, 0.3, 3.0)]
    frames.insert(2, frames[1].copy())                      # frame 2 duplicates frame 1, the most extrapolative
    pool, owner = [np.vstack(frames)], [np.repeat(np.arange(len(frames)), 3)]
    _, M = active_set_inverse(labelled[0])
    gamma = np.array([np.abs(f @ M).max() for f in frames])
    picked, picked_gamma = greedy_gamma_selection(labelled, pool, owner, len(frames), 2)
    assert picked[0] == int(np.argmax(gamma)) and picked_gamma[0] == pytest.approx(gamma.max())
    # the duplicate (as extrapolative before the first pick) adds no volume after it: the other frame is next
    assert gamma[1] == gamma[2] > gamma[4] > 1 and picked[1] == 4 and picked_gamma[1] > 1
    # spread over strata: with frames 1, 2 and 4 in one stratum and a quota of 1, the second pick is elsewhere
    strata = ["a", "b", "b", "a", "b"]
    picked, _ = greedy_gamma_selection(labelled, pool, owner, len(frames), 2, strata=strata)
    assert picked[0] == 1 and strata[picked[1]] == "a"


def test_md_stops_when_gamma_passes_the_threshold(setup):
    labelled = initial_set(setup.train, 4, 0)
    potential, _ = fit_and_evaluate(setup, labelled)
    build_active_set(potential, labelled, progress=False)
    for gamma_stop, kind in ((3.0, "bulk"), (1e12, "bulk"), (3.0, "alloy")):
        settings = ActiveLearningSettings(gamma_stop=gamma_stop, md_steps=6, frame_every=2)
        rng = np.random.default_rng(1)
        traj = run_md(potential, start_structure(kind, rng, 0.02), 600.0, settings, rng, kind)
        # the γ the MD recorded is the potential's γ of the kept frames
        np.testing.assert_allclose(traj.gamma, [potential.extrapolation_grade([f]).max().item() for f in traj.frames],
                                   rtol=1e-10)
        # and the selection's features (per element, with each atom's frame) give the same γ
        features, owner = frame_features(potential, traj.frames)
        assert sum(len(o) for o in owner) == sum(len(f) for f in traj.frames)
        worst = np.zeros(len(traj.frames))
        for e, (x, o) in enumerate(zip(features, owner)):
            gamma = potential.active_set(torch.from_numpy(x), torch.full((len(x),), e)).numpy()
            np.maximum.at(worst, o, gamma)
        np.testing.assert_allclose(worst, traj.gamma, rtol=1e-10)
        if traj.stopped:
            assert traj.gamma[-1] > gamma_stop and np.all(traj.gamma[:-1] <= gamma_stop)
        else:
            assert traj.steps == settings.md_steps and traj.max_gamma <= gamma_stop
            assert len(traj.frames) == 1 + settings.md_steps // settings.frame_every
    assert traj.stopped or gamma_stop > 1e6


def test_loop_grows_the_labelled_set_by_gamma_and_refitting_helps(setup):
    settings = ActiveLearningSettings(strategy="gamma", seed=0, iterations=2, gamma_stop=50.0, **TINY)
    result = run_active_learning(setup, settings)
    assert [r.labels for r in result.records] == [4, 6, 8]
    assert len(result.labelled) == 8 and all(c.group == "active_learning" for c in result.labelled[4:])
    for record in result.records[:-1]:
        assert record.pool >= record.trajectories == 3 and len(record.selected_gamma) == 2
        # the first pick is the pool's largest γ; frames with γ > 1 are picked while there are any
        assert record.selected_gamma[0] == pytest.approx(record.pool_max_gamma)
        if record.pool_max_gamma > 1:
            assert record.selected_gamma[0] > 1
    first, last = result.records[0], result.records[-1]
    assert last.force_mae < first.force_mae
    # the random baseline starts from the same initial set and fit
    baseline = run_active_learning(setup, ActiveLearningSettings(strategy="random", seed=0, iterations=1, **TINY))
    assert baseline.records[0].energy_mae == pytest.approx(first.energy_mae, rel=1e-12)
    assert [c.energy for c in baseline.labelled[:4]] == [c.energy for c in result.labelled[:4]]
    assert len(baseline.labelled) == 6


def test_active_learn_command_writes_results_table_and_plot(tmp_path):
    out = tmp_path / "al"
    status = active_learn_main(["--seeds", "3", "--iterations", "1", "--per-iteration", "2", "--initial", "4",
                                "--md-steps", "4", "--gamma-stop", "20", "--out", str(out)])
    assert status == 0
    data = json.loads((out / "results.json").read_text())
    assert [r["settings"]["strategy"] for r in data["runs"]] == ["gamma", "random"]
    assert [x["labels"] for x in data["runs"][0]["records"]] == [4, 6]
    assert "| 3 |" in (out / "labels.md").read_text()
    assert (out / "active_learning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
