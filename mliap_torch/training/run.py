"""One training run end to end: data → split → potential → exact fit and/or Lightning → run folder."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch

from ..data.configuration import Configuration
from ..models.potential import Potential
from .datamodule import AtomsDataModule
from .module import PotentialModule
from .precompute import descriptor_is_frozen
from .setup import build_potential, data_elements, initialize_mlp
from .trainer import build_trainer


@dataclass
class RunResult:
    """What a run produced (on the global-zero process; other DDP ranks get ``None`` from :func:`run`)."""

    potential: Potential
    run_dir: Path
    metrics: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None


def _is_global_zero() -> bool:
    """Rank 0 of a (possibly not yet started) distributed run, from the launcher's environment
    (SLURM's ``SLURM_PROCID`` when ``srun`` started the processes, else Lightning's ``LOCAL_RANK``/``NODE_RANK``)."""
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        return int(os.environ["SLURM_PROCID"]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def run(cfg: Any, run_dir: str | Path, resolved_config: dict[str, Any] | None = None) -> RunResult | None:
    """Train the potential described by ``cfg`` (a :class:`~mliap_torch.cli.schema.TrainConfig`).

    Writes into ``run_dir``: ``config.yaml`` (when ``resolved_config`` is given), ``split.json``,
    ``model.pt``, ``metrics.md``/``metrics.json`` (train and test, per group), parity plots,
    ``loss_curves.png`` and Lightning's checkpoints and logs; prints the error table.
    """
    from .data import load_split_data
    from .report import evaluate_and_report, write_config

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dtype = getattr(torch, cfg.dtype)
    data = load_split_data(cfg.data, cfg.seed)
    timings["read_data_s"] = time.perf_counter() - t0
    if _is_global_zero():
        if resolved_config is not None:
            write_config(resolved_config, run_dir / "config.yaml")
        data.save(run_dir)

    elements = list(cfg.descriptor.get("elements") or data_elements(data.train + data.test))
    m = cfg.model
    potential = build_potential(cfg.descriptor, m.head, elements, m.hidden, m.activation, m.reference,
                                m.linear_term)
    t1 = time.perf_counter()
    if cfg.ckpt_path is None:
        if m.fit == "exact":
            from ..fitting.exact_fit import fit_exact
            # Per-element constants also with bzeroflag (FitSNAP omits them); rows kept so that the
            # fit's own metrics need no second descriptor pass.
            solver = {"bias": True, "keep_rows": True, **m.solver}
            fit = fit_exact(potential, data.train, group_names=data.group_names, **solver)
            timings["exact_fit_design_s"] = fit.timings.get("design", float("nan"))
            timings["exact_fit_solve_s"] = fit.timings.get("solve", float("nan"))
        elif m.head == "mlp":
            initialize_mlp(potential, data.fit, cfg.data.batch_size)
    timings["initial_fit_s"] = time.perf_counter() - t1

    checkpoint = None
    if m.fit == "gradient" or m.refine:
        t2 = time.perf_counter()
        potential, checkpoint = train_lightning(cfg, potential, data.fit, data.val, data.group_names, run_dir, dtype)
        timings["gradient_training_s"] = time.perf_counter() - t2
        if potential is None:
            return None
    potential = potential.to(torch.float64)
    timings["total_training_s"] = time.perf_counter() - t0
    metrics = evaluate_and_report(potential, data.train, data.test, run_dir, data.group_names,
                                  batch_size=cfg.data.batch_size, plots=cfg.plots, timings=timings)
    if cfg.export.lammps:
        metrics["lammps"] = export_to_lammps(cfg.export, potential, data.test or data.train, run_dir)
    return RunResult(potential, run_dir, metrics, timings, checkpoint)


def export_to_lammps(export: Any, potential: Potential, check: Sequence[Configuration], run_dir: Path
                     ) -> dict[str, Any]:
    """Export to ``run_dir/lammps``, check LAMMPS against torch, run a short MD; the report is added
    to ``metrics.json`` under ``"lammps"`` and printed."""
    from ..export.run_export import export_run, format_export_report

    t0 = time.perf_counter()
    report = export_run(potential, run_dir, check[: export.check_configs], md_steps=export.md_steps,
                        md_atoms=export.md_atoms, temperature=export.temperature)
    report["seconds"] = time.perf_counter() - t0
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        metrics["lammps"] = report
        metrics_file.write_text(json.dumps(metrics, indent=2))
    print(format_export_report(report), flush=True)
    return report


def train_lightning(cfg: Any, potential: Potential, train: Sequence[Configuration], val: Sequence[Configuration],
                    group_names: Sequence[str], run_dir: Path, dtype: torch.dtype
                    ) -> tuple[Potential | None, Path | None]:
    """Gradient training of ``potential`` (starting from its current parameters) with Lightning.

    Returns the potential with the best validation weights (the last ones without checkpoints) and
    the best checkpoint path; ``(None, None)`` on DDP ranks other than zero.
    """
    m = cfg.model
    module = PotentialModule(potential.settings(), group_names=group_names, loss_weights=asdict(m.loss),
                             optimizer=asdict(m.optimizer), scheduler=asdict(m.scheduler),
                             use_config_weights=m.use_config_weights, dtype=cfg.dtype)
    module.potential.load_state_dict(potential.state_dict())
    stored = potential if m.store_descriptors and descriptor_is_frozen(potential) else None
    datamodule = AtomsDataModule(train, val, [], potential.elements, potential.cutoff, group_names,
                                 batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers, dtype=dtype,
                                 stored_descriptors=stored)
    trainer = build_trainer(cfg.trainer, run_dir, has_validation=len(val) > 0)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    if not trainer.is_global_zero:
        return None, None
    best = Path(trainer.checkpoint_callback.best_model_path) if trainer.checkpoint_callback else None
    if best is not None and best.is_file():
        state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    else:
        best = None
    return module.potential.cpu(), best
