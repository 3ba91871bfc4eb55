"""FitSNAP-style error metrics: MAE, RMSE and R² per group, quantity, train/test split, weighted and not.

The metrics are those of FitSNAP's ``Solver._ncount_mae_rmse_rsq_unweighted_and_weighted`` on rows
``r = truth − pred`` with row weights w:

- unweighted: ``mae = mean|r|``, ``rmse = √mean r²``, ``rsq = 1 − Σr² / Σ(t − mean t)²``;
- weighted: ``mae = mean|w r|`` (over all rows), ``rmse = √(Σ(w r)² / n_w)`` with n_w the number of
  rows with nonzero weight, ``rsq = 1 − Σ(w r)² / Σ(w t − Σ(w t)/n_w)²``; ``ncount = n_w``.

Energies are per atom (eV/atom), forces are components (eV/Å), stresses components in the unit of
the rows (mliap_torch: eV/Å³ tension positive; FitSNAP-compatible fits: bar, compression positive).
Every group is reported, plus ``"*ALL"`` (all groups together).

API (usable from the exact fit and from the Lightning training loop alike):

- :class:`MetricAccumulator` ``(group_names)``: streaming sufficient statistics (counts, sums and
  Chan-merged means/second moments, so chunks and ranks combine exactly).
  - ``add_rows(pred, truth, weight, kind, group, test)``: rows of any kind (kind 0 energy/atom,
    1 force component, 2 stress component), each row with its group index and test flag.
  - ``add_predictions(energy_pred, energy_ref, num_atoms, group, ...)``: per-configuration
    energies (eV, totals), forces (natoms, 3) with ``atom_config``, stress (nconfigs, 6), masks
    (``energy_mask``, ``forces_mask``, ``stress_mask``) and per-configuration weights and test flags.
  - ``all_reduce()``: sum the statistics over ``torch.distributed`` ranks.
  - ``table()`` → :class:`MetricsTable` (``to_markdown()``, ``to_dict()``, ``to_json()``,
    ``value(group, weighting, split, quantity, metric)``).
- :func:`row_metrics` one call for in-memory rows; :func:`read_fitsnap_metrics` parses FitSNAP's
  ``*_metrics.md``.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

QUANTITIES = ("Energy", "Force", "Stress")
SPLITS = ("Training", "Testing")
WEIGHTINGS = ("Unweighted", "Weighted")
ALL = "*ALL"
_STATS = ("n", "abs", "sq", "t_mean", "t_m2", "wn", "wabs", "wsq", "u_mean", "u_m2")


@dataclass
class MetricsTable:
    """Rows ``{group, weighting, split, quantity, ncount, mae, rmse, rsq}`` with the units used."""

    rows: list[dict]
    units: dict[str, str] = field(default_factory=dict)

    def value(self, group: str, weighting: str, split: str, quantity: str, metric: str) -> float:
        """One number, e.g. ``value("*ALL", "Unweighted", "Training", "Energy", "mae")``."""
        for row in self.rows:
            if (row["group"], row["weighting"], row["split"], row["quantity"]) == (group, weighting, split, quantity):
                return row[metric]
        raise KeyError(f"no metrics row for {(group, weighting, split, quantity)}")

    def to_dict(self) -> dict:
        return {"units": dict(self.units), "rows": [dict(r) for r in self.rows]}

    def to_json(self, indent: int = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_markdown(self) -> str:
        """FitSNAP-like Markdown table (one line per group, weighting, split and quantity)."""
        head = "| Group | Weighting | Split | Quantity | ncount | mae | rmse | rsq |\n|:--|:--|:--|:--|--:|--:|--:|--:|"
        lines = [head]
        for r in self.rows:
            lines.append(f"| {r['group']} | {r['weighting']} | {r['split']} | {r['quantity']} | {r['ncount']} | "
                         f"{r['mae']:.6g} | {r['rmse']:.6g} | {r['rsq']:.6g} |")
        units = ", ".join(f"{k}: {v}" for k, v in self.units.items())
        return "\n".join(lines) + (f"\n\nUnits — {units}\n" if units else "\n")

    def write(self, markdown_path: str | Path | None = None, json_path: str | Path | None = None) -> None:
        if markdown_path is not None:
            Path(markdown_path).write_text(self.to_markdown())
        if json_path is not None:
            Path(json_path).write_text(self.to_json())


class MetricAccumulator:
    """Streaming per-(group, split, quantity) statistics; see the module docstring.

    Args:
        group_names: names of the group indices used in the ``group`` arguments.
        units: unit labels per quantity, copied into the table.
    """

    def __init__(self, group_names: Sequence[str], units: dict[str, str] | None = None):
        self.group_names = list(group_names)
        self.units = dict(units or {"Energy": "eV/atom", "Force": "eV/Å", "Stress": "eV/Å³"})
        nkeys = (len(self.group_names) + 1) * len(SPLITS) * len(QUANTITIES)
        self.stats = {k: torch.zeros(nkeys, dtype=torch.float64) for k in _STATS}

    def _keys(self, group: torch.Tensor, test: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
        return (group * len(SPLITS) + test.long()) * len(QUANTITIES) + kind

    @torch.no_grad()
    def add_rows(self, pred: torch.Tensor, truth: torch.Tensor, weight: torch.Tensor | None, kind: torch.Tensor,
                 group: torch.Tensor, test: torch.Tensor | None = None) -> None:
        """Rows (m,) of predictions, truths, weights, kinds (0 E/atom, 1 F, 2 stress), groups, test flags."""
        pred, truth = pred.detach().double().cpu().reshape(-1), truth.detach().double().cpu().reshape(-1)
        m = pred.numel()
        if m == 0:
            return
        weight = torch.ones(m, dtype=torch.float64) if weight is None else weight.detach().double().cpu().reshape(-1)
        kind = kind.cpu().long().reshape(-1)
        group = group.cpu().long().reshape(-1)
        test = torch.zeros(m, dtype=torch.bool) if test is None else test.cpu().bool().reshape(-1)
        all_group = torch.full_like(group, len(self.group_names))
        for g in (group, all_group):
            self._merge(self._keys(g, test, kind), pred, truth, weight)

    def _merge(self, keys: torch.Tensor, pred: torch.Tensor, truth: torch.Tensor, weight: torch.Tensor) -> None:
        nk = self.stats["n"].numel()

        def ssum(values: torch.Tensor) -> torch.Tensor:
            return torch.zeros(nk, dtype=torch.float64).index_add_(0, keys, values)

        res = truth - pred
        u = weight * truth
        n_b = ssum(torch.ones_like(res))
        safe = n_b.clamp_min(1.0)
        t_mean_b = ssum(truth) / safe
        u_mean_b = ssum(u) / safe
        t_m2_b = ssum((truth - t_mean_b[keys]) ** 2)
        u_m2_b = ssum((u - u_mean_b[keys]) ** 2)
        s = self.stats
        n_a = s["n"]
        n = n_a + n_b
        frac = torch.where(n > 0, n_b / n.clamp_min(1.0), torch.zeros_like(n))
        for mean, m2, mean_b, m2_b in (("t_mean", "t_m2", t_mean_b, t_m2_b), ("u_mean", "u_m2", u_mean_b, u_m2_b)):
            delta = mean_b - s[mean]
            s[m2] = s[m2] + m2_b + delta ** 2 * n_a * frac
            s[mean] = s[mean] + delta * frac
        s["n"] = n
        s["abs"] = s["abs"] + ssum(res.abs())
        s["sq"] = s["sq"] + ssum(res ** 2)
        s["wn"] = s["wn"] + ssum((weight != 0).double())
        s["wabs"] = s["wabs"] + ssum((weight * res).abs())
        s["wsq"] = s["wsq"] + ssum((weight * res) ** 2)

    @torch.no_grad()
    def add_predictions(self, energy_pred: torch.Tensor, energy_ref: torch.Tensor, num_atoms: torch.Tensor,
                        group: torch.Tensor, *, test: torch.Tensor | None = None,
                        energy_mask: torch.Tensor | None = None, energy_weight: torch.Tensor | None = None,
                        forces_pred: torch.Tensor | None = None, forces_ref: torch.Tensor | None = None,
                        atom_config: torch.Tensor | None = None, forces_mask: torch.Tensor | None = None,
                        force_weight: torch.Tensor | None = None, stress_pred: torch.Tensor | None = None,
                        stress_ref: torch.Tensor | None = None, stress_mask: torch.Tensor | None = None,
                        stress_weight: torch.Tensor | None = None, stress_scale: float = 1.0) -> None:
        """Per-configuration predictions and labels (e.g. one Lightning batch).

        Args:
            energy_pred: (nconfigs,) predicted total energies, eV (compared per atom).
            energy_ref: (nconfigs,) reference total energies, eV.
            num_atoms: (nconfigs,).
            group: (nconfigs,) group index.
            test: (nconfigs,) bool.
            energy_mask: (nconfigs,) bool (missing = all True).
            energy_weight: (nconfigs,) row weights (missing = 1).
            forces_pred: (natoms, 3) predicted forces, eV/Å.
            forces_ref: (natoms, 3) reference forces, eV/Å.
            atom_config: (natoms,) configuration index.
            forces_mask: (natoms,) bool (missing = all True).
            force_weight: (nconfigs,) row weights (missing = 1).
            stress_pred: (nconfigs, 6) predicted stresses, eV/Å³, multiplied by ``stress_scale``.
            stress_ref: (nconfigs, 6) reference stresses, eV/Å³, multiplied by ``stress_scale``.
            stress_mask: (nconfigs,) bool (missing = all True).
            stress_weight: (nconfigs,) row weights (missing = 1).
            stress_scale: factor of the stresses (e.g. −1.6021765e6 for FitSNAP's compression-positive bar).
        """
        nconf = energy_pred.shape[0]
        group = group.long().cpu()
        test = torch.zeros(nconf, dtype=torch.bool) if test is None else test.bool().cpu()
        ones = torch.ones(nconf, dtype=torch.float64)
        natoms = num_atoms.double().cpu()
        e_mask = torch.ones(nconf, dtype=torch.bool) if energy_mask is None else energy_mask.bool().cpu()
        ew = ones if energy_weight is None else energy_weight.double().cpu()
        self.add_rows((energy_pred.double().cpu() / natoms)[e_mask], (energy_ref.double().cpu() / natoms)[e_mask],
                      ew[e_mask], torch.zeros(int(e_mask.sum()), dtype=torch.long), group[e_mask], test[e_mask])
        if forces_pred is not None:
            assert atom_config is not None and forces_ref is not None, "forces_pred needs forces_ref and atom_config"
            ac = atom_config.long().cpu()
            f_mask = torch.ones(ac.numel(), dtype=torch.bool) if forces_mask is None else forces_mask.bool().cpu()
            fw = (ones if force_weight is None else force_weight.double().cpu())[ac]
            sel = f_mask.repeat_interleave(3)
            self.add_rows(forces_pred.double().cpu().reshape(-1)[sel], forces_ref.double().cpu().reshape(-1)[sel],
                          fw.repeat_interleave(3)[sel], torch.ones(int(sel.sum()), dtype=torch.long),
                          group[ac].repeat_interleave(3)[sel], test[ac].repeat_interleave(3)[sel])
        if stress_pred is not None:
            assert stress_ref is not None, "stress_pred needs stress_ref"
            s_mask = torch.ones(nconf, dtype=torch.bool) if stress_mask is None else stress_mask.bool().cpu()
            sw = ones if stress_weight is None else stress_weight.double().cpu()
            sel = s_mask.repeat_interleave(6)
            self.add_rows(stress_scale * stress_pred.double().cpu().reshape(-1)[sel],
                          stress_scale * stress_ref.double().cpu().reshape(-1)[sel],
                          sw.repeat_interleave(6)[sel], torch.full((int(sel.sum()),), 2, dtype=torch.long),
                          group.repeat_interleave(6)[sel], test.repeat_interleave(6)[sel])

    def all_reduce(self) -> None:
        """Combine the statistics of all ``torch.distributed`` ranks (every rank gets the total)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        stacked = torch.stack([self.stats[k] for k in _STATS])
        if dist.get_backend() == "nccl":  # NCCL reduces CUDA tensors only
            stacked = stacked.to(torch.device("cuda", torch.cuda.current_device()))
        gathered = [torch.empty_like(stacked) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, stacked)
        gathered = [part.cpu() for part in gathered]
        self.stats = {k: torch.zeros_like(self.stats[k]) for k in _STATS}
        for part in gathered:
            other = MetricAccumulator(self.group_names)
            other.stats = {k: part[i] for i, k in enumerate(_STATS)}
            self.merge(other)

    def merge(self, other: MetricAccumulator) -> None:
        """Add the statistics of ``other`` (same groups) to these."""
        s, o = self.stats, other.stats
        n = s["n"] + o["n"]
        frac = torch.where(n > 0, o["n"] / n.clamp_min(1.0), torch.zeros_like(n))
        for mean, m2 in (("t_mean", "t_m2"), ("u_mean", "u_m2")):
            delta = o[mean] - s[mean]
            s[m2] = s[m2] + o[m2] + delta ** 2 * s["n"] * frac
            s[mean] = s[mean] + delta * frac
        for k in ("abs", "sq", "wn", "wabs", "wsq"):
            s[k] = s[k] + o[k]
        s["n"] = n

    def table(self) -> MetricsTable:
        """The metrics of everything added so far (keys without rows are left out)."""
        s = {k: v.tolist() for k, v in self.stats.items()}
        names = [ALL] + self.group_names
        gindex = [len(self.group_names)] + list(range(len(self.group_names)))
        rows = []
        for name, g in zip(names, gindex):
            for weighting in WEIGHTINGS:
                for split_index, split in enumerate(SPLITS):
                    for q, quantity in enumerate(QUANTITIES):
                        key = (g * len(SPLITS) + split_index) * len(QUANTITIES) + q
                        n = s["n"][key]
                        if n == 0:
                            continue
                        if weighting == "Unweighted":
                            ncount, mae, rmse = n, s["abs"][key] / n, math.sqrt(s["sq"][key] / n)
                            denom, ssr = s["t_m2"][key], s["sq"][key]
                        else:
                            wn = s["wn"][key]
                            ncount, mae = wn, s["wabs"][key] / n
                            rmse = math.sqrt(s["wsq"][key] / wn) if wn > 0 else float("nan")
                            centre = s["u_mean"][key] * n / wn if wn > 0 else 0.0
                            denom = s["u_m2"][key] + n * (s["u_mean"][key] - centre) ** 2
                            ssr = s["wsq"][key]
                        rsq = 1.0 - ssr / denom if denom > 0 else float("nan")
                        rows.append({"group": name, "weighting": weighting, "split": split, "quantity": quantity,
                                     "ncount": int(round(ncount)), "mae": mae, "rmse": rmse, "rsq": rsq})
        return MetricsTable(rows, dict(self.units))


def row_metrics(pred: torch.Tensor, truth: torch.Tensor, weight: torch.Tensor | None, kind: torch.Tensor,
                group: torch.Tensor, group_names: Sequence[str], test: torch.Tensor | None = None,
                units: dict[str, str] | None = None) -> MetricsTable:
    """Metrics of in-memory rows in one call (see :meth:`MetricAccumulator.add_rows`)."""
    acc = MetricAccumulator(group_names, units)
    acc.add_rows(pred, truth, weight, kind, group, test)
    return acc.table()


_FITSNAP_LINE = re.compile(r"^\|\s*\('([^']*)',\s*'([^']*)',\s*(?:'([^']*)',\s*)?'([^']*)'\)\s*\|(.*)\|\s*$")


def read_fitsnap_metrics(path: str | Path) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """FitSNAP's ``*_metrics.md`` as ``{(group, weighting, split, quantity): {ncount, mae, rmse, rsq}}``.

    Older FitSNAP tables have no split level; their rows are training rows (``"Training"``).
    FitSNAP spells the weighted level ``weighted`` or ``Weighted``; both map to ``"Weighted"``.
    """
    out = {}
    for line in Path(path).read_text().splitlines():
        m = _FITSNAP_LINE.match(line.strip())
        if not m:
            continue
        group, weighting, split, quantity, rest = m.groups()
        values = [float(v) for v in rest.split("|")]
        if len(values) != 4:
            raise ValueError(f"{path}: cannot parse metrics line {line!r}")
        weighting = "Weighted" if weighting.lower() == "weighted" else "Unweighted"
        out[(group, weighting, split or "Training", quantity)] = dict(zip(("ncount", "mae", "rmse", "rsq"), values))
    if not out:
        raise ValueError(f"{path}: no FitSNAP metrics rows found")
    return out
