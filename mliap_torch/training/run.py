"""One training run end to end: data → split → potential → exact fit and/or Lightning → run folder."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from ..cli.schema import FitConfig, fit_options, require_accelerator
from ..data.configuration import Configuration
from ..data.sanity import SanityLimits, sanity_limits
from ..errors import ConfigError
from ..faults import kill_point
from ..files import write_text_atomically
from ..models.embedding import EmbeddingHead
from ..models.heads import MLPHead
from ..models.potential import Potential
from .checkpoints import best_weights, check_resumable, load_checkpoint
from .datamodule import AtomsDataModule
from .module import PotentialModule
from .precompute import descriptor_is_frozen
from .ranks import is_global_zero
from .setup import build_model_potential, data_elements, initialize_embedding, initialize_mlp
from .trainer import build_trainer

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced (on the global-zero process; other DDP ranks get ``None`` from :func:`run`)."""

    potential: Potential
    run_dir: Path
    metrics: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None


def run(cfg: Any, run_dir: str | Path, resolved_config: dict[str, Any] | None = None) -> RunResult | None:
    """Train the potential described by ``cfg`` (a :class:`~mliap_torch.cli.schema.TrainConfig`).

    Writes into ``run_dir``: ``config.yaml`` (when ``resolved_config`` is given), ``split.json``,
    ``model.pt``, ``metrics.md``/``metrics.json`` (train and test, per group), parity plots,
    ``loss_curves.png`` and Lightning's checkpoints and logs; prints the error table. The data pass
    the sanity checks of ``cfg.data.checks`` (:mod:`mliap_torch.data.sanity`).
    """
    checks = cfg.data.checks
    with sanity_limits(SanityLimits(checks.min_distance, checks.max_pairs_per_atom)):
        return _run(cfg, Path(run_dir), resolved_config)


def _build_potential(cfg: Any, elements: list[str]) -> Potential:
    """The configured potential; settings that its constructors reject become a ConfigError."""
    m = cfg.model
    try:
        return build_model_potential(cfg.descriptor, m, elements)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"Configuration error in 'descriptor'/'model' for elements {elements}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def compose_member(name: str, overrides: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The validated config and its resolved plain-dict form of ``experiment=<name>`` with ``overrides``, as an
    ensemble member runs it (no LAMMPS step: the ensemble exports the mean). ConfigError naming
    ``ensemble.members`` when the experiment does not compose or is itself an ensemble."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from ..cli.schema import CONFIG_DIR, validate

    args = [f"experiment={name}", *overrides, "export.lammps=false"]
    try:
        if GlobalHydra.instance().is_initialized():
            cfg = compose("train", overrides=args)
        else:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                cfg = compose("train", overrides=args)
    except HydraException as exc:
        raise ConfigError(f"Configuration error in 'ensemble.members': the member {name!r} does not compose with "
                          f"overrides {list(overrides)} ({str(exc).splitlines()[0]}); members are experiment names, "
                          f"files mliap_torch/configs/experiment/<name>.yaml.") from None
    typed = validate(cfg)
    if typed.ensemble.members:
        raise ConfigError(f"Configuration error in 'ensemble.members': the member {name!r} is itself an ensemble; "
                          "name its members instead.")
    return typed, cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))


def _run_ensemble(cfg: Any, run_dir: Path, resolved_config: dict[str, Any] | None) -> RunResult | None:
    """Train every member of ``cfg.ensemble`` in ``run_dir/members/<name>``, then score and save their weighted mean
    (:func:`~mliap_torch.models.ensemble.average_potentials`) on ``cfg.data`` as any run's potential."""
    from ..models.ensemble import average_potentials
    from .data import load_split_data
    from .report import evaluate_and_report, write_config

    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    members, timings = [], {}
    for name in cfg.ensemble.members:
        member_cfg, member_resolved = compose_member(name, cfg.ensemble.member_overrides)
        log.info("ensemble member %s → %s", name, run_dir / "members" / name)
        result = run(member_cfg, run_dir / "members" / name, member_resolved)
        if result is None:
            return None
        members.append(result.potential)
        timings[f"member_{name}_s"] = result.timings.get("total_training_s", float("nan"))
    try:
        potential = average_potentials(members, cfg.ensemble.weights)
    except ValueError as exc:
        raise ConfigError(f"Configuration error in 'ensemble.members' {list(cfg.ensemble.members)}: {exc}") from None
    timings["total_training_s"] = time.perf_counter() - t0
    data = load_split_data(cfg.data, cfg.seed)
    if resolved_config is not None:
        write_config(resolved_config, run_dir / "config.yaml")
    data.save(run_dir)
    metrics = evaluate_and_report(potential, data.train, data.test, run_dir, data.group_names,
                                  batch_size=cfg.data.batch_size, plots=cfg.plots, timings=timings)
    if cfg.export.lammps:
        metrics["lammps"] = export_to_lammps(cfg.export, potential, data.test or data.train, run_dir)
    return RunResult(potential, run_dir, metrics, timings)


