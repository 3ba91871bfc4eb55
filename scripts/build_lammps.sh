#!/usr/bin/env bash
# Build LAMMPS (4Feb2025 stable) as a shared library with ML-SNAP, ML-IAP (+ Python coupling),
# PYTHON, PLUGIN, MANYBODY and ML-PACE, and install its Python module into the project's environment.
#
# ML-PACE (pair_style pace) needs the PACE evaluator library, which LAMMPS' cmake downloads from
# github.com; instead it is built from the python-ace sdist (PyPI, `pip download`, version
# $PYTHON_ACE_VERSION, cached in <cache>/lammps/sources/), whose lib/ace bundles the same evaluator,
# yaml-cpp and cnpy, with scripts/ml_pace/CMakeLists.txt (passed to LAMMPS as -DLOCAL_ML-PACE).
#
# MPI: built with OpenMPI (Debian's libopenmpi-dev and openmpi-bin) so that
# `mpirun -np N .venv/bin/lmp -in in.lammps` runs N ranks. When they are missing and this runs as
# root with apt-get, they are installed (and the script says so); otherwise, or with
# LAMMPS_MPI=off, it falls back to a serial build (MPI stubs) and prints why. The mpirun that
# matches the build is linked as <cache entry>/mpirun (mliap_torch.lammps.mpirun_executable).
#
# The build is cached outside the repository in
#   ${MLIAP_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mliap_torch}/lammps/<version>-py<X.Y>-<options hash>/
# so a second run only re-links the Python module (seconds).
#
# Source, first found wins:
#   1. $LAMMPS_SRC: a LAMMPS source folder or tarball;
#   2. the Debian source package `lammps` (suite trixie), fetched with a private apt list that
#      reuses the mirror URI of this machine's Debian entry (the system's apt setup is untouched);
#   3. a git clone of the LAMMPS stable tag (where github.com is reachable).
#
# Usage: scripts/build_lammps.sh [--force]     (environment: PYTHON, MLIAP_TORCH_VENV, LAMMPS_SRC,
#                                                LAMMPS_JOBS, MLIAP_TORCH_CACHE, LAMMPS_MPI=on|off,
#                                                PYTHON_ACE_VERSION)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MLIAP_TORCH_VENV:-$ROOT/.venv}"
PY="${PYTHON:-$VENV/bin/python}"
LAMMPS_VERSION="4Feb2025"
DEBIAN_VERSION_MIN="20250204"
STABLE_TAG="stable_4Feb2025"
JOBS="${LAMMPS_JOBS:-$(nproc)}"
PYTHON_ACE_VERSION="${PYTHON_ACE_VERSION:-0.4.0rc1}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

say() { echo "[build_lammps] $*"; }
die() { echo "[build_lammps] ERROR: $*" >&2; exit 1; }

[[ -x "$PY" ]] || die "no Python at $PY; run scripts/setup_env.sh first (or set PYTHON)"
"$PY" -c "import Cython" 2>/dev/null || die "cython is missing in $PY (needed for MLIAP_ENABLE_PYTHON); pip install cython"
command -v cmake >/dev/null || die "cmake is missing (apt-get install cmake)"
command -v g++ >/dev/null || die "a C++ compiler (g++) is missing (apt-get install g++)"
PYVER="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"

openmpi_present() {
    command -v mpicxx >/dev/null && command -v mpirun >/dev/null && mpirun --version 2>/dev/null | grep -q "Open MPI"
}

# Sets MPI=on (OpenMPI found or installed) or MPI=off, and says why.
choose_mpi() {
    MPI=off
    if [[ "${LAMMPS_MPI:-on}" == "off" ]]; then
        say "serial build (MPI stubs): LAMMPS_MPI=off"
        return
    fi
    if ! openmpi_present; then
        if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
            say "serial build (MPI stubs): OpenMPI (mpicxx, mpirun) is missing and it cannot be installed here" \
                "(not root or no apt-get); install libopenmpi-dev openmpi-bin for an MPI build"
            return
        fi
        say "OpenMPI is missing: installing libopenmpi-dev openmpi-bin with apt-get (for the MPI build)"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin; } \
            > "${TMPDIR:-/tmp}/build_lammps_apt.log" 2>&1; then
            tail -5 "${TMPDIR:-/tmp}/build_lammps_apt.log"
            say "serial build (MPI stubs): apt-get could not install libopenmpi-dev openmpi-bin"
            return
        fi
        openmpi_present || { say "serial build (MPI stubs): OpenMPI still not found after apt-get"; return; }
    fi
    MPI=on
    MPIRUN="$(readlink -f "$(command -v mpirun)")"
    MPI_VERSION="$(mpirun --version 2>/dev/null | head -1)"
    say "MPI build with $MPI_VERSION ($MPIRUN)"
}
choose_mpi

