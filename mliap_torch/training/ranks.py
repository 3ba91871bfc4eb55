"""Which process of a (possibly not yet started) distributed run this is, from the launcher's environment."""
from __future__ import annotations

import os


def is_global_zero() -> bool:
    """Rank 0 of the run: SLURM's ``SLURM_PROCID`` when ``srun`` started several tasks, else Lightning's
    ``LOCAL_RANK``/``NODE_RANK`` (unset in the first process, set by Lightning in the ones it starts)."""
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        return int(os.environ["SLURM_PROCID"]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