def _run(cfg: Any, run_dir: Path, resolved_config: dict[str, Any] | None) -> RunResult | None:
    from .data import load_split_data
    from .report import evaluate_and_report, write_config

    if cfg.ensemble.members:
        return _run_ensemble(cfg, run_dir, resolved_config)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.model.fit == "gradient" or cfg.model.refine:
        require_accelerator(cfg.trainer.accelerator)
    resume = load_checkpoint(cfg.ckpt_path) if cfg.ckpt_path is not None else None
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dtype = getattr(torch, cfg.dtype)
    data = load_split_data(cfg.data, cfg.seed)
    timings["read_data_s"] = time.perf_counter() - t0
    if is_global_zero():
        if resolved_config is not None:
            write_config(resolved_config, run_dir / "config.yaml")
        data.save(run_dir)

    elements = list(cfg.descriptor.get("elements") or data_elements(data.train + data.test))
    m = cfg.model
    potential = _build_potential(cfg, elements)
    if resume is not None:
        check_resumable(cfg.ckpt_path, resume, potential.settings())
    t1 = time.perf_counter()
    evaluated = None
    if resume is None:
        if m.fit == "exact":
            from ..fitting.exact_fit import fit_exact
            from ..fitting.options import torch_threads
            # Per-element constants also with bzeroflag (FitSNAP omits them); rows kept so that the
            # fit's own metrics need no second descriptor pass (cli.schema.fit_options).
            options = fit_options(m, getattr(cfg, "fit", None) or FitConfig())
            if options.processes > 1 and not m.refine:
                # The fit and the run's metrics pass on the same processes; rank 0's results come back.
                fit, evaluated = _exact_fit_on_processes(potential, data.train, data.test, data.group_names,
                                                         options, cfg.data.batch_size)
            else:
                with torch_threads(options.threads if options.processes == 1 else None):
                    fit = fit_exact(potential, data.train, group_names=data.group_names, options=options)
            timings["exact_fit_design_s"] = fit.timings.get("design", float("nan"))
            timings["exact_fit_solve_s"] = fit.timings.get("solve", float("nan"))
        elif isinstance(potential.head, MLPHead):
            initialize_mlp(potential, data.fit, cfg.data.batch_size, fit_options(m, getattr(cfg, "fit", None) or FitConfig()))
        elif isinstance(potential.head, EmbeddingHead):
            initialize_embedding(potential, data.fit, cfg.data.batch_size)
    timings["initial_fit_s"] = time.perf_counter() - t1

    checkpoint = None
    if m.fit == "gradient" or m.refine:
        t2 = time.perf_counter()
        resume_epoch = None if resume is None else int(resume.get("epoch", 0))
        trained, checkpoint = train_lightning(cfg, potential, data.fit, data.val, data.group_names, run_dir, dtype,
                                              resume_epoch)
        timings["gradient_training_s"] = time.perf_counter() - t2
        if trained is None:
            return None
        potential = trained
    potential = potential.to(torch.float64)
    timings["total_training_s"] = time.perf_counter() - t0
    grades = None
    if cfg.active_set.enabled:
        t3 = time.perf_counter()
        grades = active_set_and_test_grades(cfg.active_set, potential, data.train, data.test, cfg.data.batch_size)
        timings["active_set_s"] = time.perf_counter() - t3
    metrics = evaluate_and_report(potential, data.train, data.test, run_dir, data.group_names,
                                  batch_size=cfg.data.batch_size, plots=cfg.plots, timings=timings,
                                  evaluated=evaluated, extrapolation=grades)
    kill_point("export")
    if cfg.export.lammps:
        metrics["lammps"] = export_to_lammps(cfg.export, potential, data.test or data.train, run_dir)
    return RunResult(potential, run_dir, metrics, timings, checkpoint)


def active_set_and_test_grades(settings: Any, potential: Potential, train: Sequence[Configuration],
                               test: Sequence[Configuration], batch_size: int) -> dict[str, Any] | None:
    """Build the potential's MaxVol active set from ``train`` (``settings``: an
    :class:`~mliap_torch.cli.schema.ActiveSetConfig`) and return the γ statistics of ``test``
    (:func:`~mliap_torch.uncertainty.build.grade_statistics`); None when the head has no features for γ."""
    from ..uncertainty.build import build_active_set, configuration_grades, grade_statistics

    active_set = build_active_set(potential, train, batch_size, tol=settings.tolerance, rcond=settings.rcond,
                                  progress=settings.progress)
    if active_set is None:
        return None
    grades = configuration_grades(potential, test, batch_size, progress=settings.progress) if test else []
    return {"tolerance": settings.tolerance, "active_set_size": dict(zip(potential.elements, active_set.size.tolist())),
            "test": grade_statistics(grades)}


