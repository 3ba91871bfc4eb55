"""Typed schema of the training configuration and its validation into one-paragraph errors.

Hydra composes plain YAML from ``mliap_torch/configs/``; :func:`validate` checks the result against these
dataclasses (unknown keys, wrong types, missing values, missing files) and raises
:class:`ConfigError` with a message naming the offending key, so that the command line reports a
single clear paragraph instead of a traceback.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config_checks import at_least as _at_least
from ..data.formats import TRAINING_FORMATS
from ..errors import ConfigError
from ..registry import descriptor_class, head_class, import_plugins, names

PACKAGE_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIG_DIR = Path(os.environ.get("MLIAP_TORCH_CONFIGS", PACKAGE_CONFIG_DIR))
"""Where Hydra composes training configs from: the package's ``configs/``, or ``$MLIAP_TORCH_CONFIGS``."""

if TYPE_CHECKING:
    from ..fitting.options import FitOptions

DATA_FORMATS = TRAINING_FORMATS
FIT_METHODS = ("exact", "gradient")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("plateau", "cosine", "none")
DTYPES = ("float64", "float32")


@dataclass
class ChecksConfig:
    """Physical sanity checks of the data (see :mod:`mliap_torch.data.sanity`); ``null`` turns one off."""

    min_distance: float | None = 0.5
    max_pairs_per_atom: int | None = 1000


@dataclass
class DataConfig:
    format: str = "builtin"
    path: str | None = None
    element: str | None = None
    max_configs: int | None = None
    test_fraction: float | None = 0.2
    val_fraction: float = 0.1
    batch_size: int = 8
    num_workers: int = 0
    group_weights: Any | None = None
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    options: dict = field(default_factory=dict)


@dataclass
class LossConfig:
    energy: float = 1.0
    forces: float = 1.0
    stress: float = 0.0


@dataclass
class OptimizerConfig:
    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class SchedulerConfig:
    name: str = "plateau"
    factor: float = 0.5
    patience: int = 10
    min_lr: float = 0.0


@dataclass
class ModelConfig:
    name: str = "snap_linear"
    head: str = "linear"
    hidden: list = field(default_factory=list)
    activation: str = "silu"
    linear_term: bool = False
    blocks: list = field(default_factory=list)   # head=blocks: one head type per descriptor part
    fit: str = "exact"
    refine: bool = False
    solver: dict = field(default_factory=dict)
    reference: dict | None = None
    use_config_weights: bool = True
    store_descriptors: bool = True
    max_stored_gb: float = 8.0          # larger Jacobian stores: computed per batch (training.precompute)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    max_epochs: int = 100
    max_time: str | None = None
    gradient_clip_val: float | None = None
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    fast_dev_run: Any = False
    limit_train_batches: Any | None = None
    limit_val_batches: Any | None = None
    enable_progress_bar: bool = True
    deterministic: bool = False
    early_stopping_patience: int | None = 30
    divergence_factor: float | None = 1.0e4
    checkpoint: bool = True
    extra: dict = field(default_factory=dict)


@dataclass
class ExportConfig:
    """The run's LAMMPS step: export, LAMMPS-vs-torch check on test configurations, short NVE MD."""

    lammps: bool = True
    check_configs: int = 4
    md_steps: int = 500
    md_atoms: int = 256
    temperature: float = 300.0


@dataclass
class FitConfig:
    """How an exact fit runs (``model.fit=exact``, also the start of ``model.refine``); the solver's own
    settings stay in ``model.solver``. Both become one :class:`~mliap_torch.fitting.options.FitOptions`."""

    processes: int = 1
    threads: int | None = None
    progress: bool | None = None


@dataclass
class ActiveSetConfig:
    """The active set built after the fit (:mod:`mliap_torch.uncertainty`): saved in ``model.pt``, γ of the
    test set in the metrics, ``extrapolation_grade`` in the ASE calculator."""

    enabled: bool = True
    tolerance: float = 1.01
    rcond: float = 1.0e-10
    progress: bool | None = None


