// The core MXFP4 kernels per CPU level, single thread, on data that fits in L2 (kernel speed) and on data
// well beyond the last-level cache (memory speed). Bytes/s counts bytes read plus bytes written.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "bench_util.h"
#include "cpu_isa.h"
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
