"""``torch.load(..., weights_only=True)`` with a short, honest reason when a file is refused.

torch's own message for a refused file advises re-running with ``weights_only=False``; for files from
elsewhere that is exactly the code execution this module exists to prevent, so the reason shown is
only what was refused (``Unsupported global: GLOBAL io.open``) or that the file is not a torch file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNPICKLER = re.compile(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", re.S)


def refusal_reason(exc: BaseException) -> str:
    """What ``torch.load(weights_only=True)`` refused or failed on, in one line."""
    text = str(exc).strip()
    refused = _GLOBAL.search(text)
    if refused:
        return f"it refers to {refused.group(1)}, which is code, not plain tensors and containers"
    detail = _UNPICKLER.search(text)
    if detail:
        return f"it is not a file written by torch.save ({' '.join(detail.group(1).split())})"
    return text.splitlines()[0] if text else type(exc).__name__


def load_weights_only(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Read ``path`` with ``weights_only=True``; errors propagate (see :func:`refusal_reason` for messages)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)
