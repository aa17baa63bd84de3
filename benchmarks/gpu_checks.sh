#!/usr/bin/env bash
# The GPU checks as one command for a lent GPU machine (see docs/scaling.md, "GPU checks"), each step under a
# time cap so the whole fits one 10-minute call. Prepare here with benchmarks/gpu_prepare.sh, then run there
# with .gpu carried:   bash benchmarks/gpu_checks.sh [step ...]   (steps: tf32 corruptions scale suite; all)
# Output in $OUT (else gpu-out/): gpu_checks.log, perf.csv (rows to add to results/perf/perf.csv),
# scale-results.csv and scale-checks.csv (the trained default models through the scale suite on the GPU).
# The machine's own python3 and torch are used; the wheels in .gpu/whl add what its image lacks.
cd "$(dirname "$0")/.."
PY=${GPU_CHECKS_PY:-python3}
OUT=${OUT:-gpu-out}
N_SCALE=${N_SCALE:-1000}  # cluttered test images per cell of the scale run of the default models
N_SUITE=${N_SUITE:-1000}  # ImageNet-sized synthetic images for gpu_suite.py (its target is for 5,000)
N_TF32=${N_TF32:-1000}  # cluttered test images for the TF32 comparison
SUITE_MODELS=${SUITE_MODELS:-resnet50@random mgnet_r50@random}
mkdir -p "$OUT"
SCRATCH=$(mktemp -d)
LOG="$OUT/gpu_checks.log"
export PYTHONUNBUFFERED=1 BENCH_CACHE=$PWD/.gpu/cache BENCH_FMNIST_DIR=$PWD/.gpu/fmnist
if [ -d .gpu/whl ] && [ -n "$(ls .gpu/whl)" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SCRATCH/site .gpu/whl/*.whl \
    && export PYTHONPATH=$SCRATCH/site:$PWD || { echo "wheel install failed" | tee -a "$LOG"; exit 1; }
else
  export PYTHONPATH=$PWD
fi
steps=${*:-tf32 corruptions scale suite}

step() {  # name, seconds, command...: run under a cap, log everything, keep going on failure
  local name=$1 cap=$2; shift 2
  echo "=== $name (cap ${cap}s) $(date -u +%FT%TZ)" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$cap" "$@" 2>&1 | tee -a "$LOG"
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$LOG"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
  $PY -c "import sys, torch, torchvision, numpy; print(sys.version.split()[0], torch.__version__, torchvision.__version__,
numpy.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
  nproc; } 2>&1 | tee -a "$LOG"
step imports 60 $PY -c "import bench.evaluation.runner, attacks, corruptions.reference, fvcore, torchattacks; print('imports ok')"
for s in $steps; do
  case $s in
    tf32) step tf32 90 $PY benchmarks/tf32_effect.py --n "$N_TF32" --out "$OUT/perf.csv" ;;
    corruptions) step corruptions 90 $PY benchmarks/perf.py --only corruptions --skip-e2e --out "$OUT/perf.csv" ;;
    scale)
      rm -rf "$SCRATCH/scale"
      step scale 150 $PY -m bench.cli run --suite scale --models mgnet_small mgbase_small resnet_small \
        --n-images "$N_SCALE" --out $SCRATCH/scale --no-report
      cp $SCRATCH/scale/results.csv "$OUT/scale-results.csv" 2>/dev/null
      cp $SCRATCH/scale/checks.csv "$OUT/scale-checks.csv" 2>/dev/null ;;
    suite) step suite 240 $PY benchmarks/gpu_suite.py --n "$N_SUITE" --models $SUITE_MODELS --out "$OUT/perf.csv" ;;
    *) echo "unknown step $s (tf32 corruptions scale suite)" | tee -a "$LOG" ;;
  esac
done
