#!/usr/bin/env bash
# Command (b): set up .venv, build LAMMPS if it is not cached, run the whole test suite.
# Extra arguments go to pytest (e.g. `bash scripts/run_tests.sh -k bispectrum`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
bash scripts/build_lammps.sh
bash scripts/build_plugin.sh
exec .venv/bin/python -m pytest "$@"