@dataclass
class EnsembleConfig:
    """A run that trains the experiments ``members`` (each in ``<run>/members/<name>``, with ``member_overrides``
    and without their LAMMPS step) and keeps their weighted mean (:func:`mliap_torch.average_potentials`; ``weights``
    one per member, summing to 1, default equal), scored on this config's data. Empty ``members``: a plain run."""

    members: list[str] = field(default_factory=list)
    weights: list[float] | None = None
    member_overrides: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    """The validated configuration; ``descriptor`` stays a plain dict (its keys depend on its type)."""

    data: DataConfig
    descriptor: dict
    model: ModelConfig
    trainer: TrainerConfig
    seed: int = 42
    dtype: str = "float64"
    ckpt_path: str | None = None
    plots: bool = True
    export: ExportConfig = field(default_factory=ExportConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    active_set: ActiveSetConfig = field(default_factory=ActiveSetConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    experiment: Any | None = None
    plugins: list = field(default_factory=list)


def _typed(section: str, schema: type, node: Any) -> Any:
    """Merge ``node`` onto the dataclass ``schema``; unknown keys and wrong types become ConfigError."""
    if not isinstance(node, DictConfig):
        raise ConfigError(f"Configuration error in '{section}': expected a mapping of settings, got {node!r}.")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            keys = ", ".join(f"'{section}.{k}'" for k in missing)
            raise ConfigError(f"Configuration error: {keys} must be given (it is '???' in the config); set it on "
                              f"the command line, e.g. {section}.{missing[0]}=...")
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
        reason = str(exc).splitlines()[0].rstrip(".")
        hint = ""
        if "not in" in reason:
            hint = f" Valid keys of '{section}': {', '.join(f.name for f in fields(schema))}."
        raise ConfigError(f"Configuration error in '{section}.{key}': {reason}.{hint}") from None


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"Configuration error: '{key}' is {value!r}; choose one of {', '.join(allowed)}.")


def _check_descriptor(desc: Any, section: str = "descriptor") -> dict:
    """The ``descriptor`` section (or one of a composite descriptor's ``parts``, named ``section``) as a plain
    dict, checked against its registered class: typed by its ``config_schema`` when it has one, else its keys
    against the signature of ``__init__``; then its ``check_config`` ranges, and each part of a composite one."""
    known = " or ".join(names("descriptor"))
    if not isinstance(desc, DictConfig) or "type" not in desc:
        raise ConfigError(f"Configuration error in '{section}': it needs a 'type' ({known}); pick one "
                          f"with descriptor=<type>.")
    kind = desc["type"]
    try:
        cls = descriptor_class(kind)
    except ValueError:
        raise ConfigError(f"Configuration error: '{section}.type' is {kind!r}; choose {known}.") from None
    if getattr(cls, "composite", False):
        parts = desc.get("parts")
        if not isinstance(parts, ListConfig) or not parts:
            raise ConfigError(f"Configuration error in '{section}.parts': a {kind} descriptor needs a list of "
                              "descriptor sections, each with its 'type'.")
        composite: dict[str, Any] = {"type": kind, "elements": desc.get("elements"), "options": {},
                                     "parts": [_check_descriptor(part, f"{section}.parts[{k}]") for k, part in enumerate(parts)]}
        unknown = sorted({str(k) for k in desc.keys()} - set(composite))
        if unknown:
            raise ConfigError(f"Configuration error in '{section}': {unknown} are not keys of a {kind} descriptor; "
                              "valid: type, elements, parts.")
        return composite
    if cls.config_schema is not None:
        values = asdict(_typed(section, cls.config_schema, desc))
    else:
        values = cast(dict[str, Any], OmegaConf.to_container(desc, resolve=True))  # a DictConfig gives a dict
        values.setdefault("options", {})
        params = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(values) - params - {"type", "elements", "options"})
        if unknown:
            raise ConfigError(f"Configuration error in '{section}': {unknown} are not parameters of "
                              f"{cls.__name__}; valid: {', '.join(sorted(params))}.")
    try:
        cls.check_config(values)
    except ConfigError as exc:  # the classes name their keys 'descriptor.<key>'; a part's are under its section
        raise ConfigError(str(exc).replace("'descriptor.", f"'{section}.")) from None
    return values


