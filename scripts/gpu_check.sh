#!/usr/bin/env bash
# One prepared GPU check (docs/gpu.md): installs what the machine's python3 lacks from gpu_bundle/ (built here by
# `python scripts/gpu_bundle.py build`; never torch), prints nvidia-smi and torch's view of CUDA, runs the CUDA
# tests (tests/test_cuda.py), the bispectrum / ACE / exact-fit benchmarks with --device cuda and a CPU test
# selection under the machine's torch, each under its own timeout inside one time budget, and writes
#   environment.log tests.log bench_bispectrum.log bench_ace.log bench_fit.log summary.md
# (six files: the device runner brings back at most eight) to $OUT if set, else to OUT_DIR, else gpu_check_out/.
#
# Usage: bash scripts/gpu_check.sh [OUT_DIR] [--device auto|cuda|cpu] [--budget SECONDS] [--python PYTHON]
#   --device auto (default): cuda when torch sees a GPU, else the CPU, with a loud warning (a dry run of the
#            script, not a GPU result); --device cuda: CUDA or fail.
#   --budget: seconds for all steps together (default 285, $GPU_CHECK_BUDGET); a step gets at most what is left.
# Environment: GPU_BUNDLE (default gpu_bundle/ in the repo), GPU_CHECK_PYTHON (default python3),
#   GPU_CHECK_TIME_SCALE (multiplies every step's timeout, default 1: for a dry run on a slow or busy CPU machine).
# Exit status 0 when every step passed, 1 otherwise; steps go on after a failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICE=auto
BUDGET="${GPU_CHECK_BUDGET:-285}"
SCALE="${GPU_CHECK_TIME_SCALE:-1}"
PY="${GPU_CHECK_PYTHON:-python3}"
ARG_OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --device=*) DEVICE="${1#*=}"; shift ;;
        --budget) BUDGET="$2"; shift 2 ;;
        --budget=*) BUDGET="${1#*=}"; shift ;;
        --python) PY="$2"; shift 2 ;;
        --python=*) PY="${1#*=}"; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
        *) ARG_OUT="$1"; shift ;;
    esac
done
OUT_DIR="${OUT:-${ARG_OUT:-$ROOT/gpu_check_out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
BUNDLE="${GPU_BUNDLE:-$ROOT/gpu_bundle}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mliap_gpu_check.XXXXXX")"
SITE="$WORK/site"
STEPS="$WORK/steps.tsv"
: > "$STEPS"
for f in environment.log tests.log bench_bispectrum.log bench_ace.log bench_fit.log summary.md; do : > "$OUT_DIR/$f"; done

cd "$ROOT"
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
unset MLIAP_TORCH_SHARED_DATA                      # no ../shared there: tests that need it skip; bench-fit reads the bundle's
export MLIAP_TORCH_CACHE="$WORK/cache"             # built-in data set and other caches: fresh, inside WORK
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1            # the machine's own pytest plugins stay out; pytest-timeout is named
export CI=false                                    # tests that need LAMMPS/MPI/the plugin skip with the reason (none there)
START=$(date +%s)

# step NAME LIMIT LOG command...: run under `timeout` (at most what is left of the budget), append to LOG, record.
# The timeout sends SIGINT first, so that pytest still writes its JUnit file and summary of the tests that ran.
step() {
    local name="$1" limit log="$OUT_DIR/$3"
    limit=$(awk -v t="$2" -v s="$SCALE" 'BEGIN{printf "%d", t * s}')
    shift 3
    local left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -lt 15 ]; then
        printf '%s\tNOT RUN (budget of %ss spent)\t0\t%s\n' "$name" "$BUDGET" "$(basename "$log")" >> "$STEPS"
        echo "=== $name: not run, the ${BUDGET}s budget is spent" | tee -a "$log"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "=== $name (timeout ${limit}s): $*" | tee -a "$log"
    local t0 t1 rc status
    t0=$(date +%s.%N)
    timeout -s INT -k 15 "$limit" "$@" >> "$log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    case $rc in
        0) status=ok ;;
        124|137) status="TIMEOUT after ${limit}s" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    local secs; secs=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$secs" "$(basename "$log")" >> "$STEPS"
    echo "=== $name: $status in ${secs}s" | tee -a "$log"
}

ENV_LOG="$OUT_DIR/environment.log"
{
    echo "gpu_check.sh at $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n); repo $ROOT"
    if commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
        git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit="$commit (+ uncommitted changes)"
    else
        commit="unknown (not a git checkout)"
    fi
    echo "commit $commit"
    echo "python: $(command -v "$PY") ($("$PY" -V 2>&1)); bundle: $BUNDLE; work folder: $WORK; budget ${BUDGET}s; step timeouts x$SCALE"
} | tee -a "$ENV_LOG"
if [ ! -f "$BUNDLE/manifest.json" ]; then
    echo "ERROR: $BUNDLE/manifest.json is missing: build it with 'python scripts/gpu_bundle.py build' and carry gpu_bundle" | tee -a "$ENV_LOG"
