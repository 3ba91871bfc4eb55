#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install mliap_torch into it.
# Idempotent: a second run with an unchanged pyproject.toml returns in well under a second.
# torch is installed first at 2.13.0 so that pip never swaps in a multi-GB CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MLIAP_TORCH_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${MLIAP_TORCH_TORCH_SPEC:-torch==2.13.0}"
STAMP="$VENV/.mliap_torch_installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16) $TORCH_SPEC"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "[setup] creating virtual environment $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi
echo "[setup] installing $TORCH_SPEC and mliap_torch[test] into $VENV (first run: about 2 minutes)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
fi
"$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]"
"$VENV/bin/python" -m pip install --quiet --pre "python-ace>=0.4.0rc1" \
    || echo "[setup] warning: python-ace (pyace) could not be installed; ACE reference tests will fail"
echo "$want" > "$STAMP"
echo "[setup] done: $("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)')"