def validate(cfg: DictConfig, *, check_paths: bool = True) -> TrainConfig:
    """Check a composed configuration and return it typed; raise :class:`ConfigError` otherwise.

    Relative data paths are resolved against Hydra's original working directory when Hydra runs
    (``hydra.utils.to_absolute_path``), else against the current directory.
    """
    top = {f.name for f in fields(TrainConfig)}
    unknown = sorted({str(k) for k in cfg.keys()} - top - {"hydra"})  # the keys of a composed config are str
    if unknown:
        raise ConfigError(f"Configuration error: unknown top-level key(s) {unknown}; valid keys: "
                          f"{', '.join(sorted(top))}.")
    for section in ("data", "descriptor", "model", "trainer"):
        if section not in cfg:
            raise ConfigError(f"Configuration error: the '{section}' group is missing; choose one, e.g. "
                              f"{section}=<option> (options are the files in mliap_torch/configs/{section}/).")
    plugins = [str(m) for m in cfg.get("plugins") or []]
    import_plugins(plugins)
    data = _typed("data", DataConfig, cfg.data)
    model = _typed("model", ModelConfig, cfg.model)
    trainer = _typed("trainer", TrainerConfig, cfg.trainer)
    descriptor = _check_descriptor(cfg.descriptor)
    export = _typed("export", ExportConfig, cfg.export) if "export" in cfg else ExportConfig()
    fit = _typed("fit", FitConfig, cfg.fit) if "fit" in cfg else FitConfig()
    active_set = _typed("active_set", ActiveSetConfig, cfg.active_set) if "active_set" in cfg else ActiveSetConfig()
    ensemble = _typed("ensemble", EnsembleConfig, cfg.ensemble) if "ensemble" in cfg else EnsembleConfig()
    _check_ensemble(ensemble)
    try:
        scalars = {k: cfg[k] for k in ("seed", "dtype", "ckpt_path", "plots") if k in cfg}
    except OmegaConfBaseException as exc:
        raise ConfigError(f"Configuration error: {str(exc).splitlines()[0]}.") from None
    out = _typed("(top level)", _TopScalars, OmegaConf.create(scalars))
    _choice("data.format", data.format, DATA_FORMATS)
    _choice("model.head", model.head, tuple(names("head")))
    _choice("model.fit", model.fit, FIT_METHODS)
    _choice("model.optimizer.name", model.optimizer.name, OPTIMIZERS)
    _choice("model.scheduler.name", model.scheduler.name, SCHEDULERS)
    _choice("dtype", out.dtype, DTYPES)
    head = head_class(model.head)
    if not head.linear_in_parameters and model.fit == "exact":
        raise ConfigError(f"Configuration error: 'model.fit' is 'exact' but an {model.head} head has no "
                          "least-squares solution; use model.fit=gradient.")
    try:
        head.check_options({"hidden": model.hidden, "activation": model.activation, "linear_term": model.linear_term,
                            "blocks": model.blocks, "num_parts": len(descriptor.get("parts") or [descriptor])})
    except ValueError as exc:
        raise ConfigError(f"Configuration error: {exc}") from None
    for name, value in (("data.val_fraction", data.val_fraction), ("data.test_fraction", data.test_fraction)):
        if value is not None and not 0.0 <= value < 1.0:
            raise ConfigError(f"Configuration error: '{name}' is {value}; it must be in [0, 1).")
    _check_ranges(data, model, trainer, export, out)
    _at_least("active_set.tolerance", active_set.tolerance, 1.0)
    _at_least("active_set.rcond", active_set.rcond, 0.0)
    fit_options(model, fit)
    if check_paths:
        data.path = _existing_path("data.path", data.path, required=data.format != "builtin")
        if data.format == "mlearn":
            if not data.element:
                raise ConfigError("Configuration error: 'data.element' must name the mlearn element, e.g. "
                                  "data.element=Ni.")
            for name in ("training.json", "test.json"):
                _existing_path("data.path", str(Path(data.path) / data.element / name), required=True)
        if isinstance(data.group_weights, str):
            data.group_weights = _existing_path("data.group_weights", data.group_weights, required=True)
        out.ckpt_path = _existing_path("ckpt_path", out.ckpt_path, required=False)
    return TrainConfig(data=data, descriptor=descriptor, model=model, trainer=trainer, seed=out.seed,
                       dtype=out.dtype, ckpt_path=out.ckpt_path, plots=out.plots, export=export, fit=fit,
                       active_set=active_set, ensemble=ensemble,
                       experiment=cfg.get("experiment"), plugins=plugins)


