"""One job on N local processes that form a ``torch.distributed`` group (``fit.processes=N``).

:func:`run_on_processes` starts N worker processes (``spawn``), rank 0 … N−1, that join one
process group over ``127.0.0.1`` and a free port (gloo on CPU, NCCL when the job runs on CUDA: rank
``r`` then uses ``cuda:r % device_count``) and each call ``fn(*args)``; rank 0's return value comes
back to the caller. The caller is not a rank: it only waits, so that it never blocks in a collective.
When any rank raises, the others are stopped and the caller raises that rank's exception (a
:class:`~mliap_torch.errors.UserError` stays one, so the command line reports it as one paragraph);
a rank that dies without a word (killed, out of memory) is reported with its exit status. Every
process uses ``threads`` torch intra-op threads.
"""
from __future__ import annotations

import datetime
import os
import pickle
import queue
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from ..data.sanity import current_limits, sanity_limits

GROUP_TIMEOUT = datetime.timedelta(minutes=30)
"""Timeout of the process group's collectives (a rank waiting for a slower one's design stage)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_for(device: torch.device | str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def rank_device(device: torch.device | str) -> torch.device:
    """The device of this rank: ``cuda:rank % device_count`` for a CUDA job, else ``device``."""
    import torch.distributed as dist

    device = torch.device(device)
    if device.type != "cuda":
        return device
    rank = dist.get_rank() if dist.is_initialized() else 0
    return torch.device("cuda", rank % torch.cuda.device_count())


def _worker(rank: int, world: int, port: int, backend: str, threads: int | None, job: bytes, results: Any) -> None:
    """One rank: join the group, run ``fn(*args)`` of the pickled ``job``, send rank 0's result (or any
    rank's exception), pickled to bytes: plain pickle copies tensors, where multiprocessing's would
    pass shared-memory handles that die with the process that sent them."""
    import torch.distributed as dist

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world)})
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    try:
        fn, args, limits = pickle.loads(job)
        if backend == "nccl":
            torch.cuda.set_device(rank % torch.cuda.device_count())
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=GROUP_TIMEOUT)
        try:
            with sanity_limits(limits):
                value = fn(*args)
            dist.barrier()  # no rank tears the group down while another still uses it
        finally:
            dist.destroy_process_group()
        results.put((rank, "ok", pickle.dumps(value if rank == 0 else None)))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        try:
            payload = pickle.dumps((exc, traceback.format_exc()))
            pickle.loads(payload)
        except Exception:  # noqa: BLE001
            payload = pickle.dumps((RuntimeError(f"{type(exc).__name__}: {exc}"), traceback.format_exc()))
        results.put((rank, "error", payload))
        raise SystemExit(1) from None


FAILURE_GRACE = 3.0
"""Seconds to wait, after one rank fails, for the others' reports (to find the root cause)."""


def _is_communication_error(exc: BaseException) -> bool:
    """A collective that failed because another rank went away (a consequence, not a cause)."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(word in text for word in ("gloo", "Connection", "NCCL", "nccl",
                                                                           "Socket", "timed out"))


def _root_cause(workers: list, done: set, errors: dict) -> tuple[int, BaseException, str]:
    """(rank, exception, traceback) of the failure to report: a rank's own error before a rank that died
    without a word (killed, out of memory), before errors of collectives that lost their peer."""
    world = len(workers)
    own = [r for r in sorted(errors) if not _is_communication_error(errors[r][0])]
    if own:
        return own[0], *errors[own[0]]
    silent = [r for r, w in enumerate(workers) if r not in done and r not in errors and w.exitcode not in (None, 0)
              and w.exitcode != -15]  # -15: stopped here after another rank failed
    if silent:
        r = silent[0]
        return r, RankError(f"fit process {r} of {world} ended with exit status {workers[r].exitcode} without "
                            f"reporting an error (killed, or out of memory?); the other processes were stopped"), ""
    if errors:
        r = min(errors)
        return r, *errors[r]
    return 0, RankError(f"the {world} fit processes ended without reporting a result"), ""


class RankError(RuntimeError):
    """A rank of :func:`run_on_processes` ended without reporting an exception (killed, out of memory)."""


def run_on_processes(fn: Callable, args: tuple, processes: int, *, threads: int | None = None,
                     device: torch.device | str = "cpu", poll: float = 0.2) -> Any:
    """``fn(*args)`` on ``processes`` ranks of a fresh local process group; returns rank 0's value.

    ``fn`` and ``args`` must pickle (a module-level function; tensors on the CPU): every rank gets a
    copy. Raises the first failing rank's exception (user errors as they are, anything else as
    :class:`RankError` with that rank's traceback) after stopping the other ranks.
    """
    import torch.multiprocessing as mp

    if processes < 1:
        raise ValueError(f"run_on_processes: processes is {processes}; it must be at least 1")
    if torch.device(device).type == "cuda" and processes > torch.cuda.device_count():
        raise ValueError(f"run_on_processes: {processes} processes on CUDA need {processes} GPUs (NCCL allows one "
                         f"rank per GPU), this machine has {torch.cuda.device_count()}; use fewer processes or "
                         f"fit on the CPU")
    context = mp.get_context("spawn")
    results = context.Queue()
    port = free_port()
    backend = backend_for(device)
    job = pickle.dumps((fn, args, current_limits()))  # the data checks in force here hold in the ranks too
    workers = [context.Process(target=_worker, args=(rank, processes, port, backend, threads, job, results),
                               name=f"mliap_torch-fit-rank{rank}", daemon=True) for rank in range(processes)]
    for w in workers:
        w.start()
    done: set[int] = set()
    errors: dict[int, Any] = {}
    value = None
    deadline = None  # after the first failure: a short grace to hear from the other ranks
    try:
        while len(done) + len(errors) < processes and (deadline is None or time.monotonic() < deadline):
            try:
                rank, status, payload = results.get(timeout=poll)
            except queue.Empty:
                if deadline is None and any(w.exitcode is not None and r not in done
                                            for r, w in enumerate(workers)):
                    deadline = time.monotonic() + FAILURE_GRACE
                continue
            if status == "ok":
                done.add(rank)
                if rank == 0:
                    value = pickle.loads(payload)
            else:
                errors[rank] = pickle.loads(payload)
                deadline = deadline or time.monotonic() + FAILURE_GRACE
    finally:
        if len(done) < processes:
            for w in workers:
                if w.is_alive():
                    w.terminate()
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
                w.join()
        results.close()
    if len(done) < processes:
        rank, exc, trace = _root_cause(workers, done, errors)
        from ..errors import UserError

        if not isinstance(exc, (UserError, RankError)):
            exc.add_note(f"(raised on fit process {rank} of {processes}; its traceback:)\n{trace.rstrip()}")
        raise exc
    return value
