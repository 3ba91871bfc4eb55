"""Fault injection for tests: make the real process kill itself at a named point.

``MLIAP_TORCH_KILL_AT=<point>`` (or ``<point>:<n>``, the n-th time the point is reached, counting
from 1) makes :func:`kill_point` send SIGKILL to the current process there — no clean-up runs, as
when a machine loses power or the OOM killer strikes. Tests use it to show that a rerun or resume
recovers and that no file is left corrupt. Unset (always, outside such tests), :func:`kill_point`
only counts.

Points: ``builtin.generate`` (while generating the built-in data), ``builtin.write`` (cache file
written, not yet in place), ``cache.write`` (an HDF5 data-set cache file or descriptor file written, not yet in place),
``train.batch`` (before a training batch), ``fit.design.rank<r>`` (after each design chunk of rank r of
an exact fit; rank 0 outside a process group), ``export`` (model and metrics saved, LAMMPS files not yet).
"""
from __future__ import annotations

import os
import signal
from collections import Counter

KILL_ENV = "MLIAP_TORCH_KILL_AT"

_reached: Counter[str] = Counter()


def kill_point(name: str) -> None:
    """SIGKILL this process when ``$MLIAP_TORCH_KILL_AT`` is ``name`` or ``name:<n>`` and this is the n-th call."""
    _reached[name] += 1
    target = os.environ.get(KILL_ENV)
    if not target:
        return
    point, _, count = target.partition(":")
    if point == name and _reached[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
