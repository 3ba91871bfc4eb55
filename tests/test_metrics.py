"""FitSNAP-style metrics against a direct numpy transcription of FitSNAP's formulas."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mliap_torch.fitting.metrics import MetricAccumulator, read_fitsnap_metrics, row_metrics


def _fitsnap(truth, pred, w):
    """FitSNAP ``_ncount_mae_rmse_rsq_unweighted_and_weighted`` on numpy arrays."""
    res = truth - pred
    n = len(truth)
    out = {"Unweighted": {"ncount": n, "mae": np.mean(abs(res)), "rmse": np.sqrt(np.sum(res ** 2) / n),
                          "rsq": 1 - np.sum(res ** 2) / np.sum((truth - truth.sum() / n) ** 2)}}
    wres = w * res
    wn = np.count_nonzero(w)
    out["Weighted"] = {"ncount": wn, "mae": np.mean(abs(wres)), "rmse": np.sqrt(np.sum(wres ** 2) / wn),
                       "rsq": 1 - np.sum(wres ** 2) / np.sum((w * truth - (w * truth).sum() / wn) ** 2)}
    return out


def _rows(m=400, seed=0):
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, m)
    group = rng.integers(0, 3, m)
    test = rng.random(m) < 0.3
    truth = rng.normal(size=m) * np.array([1.0, 0.5, 1e4])[kind] + 3.0
    pred = truth + rng.normal(size=m) * 0.1
    w = np.array([100.0, 1.0, 1e-8])[kind] * rng.uniform(0.5, 2.0, m)
    w[rng.random(m) < 0.05] = 0.0
    return truth, pred, w, kind, group, test


def test_rows_match_fitsnap_formulas_per_group_split_and_all():
    truth, pred, w, kind, group, test = _rows()
    names = ["A", "B", "C"]
    table = row_metrics(*(torch.tensor(a) for a in (pred, truth, w, kind, group)), names, torch.tensor(test))
    checked = 0
    for gname, gmask in [("*ALL", np.ones_like(group, bool))] + [(n, group == k) for k, n in enumerate(names)]:
        for split, smask in (("Training", ~test), ("Testing", test)):
            for q, quantity in enumerate(("Energy", "Force", "Stress")):
                m = gmask & smask & (kind == q)
                ref = _fitsnap(truth[m], pred[m], w[m])
                for weighting in ("Unweighted", "Weighted"):
                    for metric in ("ncount", "mae", "rmse", "rsq"):
                        got = table.value(gname, weighting, split, quantity, metric)
                        assert got == pytest.approx(ref[weighting][metric], rel=1e-10), (gname, weighting, split,
                                                                                          quantity, metric)
                        checked += 1
    assert checked == 4 * 2 * 3 * 2 * 4


def test_streamed_chunks_and_ranks_equal_one_shot():
    truth, pred, w, kind, group, test = _rows(seed=1)
    t = [torch.tensor(a) for a in (pred, truth, w, kind, group, test)]
    whole = MetricAccumulator(["A", "B", "C"])
    whole.add_rows(*t)
    parts = [MetricAccumulator(["A", "B", "C"]) for _ in range(2)]
    for k, sl in enumerate([slice(0, 7), slice(7, 150), slice(150, 400)]):
        parts[k % 2].add_rows(*(a[sl] for a in t))
    parts[0].merge(parts[1])
    for a, b in zip(whole.table().rows, parts[0].table().rows):
        assert a.keys() == b.keys()
        for key in ("mae", "rmse", "rsq", "ncount"):
            assert a[key] == pytest.approx(b[key], rel=1e-10)


def test_predictions_api_converts_to_per_atom_rows_and_masks():
    rng = np.random.default_rng(3)
    natoms = torch.tensor([2, 3])
    e_ref, e_pred = torch.tensor([-10.0, -14.0]), torch.tensor([-10.2, -13.7])
    f_ref = torch.tensor(rng.normal(size=(5, 3)))
    f_pred = f_ref + 0.1
    s_ref = torch.tensor(rng.normal(size=(2, 6)))
    acc = MetricAccumulator(["bulk", "surface"])
    acc.add_predictions(e_pred, e_ref, natoms, torch.tensor([0, 1]), forces_pred=f_pred, forces_ref=f_ref,
                        atom_config=torch.tensor([0, 0, 1, 1, 1]), forces_mask=torch.tensor([True, True, False, False, False]),
                        stress_pred=s_ref * 2, stress_ref=s_ref, stress_mask=torch.tensor([False, True]), stress_scale=-2.0)
    table = acc.table()
    assert table.value("*ALL", "Unweighted", "Training", "Energy", "mae") == pytest.approx((0.1 + 0.1) / 2)
    assert table.value("bulk", "Unweighted", "Training", "Force", "ncount") == 6
    assert table.value("*ALL", "Unweighted", "Training", "Force", "rmse") == pytest.approx(0.1)
    assert table.value("surface", "Unweighted", "Training", "Stress", "mae") == pytest.approx(2 * abs(s_ref[1]).mean().item())
    with pytest.raises(KeyError):
        table.value("bulk", "Unweighted", "Training", "Stress", "mae")
    data = json.loads(table.to_json())
    assert len(data["rows"]) == len(table.rows) and "| *ALL | Unweighted | Training | Energy | 2 |" in table.to_markdown()


@pytest.mark.shared_data
def test_read_fitsnap_metrics(shared_data):
    ref = read_fitsnap_metrics(shared_data / "fitsnap" / "Ta_Linear_JCP2014" / "reference" / "Ta_metrics.md")
    assert len(ref) == 13 * 2 * 3
    assert ref[("*ALL", "Unweighted", "Training", "Energy")] == {"ncount": 363, "mae": 0.112787, "rmse": 0.379769,
                                                                 "rsq": 0.994191}
