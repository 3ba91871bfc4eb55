"""Exact weighted least-squares fits of linear and quadratic SNAP-type potentials (FitSNAP's fit).

:func:`fit_exact` streams the configurations in chunks through :class:`DesignMatrixBuilder`, folds
the weighted training rows into a running QR factor (:class:`StreamingQR`; with
``distributed=True`` each ``torch.distributed`` rank folds its own shard and the factors are
combined by TSQR), solves, sets the head's coefficients, and evaluates FitSNAP-style metrics on
training and test rows. FitSNAP ``.in`` files become fits in :mod:`mliap_torch.fitsnap`
(:func:`~mliap_torch.fitsnap.setup.fitsnap_setup`); their names are still importable from here.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.configuration import Configuration
from ..faults import kill_point
from ..models.potential import Potential
from .design import FITSNAP_STRESS_SCALE, DesignMatrixBuilder, DesignRows
from .metrics import MetricAccumulator, MetricsTable
from .options import FitOptions, torch_threads
from .solvers import LstsqSolution, StreamingQR, distributed_r_factor, solve_r_factor


@dataclass
class RowPredictions:
    """Per-row predictions of a fit (m rows, all chunks; see :class:`DesignRows` for the fields)."""

    pred: torch.Tensor
    truth: torch.Tensor
    weight: torch.Tensor
    kind: torch.Tensor
    group: torch.Tensor
    test: torch.Tensor
    config: torch.Tensor


@dataclass
class FitResult:
    """Outcome of :func:`fit_exact`.

    Attributes:
        coefficients: (nelements, 1 + num_features) ``.snapcoeff``-ordered coefficients (set on the head).
        solution: solver diagnostics (rank, condition number, singular values, residual).
        metrics: FitSNAP-style metrics table (train and test rows, weighted and unweighted).
        timings: seconds spent in ``design`` (neighbor lists, descriptors, rows), ``solve``,
            ``metrics`` and ``total``.
        predictions: per-row predictions and truths (for parity plots).
        rows: all design rows when ``keep_rows`` (else None).
        group_names: names of the group indices.
    """

    coefficients: torch.Tensor
    solution: LstsqSolution
    metrics: MetricsTable
    timings: dict[str, float]
    predictions: RowPredictions
    group_names: list[str]
    rows: DesignRows | None = None
    notes: list[str] = field(default_factory=list)


def shard_range(n: int, distributed: bool = True, sizes: Sequence[int] | None = None) -> tuple[int, int]:
    """[start, stop) of this rank's contiguous share of n configurations (all of them outside a group).

    With ``sizes`` (atoms per configuration, (n,)) the shares hold about equal numbers of atoms: the
    descriptor stage costs per atom, and FitSNAP's equal numbers of configurations per rank leave the
    rank with the larger cells working while the others wait (WBe on two ranks: 311 346 and 220 296
    atoms). Without, equal numbers of configurations.
    """
    import torch.distributed as dist

    if not (distributed and dist.is_available() and dist.is_initialized()):
        return 0, n
    rank, world = dist.get_rank(), dist.get_world_size()
    if sizes is None:
        per = math.ceil(n / world)
        return min(rank * per, n), min((rank + 1) * per, n)
    if len(sizes) != n:
        raise ValueError(f"shard_range: {len(sizes)} sizes for {n} configurations")
    edges = balanced_edges(sizes, world)
    return edges[rank], edges[rank + 1]


def balanced_edges(sizes: Sequence[int], parts: int) -> list[int]:
    """Edges 0 = e_0 ≤ e_1 ≤ … ≤ e_parts = n of ``parts`` contiguous blocks of the n items of ``sizes``:
    block k is [e_k, e_{k+1}), and its last item is the one at which the running total first reaches
    k+1 parts of the whole (so blocks differ from equal sums by less than one item)."""
    n = len(sizes)
    if n == 0:
        return [0] * (parts + 1)
    cumulative = np.cumsum(np.asarray(sizes, dtype=np.float64))
    targets = cumulative[-1] * np.arange(1, parts) / parts
    return [0, *(np.searchsorted(cumulative, targets, side="left") + 1).tolist(), n]


_shard = shard_range


def _rank() -> int:
    """This process's ``torch.distributed`` rank (0 outside a group)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _design_progress(total: int, opts: FitOptions):
    """tqdm bar of the design stage on stderr: configurations of this rank's shard, configs/s and ETA."""
    import torch.distributed as dist
    from tqdm.auto import tqdm

    world = dist.get_world_size() if opts.distributed and dist.is_available() and dist.is_initialized() else 1
    desc = "design" if world == 1 else f"design (rank 0 of {world})"
    return tqdm(total=total, desc=desc, unit="config", dynamic_ncols=True, smoothing=0.1)


