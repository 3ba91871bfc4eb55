"""Cache entries on disk: inter-process locks, atomic publication, read-or-build (the data-set cache of
:mod:`mliap_torch.data.cache` and the built-in data set's extxyz cache share these)."""
from __future__ import annotations

import glob
import logging
import os
import secrets
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout

from ..errors import DataError
from ..faults import kill_point

LOCK_NOTICE_S = 5.0
"""Seconds of waiting for another process's entry lock after which a line naming the lock is logged."""

log = logging.getLogger(__name__)

T = TypeVar("T")


class CacheEntryError(DataError):
    """A cache file that exists but fails validation: a checksum, the layout version, the stored key or
    the counts — a corrupt or cut-short file, or another entry's file. Never raised for a file that
    another process holds open or locked, nor for permission or I/O errors (those are raised as is)."""


_LOCKS: dict[Path, FileLock] = {}


def lock_file(path: str | Path) -> Path:
    """The lock file of the cache entry ``path``: ``<stem>.lock`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.lock")


@contextmanager
def entry_lock(path: str | Path) -> Iterator[None]:
    """Hold the inter-process lock of the cache entry ``path`` (:func:`lock_file`, a ``filelock.FileLock``).

    Re-entrant within a process (one lock object per entry). After :data:`LOCK_NOTICE_S` seconds of
    waiting for another process a warning naming the lock file is logged, and the wait goes on.
    """
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path not in _LOCKS:
        _LOCKS[path] = FileLock(lock_file(path))
    lock = _LOCKS[path]
    try:
        lock.acquire(timeout=LOCK_NOTICE_S)
    except Timeout:
        log.warning("waiting for %s: another process is writing %s", lock.lock_file, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def descriptors_folder(path: str | Path) -> Path:
    """The folder of the descriptor arrays stored with the data-set entry ``path``: ``<stem>.descriptors``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.descriptors")


def _temporary(target: Path) -> Path:
    return target.with_name(f"{target.stem}.tmp{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale_temporaries(path: str | Path) -> None:
    """Delete the temporaries of the entry ``path`` (``<stem>.tmp*`` beside it and in its descriptors
    folder) left by writers that were killed. Call it holding :func:`entry_lock`: every writer of the
    entry holds that lock while its temporary exists, so whatever is found belongs to a dead one."""
    path = Path(path)
    stale = list(path.parent.glob(f"{glob.escape(path.stem)}.tmp*"))
    stale += list(descriptors_folder(path).glob("*.tmp*"))
    for file in stale:
        file.unlink(missing_ok=True)
    if stale:
        log.info("removed %d stale temporary file(s) of %s: %s", len(stale), path, ", ".join(f.name for f in stale))


def publish(target: Path, write: Callable[[Path], object], kill_at: str | None = None) -> None:
    """Create or replace ``target`` atomically: ``write(temporary)`` (``<stem>.tmp<pid>-<token>`` beside
    it), flush it to disk, then rename it over ``target``. Readers see the old file or the new one,
    never a partial one, and a published file is never modified in place. ``kill_at`` names the
    :func:`~mliap_torch.faults.kill_point` between the write and the rename. Call it holding the
    entry's lock."""
    tmp = _temporary(target)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if kill_at is not None:
            kill_point(kill_at)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def read_or_build(path: Path, read: Callable[[], T | None], build: Callable[[], T]) -> T:
    """The entry ``path``: ``read()`` it, or build it once across processes.

    ``read`` returns None when the entry is absent and raises :class:`CacheEntryError` when it is
    invalid. A valid entry is read without the lock (readers never wait for one another). Otherwise,
    under :func:`entry_lock`: stale temporaries are removed, the entry is read again (another process
    may just have built it, while this one waited) and only if it is still absent or invalid —
    then with a warning naming the file — ``build()`` makes it.
    """
    try:
        found = read()
    except CacheEntryError:
        found = None
    if found is not None:
        return found
    with entry_lock(path):
        remove_stale_temporaries(path)
        try:
            found = read()
        except CacheEntryError as err:
            warnings.warn(f"{err}; rebuilding it", stacklevel=3)
            found = None
        return found if found is not None else build()
