#!/usr/bin/env bash
# The CUDA suite on the device machine, in one call: builds with MXKERNELS_CUDA=ON against its python3's (CUDA)
# torch, runs the torch-free kernel check (also under compute-sanitizer), the CUDA pytest file and the MXFP4Linear
# tests, then bench/bench_cuda.py. Logs go to $OUT.
#   usage (from the repo root; torchao's wheel in .whl/ adds the to_mx peer): bash tests/gpu/run.sh [bench-args...]
set -uo pipefail
OUT=${OUT:-/tmp/mxk-gpu}
BUILD=${MXKERNELS_GPU_BUILD_DIR:-/tmp/mxk-cuda}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version | tail -2
} 2>&1 | tee "$OUT/machine.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
start=$(date +%s)
MXKERNELS_CUDA=ON MXKERNELS_BUILD_DIR="$BUILD" MXKERNELS_BUILD_TESTS=OFF MXKERNELS_BUILD_BENCHMARKS=OFF \
  python3 -m pip install --no-build-isolation --no-deps -v -e . >"$OUT/build.log" 2>&1 \
  || { grep -E "error|Error" "$OUT/build.log" | head -30; tail -30 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s" | tee -a "$OUT/machine.txt"
python3 -c "import mxkernels; assert mxkernels.has_cuda_kernels(), 'built without CUDA kernels'" || exit 1
cuobjdump --dump-resource-usage "$BUILD"/CMakeFiles/mxkernels_core_cuda.dir/csrc/core/cuda/*.o > "$OUT/resources.txt" 2>&1

rc=0
"$BUILD/cuda_core_check" 2>&1 | tee "$OUT/cuda_core_check.log" || rc=1
# racecheck and synccheck also watch the wgmma kernel's hand-over of stages between warpgroups (named barriers).
for tool in memcheck racecheck synccheck; do
  compute-sanitizer --tool $tool --error-exitcode 9 "$BUILD/cuda_core_check" >"$OUT/$tool.log" 2>&1 \
    && echo "compute-sanitizer $tool: clean" || { echo "compute-sanitizer $tool: FAILED"; tail -30 "$OUT/$tool.log"; rc=1; }
done
python3 -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning tests/python/test_cuda.py \
  tests/python/test_mxfp4_linear.py 2>&1 | tee "$OUT/pytest.log" | tail -25
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
if [ "${MXKERNELS_GPU_PROFILE:-0}" = 1 ]; then
  # Hardware counters of one run of each kernel (the clocks left as they are), and the SASS of the kernels.
  ncu --clock-control none -k regex:'w4a16|quantize_mxfp4' -s 1 -c 8 --section SpeedOfLight --section Occupancy \
    --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
    python3 tests/gpu/profile_w4a16.py >"$OUT/ncu.txt" 2>&1 || echo "ncu failed: $(tail -3 "$OUT/ncu.txt")"
  cuobjdump -sass "$BUILD"/CMakeFiles/mxkernels_core_cuda.dir/csrc/core/cuda/w4a16_bf16_to_bf16.cu.o >"$OUT/sass.txt" 2>&1
fi
python3 bench/bench_cuda.py "$@" 2>&1 | grep -v "^W1" | tee "$OUT/bench_cuda.log"
# The kernel variants side by side, torch-free (tests/gpu/tune_cuda.cu): the bf16 quantizer checked against the
# float32 kernel on 235 million values, the floors (a plain stream of the weight bytes, mma.sync's rate) and the
# W4A16 shapes and splits.
nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -DMXKERNELS_CUDA_SM90A -Icsrc/core -Icsrc -I"$(dirname "$(dirname "$(command -v nvcc)")")/include/cccl" \
  --expt-relaxed-constexpr tests/gpu/tune_cuda.cu csrc/core/cuda/quantize.cu -o /tmp/tune_cuda >"$OUT/tune_build.log" 2>&1 \
  && /tmp/tune_cuda quick >"$OUT/tune_cuda.log" 2>&1 || { echo "tune_cuda failed"; tail -5 "$OUT/tune_cuda.log"; rc=1; }
grep -q "differ from the f32 kernel" "$OUT/tune_cuda.log" && ! grep "differ from the f32 kernel" "$OUT/tune_cuda.log" | grep -vq " 0 bytes differ" \
  || { echo "bf16 quantizer differs from the float32 kernel"; rc=1; }
exit $rc
