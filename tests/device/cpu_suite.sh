#!/usr/bin/env bash
# The CPU suite on the device machine (another torch and CPU): builds against its python3's torch, runs
# pytest, the demo and the quantize benchmark, and writes logs to $OUT. googletest is not installed there,
# so the C++ tests stay in CI.
#   usage (from the repo root, with torchao's wheel carried in .whl/): bash tests/device/cpu_suite.sh
set -uo pipefail
OUT=${OUT:-/tmp/mxk-device}
mkdir -p "$OUT"
{
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)"
  lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed 's/Flags:.*\(avx512f\).*/Flags: (has avx512f)/'
  grep -o -E 'amx_[a-z0-9]+|avx512_bf16|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
} 2>&1 | tee "$OUT/machine.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
MXKERNELS_BUILD_DIR=/tmp/mxk-build MXKERNELS_BUILD_TESTS=OFF MXKERNELS_BUILD_BENCHMARKS=OFF \
  python3 -m pip install --no-build-isolation --no-deps -e . >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
python3 -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning tests/python 2>&1 | tee "$OUT/pytest.log" | tail -15
python3 -m mxkernels.demo 2>&1 | grep -v "^W1" | tee "$OUT/demo.log"
python3 bench/bench_quantize_mxfp4.py --threads 2 2>&1 | grep -v "^W1\|Failed to load" | tee "$OUT/bench_2threads.log"
python3 bench/bench_quantize_mxfp4.py --threads 16 2>&1 | grep -v "^W1\|Failed to load" | tee "$OUT/bench_16threads.log"
# FP8 GEMMs, plain and prepacked, on the default level (amx there) and on avx512_bf16; no google-benchmark
# there, so no peak ratios; torch._scaled_mm is skipped (its oneDNN fallback takes seconds per call there).
for isa in amx avx512_bf16; do
  for t in 2 16; do
    MXKERNELS_CPU_ISA=$isa python3 bench/bench_fp8_gemm.py --threads $t --ms 1,8,32,512 --no-peaks --skip-scaled-mm \
      --llc-mib 64 2>&1 | grep -v "^W1" | tee "$OUT/bench_fp8_${isa}_${t}threads.log"
  done
done
# MXFP4 GEMMs (W4A16 plain and prepacked, W4A4) on amx and avx512_bf16, 2 threads.
for isa in amx avx512_bf16; do
  MXKERNELS_CPU_ISA=$isa python3 bench/bench_mxfp4_gemm.py --threads 2 --no-peaks --llc-mib 64 2>&1 | grep -v "^W1" \
    | tee "$OUT/bench_mxfp4_${isa}.log"
done
# Fused MoE at gpt-oss-20b shapes on amx and avx512_bf16, 2 threads.
for isa in amx avx512_bf16; do
  MXKERNELS_CPU_ISA=$isa python3 bench/bench_moe.py --threads 2 --no-peaks 2>&1 | grep -v "^W1" \
    | tee "$OUT/bench_moe_${isa}.log"
done