def _check_ensemble(ensemble: EnsembleConfig) -> None:
    """ConfigError naming the ``ensemble.<key>`` when the members and weights cannot make an average."""
    members = ensemble.members
    if not members:
        if ensemble.weights is not None:
            raise ConfigError("Configuration error: 'ensemble.weights' is set but 'ensemble.members' is empty; name "
                              "the member experiments, e.g. ensemble.members=[mlearn_si_ace_qsnap,mlearn_si_snap_nn].")
        return
    if len(members) < 2 or len(set(members)) != len(members):
        raise ConfigError(f"Configuration error: 'ensemble.members' is {members}; an average needs at least two "
                          "different experiments.")
    weights = ensemble.weights
    if weights is not None and (len(weights) != len(members) or abs(sum(weights) - 1.0) > 1e-12):
        raise ConfigError(f"Configuration error: 'ensemble.weights' is {weights}; give one weight per member of "
                          f"'ensemble.members' ({len(members)}), summing to 1.")


def fit_options(model: ModelConfig, fit: FitConfig) -> FitOptions:
    """The :class:`~mliap_torch.fitting.options.FitOptions` of a run: ``model.solver`` (solver, memory and
    label settings of :func:`~mliap_torch.fitting.exact_fit.fit_exact`; per-element constants and kept
    rows unless it says otherwise) plus the ``fit`` section (processes, threads, progress).
    ConfigError naming the key for anything FitOptions rejects."""
    from ..fitting.options import EXECUTION_FIELDS, FitOptions

    solver = dict(model.solver)
    moved = sorted(set(solver) & set(EXECUTION_FIELDS + ("distributed",)))
    if moved:
        raise ConfigError(f"Configuration error: 'model.solver.{moved[0]}' is not a solver setting; set "
                          f"fit.{moved[0]}=... instead (the 'fit' section says how the exact fit runs).")
    unknown = sorted(set(solver) - set(FitOptions.field_names()))
    if unknown:
        valid = [n for n in FitOptions.field_names() if n not in EXECUTION_FIELDS + ("distributed",)]
        raise ConfigError(f"Configuration error: 'model.solver.{unknown[0]}' is not a setting of the exact fit; "
                          f"valid keys of 'model.solver': {', '.join(valid)}.")
    try:
        return FitOptions.build({"bias": True, "keep_rows": True, **solver}, processes=fit.processes,
                                threads=fit.threads, progress=fit.progress)
    except (TypeError, ValueError) as exc:
        message = str(exc).rstrip(".")
        name = message.split("'")[1] if message.startswith("fit option '") else "?"
        key = f"fit.{name}" if name in EXECUTION_FIELDS else f"model.solver.{name}"
        raise ConfigError(f"Configuration error: {message.replace(f'fit option {name!r}', repr(key))}.") from None


def _check_accelerator_name(name: str) -> None:
    """The Lightning accelerator ``name`` exists (``gpu`` and ``auto`` included)."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    known = sorted(set(AcceleratorRegistry.available_accelerators()) | {"auto", "gpu"})
    if name not in known:
        raise ConfigError(f"Configuration error: 'trainer.accelerator' is {name!r}; choose one of "
                          f"{', '.join(known)}.")


def require_accelerator(name: str) -> None:
    """ConfigError unless the accelerator ``name`` is available on this machine (checked before gradient
    training reads any data; exact fits do not use it)."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    _check_accelerator_name(name)
    if name == "auto":
        return
    candidates = ("cuda", "mps") if name == "gpu" else (name,)
    if not any(c in AcceleratorRegistry.available_accelerators() and AcceleratorRegistry.get(c).is_available()
               for c in candidates):
        raise ConfigError(f"Configuration error: 'trainer.accelerator' is {name!r}, but no {name} device is "
                          "available on this machine; use trainer=cpu (or trainer.accelerator=auto).")


