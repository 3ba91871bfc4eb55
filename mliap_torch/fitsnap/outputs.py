"""FitSNAP's output files of a fit, named by the input's ``[OUTFILE]`` section.

- ``<potential>.snapcoeff`` and ``<potential>.snapparam`` (``[BISPECTRUM]`` inputs): LAMMPS
  ``pair_style snap`` files of the fitted SNAP part (coefficients as shortest round-trip decimals).
  The ZBL reference is not in them, as in FitSNAP's; ``<potential>.mod``, FitSNAP's LAMMPS include
  file, overlays it (``pair_style hybrid/overlay zbl inner outer snap`` and the ``pair_coeff`` lines).
  All three come from the ``snap`` route of :func:`~mliap_torch.export.lammps_export.export_lammps`.
- ``<potential>.pt`` (``[ACE]`` inputs): the fitted potential as a mliap_torch model file
  (FitSNAP writes ``.yace``/``.acecoeff`` files of its own basis here).
- ``<metrics>`` (default ``fitsnap_metrics``): FitSNAP's Markdown metrics table, one row per
  ``(group, 'Unweighted'|'weighted', 'Training'|'Testing', quantity)`` in FitSNAP's (pandas') sort order
  with columns ``ncount, mae, rmse, rsq`` (10 significant digits; FitSNAP prints 6). Units as FitSNAP's:
  energy eV/atom, force eV/Å, stress bar (compression positive); weighted values are weight × residual.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..export.lammps_export import export_lammps
from ..fitting.metrics import MetricsTable
from ..models.potential import Potential

#: FitSNAP's ``[OUTFILE]`` defaults
DEFAULT_POTENTIAL = "fitsnap_potential"
DEFAULT_METRICS = "fitsnap_metrics"


def outfile_names(settings: dict[str, Any]) -> tuple[str, str]:
    """``(potential prefix, metrics file name)`` of a parsed input's ``[OUTFILE]`` section."""
    outfile = settings.get("OUTFILE", {})
    return str(outfile.get("potential", DEFAULT_POTENTIAL)), str(outfile.get("metrics", DEFAULT_METRICS))


def _sort_key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return (row["group"], _weighting(row["weighting"]), row["split"], row["quantity"])


def _weighting(name: str) -> str:
    """FitSNAP's spelling of the weighting level (``Unweighted``, ``weighted``)."""
    return "Unweighted" if name == "Unweighted" else "weighted"


def metrics_markdown(table: MetricsTable) -> str:
    """``table`` as FitSNAP's ``*_metrics.md`` (pandas ``DataFrame.to_markdown`` layout; module docstring)."""
    rows = sorted(table.rows, key=_sort_key)
    labels = [f"('{r['group']}', '{_weighting(r['weighting'])}', '{r['split']}', '{r['quantity']}')" for r in rows]
    cells = [[str(r["ncount"])] + [f"{r[m]:.10g}" for m in ("mae", "rmse", "rsq")] for r in rows]
    names = ["ncount", "mae", "rmse", "rsq"]
    label_width = max([len(label) for label in labels] + [1])
    widths = [max([len(name)] + [len(c[k]) for c in cells]) for k, name in enumerate(names)]
    lines = ["| " + " " * label_width + " | " + " | ".join(n.rjust(w) for n, w in zip(names, widths)) + " |",
             "|:" + "-" * (label_width + 1) + "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
    lines += ["| " + label.ljust(label_width) + " | " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |"
              for label, row in zip(labels, cells)]
    return "\n".join(lines) + "\n"


def write_outputs(potential: Potential, table: MetricsTable, settings: dict[str, Any],
                  folder: str | Path = ".") -> list[Path]:
    """Write the fitted ``potential`` and its metrics ``table`` into ``folder`` under the ``[OUTFILE]`` names.

    Returns:
        the written paths: ``.snapcoeff``, ``.snapparam``, ``.mod`` (or ``.pt``), then the metrics file.
    """
    from ..descriptors.bispectrum import Bispectrum
    from ..models.io import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix, metrics = outfile_names(settings)
    if isinstance(potential.descriptor, Bispectrum):
        route = export_lammps(potential, folder, name=prefix, routes=("snap",)).routes["snap"]
        written = [*route.files, route.include_file.replace(folder / f"{prefix}.mod")]
    else:
        written = [save(potential, folder / f"{prefix}.pt", {"source": "mliap_torch fitsnap"})]
    metrics_path = folder / metrics
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(metrics_markdown(table))
    return written + [metrics_path]