def _fit_on_processes(potential: Potential, configurations: Sequence[Configuration], test, split,
                      group_names: Sequence[str] | None, opts: FitOptions, t_start: float) -> FitResult:
    """:func:`fit_exact` with ``opts.processes`` new local processes (rank 0's result, all predictions)."""
    from .processes import backend_for, run_on_processes

    head = next(iter(potential.head.parameters()))
    device = head.device
    shipped = copy.deepcopy(potential).cpu() if device.type != "cpu" else potential
    threads = opts.threads_per_process()
    rank_opts = dataclasses.replace(opts, processes=1, threads=None, distributed=True,
                                    progress=opts.show_progress())
    result = run_on_processes(_fit_rank, (shipped, list(configurations), test, split, group_names, rank_opts,
                                          str(device)), opts.processes, threads=threads, device=device)
    potential.head.set_coefficients(result.coefficients.to(device=device, dtype=head.dtype))
    result.timings["total"] = time.perf_counter() - t_start
    result.notes.append(f"fitted on {opts.processes} processes ({backend_for(device)}, {threads} threads each)")
    return result


def _fit_rank(potential: Potential, configurations: Sequence[Configuration], test, split,
              group_names: Sequence[str] | None, opts: FitOptions, device: str) -> FitResult | None:
    """One rank of :func:`_fit_on_processes`: fit its shard; rank 0 gathers every rank's predictions."""
    from .processes import rank_device

    potential = potential.to(rank_device(device))
    result = fit_exact(potential, configurations, test=test, split=split, group_names=group_names, options=opts)
    return gather_result(result)


def gather_result(result: FitResult) -> FitResult | None:
    """Rank 0: ``result`` with the predictions of all ranks (rank order = configuration order), on the
    CPU, without ``rows``; other ranks: None. Every rank of the group must call it."""
    import torch.distributed as dist

    parts: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(result.predictions, parts, dst=0)
    if dist.get_rank() != 0:
        return None
    assert parts is not None
    predictions = RowPredictions(*(torch.cat([getattr(p, f.name) for p in parts])
                                   for f in dataclasses.fields(RowPredictions)))
    values: dict[str, Any] = {f.name: v.cpu() if torch.is_tensor(v) else v
                              for f in dataclasses.fields(LstsqSolution) for v in [getattr(result.solution, f.name)]}
    solution = LstsqSolution(**values)
    return dataclasses.replace(result, coefficients=result.coefficients.cpu(), solution=solution,
                               predictions=predictions, rows=None)


class RowStore:
    """Design rows chunk by chunk, in memory or spilled to a temporary folder (removed with the store)."""

    def __init__(self, on_disk: bool = False, device: torch.device | str = "cpu"):
        self._device = device
        self._folder = tempfile.TemporaryDirectory(prefix="mliap_torch_rows_") if on_disk else None
        self._chunks: list[DesignRows | Path] = []

    def __len__(self) -> int:
        return len(self._chunks)

    def append(self, rows: DesignRows) -> None:
        if self._folder is None:
            self._chunks.append(rows)
            return
        path = Path(self._folder.name) / f"{len(self._chunks)}.pt"
        torch.save({f.name: getattr(rows, f.name).cpu() for f in dataclasses.fields(DesignRows)}, path)
        self._chunks.append(path)

    def __iter__(self) -> Iterator[DesignRows]:
        for chunk in self._chunks:
            if isinstance(chunk, Path):
                chunk = DesignRows(**torch.load(chunk, map_location=self._device, weights_only=True))
            yield chunk

    def all(self) -> DesignRows:
        return DesignRows.cat(list(self))