CMAKE_OPTIONS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=on
    -DLAMMPS_EXCEPTIONS=on
    -DBUILD_MPI=$MPI
    -DBUILD_OMP=on
    -DPKG_ML-SNAP=on
    -DPKG_ML-IAP=on
    -DPKG_PYTHON=on
    -DMLIAP_ENABLE_PYTHON=on
    -DPKG_PLUGIN=on
    -DPKG_MANYBODY=on
    -DPKG_ML-PACE=on
    -DWITH_JPEG=off -DWITH_PNG=off -DWITH_FFMPEG=off
)
# The key holds the MPI choice twice: -DBUILD_MPI in the options hash, and the MPI library's version.
if [[ $MPI == on ]]; then
    OPTIONS_HASH="$(printf '%s\n' "${CMAKE_OPTIONS[@]}" "python-ace==$PYTHON_ACE_VERSION" "$MPI_VERSION" | sha256sum | cut -c1-10)"
    KEY="${LAMMPS_VERSION}-py${PYVER}-openmpi-${OPTIONS_HASH}"
else
    OPTIONS_HASH="$(printf '%s\n' "${CMAKE_OPTIONS[@]}" "python-ace==$PYTHON_ACE_VERSION" | sha256sum | cut -c1-10)"
    KEY="${LAMMPS_VERSION}-py${PYVER}-${OPTIONS_HASH}"
fi
CACHE_ROOT="${MLIAP_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mliap_torch}/lammps"
DEST="$CACHE_ROOT/$KEY"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

install_python_module() {
    # The lammps package (with lammps.mliap) plus liblammps.so inside it, found through a .pth file.
    rm -rf "$DEST/python"
    mkdir -p "$DEST/python"
    cp -r "$DEST/src/python/lammps" "$DEST/python/lammps"
    ln -sf "$DEST/build/liblammps.so" "$DEST/python/lammps/liblammps.so"
    echo "$DEST/python" > "$SITE/lammps_mliap_torch.pth"
    mkdir -p "$VENV/bin"
    ln -sf "$DEST/build/lmp" "$VENV/bin/lmp"
    rm -f "$DEST/mpirun"
    if [[ $MPI == on ]]; then
        ln -sf "$MPIRUN" "$DEST/mpirun"
    fi
    say "lmp -h: $("$VENV/bin/lmp" -h | grep -E '^MPI v' || echo 'no MPI line')"
    "$PY" - <<PYEOF
import lammps
lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
for pkg in ("ML-SNAP", "ML-IAP", "PYTHON", "PLUGIN", "MANYBODY", "ML-PACE"):
    assert lmp.has_package(pkg), f"LAMMPS in $DEST lacks package {pkg}"
print("[build_lammps] LAMMPS", lmp.version(), "from", lammps.__file__, "packages OK")
lmp.close()
PYEOF
}

if [[ $FORCE == 0 && -f "$DEST/.complete" ]]; then
    say "cached build found: $DEST"
    install_python_module
    say "lmp: $VENV/bin/lmp"
    exit 0
fi

mkdir -p "$CACHE_ROOT"
rm -rf "$DEST"
mkdir -p "$DEST"
WORK="$DEST/download"
mkdir -p "$WORK"

