"""Generated blocks of Markdown files: the text between a begin and an end marker (HTML comments such as
``<!-- mlearn-table:begin -->``) that a benchmark script rewrites while the prose around it stays."""
from __future__ import annotations

from pathlib import Path


def write_block(path: Path, block: str, begin: str, end: str, *, append_if_missing: bool = False) -> None:
    """Replace the text between ``begin`` and ``end`` in ``path`` by ``block``. Without the markers the
    block (with its markers) is appended to the file, created if absent, when ``append_if_missing``;
    otherwise that is a ``ValueError`` naming the file and the markers."""
    text = path.read_text() if path.is_file() else ""
    generated = f"{begin}\n{block}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + generated + rest.split(end, 1)[1]
    elif append_if_missing:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + generated + "\n"
    else:
        raise ValueError(f"{path}: no {begin} ... {end} block to write into")
    path.write_text(text)
