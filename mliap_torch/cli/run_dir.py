"""Run folders that never collide, and resumed runs that continue in their own folder.

``mliap_torch/configs/train.yaml`` names the run folder ``${mliap_torch.run_dir:'outputs/<model>/<time>',${ckpt_path}}``.
The resolver :func:`claim_run_dir` creates the folder atomically (``mkdir`` fails if it exists) and,
when another run took that name in the same second, takes ``<time>_1``, ``<time>_2``, ... instead;
so simultaneous runs never write into one folder. With ``ckpt_path`` pointing into a run folder
(``<run>/checkpoints/<name>.ckpt`` next to ``<run>/config.yaml``) the resumed run continues in
``<run>``: its logs are appended to, and Lightning restores the best score of its checkpoints.
An explicit ``hydra.run.dir=...`` bypasses both.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import OmegaConf

from ..training.ranks import is_global_zero

RESOLVER = "mliap_torch.run_dir"
MAX_SUFFIX = 10_000

HYDRA_BOOKKEEPING = (".hydra",)
"""What Hydra writes into a run folder before the task starts (besides its ``*.log`` file)."""

_claimed: dict[tuple[str, str | None], str] = {}
_created: set[str] = set()


def checkpoint_run_folder(ckpt_path: str | Path) -> Path | None:
    """The run folder of a checkpoint at ``<run>/checkpoints/<name>.ckpt`` (with ``<run>/config.yaml``), else None."""
    path = Path(ckpt_path).expanduser().resolve()
    folder = path.parent.parent
    if path.parent.name == "checkpoints" and (folder / "config.yaml").is_file():
        return folder
    return None


def claim_run_dir(base: str, ckpt_path: str | None = None) -> str:
    """A run folder for this process: the checkpoint's run folder when resuming, else ``base`` created
    atomically (or ``base_<k>`` with the smallest free k). Repeated calls in one process give one answer.

    Processes other than rank 0 of a distributed run do not create anything (rank 0 does).
    """
    key = (base, None if ckpt_path is None else str(ckpt_path))
    if key in _claimed:
        return _claimed[key]
    folder = checkpoint_run_folder(ckpt_path) if ckpt_path else None
    if folder is not None:
        _claimed[key] = str(folder)
        return _claimed[key]
    root = Path(base)
    if not is_global_zero():
        return base
    root.parent.mkdir(parents=True, exist_ok=True)
    for k in range(MAX_SUFFIX):
        candidate = root if k == 0 else root.with_name(f"{root.name}_{k}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        _claimed[key] = str(candidate)
        _created.add(str(candidate.resolve()))
        return _claimed[key]
    raise FileExistsError(f"{root}: {MAX_SUFFIX} run folders of this name exist already")


def discard_if_unused(run_dir: str | Path) -> bool:
    """Remove ``run_dir`` when this process created it and nothing but Hydra's bookkeeping is in it (a run
    stopped by a configuration error before writing anything); True when removed."""
    folder = Path(run_dir).resolve()
    if str(folder) not in _created or not folder.is_dir():
        return False
    if any(p.name not in HYDRA_BOOKKEEPING and p.suffix != ".log" for p in folder.iterdir()):
        return False
    shutil.rmtree(folder)
    _created.discard(str(folder))
    return True


def register_resolver() -> None:
    """Make ``${mliap_torch.run_dir:...}`` available to Hydra configs."""
    OmegaConf.register_new_resolver(RESOLVER, claim_run_dir, replace=True)
