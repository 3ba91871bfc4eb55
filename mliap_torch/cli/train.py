"""``python train.py [overrides]`` / ``mliap_torch train [overrides]``: Hydra entry point of training.

Configs ship inside the package, in ``mliap_torch/configs/`` (``$MLIAP_TORCH_CONFIGS`` overrides that),
so a wheel install trains from any folder.
The run folder is Hydra's output directory (a new one per run, see :mod:`mliap_torch.cli.run_dir`).
User errors — a bad override or config value, bad data, an unusable checkpoint, a diverged training
(any :class:`~mliap_torch.errors.UserError`) — print one paragraph and exit with status 2; anything
else is a bug and keeps its traceback (status 1).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mliap_torch.cli.run_dir import discard_if_unused, register_resolver
from mliap_torch.cli.schema import CONFIG_DIR, PACKAGE_CONFIG_DIR, validate
from mliap_torch.errors import USER_ERROR_STATUS, UserError

__all__ = ["CONFIG_DIR", "PACKAGE_CONFIG_DIR", "hydra_main", "main"]

register_resolver()
_task_started = False


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    """Validate ``cfg``, train, and return the test energy MAE (eV/atom) for sweepers."""
    global _task_started
    _task_started = True
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        typed = validate(cfg)
        from mliap_torch.training.run import run

        resolved = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))  # a DictConfig gives a dict
        result = run(typed, run_dir, resolved_config=resolved)
    except UserError as exc:
        discard_if_unused(run_dir)
        print(exc, file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_STATUS)
    if result is None:
        return None
    return result.metrics.get("test", {}).get("all", {}).get("energy_mae")


def main(argv: list[str] | None = None) -> None:
    """Run :func:`hydra_main` with ``argv`` as the command-line overrides (default: ``sys.argv[1:]``).

    ``sys.argv[0]`` becomes this file, so that Lightning's DDP launcher, which restarts
    ``sys.argv``, starts this entry point again in its worker processes.
    """
    if argv is not None:
        sys.argv = [__file__, *argv]
    else:
        sys.argv[0] = __file__
    try:
        hydra_main()
    except SystemExit as exc:
        # Hydra reports its own errors (an unknown override, a missing config group option) and
        # exits 1 before the task starts; those are user errors too.
        if exc.code == 1 and not _task_started:
            sys.exit(USER_ERROR_STATUS)
        raise


if __name__ == "__main__":
    main()
