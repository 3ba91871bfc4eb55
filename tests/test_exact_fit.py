"""fit_exact on synthetic data: numpy lstsq of the same rows, streaming, splits, metrics, and two gloo ranks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fit_helpers import label, potential, structures
from mliap_torch.data.batch import make_batch
from mliap_torch.fitting.exact_fit import fit_exact
from mliap_torch.fitting.metrics import MetricAccumulator

GROUPS = ["g0", "g1", "g2"]


def _data(n=8, noise=0.02):
    return label(structures(n, seed=11), potential(quadratic=True), noise=noise)


def _fresh(quadratic=True):
    model = potential(quadratic=quadratic, seed=99)
    model.head.set_coefficients(torch.zeros_like(model.head.coefficients()))
    return model


def test_fit_equals_numpy_lstsq_of_weighted_rows_and_recovers_noise_free_model():
    configs = _data()
    model = _fresh()
    result = fit_exact(model, configs, solver="qr", chunk_atoms=30, group_names=GROUPS)
    rows = result.rows
    ref = np.linalg.lstsq(rows.w.numpy()[:, None] * rows.A.numpy(), rows.w.numpy() * rows.b.numpy(), rcond=None)[0]
    np.testing.assert_allclose(result.solution.x.numpy(), ref, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(model.head.coefficients().detach(), result.coefficients)
    assert result.solution.rank == rows.A.shape[1]
    assert set(result.timings) == {"design", "solve", "metrics", "total"}

    clean = label(structures(8, seed=11), potential(quadratic=True), noise=0.0)
    exact = fit_exact(_fresh(), clean, group_names=GROUPS)
    torch.testing.assert_close(exact.coefficients, potential(quadratic=True).head.coefficients().detach(),
                               rtol=1e-7, atol=1e-8)
    assert exact.metrics.value("*ALL", "Unweighted", "Training", "Force", "rmse") < 1e-9


def test_metrics_equal_the_fitted_potential_predictions():
    configs = _data()
    model = _fresh()
    result = fit_exact(model, configs, group_names=GROUPS, stress_scale=-1.6021765e6)
    batch = make_batch(configs, model.elements, model.cutoff)
    batch.group = torch.tensor([GROUPS.index(c.group) for c in configs])
    out = model(batch)
    acc = MetricAccumulator(GROUPS)
    acc.add_predictions(out["energy"].detach(), batch.energy, batch.num_atoms, batch.group,
                        energy_weight=batch.energy_weight, forces_pred=out["forces"], forces_ref=batch.forces,
                        atom_config=batch.atom_config, force_weight=batch.force_weight, stress_pred=out["stress"].detach(),
                        stress_ref=batch.stress, stress_weight=batch.stress_weight, stress_scale=-1.6021765e6)
    expected = acc.table()
    assert len(expected.rows) == len(result.metrics.rows) == 4 * 2 * 3
    for a, b in zip(result.metrics.rows, expected.rows):
        assert (a["group"], a["weighting"], a["quantity"], a["ncount"]) == (b["group"], b["weighting"], b["quantity"], b["ncount"])
        for key in ("mae", "rmse"):  # R² differs: the fit's truths have the ZBL part subtracted (as FitSNAP's)
            assert a[key] == pytest.approx(b[key], rel=1e-7, abs=1e-12), (a, b)


def test_streaming_without_kept_rows_and_svd_ridge_agree():
    configs = _data()
    kept = fit_exact(_fresh(), configs, group_names=GROUPS, chunk_atoms=1000)
    streamed = fit_exact(_fresh(), configs, group_names=GROUPS, chunk_atoms=16, keep_rows=False, solver="svd")
    spilled = fit_exact(_fresh(), configs, group_names=GROUPS, chunk_atoms=16, keep_rows="disk")
    assert streamed.rows is None and spilled.rows is None
    for other in (streamed, spilled):
        torch.testing.assert_close(other.coefficients, kept.coefficients, rtol=1e-9, atol=1e-10)
        for a, b in zip(kept.metrics.rows, other.metrics.rows):
            assert a["rmse"] == pytest.approx(b["rmse"], rel=1e-8)
    torch.testing.assert_close(spilled.predictions.pred, streamed.predictions.pred, rtol=1e-8, atol=1e-10)
    ridge = fit_exact(_fresh(), configs, group_names=GROUPS, solver="ridge", alpha=1e-10)
    torch.testing.assert_close(ridge.coefficients, kept.coefficients, rtol=1e-5, atol=1e-6)


def test_scaled_ridge_penalises_each_column_relative_to_its_own_norm():
    """``scale_columns=True`` (the mlearn configs' solver): the normal equations of the weighted rows with
    ``alpha·‖A_j‖²`` on the diagonal — not ``alpha`` itself, which the plain ridge adds."""
    configs = _data()
    alpha = 1e-4
    scaled = fit_exact(_fresh(), configs, group_names=GROUPS, solver="ridge", alpha=alpha, scale_columns=True)
    A = scaled.rows.w.numpy()[:, None] * scaled.rows.A.numpy()
    b = scaled.rows.w.numpy() * scaled.rows.b.numpy()
    normal = A.T @ A
    expected = np.linalg.solve(normal + alpha * np.diag(np.diag(normal)), A.T @ b)
    np.testing.assert_allclose(scaled.solution.x.numpy(), expected, rtol=1e-8, atol=1e-10 * np.abs(expected).max())
    plain = fit_exact(_fresh(), configs, group_names=GROUPS, solver="ridge", alpha=alpha)
    assert np.abs(plain.solution.x.numpy() - expected).max() > 1e-3 * np.abs(expected).max()


def test_test_configurations_are_not_fitted():
    configs = _data(n=9)
    test = [k % 4 == 3 for k in range(9)]
    split = fit_exact(_fresh(), configs, test=test, group_names=GROUPS)
    train_only = fit_exact(_fresh(), [c for c, t in zip(configs, test) if not t], group_names=GROUPS)
    torch.testing.assert_close(split.coefficients, train_only.coefficients, rtol=1e-10, atol=1e-12)
    assert split.metrics.value("*ALL", "Unweighted", "Testing", "Energy", "ncount") == 2
    assert split.metrics.value("*ALL", "Unweighted", "Training", "Energy", "ncount") == 7
    with pytest.raises(ValueError, match="not in group_names"):
        fit_exact(_fresh(), configs, group_names=["g0"])
    with pytest.raises(ValueError, match="test flags"):
        fit_exact(_fresh(), configs, test=[True])


def _rank_fit(rank: int, world: int, init_file: str, out_file: str) -> None:
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = fit_exact(_fresh(), _data(), group_names=GROUPS, chunk_atoms=30, distributed=True)
        if rank == 0:
            torch.save({"x": result.coefficients,
                        "rmse": result.metrics.value("*ALL", "Weighted", "Training", "Force", "rmse"),
                        "ncount": result.metrics.value("*ALL", "Unweighted", "Training", "Force", "ncount"),
                        "rows": result.solution.num_rows}, out_file)
        dist.barrier()  # no rank tears gloo down while the other still uses it
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path):
    out = tmp_path / "rank0.pt"
    mp.spawn(_rank_fit, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    two = torch.load(out, weights_only=True)
    one = fit_exact(_fresh(), _data(), group_names=GROUPS, chunk_atoms=30)
    torch.testing.assert_close(two["x"], one.coefficients, rtol=1e-10, atol=1e-12)
    assert two["rows"] == one.solution.num_rows
    assert two["ncount"] == one.metrics.value("*ALL", "Unweighted", "Training", "Force", "ncount")
    assert two["rmse"] == pytest.approx(one.metrics.value("*ALL", "Weighted", "Training", "Force", "rmse"), rel=1e-10)


def test_parity_plot_png(tmp_path):
    import matplotlib.image

    from mliap_torch.fitting.plots import fit_parity_plot

    configs = _data(n=4)
    result = fit_exact(_fresh(), configs, test=[False, False, False, True], group_names=GROUPS)
    path = fit_parity_plot(result, tmp_path / "plots" / "parity.png", title="synthetic")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 200
    energy = result.predictions.kind == 0
    assert int(energy.sum()) == 4 and int(result.predictions.test[energy].sum()) == 1


def test_split_argument_uses_the_split_sets_and_weights():
    from mliap_torch.data.groups import GroupSpec, make_split

    configs = _data(n=9)
    specs = [GroupSpec(g, training_size=2, testing_size=1, eweight=5.0 + k, fweight=1.0, vweight=0.5)
             for k, g in enumerate(GROUPS)]
    split = make_split(configs, specs)
    by_split = fit_exact(_fresh(), configs, split=split, group_names=GROUPS)
    train, test = split.apply(configs)
    explicit = fit_exact(_fresh(), train + test, test=[False] * len(train) + [True] * len(test), group_names=GROUPS)
    torch.testing.assert_close(by_split.coefficients, explicit.coefficients, rtol=1e-12, atol=1e-12)
    assert by_split.metrics.value("*ALL", "Unweighted", "Testing", "Energy", "ncount") == 3
    with pytest.raises(ValueError, match="not both"):
        fit_exact(_fresh(), configs, split=split, test=[False] * 9)
