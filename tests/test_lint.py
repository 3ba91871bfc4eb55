"""ruff is clean on the repository (the rules: ``[tool.ruff]`` in pyproject.toml; files git ignores are skipped).

ruff is in the ``test`` extras, so ``scripts/setup_env.sh`` installs it and the test command runs this check.
Fix what it reports (``python -m ruff check --fix`` does the import order and the pyupgrade rewrites).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys

from conftest import ROOT


def test_ruff_check_is_clean() -> None:
    assert importlib.util.find_spec("ruff") is not None, \
        "ruff is not installed: it is in the test extras (pip install -e '.[test]', or bash scripts/setup_env.sh)"
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ruff check found problems:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"
