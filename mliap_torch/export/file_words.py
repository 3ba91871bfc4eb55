"""Words of SNAP / ML-IAP text files as LAMMPS reads them, and numbers written so they read back exactly.

``#`` starts a comment, quotes are stripped, blank lines are skipped; errors name the file and line.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SnapFileError", "FileLine", "file_lines", "parse_number", "format_float"]


class SnapFileError(ValueError):
    """A SNAP / ML-IAP file that LAMMPS would reject (the message names file and line)."""


@dataclass
class FileLine:
    """One non-blank line: its file, 1-based number and words."""

    path: Path
    number: int
    words: list[str]

    def error(self, message: str) -> SnapFileError:
        return SnapFileError(f"{self.path}:{self.number}: {message}")


def file_lines(path: str | Path) -> Iterator[FileLine]:
    """Non-blank lines of a file with comments and quotes removed, split into words."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, raw in enumerate(fh, start=1):
            text = raw.split("#", 1)[0].replace('"', " ").replace("'", " ")
            words = text.split()
            if words:
                yield FileLine(path, number, words)


def parse_number(line: FileLine, word: str, what: str, integer: bool = False) -> float | int:
    try:
        if integer:
            value = float(word)
            if value != int(value):
                raise ValueError
            return int(value)
        value = float(word)
    except ValueError:
        raise line.error(f"{what}: expected {'an integer' if integer else 'a number'}, got {word!r}") from None
    if not math.isfinite(value):
        raise line.error(f"{what}: {word!r} is not finite")
    return value


def format_float(x: float) -> str:
    """The shortest text that reads back as the same double."""
    return repr(float(x))
