"""The run folder's results: predictions, metrics files, plots, loss curves and the printed error table."""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..data.configuration import Configuration
from ..data.dataset import ConfigurationDataset
from ..errors import TrainingDivergedError
from ..files import write_text_atomically
from ..fitting.metrics import ALL, MetricAccumulator, MetricsTable
from ..fitting.plots import parity_plot
from ..models import io
from ..models.potential import Potential


def write_config(resolved: dict[str, Any], path: Path) -> None:
    """The resolved configuration as YAML (``hydra`` section left out)."""
    write_text_atomically(path, yaml.safe_dump({k: v for k, v in resolved.items() if k != "hydra"}, sort_keys=False))


def loss_curves(metrics_csv: Path, out: Path) -> Path | None:
    """Plot ``train/loss`` and ``val/loss`` per epoch from Lightning's CSV log (log scale); None without data."""
    if not metrics_csv.is_file():
        return None
    curves: dict[str, dict[int, float]] = {}
    with metrics_csv.open() as fh:
        for row in csv.DictReader(fh):
            for key in ("train/loss", "val/loss"):
                if row.get(key) not in (None, "") and row.get("epoch") not in (None, ""):
                    curves.setdefault(key, {})[int(float(row["epoch"]))] = float(row[key])
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, values in curves.items():
        epochs = sorted(values)
        ax.semilogy(epochs, [values[e] for e in epochs], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("weighted loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def error_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table of energy (meV/atom), force (eV/Å) and stress (GPa) MAE/RMSE, train and test."""
    lines = ["| set | configs | E MAE (meV/atom) | E RMSE (meV/atom) | F MAE (eV/Å) | F RMSE (eV/Å) "
             "| S MAE (GPa) | S RMSE (GPa) |", "|---|---|---|---|---|---|---|---|"]
    for name in ("train", "test"):
        m = metrics.get(name, {}).get("all")
        if not m:
            continue

        def cell(key: str, scale: float, fmt: str) -> str:
            value = m.get(key)  # noqa: B023 -- called only within this iteration, for this m
            return "–" if value is None or not np.isfinite(value) else format(value * scale, fmt)

        lines.append(f"| {name} | {m.get('num_configs', 0)} | {cell('energy_mae', 1e3, '.3f')} | "
                     f"{cell('energy_rmse', 1e3, '.3f')} | {cell('force_mae', 1, '.4f')} | "
                     f"{cell('force_rmse', 1, '.4f')} | {cell('stress_mae', EV_A3_TO_GPA, '.4f')} | "
                     f"{cell('stress_rmse', EV_A3_TO_GPA, '.4f')} |")
    return "\n".join(lines)


EV_A3_TO_GPA = 160.21766208


@dataclass
class Predictions:
    """Labels and predictions of one set: energies per atom (eV/atom), force and stress components."""

    energy_ref: np.ndarray
    energy_pred: np.ndarray
    forces_ref: np.ndarray
    forces_pred: np.ndarray
    stress_ref: np.ndarray
    stress_pred: np.ndarray


def predict(potential: Potential, configs: Sequence[Configuration], group_names: Sequence[str],
            metrics: MetricAccumulator, test: bool, batch_size: int = 16) -> Predictions:
    """Evaluate ``potential`` on ``configs`` batch by batch, adding every row to ``metrics``."""
    dataset = ConfigurationDataset(configs, potential.elements, potential.cutoff, group_names=group_names)
    dtype = next(potential.parameters()).dtype
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Predictions.__dataclass_fields__}
    for batch in dataset.loader(batch_size=batch_size, dtype=dtype):
        out = potential(batch, forces=True, stress=True)
        out = {k: v.detach() for k, v in out.items()}
        metrics.add_predictions(out["energy"], batch.energy, batch.num_atoms, batch.group,
                                test=torch.full((batch.num_configs,), test), energy_mask=batch.energy_mask,
                                energy_weight=batch.energy_weight, forces_pred=out["forces"], forces_ref=batch.forces,
                                atom_config=batch.atom_config, forces_mask=batch.forces_mask,
                                force_weight=batch.force_weight, stress_pred=out["stress"], stress_ref=batch.stress,
                                stress_mask=batch.stress_mask, stress_weight=batch.stress_weight)
        n = batch.num_atoms.to(dtype)
        em, fm, sm = batch.energy_mask, batch.forces_mask, batch.stress_mask
        parts["energy_ref"].append((batch.energy / n)[em].numpy())
        parts["energy_pred"].append((out["energy"] / n)[em].numpy())
        parts["forces_ref"].append(batch.forces[fm].reshape(-1).numpy())
        parts["forces_pred"].append(out["forces"][fm].reshape(-1).numpy())
        parts["stress_ref"].append(batch.stress[sm].reshape(-1).numpy())
        parts["stress_pred"].append(out["stress"][sm].reshape(-1).numpy())
    return Predictions(**{k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()})


def write_parity_plot(sets: dict[str, Predictions], path: Path, title: str = "") -> Path:
    """Energy per atom, force and stress parity panels, train and test marked apart."""
    quantities = {"Energy": "energy", "Force": "forces", "Stress": "stress"}
    truth: dict[str, torch.Tensor | np.ndarray] = {}
    pred: dict[str, torch.Tensor | np.ndarray] = {}
    test: dict[str, torch.Tensor | np.ndarray] = {}
    for q, key in quantities.items():
        parts = [(getattr(p, f"{key}_ref"), getattr(p, f"{key}_pred"), name == "test") for name, p in sets.items()]
        if sum(len(t) for t, _, _ in parts) == 0:
            continue
        truth[q] = np.concatenate([t for t, _, _ in parts])
        pred[q] = np.concatenate([v for _, v, _ in parts])
        test[q] = np.concatenate([np.full(len(t), flag) for t, _, flag in parts])
    return parity_plot(truth, pred, path, test, {"Energy": "eV/atom", "Force": "eV/Å", "Stress": "eV/Å³"}, title)


def summary(table: MetricsTable) -> dict[str, dict[str, dict[str, float]]]:
    """``{train|test: {group|"all": {energy_mae, energy_rmse, force_mae, ..., num_configs}}}`` (unweighted)."""
    names = {"Energy": "energy", "Force": "force", "Stress": "stress"}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in table.rows:
        if row["weighting"] != "Unweighted":
            continue
        split = "train" if row["split"] == "Training" else "test"
        group = "all" if row["group"] == ALL else row["group"]
        entry = out.setdefault(split, {}).setdefault(group, {})
        q = names[row["quantity"]]
        entry[f"{q}_mae"], entry[f"{q}_rmse"] = row["mae"], row["rmse"]
        if q == "energy":
            entry["num_configs"] = row["ncount"]
    return out


def _check_finite(result: dict[str, Any], run_dir: Path) -> None:
    """TrainingDivergedError when any error metric is NaN or infinite (the model predicts non-finite values)."""
    bad = sorted(f"{split}/{group}/{key}" for split, groups in result.items() if split in ("train", "test")
                 for group, values in groups.items() for key, value in values.items()
                 if isinstance(value, float) and not math.isfinite(value))
    if bad:
        raise TrainingDivergedError(f"{run_dir}: the fitted model predicts non-finite values ({', '.join(bad[:4])}"
                                    f"{' ...' if len(bad) > 4 else ''}); nothing was saved or exported. Lower the "
                                    f"learning rate or check the data and the solver settings.")


def evaluate(potential: Potential, train: Sequence[Configuration], test: Sequence[Configuration],
             group_names: Sequence[str], batch_size: int = 16, distributed: bool = False
             ) -> tuple[MetricsTable, dict[str, Predictions]]:
    """Metrics table and predictions of ``potential`` on train and test.

    ``distributed``: this process is one rank of an initialised ``torch.distributed`` group; each
    rank evaluates its contiguous share of train and of test, the statistics are all-reduced (every
    rank gets the table) and rank 0 gathers the predictions (in configuration order; the other
    ranks get their own). Every rank must call it with the same configurations.
    """
    potential = potential.eval()
    accumulator = MetricAccumulator(group_names)

    def share(configs: Sequence[Configuration]) -> Sequence[Configuration]:
        """This rank's contiguous share of ``configs``, about equal in atoms (all of them when not ``distributed``)."""
        if not distributed:
            return configs
        from ..fitting.exact_fit import shard_range

        return list(configs)[slice(*shard_range(len(configs), sizes=[c.num_atoms for c in configs]))]

    sets = {"train": predict(potential, share(train), group_names, accumulator, False, batch_size)}
    if len(test):
        sets["test"] = predict(potential, share(test), group_names, accumulator, True, batch_size)
    if distributed:
        import torch.distributed as dist

        accumulator.all_reduce()
        parts: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
        dist.gather_object(sets, parts, dst=0)
        if parts is not None:
            sets = {name: Predictions(**{f: np.concatenate([getattr(p[name], f) for p in parts])
                                         for f in Predictions.__dataclass_fields__}) for name in sets}
    return accumulator.table(), sets


def evaluate_and_report(potential: Potential, train: Sequence[Configuration], test: Sequence[Configuration],
                        run_dir: Path, group_names: Sequence[str], batch_size: int = 16, plots: bool = True,
                        timings: dict[str, float] | None = None, echo: bool = True,
                        evaluated: tuple[MetricsTable, dict[str, Predictions]] | None = None,
                        extrapolation: dict[str, Any] | None = None) -> dict[str, Any]:
    """Errors on train and test, written to ``run_dir``, the model saved, and the error table printed.

    Files: ``model.pt`` (:func:`mliap_torch.save`), ``metrics.md`` and ``metrics.json`` (FitSNAP-style
    rows per group, weighted and unweighted, plus a summary), ``parity.png``, ``loss_curves.png``.
    ``evaluated``: the result of :func:`evaluate` when it already ran (e.g. on several processes).
    ``extrapolation``: the γ statistics of the test set (:func:`~mliap_torch.training.run.active_set_and_test_grades`),
    written under ``extrapolation_grade`` and as a section of ``metrics.md``.
    Returns the summary (see :func:`summary`) with ``timings`` (and ``extrapolation_grade``).
    """
    run_dir = Path(run_dir)
    potential = potential.eval()
    table, sets = evaluated or evaluate(potential, train, test, group_names, batch_size)
    result: dict[str, Any] = {**summary(table), "timings": dict(timings or {})}
    _check_finite(result, run_dir)
    if extrapolation is not None:
        result["extrapolation_grade"] = extrapolation
    io.save(potential, run_dir / "model.pt", metadata={"metrics": result})
    grades = f"## Extrapolation grade\n\n{grade_table(extrapolation)}\n\n" if extrapolation is not None else ""
    write_text_atomically(run_dir / "metrics.md", f"# Errors\n\n{error_table(result)}\n\n{grades}"
                                        f"## Per group (FitSNAP style)\n\n{table.to_markdown()}")
    write_text_atomically(run_dir / "metrics.json", json.dumps({"summary": result, "table": table.to_dict()}, indent=1))
    if plots:
        write_parity_plot(sets, run_dir / "parity.png", title=run_dir.name)
        loss_curves(run_dir / "logs" / "metrics.csv", run_dir / "loss_curves.png")
    if echo:
        print(f"\nErrors of {run_dir} (energy meV/atom, force eV/Å, stress GPa):\n{error_table(result)}\n")
        if extrapolation is not None:
            print(f"Extrapolation grade γ of the test set (active set of the training atoms):\n"
                  f"{grade_table(extrapolation)}\n")
    return result


def grade_table(extrapolation: dict[str, Any]) -> str:
    """Markdown table of the test set's γ statistics (:func:`~mliap_torch.uncertainty.build.grade_statistics`)
    and the active set's size per element."""
    stats = extrapolation["test"]
    sizes = ", ".join(f"{e} {n}" for e, n in extrapolation["active_set_size"].items())
    if not stats.get("atoms"):
        return f"no test atoms (active set: {sizes})"
    above = stats["above"]
    counts = " | ".join(f"{above[t]['atoms']} ({above[t]['configs']})" for t in above)
    return ("| atoms | mean | median | p90 | p99 | max | " + " | ".join(f"γ > {t}: atoms (configs)" for t in above)
            + " |\n|" + "---|" * (6 + len(above)) + "\n"
            + f"| {stats['atoms']} | {stats['mean']:.3f} | {stats['median']:.3f} | {stats['p90']:.3f} | "
            f"{stats['p99']:.3f} | {stats['max']:.3f} | {counts} |\n\nActive set (atoms per element): {sizes}; "
            f"MaxVol tolerance {extrapolation['tolerance']}.")