def _exact_fit_on_processes(potential: Potential, train: Sequence[Configuration], test: Sequence[Configuration],
                            group_names: Sequence[str], options: Any, batch_size: int) -> tuple[Any, Any]:
    """``fit.processes=N``: the exact fit and the metrics pass of train and test on N local processes
    (:func:`~mliap_torch.fitting.processes.run_on_processes`); sets the coefficients on ``potential`` and
    returns rank 0's fit result and :func:`~.report.evaluate` result (metrics of all configurations)."""
    import dataclasses

    from ..fitting.processes import run_on_processes

    rank_options = dataclasses.replace(options, processes=1, threads=None, distributed=True,
                                       progress=options.show_progress())
    fit, evaluated = run_on_processes(_exact_fit_rank, (potential, list(train), list(test), list(group_names),
                                                        rank_options, batch_size),
                                      options.processes, threads=options.threads_per_process())
    head = next(iter(potential.head.parameters()))
    potential.head.set_coefficients(fit.coefficients.to(dtype=head.dtype))
    fit.notes.append(f"fitted on {options.processes} processes (gloo, {options.threads_per_process()} threads each)")
    return fit, evaluated


def _exact_fit_rank(potential: Potential, train: list[Configuration], test: list[Configuration],
                    group_names: list[str], options: Any, batch_size: int) -> tuple[Any, Any] | None:
    """One rank of :func:`_exact_fit_on_processes`: fit this rank's share, then evaluate its share."""
    from ..fitting.exact_fit import fit_exact, gather_result
    from .report import evaluate

    fit = gather_result(fit_exact(potential, train, group_names=group_names, options=options))
    evaluated = evaluate(potential.to(torch.float64), train, test, group_names, batch_size, distributed=True)
    return None if fit is None else (fit, evaluated)


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
        write_text_atomically(metrics_file, json.dumps(metrics, indent=2))
    print(format_export_report(report), flush=True)
    return report


def _start_on_validation(module: PotentialModule, datamodule: AtomsDataModule) -> tuple[float, dict[str, Any]]:
    """(validation loss, a copy of the parameters) of the module before training: the start (e.g. the exact
    linear fit a network's linear term starts from) competes with every epoch for the best validation loss."""
    datamodule.setup("fit")
    with torch.enable_grad():
        loss = module.mean_loss(datamodule.val_dataloader())
    return loss, {k: v.detach().clone() for k, v in module.state_dict().items()}


def train_lightning(cfg: Any, potential: Potential, train: Sequence[Configuration], val: Sequence[Configuration],
                    group_names: Sequence[str], run_dir: Path, dtype: torch.dtype, resume_epoch: int | None = None,
                    callbacks: Sequence[L.Callback] = ()) -> tuple[Potential | None, Path | None]:
    """Gradient training of ``potential`` (starting from its current parameters) with Lightning.

    With ``cfg.ckpt_path`` the run resumes from that checkpoint (read with ``weights_only=True``;
    ``resume_epoch`` is its epoch, up to which ``metrics.csv`` is kept). Returns the potential with the
    best validation weights of this run folder's ``checkpoints/best.ckpt`` (the last weights without
    one) and that path; ``(None, None)`` on DDP ranks other than zero. ``callbacks`` go to the trainer.
    A new run on one process also scores its starting parameters on the validation set first; when no epoch
    beats them there, it returns them (and no checkpoint path): training never ends worse on validation than
    its start.
    """
    m = cfg.model
    module = PotentialModule(potential.settings(), group_names=group_names, loss_weights=asdict(m.loss),
                             optimizer=asdict(m.optimizer), scheduler=asdict(m.scheduler),
                             use_config_weights=m.use_config_weights, dtype=cfg.dtype)
    module.potential.load_state_dict(potential.state_dict())
    stored = potential if m.store_descriptors and descriptor_is_frozen(potential) else None
    datamodule = AtomsDataModule(train, val, [], potential.elements, potential.cutoff, group_names,
                                 batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers, dtype=dtype,
                                 stored_descriptors=stored, max_stored_gb=m.max_stored_gb, seed=cfg.seed)
    trainer = build_trainer(cfg.trainer, run_dir, has_validation=len(val) > 0, resume_epoch=resume_epoch,
                            callbacks=callbacks)
    start = _start_on_validation(module, datamodule) if resume_epoch is None and len(val) > 0 and \
        trainer.world_size == 1 else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    if not trainer.is_global_zero:
        return None, None
    callback = cast(ModelCheckpoint | None, trainer.checkpoint_callback)  # build_trainer's ModelCheckpoint
    best_path = callback.best_model_path if callback else None
    best_score = callback.best_model_score if callback else None
    if start is not None and best_score is not None and start[0] <= float(best_score):
        log.info("the starting parameters (val/loss %.6g) stay better on validation than every epoch (best "
                 "%.6g): the run keeps them", start[0], float(best_score))
        module.load_state_dict(start[1])
        return module.potential.cpu(), None
    state = best_weights(run_dir, best_path)
    if state is None or best_path is None:  # a state comes only from a best_path
        return module.potential.cpu(), None
    module.load_state_dict(state)
    return module.potential.cpu(), Path(best_path)
