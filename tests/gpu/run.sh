#!/usr/bin/env bash
# Every GPU check in one go, on any machine with an NVIDIA GPU, nvcc and a CUDA build of torch:
#   build pyxai against the machine's torch, CUDA parity tests, compute-sanitizer on each kernel,
#   the key benchmarks on CUDA. Results go to $OUT (default ./gpu_out). Budget: < 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
log() { echo "== $* ($(date +%T))" | tee -a "$OUT/summary.txt"; }

log "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$OUT/summary.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/summary.txt"

log "build (in place, against this machine's torch)"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-16}
start=$(date +%s)
$PY -m pip install -q ninja pybind11 >/dev/null 2>&1
$PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || { log "BUILD FAILED"; tail -50 "$OUT/build.log"; exit 1; }
log "build took $(( $(date +%s) - start )) s"
$PY -m pyxai.cli info | tee -a "$OUT/summary.txt"

log "CUDA parity tests (forward, backward, sync-debug)"
$PY -m pytest tests/gpu tests/lrp/test_cuda.py -q -p no:cacheprovider 2>&1 | tail -30 | tee -a "$OUT/summary.txt"

log "STEP on CUDA (r3d_18 timing, printed)"
$PY -m pytest tests/gpu/test_step_cuda.py -q -s -p no:cacheprovider -k timing 2>&1 | grep -E "STEP|passed|failed|Error" | tee -a "$OUT/summary.txt"

log "compute-sanitizer"
SAN=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
for tool in memcheck racecheck; do
  "$SAN" --tool "$tool" --error-exitcode 9 $PY tests/gpu/sanitize.py > "$OUT/sanitize_$tool.log" 2>&1
  echo "$tool exit $? : $(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/sanitize_$tool.log") clean summaries" | tee -a "$OUT/summary.txt"
  grep -E "ERROR SUMMARY|sanitize:" "$OUT/sanitize_$tool.log" | tail -3 | tee -a "$OUT/summary.txt"
done

log "benchmarks (CUDA)"
timeout 240 $PY -m pyxai.cli bench --device cuda --quick --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.txt" | tail -60
log "done"
