"""Data sets shipped as tar archives (FitSNAP's ``WBe_PRB2019/JSON.tar.gz``): unpacked once into the cache.

A reader given an archive reads the folder :func:`unpacked` returns: the archive is extracted (tar's
``data`` filter: no absolute paths, links out of the folder or devices) into
``${MLIAP_TORCH_CACHE:-~/.cache/mliap_torch}/archives/<key>``, keyed by the archive's resolved path,
size and modification time, through a temporary folder renamed into place, so that concurrent processes
(DDP ranks) each find either nothing or the complete tree.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def is_archive(path: str | Path) -> bool:
    """True for a file named ``*.tar.gz``, ``*.tgz`` or ``*.tar``."""
    p = Path(path)
    return p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES)


def unpacked(path: str | Path) -> Path:
    """The folder holding ``path``'s contents (extracted on first use); an archive whose entries all lie
    in one top folder (``JSON/...``) gives that folder."""
    archive = Path(path).resolve()
    stat = archive.stat()
    key = hashlib.sha256(f"{archive}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = Path(os.environ.get("MLIAP_TORCH_CACHE", "~/.cache/mliap_torch")).expanduser() / "archives" / key
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")
            try:
                scratch.rename(target)
            except OSError:
                if not target.is_dir():   # not another process's complete copy: a real failure
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target
