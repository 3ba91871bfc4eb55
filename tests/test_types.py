"""mypy is clean on the package (the settings: ``[tool.mypy]`` in pyproject.toml, a basic level).

mypy is in the ``test`` extras, so ``scripts/setup_env.sh`` installs it and the test command runs this check.
Its cache goes to the test's temporary folder (a cold run: about 15 s), so the repository stays clean.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_mypy_is_clean(tmp_path: Path) -> None:
    assert importlib.util.find_spec("mypy") is not None, \
        "mypy is not installed: it is in the test extras (pip install -e '.[test]', or bash scripts/setup_env.sh)"
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy_cache"), "mliap_torch"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"
