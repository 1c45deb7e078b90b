// The core FP8 kernels per CPU level, one thread: per-group quantization of bf16 (group 128) and the weight GEMM at
// N=5760, K=2880 for M=1 (skinny path) and M=64 (packed path), per-token x per-channel scales.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cpu_isa.h"
#include "fp8.h"
#include "fp8_gemm.h"

namespace core = mxkernels::core;

namespace {

using mxkernels::bench::skip_unsupported;

void BM_quantize_groups_bf16(benchmark::State& state, core::CpuIsa isa) {
  if (skip_unsupported(state, isa)) return;
  const int64_t n = state.range(0);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<uint16_t> x(static_cast<size_t>(n));
  for (auto& v : x) v = core::f32_to_bf16(dist(rng));
  std::vector<uint8_t> q(static_cast<size_t>(n));
  std::vector<float> s(static_cast<size_t>(n / 128));
  for (auto _ : state) {
    core::fp8_kernels(isa).quantize_groups(x.data(), core::FloatType::bf16, n / 128, 128, 1e-10f, false, q.data(), s.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * (n * 3 + n / 32));
}

void BM_gemm(benchmark::State& state, core::CpuIsa isa, bool prepacked) {
  if (skip_unsupported(state, isa)) return;
  const int64_t m = state.range(0), n = 5760, k = 2880;
  std::mt19937 rng(2);
  std::normal_distribution<float> dist;
  std::vector<float> a(static_cast<size_t>(m * k)), sa(static_cast<size_t>(m), 1.0f), sb(static_cast<size_t>(n), 0.01f);
  for (auto& v : a) v = dist(rng);
  std::vector<uint8_t> b(static_cast<size_t>(n * k));
  for (auto& v : b) v = core::reference::e4m3_from_f32(dist(rng) * 8.0f);
  std::vector<uint8_t> packed(b.size());
  core::prepack_fp8_weight(b.data(), k, n, k, 0, (n + 31) / 32, packed.data());
  std::vector<uint16_t> c(static_cast<size_t>(m * n));
  core::Fp8GemmProblem p;
  p.m = m; p.n = n; p.k = k; p.a = a.data(); p.lda = k; p.b = b.data(); p.ldb = k;
  p.a_scale.scale = sa.data(); p.a_scale.ld = 1; p.b_scale.scale = sb.data(); p.b_scale.ld = 1;
  if (prepacked) {
    p.b = packed.data();
    p.b_prepacked = true;
  }
  p.k_segment = k; p.c = c.data(); p.c_type = core::FloatType::bf16; p.ldc = n;
  for (auto _ : state) {
    core::fp8_gemm_kernels(isa).gemm(p, 0, n);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(state.iterations()) * 2.0 * m * n * k / 1e9, benchmark::Counter::kIsRate);
  state.counters["weight GB/s"] = benchmark::Counter(double(state.iterations()) * n * k / 1e9, benchmark::Counter::kIsRate);
}

void register_all() {
  for (core::CpuIsa isa : core::compiled_cpu_isas()) {
    const std::string name = core::cpu_isa_name(isa);
    benchmark::RegisterBenchmark(("fp8_quantize_groups_bf16/" + name).c_str(), BM_quantize_groups_bf16, isa)
        ->Arg(1 << 16)->Arg(1 << 25)->UseRealTime();
    benchmark::RegisterBenchmark(("fp8_gemm_n5760_k2880/" + name).c_str(), BM_gemm, isa, false)
        ->Arg(1)->Arg(8)->Arg(64)->UseRealTime();
    benchmark::RegisterBenchmark(("fp8_gemm_prepacked_n5760_k2880/" + name).c_str(), BM_gemm, isa, true)
        ->Arg(1)->Arg(8)->Arg(64)->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
