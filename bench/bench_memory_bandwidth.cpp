// This machine's memory bandwidth, for the ratios the other benchmarks print: a streaming read (sum), a
// streaming write (fill) and a copy (memcpy), over 256 MiB, with 1 and 2 threads (std::thread, one buffer
// slice each). Bytes/s counts bytes read plus bytes written.
#include <benchmark/benchmark.h>

#include <cstring>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBytes = size_t(256) << 20;

template <typename Body>
void on_threads(int threads, Body body) {
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  for (auto& th : pool) th.join();
}

void BM_read(benchmark::State& state) {
  const int threads = int(state.range(0));
  std::vector<uint64_t> buf(kBytes / 8, 1);
  std::vector<uint64_t> sums(size_t(threads) * 8);
  const size_t per = buf.size() / threads;
  for (auto _ : state) {
    on_threads(threads, [&](int t) {
      uint64_t a = 0, b = 0, c = 0, d = 0;
      const uint64_t* p = buf.data() + t * per;
      for (size_t i = 0; i < per; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
      }
      sums[size_t(t) * 8] = a + b + c + d;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kBytes));
}

void BM_write(benchmark::State& state) {
  const int threads = int(state.range(0));
  std::vector<uint8_t> buf(kBytes, 1);
  const size_t per = buf.size() / threads;
  for (auto _ : state) {
    on_threads(threads, [&](int t) { std::memset(buf.data() + t * per, t + 2, per); });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kBytes));
}

void BM_copy(benchmark::State& state) {
  const int threads = int(state.range(0));
  std::vector<uint8_t> src(kBytes, 1), dst(kBytes, 0);
  const size_t per = src.size() / threads;
  for (auto _ : state) {
    on_threads(threads, [&](int t) { std::memcpy(dst.data() + t * per, src.data() + t * per, per); });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(2 * kBytes));
}

}  // namespace

BENCHMARK(BM_read)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_write)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_copy)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