def smoothness_prior(builder: DesignMatrixBuilder, power: float) -> torch.Tensor | None:
    """(num_columns,) ridge weights ``(d_j / d_max)^power`` of the columns' degrees (None for power 0)."""
    if power == 0:
        return None
    degrees = builder.column_degrees()
    return (degrees / degrees.max()) ** power


def fit_exact(potential: Potential, configurations: Sequence[Configuration], *,
              test: Sequence[bool] | torch.Tensor | None = None, split=None, group_names: Sequence[str] | None = None,
              options: FitOptions | Mapping[str, Any] | None = None, **kwargs: Any) -> FitResult:
    """Fit the head coefficients of ``potential`` to ``configurations`` by weighted least squares.

    Args:
        potential: descriptor + linear or quadratic head (+ reference potential, subtracted).
        configurations: the data; each carries its ``energy_weight``/``force_weight``/``stress_weight``
            (FitSNAP's group weights, e.g. from :func:`mliap_torch.data.groups.make_split`).
        test: (nconfigs,) True for test configurations (not fitted, reported separately).
        split: a :class:`mliap_torch.data.groups.Split` of ``configurations`` instead of ``test``: its
            train and test sets, with the split's weights, are used (in that order).
        group_names: group order of the metrics (default: groups in order of first appearance).
        options: a :class:`~mliap_torch.fitting.options.FitOptions` (or a mapping of its fields): the
            solver (``solver``, ``rcond``, ``alpha``, ``prior_power``, ``scale_columns``, ``bias``, fitted labels,
            stress units), memory (``chunk_atoms``, ``keep_rows``) and execution (``processes``,
            ``threads``, ``progress``, ``distributed``); defaults and validation live there.
        **kwargs: the same fields as keywords (``solver="svd"``, ``processes=2``, ...); they override
            ``options``.

    With ``processes=N > 1`` the fit runs on N new local processes (gloo; NCCL when the head is on
    CUDA) that shard the configurations and combine by TSQR
    (:func:`~mliap_torch.fitting.processes.run_on_processes`); the result has the metrics and
    predictions of all rows, and ``rows`` is None. ``distributed=True`` instead makes this process
    one rank of an initialised ``torch.distributed`` group (every rank calls ``fit_exact`` with the
    same configurations; predictions are then this rank's rows only).

    Returns:
        :class:`FitResult`; the head's coefficients are set.
    """
    t_start = time.perf_counter()
    opts = FitOptions.build(options, **kwargs)
    if opts.processes > 1:
        return _fit_on_processes(potential, configurations, test, split, group_names, opts, t_start)
    with torch_threads(opts.threads):
        return _fit_exact(potential, configurations, test, split, group_names, opts, t_start)


