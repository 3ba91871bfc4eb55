"""The settings of an exact fit in one place: :class:`FitOptions` (defaults and validation).

:func:`~mliap_torch.fitting.exact_fit.fit_exact` takes them as ``options=FitOptions(...)`` or as
keyword arguments of the same names (``fit_exact(p, configs, solver="svd", processes=2)``); the
keywords override the fields of ``options``. On the command line they come from two places:
``model.solver`` (a mapping of the *solver* fields below: ``solver``, ``rcond``, ``alpha``, ``prior_power``,
``scale_columns``, ``chunk_atoms``, ``keep_rows``, ``bias``, ``energy``/``forces``/``stress``,
the stress units) and the ``fit:`` section (the *execution* fields ``processes``, ``threads``,
``progress``), see ``docs/fitting.md``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

SOLVERS = ("qr", "svd", "ridge")

EXECUTION_FIELDS = ("processes", "threads", "progress")
"""Fields set by the command line's ``fit:`` section (not ``model.solver``)."""


@dataclass
class FitOptions:
    """How :func:`~mliap_torch.fitting.exact_fit.fit_exact` solves and runs.

    Solver:
        solver: ``"qr"`` (default), ``"svd"`` (with cutoff ``rcond``) or ``"ridge"`` (``alpha``).
        rcond: SVD cutoff relative to the largest singular value (None: machine precision scaled).
        alpha: ridge parameter (``"ridge"`` only; with ``scale_columns`` relative to each column's squared norm).
        prior_power: smoothness prior of the ridge (``"ridge"`` only; 0: a plain ridge): column j is
            penalised by ``α (d_j / d_max)^(2·prior_power) x_j²``, d_j the total polynomial degree of its
            feature (:meth:`~mliap_torch.descriptors.ace.ACE.function_degrees`; a quadratic feature's is
            the sum of its two) and the constant column free; descriptors without degrees are refused.
        scale_columns: solve for unit-norm columns (the fit does not depend on the columns' scales).
        bias: constant per-element columns (None: FitSNAP's rule, off with ``bzeroflag``).
        energy, forces, stress: which labels are fitted.
        stress_scale: stress unit of rows and targets (1: eV/Å³ tension positive; FitSNAP:
            :data:`~mliap_torch.fitting.design.FITSNAP_STRESS_SCALE`, bar compression positive).
        stress_target_scale: factor of the labelled stresses (default ``stress_scale``).
        stress_unit: label of the stress unit in the metrics table (default from ``stress_scale``).

    Memory:
        chunk_atoms: atoms per chunk of configurations (memory: one chunk of rows plus the R factor).
        keep_rows: ``True`` keeps all design rows in memory (no second descriptor pass for the
            metrics; rows returned in the result), ``"disk"`` spills each chunk to a temporary folder,
            ``False`` keeps nothing and the metrics pass recomputes the rows.

    Execution:
        processes: run the design stage and the metrics pass on this many local processes (gloo on
            CPU, NCCL on CUDA), combined by TSQR; 1 runs in this process. See
            :func:`~mliap_torch.fitting.processes.run_on_processes`.
        threads: torch intra-op threads of each process (None: torch's default with one process,
            ``max(1, cores // processes)`` with several).
        progress: a progress bar of the design stage (configurations/s, ETA) on stderr; None: only
            when stderr is a terminal.
        distributed: this process is one rank of an already initialised ``torch.distributed``
            group: shard the configurations over the ranks and combine by TSQR (all ranks get the
            same coefficients and the metrics of all rows). Set by ``processes`` for its workers.
    """

    solver: str = "qr"
    rcond: float | None = None
    alpha: float = 0.0
    prior_power: float = 0.0
    scale_columns: bool = False
    bias: bool | None = None
    energy: bool = True
    forces: bool = True
    stress: bool = True
    stress_scale: float = 1.0
    stress_target_scale: float | None = None
    stress_unit: str | None = None
    chunk_atoms: int = 2000
    keep_rows: bool | str = True
    processes: int = 1
    threads: int | None = None
    progress: bool | None = None
    distributed: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def build(cls, options: FitOptions | Mapping[str, Any] | None = None, **overrides: Any) -> FitOptions:
        """``options`` (a FitOptions, a mapping of its fields, or None for the defaults) with ``overrides``.

        Unknown names raise TypeError naming the valid ones; bad values raise ValueError naming the field.
        """
        if options is None:
            base: dict[str, Any] = {}
        elif isinstance(options, FitOptions):
            base = dataclasses.asdict(options)
        elif isinstance(options, Mapping):
            base = dict(options)
        else:
            raise TypeError(f"fit options must be a FitOptions or a mapping, not {type(options).__name__}")
        base.update(overrides)
        unknown = sorted(set(base) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"unknown fit option(s) {unknown}; valid: {', '.join(cls.field_names())}")
        return cls(**base)

    def validate(self) -> None:
        """ValueError naming the first field whose value cannot work."""
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"fit option '{name}' is {getattr(self, name)!r}; {rule}")

        if self.solver not in SOLVERS:
            raise bad("solver", f"choose one of {', '.join(SOLVERS)}")
        for name in ("scale_columns", "energy", "forces", "stress", "distributed"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "it must be true or false")
        for name in ("bias", "progress"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise bad(name, "it must be true, false or null")
        if self.keep_rows not in (True, False, "disk") or not isinstance(self.keep_rows, (bool, str)):
            raise bad("keep_rows", "it must be true, false or 'disk'")
        if not _is_number(self.alpha) or self.alpha < 0:
            raise bad("alpha", "it must be a number of at least 0")
        if not _is_number(self.prior_power) or self.prior_power < 0:
            raise bad("prior_power", "it must be a number of at least 0")
        if self.prior_power > 0 and self.solver != "ridge":
            raise bad("prior_power", "a smoothness prior weights the ridge penalty: set solver: ridge and alpha > 0")
        if self.rcond is not None and (not _is_number(self.rcond) or self.rcond < 0):
            raise bad("rcond", "it must be null or a number of at least 0")
        for name in ("stress_scale", "stress_target_scale"):
            value = getattr(self, name)
            if value is not None and (not _is_number(value) or value == 0):
                raise bad(name, "it must be a non-zero number")
        for name, minimum, optional in (("chunk_atoms", 1, False), ("processes", 1, False), ("threads", 1, True)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            if not _is_integer(value) or value < minimum:
                raise bad(name, f"it must be an integer of at least {minimum}" + (" or null" if optional else ""))
        if self.processes > 1 and self.distributed:
            raise ValueError("fit options 'processes' > 1 and 'distributed' exclude each other: 'processes' starts "
                             "its own process group; inside an initialised one use distributed=True")

    def threads_per_process(self) -> int | None:
        """Intra-op threads of each process: ``threads``, else ``max(1, cores // processes)`` with several
        processes, else None (torch's default)."""
        if self.threads is not None:
            return self.threads
        if self.processes > 1:
            return max(1, available_cores() // self.processes)
        return None

    def show_progress(self) -> bool:
        """``progress``, or (None) whether stderr is a terminal."""
        if self.progress is not None:
            return self.progress
        import sys

        return bool(getattr(sys.stderr, "isatty", lambda: False)())


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block (None: unchanged), restored after it."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
