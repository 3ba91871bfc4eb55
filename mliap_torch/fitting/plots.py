"""Parity plots (prediction vs reference) of energies per atom and force components, as PNG files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def parity_plot(truth: dict[str, torch.Tensor | np.ndarray], pred: dict[str, torch.Tensor | np.ndarray],
                path: str | Path, test: dict[str, torch.Tensor | np.ndarray] | None = None,
                units: dict[str, str] | None = None, title: str = "") -> Path:
    """One panel per quantity (e.g. ``"Energy"``, ``"Force"``): predicted vs reference, train and test.

    Args:
        truth: quantity → (m,) reference values.
        pred: quantity → (m,) predicted values.
        test: quantity → (m,) bool (test rows drawn separately).
        path: PNG file to write (folders are created).
        units: quantity → unit label.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = units or {}
    names = [q for q in truth if len(truth[q])]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.6 * max(len(names), 1), 4.4), squeeze=False)
    for ax, q in zip(axes[0], names):
        t = np.asarray(torch.as_tensor(truth[q]).detach().cpu(), dtype=float)
        p = np.asarray(torch.as_tensor(pred[q]).detach().cpu(), dtype=float)
        is_test = np.zeros(len(t), bool) if test is None or q not in test else np.asarray(torch.as_tensor(test[q]).cpu(), bool)
        for mask, label, colour in ((~is_test, "train", "tab:blue"), (is_test, "test", "tab:orange")):
            if mask.any():
                rmse = float(np.sqrt(np.mean((p[mask] - t[mask]) ** 2)))
                ax.scatter(t[mask], p[mask], s=4, alpha=0.5, color=colour, label=f"{label} (RMSE {rmse:.3g})")
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        unit = f" ({units[q]})" if q in units else ""
        ax.set_xlabel(f"reference {q.lower()}{unit}")
        ax.set_ylabel(f"predicted {q.lower()}{unit}")
        ax.legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fit_parity_plot(result, path: str | Path, title: str = "") -> Path:
    """Parity plot of a :class:`~mliap_torch.fitting.exact_fit.FitResult`: energy per atom and forces.

    Values are the fit's targets (reference potential subtracted, as in FitSNAP).
    """
    p = result.predictions
    truth, pred, test = {}, {}, {}
    for kind, name in ((0, "Energy"), (1, "Force")):
        m = p.kind == kind
        truth[name], pred[name], test[name] = p.truth[m], p.pred[m], p.test[m]
    return parity_plot(truth, pred, path, test, {"Energy": "eV/atom", "Force": "eV/Å"}, title)