def _fit_exact(potential: Potential, configurations: Sequence[Configuration], test, split,
               group_names: Sequence[str] | None, opts: FitOptions, t_start: float) -> FitResult:
    """:func:`fit_exact` in this process (``opts.distributed``: as one rank of the initialised group)."""
    solver, rcond, alpha, scale_columns, chunk_atoms = (opts.solver, opts.rcond, opts.alpha, opts.scale_columns,
                                                        opts.chunk_atoms)
    stress_scale, stress_unit, keep_rows, distributed = (opts.stress_scale, opts.stress_unit, opts.keep_rows,
                                                         opts.distributed)
    configs = list(configurations)
    if split is not None:
        if test is not None:
            raise ValueError("fit_exact: give either test flags or a split, not both")
        train_set, test_set = split.apply(configs)
        configs, test = train_set + test_set, [False] * len(train_set) + [True] * len(test_set)
    n = len(configs)
    if n == 0:
        raise ValueError("fit_exact: no configurations given")
    test_flags = torch.zeros(n, dtype=torch.bool) if test is None else torch.as_tensor(list(test) if not torch.is_tensor(test) else test, dtype=torch.bool)
    if test_flags.shape != (n,):
        raise ValueError(f"fit_exact: test flags have shape {tuple(test_flags.shape)}, expected ({n},)")
    names = list(group_names) if group_names is not None else list(dict.fromkeys(c.group for c in configs))
    missing = sorted({c.group for c in configs} - set(names))
    if missing:
        raise ValueError(f"fit_exact: group(s) {missing} are not in group_names {names}")
    gindex = {g: k for k, g in enumerate(names)}
    builder = DesignMatrixBuilder(potential, bias=opts.bias, energy=opts.energy, forces=opts.forces,
                                  stress=opts.stress, stress_scale=stress_scale,
                                  stress_target_scale=opts.stress_target_scale)
    dtype = next(iter(potential.head.parameters())).dtype
    device = next(iter(potential.head.parameters())).device
    start, stop = _shard(n, distributed, sizes=[c.num_atoms for c in configs])
    shard = configs[start:stop]

    def chunks(bar=None):
        for batch in builder.batches(shard, chunk_atoms, gindex, offset=start, dtype=dtype):
            batch = batch.to(device)
            rows = builder.rows(batch, test_flags.to(device)[batch.config_id])
            if bar is not None:
                bar.update(batch.num_configs)
            yield rows

    timings = {"design": 0.0, "solve": 0.0, "metrics": 0.0}
    acc = StreamingQR(builder.num_columns, dtype=dtype, device=device)
    kept = RowStore(on_disk=keep_rows == "disk", device=device) if keep_rows else None
    bar = _design_progress(len(shard), opts) if opts.show_progress() and _rank() == 0 else None
    t0 = time.perf_counter()
    for rows in chunks(bar):
        kill_point(f"fit.design.rank{_rank()}")
        t1 = time.perf_counter()
        timings["design"] += t1 - t0
        train = ~rows.test
        acc.add(rows.A[train], rows.b[train], rows.w[train])
        if kept is not None:
            kept.append(rows)
        t0 = time.perf_counter()
        timings["solve"] += t0 - t1
    if bar is not None:
        bar.close()
    t1 = time.perf_counter()
    r = distributed_r_factor(acc.r) if distributed else acc.r
    num_rows = acc.num_rows
    if distributed:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            count = torch.tensor([float(num_rows)], dtype=torch.float64, device=r.device)
            dist.all_reduce(count)
            num_rows = int(count.item())
    if num_rows == 0:
        raise ValueError("fit_exact: no training rows (all configurations are test or unlabelled)")
    solution = solve_r_factor(r, method=solver, rcond=rcond, alpha=alpha, num_rows=num_rows,
                              scale_columns=scale_columns, prior=smoothness_prior(builder, opts.prior_power))
    coefficients = builder.coefficients(solution.x)
    potential.head.set_coefficients(coefficients)
    timings["solve"] += time.perf_counter() - t1

    t2 = time.perf_counter()
    unit = stress_unit or ("bar (compression positive)" if stress_scale == FITSNAP_STRESS_SCALE
                           else "eV/Å³ (tension positive)" if stress_scale == 1.0 else f"{stress_scale:g}·eV/Å³")
    metrics = MetricAccumulator(names, {"Energy": "eV/atom", "Force": "eV/Å", "Stress": unit})
    preds: list[RowPredictions] = []
    source = kept if kept is not None else chunks()
    for rows in source:
        pred = rows.A @ solution.x
        metrics.add_rows(pred, rows.b, rows.w, rows.kind, rows.group, rows.test)
        preds.append(RowPredictions(pred.cpu(), rows.b.cpu(), rows.w.cpu(), rows.kind.cpu(), rows.group.cpu(),
                                    rows.test.cpu(), rows.config.cpu()))
    if distributed:
        metrics.all_reduce()
    predictions = RowPredictions(*(torch.cat([getattr(p, f.name) for p in preds])
                                   for f in dataclasses.fields(RowPredictions)))
    timings["metrics"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t_start
    return FitResult(coefficients=coefficients.detach(), solution=solution, metrics=metrics.table(), timings=timings,
                     predictions=predictions, group_names=names,
                     rows=kept.all() if keep_rows is True and kept is not None and len(kept) else None,
                     notes=list(solution.notes))


_MOVED_TO_FITSNAP = {"FitSNAPSetup": "setup", "fitsnap_setup": "setup", "fitsnap_solver": "setup",
                     "fitsnap_potential": "potential", "zbl_from_fitsnap_reference": "potential"}


def __getattr__(name: str) -> Any:
    """The FitSNAP names that lived here before :mod:`mliap_torch.fitsnap` (imported on first use: that
    package builds on this module)."""
    if name in _MOVED_TO_FITSNAP:
        import importlib

        return getattr(importlib.import_module(f"..fitsnap.{_MOVED_TO_FITSNAP[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
