// This machine's arithmetic peaks, for the ratios the GEMM benchmarks print: fp32 FMA (AVX2 and AVX-512), int8
// dot products (AVX-512 VNNI vpdpbusd) and bf16 dot products (AVX-512 BF16 vdpbf16ps), 1 and 2 threads.
// Each thread runs 12 independent accumulator chains in registers; FLOP/s counts a multiply-add as 2 (for the
// dot products: 2 per multiplied pair). Levels this CPU lacks are skipped.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <thread>
#include <vector>

#include "cpu_isa.h"

namespace {

constexpr int64_t kIters = 1 << 22;

template <typename Body>
void on_threads(int threads, Body body) {
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(body);
  for (auto& th : pool) th.join();
}

#define MXK_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx2,fma"))) float fma_avx2() {
#define DECL(i) __m256 c##i = _mm256_set1_ps(float(i));
  MXK_CHAINS(DECL)
#undef DECL
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
  for (int64_t it = 0; it < kIters; ++it) {
#define STEP(i) c##i = _mm256_fmadd_ps(c##i, a, b);
    MXK_CHAINS(STEP)
#undef STEP
    __asm__ volatile("" ::: "memory");
  }
  __m256 s = _mm256_setzero_ps();
#define SUM(i) s = _mm256_add_ps(s, c##i);
  MXK_CHAINS(SUM)
#undef SUM
  return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"))) float fma_avx512() {
#define DECL(i) __m512 c##i = _mm512_set1_ps(float(i));
  MXK_CHAINS(DECL)
#undef DECL
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
  for (int64_t it = 0; it < kIters; ++it) {
#define STEP(i) c##i = _mm512_fmadd_ps(c##i, a, b);
    MXK_CHAINS(STEP)
#undef STEP
    __asm__ volatile("" ::: "memory");
  }
  __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, c##i);
  MXK_CHAINS(SUM)
#undef SUM
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512vnni"))) float dot_int8_vnni() {
#define DECL(i) __m512i c##i = _mm512_set1_epi32(i);
  MXK_CHAINS(DECL)
#undef DECL
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t it = 0; it < kIters; ++it) {
#define STEP(i) c##i = _mm512_dpbusd_epi32(c##i, a, b);
    MXK_CHAINS(STEP)
#undef STEP
    __asm__ volatile("" ::: "memory");
  }
  __m512i s = _mm512_setzero_si512();
#define SUM(i) s = _mm512_add_epi32(s, c##i);
  MXK_CHAINS(SUM)
#undef SUM
  return float(_mm512_reduce_add_epi32(s));
}

__attribute__((target("avx512f,avx512bf16"))) float dot_bf16() {
#define DECL(i) __m512 c##i = _mm512_set1_ps(float(i));
  MXK_CHAINS(DECL)
#undef DECL
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3F80), b = (__m512bh)_mm512_set1_epi16(0x3A83);
  for (int64_t it = 0; it < kIters; ++it) {
#define STEP(i) c##i = _mm512_dpbf16_ps(c##i, a, b);
    MXK_CHAINS(STEP)
#undef STEP
    __asm__ volatile("" ::: "memory");
  }
  __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, c##i);
  MXK_CHAINS(SUM)
#undef SUM
  return _mm512_reduce_add_ps(s);
}

bool has(const char* feature) { return mxkernels::core::cpu_features_string().find(feature) != std::string::npos; }

// ops_per_iter: FLOP (or int ops) per thread per loop iteration.
void run(benchmark::State& state, float (*fn)(), const char* needs, double ops_per_iter) {
  if (!has(needs)) {
    state.SkipWithError("this CPU lacks it");
    return;
  }
  const int threads = int(state.range(0));
  for (auto _ : state) {
    on_threads(threads, [&] { benchmark::DoNotOptimize(fn()); });
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(state.iterations()) * threads * ops_per_iter * kIters / 1e9,
                                                 benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(run, fp32_fma_avx2, &fma_avx2, "avx2", 12.0 * 8 * 2)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(run, fp32_fma_avx512, &fma_avx512, "avx512f", 12.0 * 16 * 2)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(run, int8_dot_vnni, &dot_int8_vnni, "avx512vnni", 12.0 * 64 * 2)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(run, bf16_dot_avx512bf16, &dot_bf16, "avx512bf16", 12.0 * 32 * 2)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_MAIN();