def _check_ranges(data: DataConfig, model: ModelConfig, trainer: TrainerConfig,
                  export: ExportConfig, top: _TopScalars) -> None:
    """Out-of-range values become a ConfigError before any data is read."""
    _at_least("data.batch_size", data.batch_size, 1)
    _at_least("data.max_configs", data.max_configs, 1, optional=True)
    _at_least("data.num_workers", data.num_workers, 0)
    _at_least("data.checks.min_distance", data.checks.min_distance, 0.0, optional=True)
    _at_least("data.checks.max_pairs_per_atom", data.checks.max_pairs_per_atom, 1, optional=True)
    for width in model.hidden:
        _at_least("model.hidden", width, 1)
    for name in ("energy", "forces", "stress"):
        _at_least(f"model.loss.{name}", getattr(model.loss, name), 0.0)
    if model.fit == "gradient" or model.refine:
        if model.loss.energy == model.loss.forces == model.loss.stress == 0:
            raise ConfigError("Configuration error: 'model.loss' weights are all 0; give energy, forces or "
                              "stress a positive weight.")
    _at_least("model.optimizer.lr", model.optimizer.lr, 0.0, strict=True)
    _at_least("model.optimizer.weight_decay", model.optimizer.weight_decay, 0.0)
    _at_least("model.scheduler.factor", model.scheduler.factor, 0.0, strict=True)
    if model.scheduler.factor >= 1.0:
        raise ConfigError(f"Configuration error: 'model.scheduler.factor' is {model.scheduler.factor}; it must "
                          "be in (0, 1).")
    _at_least("model.scheduler.patience", model.scheduler.patience, 0)
    _at_least("model.scheduler.min_lr", model.scheduler.min_lr, 0.0)
    _at_least("model.max_stored_gb", model.max_stored_gb, 0.0)
    if trainer.max_epochs != -1:
        _at_least("trainer.max_epochs", trainer.max_epochs, 1)
    _at_least("trainer.num_nodes", trainer.num_nodes, 1)
    _at_least("trainer.check_val_every_n_epoch", trainer.check_val_every_n_epoch, 1)
    _at_least("trainer.log_every_n_steps", trainer.log_every_n_steps, 1)
    _at_least("trainer.early_stopping_patience", trainer.early_stopping_patience, 0, optional=True)
    _at_least("trainer.divergence_factor", trainer.divergence_factor, 1.0, strict=True, optional=True)
    _at_least("trainer.gradient_clip_val", trainer.gradient_clip_val, 0.0, strict=True, optional=True)
    if isinstance(trainer.devices, int) and not isinstance(trainer.devices, bool) and trainer.devices != -1:
        _at_least("trainer.devices", trainer.devices, 1)
    _check_accelerator_name(trainer.accelerator)
    _at_least("export.check_configs", export.check_configs, 0)
    _at_least("export.md_steps", export.md_steps, 0)
    _at_least("export.md_atoms", export.md_atoms, 1)
    _at_least("export.temperature", export.temperature, 0.0)
    _at_least("seed", top.seed, 0)


@dataclass
class _TopScalars:
    seed: int = 42
    dtype: str = "float64"
    ckpt_path: str | None = None
    plots: bool = True


def absolute_path(path: str) -> Path:
    """``path`` made absolute against the directory the command was started from."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import to_absolute_path

    if HydraConfig.initialized():
        return Path(to_absolute_path(path))
    return Path(path).expanduser().resolve()


def _existing_path(key: str, path: str | None, *, required: bool) -> str | None:
    if path is None:
        if required:
            raise ConfigError(f"Configuration error: '{key}' must be given (a file or folder).")
        return None
    resolved = absolute_path(str(path))
    if not resolved.exists():
        raise ConfigError(f"Configuration error: '{key}' is {path!r}, but {resolved} does not exist (relative "
                          f"paths are taken from the directory the command was started in).")
    return str(resolved)