fetch_from_lammps_src() {
    local src="$1"
    if [[ -d "$src" ]]; then
        [[ -d "$src/cmake" && -d "$src/src" ]] || die "LAMMPS_SRC=$src is not a LAMMPS source folder (no cmake/ and src/)"
        say "source: folder $src"
        cp -a "$src" "$DEST/src"
    elif [[ -f "$src" ]]; then
        say "source: tarball $src"
        mkdir -p "$WORK/x" && tar -xf "$src" -C "$WORK/x"
        mv "$WORK"/x/* "$DEST/src"
    else
        die "LAMMPS_SRC=$src is neither a folder nor a file"
    fi
}

debian_mirror_uri() {
    # First URI of a Debian main-archive entry (not the security archive) in the system's apt setup.
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        uri="$(awk '/^URIs:/{for(i=2;i<=NF;i++) if ($i ~ /debian\/?$/ && $i !~ /security/) {print $i; exit}}' "$f")"
        [[ -n "$uri" ]] && { echo "$uri"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        uri="$(awk '$1 ~ /^deb(-src)?$/ {for(i=2;i<=NF;i++) if ($i ~ /^(https?|ftp|file):/) { if ($i ~ /debian\/?$/ && $i !~ /security/) {print $i; exit} else break }}' "$f")"
        [[ -n "$uri" ]] && { echo "$uri"; return 0; }
    done
    return 1
}

fetch_from_debian() {
    command -v apt-get >/dev/null || { say "no apt-get: skipping the Debian source package"; return 1; }
    local uri
    uri="$(debian_mirror_uri)" || { say "no Debian archive entry in /etc/apt: skipping the Debian source package"; return 1; }
    local apt="$WORK/apt"
    mkdir -p "$apt/lists/partial"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local signed=""
    [[ -f "$keyring" ]] && signed="[signed-by=$keyring] "
    echo "deb-src ${signed}${uri} trixie main" > "$apt/sources.list"
    local opts=(-o APT::Sandbox::User=root -o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$apt/lists")
    say "source: Debian package lammps (trixie) from $uri"
    apt-get "${opts[@]}" -qq update || { say "apt-get update of the trixie source list failed"; return 1; }
    local ver
    ver="$(apt-cache "${opts[@]}" showsrc lammps 2>/dev/null | awk '/^Version:/{print $2}' | sort -V | tail -1)"
    [[ -n "$ver" ]] || { say "no lammps source package in trixie"; return 1; }
    [[ "${ver%%+*}" > "$DEBIAN_VERSION_MIN" || "${ver%%+*}" == "$DEBIAN_VERSION_MIN" ]] \
        || { say "Debian lammps $ver is older than $DEBIAN_VERSION_MIN"; return 1; }
    say "downloading lammps $ver source (about 130 MB)"
    # Only the upstream tarball is needed; a missing .dsc (404 on some mirrors) is not fatal.
    (cd "$WORK" && apt-get "${opts[@]}" -qq source --download-only "lammps=$ver" 2>&1 || true)
    local orig
    orig="$(ls "$WORK"/lammps_*.orig.tar.* 2>/dev/null | head -1)"
    [[ -n "$orig" ]] || { say "download of the Debian source tarball failed"; return 1; }
    say "unpacking $(basename "$orig")"
    mkdir -p "$WORK/x" && tar -xf "$orig" -C "$WORK/x"
    mv "$WORK"/x/lammps-* "$DEST/src"
    rm -rf "$WORK/x" "$orig"
}

fetch_from_git() {
    command -v git >/dev/null || { say "no git: skipping the git clone"; return 1; }
    say "source: git clone of $STABLE_TAG"
    timeout 600 git clone --depth 1 --branch "$STABLE_TAG" https://github.com/lammps/lammps.git "$DEST/src" \
        || { say "git clone failed (github.com unreachable?)"; return 1; }
}

if [[ -n "${LAMMPS_SRC:-}" ]]; then
    fetch_from_lammps_src "$LAMMPS_SRC"
elif ! fetch_from_debian; then
    rm -rf "$DEST/src"
    fetch_from_git || die "no LAMMPS source: set LAMMPS_SRC to a LAMMPS $LAMMPS_VERSION folder or tarball, or give this machine access to a Debian mirror with the trixie suite or to github.com"
fi
rm -rf "$WORK"

# The PACE evaluator for ML-PACE from the python-ace sdist (see the header).
PACE_SDIST_DIR="$CACHE_ROOT/sources"
PACE_SDIST="$PACE_SDIST_DIR/python_ace-$PYTHON_ACE_VERSION.tar.gz"
if [[ ! -f "$PACE_SDIST" ]]; then
    say "downloading the python-ace $PYTHON_ACE_VERSION sdist (PACE evaluator sources for ML-PACE) with pip"
    mkdir -p "$PACE_SDIST_DIR"
    "$PY" -m pip download --quiet "python-ace==$PYTHON_ACE_VERSION" --no-binary python-ace --no-deps \
        -d "$PACE_SDIST_DIR" || die "pip could not download the python-ace $PYTHON_ACE_VERSION sdist from PyPI"
fi
[[ -f "$PACE_SDIST" ]] || die "pip download gave no $PACE_SDIST"
mkdir -p "$DEST/ml-pace/x"
tar -xzf "$PACE_SDIST" -C "$DEST/ml-pace/x"
mv "$DEST/ml-pace/x/python_ace-$PYTHON_ACE_VERSION/lib/ace" "$DEST/ml-pace/ace"
rm -rf "$DEST/ml-pace/x"
cp "$ROOT/scripts/ml_pace/CMakeLists.txt" "$DEST/ml-pace/CMakeLists.txt"

say "configuring (cmake) in $DEST/build with Python $PYVER ($PY)"
cmake -S "$DEST/src/cmake" -B "$DEST/build" "${CMAKE_OPTIONS[@]}" \
    -DPython_EXECUTABLE="$PY" -DLOCAL_ML-PACE="$DEST/ml-pace" -DCMAKE_INSTALL_PREFIX="$DEST/install" > "$DEST/cmake.log" 2>&1 \
    || { tail -30 "$DEST/cmake.log"; die "cmake configuration failed; full log: $DEST/cmake.log"; }
say "compiling with $JOBS jobs (7-17 minutes on 2 cores); log: $DEST/build.log"
start=$SECONDS
cmake --build "$DEST/build" -j "$JOBS" > "$DEST/build.log" 2>&1 &
pid=$!
while kill -0 $pid 2>/dev/null; do
    sleep 30
    pct="$(grep -o '^\[ *[0-9]*%\]' "$DEST/build.log" | tail -1 | tr -d '[] ')"
    say "  ... ${pct:-0%} after $((SECONDS - start)) s"
done
wait $pid || { tail -30 "$DEST/build.log"; die "compilation failed; full log: $DEST/build.log"; }
say "compiled in $((SECONDS - start)) s"
find "$DEST/build" -name '*.o' -delete
install_python_module
touch "$DEST/.complete"
say "done: $DEST (lmp linked as $VENV/bin/lmp)"