fi
step nvidia-smi 20 environment.log nvidia-smi
step install-bundle 90 environment.log "$PY" scripts/gpu_bundle.py install "$SITE" --bundle "$BUNDLE"
step torch-info 60 environment.log "$PY" - <<'EOF'
import importlib, sys
import torch
print(f"python {sys.version.split()[0]}; torch {torch.__version__} at {torch.__file__}")
print(f"torch.version.cuda {torch.version.cuda}; cudnn {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}")
print(f"torch.cuda.is_available() = {torch.cuda.is_available()}; device count {torch.cuda.device_count()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs")
if torch.cuda.is_available():
    x = torch.randn(1000, 1000, dtype=torch.float64, device="cuda")
    print(f"  float64 matmul on cuda: ok ({float((x @ x).sum()):.3e})")
bad = 0
for name in ["numpy", "scipy", "h5py", "matplotlib", "ase", "vesin_torch", "hydra", "omegaconf", "lightning",
             "pytest", "pytest_timeout", "mliap_torch", "mliap_torch.training.run", "mliap_torch.cli.train"]:
    try:
        module = importlib.import_module(name)
        print(f"  import {name}: {getattr(module, '__version__', '')} {getattr(module, '__file__', '')}")
    except Exception as exc:  # report every import problem, not the first
        bad += 1
        print(f"  import {name}: FAILED {type(exc).__name__}: {exc}")
devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
for device in devices:   # mliap_torch builds pair lists on the CPU; vesin on CUDA is reported, not required
    try:
        from vesin_torch import NeighborList
        pts = torch.rand(20, 3, dtype=torch.float64, device=device) * 5
        box = torch.eye(3, dtype=torch.float64, device=device) * 5
        i, j = NeighborList(cutoff=2.0, full_list=True).compute(points=pts, box=box, periodic=True, quantities="ij")
        print(f"  vesin_torch neighbour list on {device}: {i.numel()} pairs")
    except Exception as exc:
        bad += device == "cpu"
        print(f"  vesin_torch neighbour list on {device}: FAILED {type(exc).__name__}: {exc}")
sys.exit(1 if bad else 0)
EOF

RESOLVED=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo none)
case "$DEVICE" in
    auto) DEVICE_USED=$RESOLVED ;;
    *) DEVICE_USED=$DEVICE ;;
esac
if [ "$DEVICE_USED" != "cuda" ]; then
    DEVICE_USED=cpu
    {
        echo "################################################################################"
        echo "# WARNING: torch sees no CUDA device here (or --device cpu was given).           #"
        echo "# The benchmarks run on the CPU and tests/test_cuda.py SKIPS: this is a dry run  #"
        echo "# of the script, not a GPU result.                                               #"
        echo "################################################################################"
    } | tee -a "$ENV_LOG"
fi
echo "device for the benchmarks: $DEVICE_USED (asked: $DEVICE; torch sees: $RESOLVED)" | tee -a "$ENV_LOG"

PYTEST=("$PY" -m pytest -p pytest_timeout -p no:cacheprovider -rs -q --timeout 300 -o addopts="")
# (a) the CUDA tests first: the GPU against the CPU, and a short Lightning run with trainer=gpu
step tests-cuda 120 tests.log "${PYTEST[@]}" --junitxml="$WORK/junit-cuda.xml" tests/test_cuda.py
# (b) the benchmarks
step bench-bispectrum-eager 60 bench_bispectrum.log "$PY" scripts/bench_bispectrum.py --device "$DEVICE_USED" \
    --modes eager --no-lammps --repeats 5
step bench-ace 45 bench_ace.log "$PY" scripts/bench_ace.py --device "$DEVICE_USED" --cells 10 --repeats 5
step bench-fit 75 bench_fit.log env MLIAP_TORCH_SHARED_DATA="$BUNDLE/data" "$PY" scripts/bench_fit.py \
    --device "$DEVICE_USED" --which linear quadratic --check
# (c) the CPU test selection under this machine's torch (descriptors, solvers, neighbours, fits, training, configs)
step tests-cpu-selection 120 tests.log "${PYTEST[@]}" -m "not slow" --junitxml="$WORK/junit-cpu.xml" \
    tests/test_bispectrum_gradients.py tests/test_ace.py tests/test_solvers.py tests/test_neighbors.py \
    tests/test_exact_fit.py tests/test_trainable_descriptors.py tests/test_zbl.py \
    tests/test_training.py tests/test_configs.py tests/test_cli_errors.py::test_unavailable_accelerator_is_a_config_error \
    tests/test_cli_errors.py::test_gpu_training_without_a_gpu_stops_before_reading_data
# (d) the bispectrum's Z kernels through torch.compile (compile time included in 'first call s')
step bench-bispectrum-compiled 90 bench_bispectrum.log "$PY" scripts/bench_bispectrum.py --device "$DEVICE_USED" \
    --modes compiled --systems Ta --no-lammps --repeats 5

"$PY" scripts/gpu_check_summary.py --steps "$STEPS" --work "$WORK" --out "$OUT_DIR" --device "$DEVICE_USED" \
    --asked "$DEVICE" --elapsed "$(($(date +%s) - START))" --budget "$BUDGET" > "$OUT_DIR/summary.md" 2>> "$ENV_LOG" \
    || { echo "summary failed; steps:" >> "$OUT_DIR/summary.md"; cat "$STEPS" >> "$OUT_DIR/summary.md"; }
cat "$OUT_DIR/summary.md"
echo "outputs in $OUT_DIR"
if grep -qv $'\tok\t' "$STEPS"; then exit 1; fi
exit 0
