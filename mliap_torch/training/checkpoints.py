"""Lightning checkpoints of mliap_torch runs, read without executing code from the file.

Every checkpoint is read with ``torch.load(..., weights_only=True)``, which refuses pickled code; a
file that needs more is reported as unsafe, never loaded. Resuming also checks that the checkpoint
was written for the model being trained.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..safe_load import load_weights_only, refusal_reason


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` as plain tensors and containers (``weights_only=True``).

    Raises:
        CheckpointError: missing, unreadable, not safe (it holds code or arbitrary objects), or not a
            checkpoint of mliap_torch's LightningModule.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path {path}: no such checkpoint file.")
    try:
        blob = load_weights_only(path)
    except Exception as exc:
        raise CheckpointError(f"ckpt_path {path}: the checkpoint cannot be loaded safely (it is read with "
                              f"weights_only=True, which refuses pickled code and arbitrary objects; the file is "
                              f"damaged or was not written by mliap_torch): {refusal_reason(exc)}.") from None
    if not isinstance(blob, dict) or "state_dict" not in blob or "potential_settings" not in (
            blob.get("hyper_parameters") or {}):
        raise CheckpointError(f"ckpt_path {path}: not a checkpoint of a mliap_torch training run (no state_dict "
                              f"or potential settings in it).")
    return blob


def _differences(saved: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two settings trees differ."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        return [d for k in sorted(set(saved) | set(wanted), key=str)
                for d in _differences(saved.get(k), wanted.get(k), f"{prefix}{k}.")]
    if isinstance(saved, (list, tuple)) and isinstance(wanted, (list, tuple)) and len(saved) == len(wanted):
        return [d for k, (a, b) in enumerate(zip(saved, wanted)) for d in _differences(a, b, f"{prefix}{k}.")]
    return [] if saved == wanted else [prefix.rstrip(".")]


def check_resumable(path: str | Path, blob: dict[str, Any], potential_settings: dict[str, Any]) -> None:
    """CheckpointError unless the checkpoint was written for a potential with ``potential_settings``."""
    saved = blob["hyper_parameters"]["potential_settings"]
    differences = _differences(saved, potential_settings)
    if differences:
        shown = ", ".join(differences[:5]) + (" ..." if len(differences) > 5 else "")
        raise CheckpointError(f"ckpt_path {path}: the checkpoint was written for a different model (settings "
                              f"differ in {shown}); resume with the configuration of that run (its config.yaml), "
                              f"or drop ckpt_path to start a new run.")


def best_weights(run_dir: Path, best_model_path: str | None) -> dict[str, torch.Tensor] | None:
    """The state dict of the run's best checkpoint, or None when there is none in ``run_dir/checkpoints``.

    ``best_model_path`` comes from the checkpoint callback (and, after a resume, from the checkpoint
    file): only a path inside this run's ``checkpoints/`` folder is read, and only safely.
    """
    if not best_model_path:
        return None
    best = Path(best_model_path).resolve()
    folder = (Path(run_dir) / "checkpoints").resolve()
    if best.parent != folder or not best.is_file():
        return None
    return load_checkpoint(best)["state_dict"]
