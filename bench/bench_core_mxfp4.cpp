// The core MXFP4 kernels per CPU level, single thread, on data that fits in L2 (kernel speed) and on data
// well beyond the last-level cache (memory speed). Bytes/s counts bytes read plus bytes written.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "bench_util.h"
#include "cpu_isa.h"
#include "fp8_gemm.h"
#include "mxfp4.h"

namespace core = mxkernels::core;

namespace {

std::vector<uint16_t> random_bf16(int64_t n) {
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = core::f32_to_bf16(dist(rng));
  return v;
}

// n random bf16 values and room for their codes and scales.
struct Buffers {
  explicit Buffers(int64_t n) : x(random_bf16(n)), q(static_cast<size_t>(n / 2)), s(static_cast<size_t>(n / 32)) {}
  std::vector<uint16_t> x;
  std::vector<uint8_t> q, s;
};

using mxkernels::bench::skip_unsupported;

void BM_quantize_bf16(benchmark::State& state, core::CpuIsa isa, core::ScaleMode mode) {
  if (skip_unsupported(state, isa)) return;
  const int64_t n = state.range(0);
  Buffers b(n);
  auto& [x, q, s] = b;
  const core::Mxfp4Kernels& k = core::mxfp4_kernels(isa);
  for (auto _ : state) {
    k.quantize(x.data(), core::FloatType::bf16, n / 32, mode, q.data(), s.data());
    benchmark::DoNotOptimize(q.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * (n * 2 + n / 2 + n / 32));
  state.SetItemsProcessed(state.iterations() * n);
}

void BM_dequantize_bf16(benchmark::State& state, core::CpuIsa isa) {
  if (skip_unsupported(state, isa)) return;
  const int64_t n = state.range(0);
  Buffers b(n);
  auto& [x, q, s] = b;
  const core::Mxfp4Kernels& k = core::mxfp4_kernels(isa);
  k.quantize(x.data(), core::FloatType::bf16, n / 32, core::ScaleMode::rceil, q.data(), s.data());
  std::vector<uint16_t> out(static_cast<size_t>(n));
  for (auto _ : state) {
    k.dequantize(q.data(), s.data(), n / 32, core::FloatType::bf16, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * (n / 2 + n / 32 + n * 2));
  state.SetItemsProcessed(state.iterations() * n);
}

// W4A16 at K=2880 for M rows and N columns (N=512: the weights, 0.75 MB, stay in L2; N=5760: 8.8 MB, from L3 or
// memory after the first pass), plain or prepacked weights.
void BM_gemm_w4a16(benchmark::State& state, core::CpuIsa isa, bool prepacked, bool bf16_x) {
  if (mxkernels::bench::skip_unsupported(state, isa)) return;
  const int64_t m = state.range(0), n = state.range(1), k = 2880, blocks = k / 32;
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  std::uniform_int_distribution<int> byte(0, 255), exponent(120, 130);
  std::vector<float> a(static_cast<size_t>(m * k));
  for (auto& v : a) v = bf16_x ? core::bf16_to_f32(core::f32_to_bf16(dist(rng))) : dist(rng);
  std::vector<uint8_t> q(static_cast<size_t>(n * k / 2)), blob(static_cast<size_t>(n * blocks * 17));
  for (auto& v : q) v = uint8_t(byte(rng));
  uint8_t* scales = blob.data() + core::mxfp4_prepacked_scale_offset(n, k);
  for (int64_t i = 0; i < n * blocks; ++i) scales[i] = uint8_t(exponent(rng));
  core::prepack_mxfp4_codes(q.data(), k / 2, n, k, 0, (n + 3) / 4, blob.data());
  const float one = 1.0f;
  std::vector<uint16_t> c(static_cast<size_t>(m * n));
  core::Fp8GemmProblem p;
  p.m = m; p.n = n; p.k = k; p.a = a.data(); p.lda = k;
  p.b = prepacked ? blob.data() : q.data(); p.ldb = k / 2; p.b_prepacked = prepacked;
  p.b_codes = core::WeightCodes::e2m1;
  p.a_scale.scale = &one;
  p.b_scale.e8m0 = scales; p.b_scale.ld = blocks; p.b_scale.k_stride = 1;
  p.k_segment = 32; p.c = c.data(); p.c_type = core::FloatType::bf16; p.ldc = n;
  p.a_bf16_exact = bf16_x;
  for (auto _ : state) {
    core::fp8_gemm_kernels(isa).gemm(p, 0, n);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(state.iterations()) * 2.0 * m * n * k / 1e9, benchmark::Counter::kIsRate);
  state.counters["weight GB/s"] = benchmark::Counter(double(state.iterations()) * n * blocks * 17 / 1e9, benchmark::Counter::kIsRate);
}

constexpr int64_t kInCache = 64 * 1024;         // 128 KiB of bf16
constexpr int64_t kBeyondCache = 32 * 1024 * 1024;  // 64 MiB of bf16

void register_all() {
  for (core::CpuIsa isa : core::compiled_cpu_isas()) {
    const std::string isa_name = core::cpu_isa_name(isa);
    for (core::ScaleMode mode : {core::ScaleMode::floor, core::ScaleMode::rceil}) {
      benchmark::RegisterBenchmark(("quantize_bf16/" + isa_name + "/" + core::scale_mode_name(mode)).c_str(),
                                   BM_quantize_bf16, isa, mode)
          ->Arg(kInCache)
          ->Arg(kBeyondCache)
          ->UseRealTime();
    }
    benchmark::RegisterBenchmark(("dequantize_bf16/" + isa_name).c_str(), BM_dequantize_bf16, isa)
        ->Arg(kInCache)
        ->Arg(kBeyondCache)
        ->UseRealTime();
    for (bool prepacked : {false, true}) {
      for (bool bf16_x : {false, true}) {
        const std::string name = std::string(prepacked ? "gemm_w4a16_prepacked" : "gemm_w4a16") + (bf16_x ? "_bf16x" : "_f32x");
        benchmark::RegisterBenchmark((name + "_k2880/" + isa_name).c_str(), BM_gemm_w4a16, isa, prepacked, bf16_x)
          ->ArgsProduct({{1, 4, 8, 64}, {512, 5760, 46080}})
          ->UseRealTime();
      }
    }
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
