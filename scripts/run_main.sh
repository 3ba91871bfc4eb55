#!/usr/bin/env bash
# Command (a): set up .venv and LAMMPS, then fit the default model on the built-in data set and
# print its error table. Extra arguments are Hydra overrides (e.g. `model=snap_quadratic`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
bash scripts/build_lammps.sh
bash scripts/build_plugin.sh
exec .venv/bin/python train.py "$@"
