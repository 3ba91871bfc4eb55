"""Running the real command line (``train.py``, ``mliap_torch export``) in a subprocess for the tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["descriptor.twojmax=2", "data.max_configs=40", "data.batch_size=4", "trainer.enable_progress_bar=false",
         "plots=false", "export.lammps=false"]
"""Overrides that make a run take seconds: 2Jmax 2, 40 configurations, no plots, no LAMMPS step."""


def _environment(cache: Path | None, env: dict[str, str] | None) -> dict[str, str]:
    """This environment, single-threaded, with Hydra's short errors, ``env`` and ``$MLIAP_TORCH_CACHE=cache``."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    if cache is not None:
        full_env["MLIAP_TORCH_CACHE"] = str(cache)
    return full_env


def run_cli(args: Sequence[str], *, cache: Path | None = None, env: dict[str, str] | None = None,
            cwd: Path = ROOT, timeout: float = 300, module: str | None = None) -> subprocess.CompletedProcess:
    """``python train.py args`` (or ``python -m module args``), single-threaded, with ``$MLIAP_TORCH_CACHE=cache``."""
    command = [sys.executable, "-m", module] if module else [sys.executable, str(ROOT / "train.py")]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=_environment(cache, env),
                          timeout=timeout)


def start_cli(args: Sequence[str], *, cache: Path | None = None, env: dict[str, str] | None = None
              ) -> subprocess.Popen:
    """``python train.py args`` started in the background (see :func:`run_cli`)."""
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_environment(cache, env))


def user_error(proc: subprocess.CompletedProcess) -> str:
    """The one-paragraph message of a run that failed with a user error (exit status 2, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert message, proc.stderr
    return message


def metrics(run_dir: Path) -> dict:
    """The summary of ``run_dir/metrics.json``."""
    return json.loads((run_dir / "metrics.json").read_text())["summary"]
