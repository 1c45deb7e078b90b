// Kernel variants side by side on the device, torch-free: the MXFP4 quantizer of bf16 (checked bit for bit against
// the float32 kernel on the same values, timed against a device-to-device copy) and W4A16 kernel variants (checked
// against a float64 reference within the documented bound, timed from CUDA-graph replays over rotated weights).
// A tuning tool for picking tile shapes and kernel parameters; the tests and bench/bench_cuda.py are the record.
// TUNE_F16=1 times the library's W4A16 kernels on float16 activations and outputs instead (err/bound 0.064-0.076 on
// the H100: bench/RESULTS.md, nineteenth pass).
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -DMXKERNELS_CUDA_SM90A -Icsrc/core -Icsrc -I$CUDA/include/cccl --expt-relaxed-constexpr \
//     tests/gpu/tune_cuda.cu csrc/core/cuda/quantize.cu -o /tmp/tune_cuda && /tmp/tune_cuda
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "../cuda/check_cuda.h"
#include "cuda/cuda_kernels.h"
#include "cuda/w4a16_launch.cuh"

using namespace mxkernels::core;
using namespace mxkernels::core::cuda;

__device__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull + seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return uint32_t(z ^ (z >> 31));
}

// bf16 values over many binades, with zeros and ties mixed in, and infinities and NaN where `specials`.
__global__ void fill_bf16(uint16_t* x, int64_t n, uint32_t seed, int exp_lo, int exp_span, bool specials = true) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t h = hash32(uint64_t(i), seed);
    uint32_t e = uint32_t(exp_lo) + (h >> 8) % uint32_t(exp_span);
    uint16_t v = uint16_t(((h >> 31) << 15) | (e << 7) | (h & 0x7F));
    const uint32_t pick = (h >> 20) & 1023;
    if (pick == 0 && specials) v = 0x7F80;
    if (pick == 1 && specials) v = 0x7FC1;
    if (pick == 2) v = 0x8000;
    if (pick < 40 && pick >= 3) v = uint16_t((v & 0xFF80) | ((pick & 1) ? 0x20 : 0x60));  // mantissa ties
    x[i] = v;
  }
}

__global__ void fill_bytes(uint8_t* x, int64_t n, uint32_t seed, int lo, int span) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    x[i] = uint8_t(lo + hash32(uint64_t(i), seed) % uint32_t(span));
  }
}

__global__ void bf16_to_f32(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = __uint_as_float(uint32_t(x[i]) << 16);
  }
}

__global__ void count_diff(const uint8_t* a, const uint8_t* b, int64_t n, unsigned long long* count) {
  unsigned long long c = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    c += a[i] != b[i];
  }
  atomicAdd(count, c);
}

// out64[m][n] = sum_k x[m][k] w[n][k] and mag = sum |x w|, in float64, one thread per output.
__global__ void reference_gemm(const uint16_t* x, bool x_f16, const uint8_t* q, const uint8_t* s, int64_t m, int64_t n,
                               int64_t k, double* ref, double* mag) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= m * n) return;
  const int64_t row = i / n, col = i % n;
  double acc = 0, am = 0;
  for (int64_t kk = 0; kk < k; ++kk) {
    const uint32_t code = (q[col * (k / 2) + kk / 2] >> (4 * (kk & 1))) & 0xF;
    const double mags[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    double w = mags[code & 7] * ((code & 8) ? -1 : 1);
    w *= std::ldexp(1.0, int(s[col * (k / 32) + kk / 32]) - 127);
    const uint16_t xb = x[row * k + kk];
    const double xv = x_f16 ? double(__half2float(__ushort_as_half(xb))) : double(__uint_as_float(uint32_t(xb) << 16));
    acc += xv * w;
    am += fabs(xv * w);
  }
  ref[i] = acc;
  mag[i] = am;
}

__global__ void bf16_to_f16(uint16_t* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    x[i] = __half_as_ushort(__float2half_rn(__uint_as_float(uint32_t(x[i]) << 16)));
  }
}

float f16_to_float(uint16_t b) {
  const uint32_t sign = uint32_t(b >> 15) << 31, e = (b >> 10) & 31, f = b & 1023;
  float v = e == 0 ? std::ldexp(float(f), -24) : e == 31 ? (f ? NAN : INFINITY) : std::ldexp(float(1024 + f), int(e) - 25);
  return sign ? -v : v;
}

float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <typename F>
double time_graph(F fn, int calls, cudaStream_t st) {
  for (int i = 0; i < 3; ++i) fn(i);
  CHECK_CUDA(cudaStreamSynchronize(st));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < calls; ++i) fn(i);
  CHECK_CUDA(cudaStreamEndCapture(st, &graph));
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  CHECK_CUDA(cudaGraphLaunch(exec, st));
  CHECK_CUDA(cudaStreamSynchronize(st));
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  std::vector<float> ts;
  for (int r = 0; r < 7; ++r) {
    CHECK_CUDA(cudaEventRecord(a, st));
    CHECK_CUDA(cudaGraphLaunch(exec, st));
    CHECK_CUDA(cudaEventRecord(b, st));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms);
  }
  std::sort(ts.begin(), ts.end());
  CHECK_CUDA(cudaGraphExecDestroy(exec));
  CHECK_CUDA(cudaGraphDestroy(graph));
  return ts[3] * 1e-3 / calls;
}

__global__ void empty_kernel(int* out) {
  if (threadIdx.x == 1023) out[blockIdx.x] = 0;
}

// The skinny kernel's loads alone: lane t of quad g reads 16 bytes of block t of columns g and g + 8, every KW-th
// span, all loads issued before any use.
template <int KW, int U>
__global__ void __launch_bounds__(KW * 32) read_kernel(const uint8_t* w, int64_t ldw, int nb, uint32_t* out) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const uint8_t* w0 = w + (int64_t(blockIdx.x) * 16 + g) * ldw + 16 * t;
  const uint8_t* w1 = w0 + 8 * ldw;
  uint4 a[U], b[U];
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int c = warp + KW * u;
    const bool valid = 4 * c + t < nb;
    a[u] = valid ? __ldg(reinterpret_cast<const uint4*>(w0 + c * 64)) : make_uint4(0, 0, 0, 0);
    b[u] = valid ? __ldg(reinterpret_cast<const uint4*>(w1 + c * 64)) : make_uint4(0, 0, 0, 0);
  }
  uint32_t v = 0;
#pragma unroll
  for (int u = 0; u < U; ++u) v ^= a[u].x ^ a[u].y ^ a[u].z ^ a[u].w ^ b[u].x ^ b[u].y ^ b[u].z ^ b[u].w;
  if (v == 0x12345678u) out[blockIdx.x] = v;
}

// Plain streaming read of `bytes` (16 per lane per step, grid-stride).
__global__ void stream_kernel(const uint4* w, int64_t n16, uint32_t* out) {
  uint32_t v = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n16; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 a = __ldg(w + i);
    v ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (v == 0x12345678u) out[blockIdx.x] = v;
}

template <int RT, int KW, int U, int MIN_BLOCKS>
cudaError_t staged_skinny(const W4A16Problem& p, cudaStream_t stream) {
  return launch_skinny<__nv_bfloat16, __nv_bfloat16, RT, KW, U, MIN_BLOCKS>(p, stream);
}

template <typename T, typename OutT, int RT, int KW, int U, int MIN_BLOCKS>
cudaError_t launch_skinny_global_x(const W4A16Problem& p, cudaStream_t stream) {
  return launch_skinny<T, OutT, RT, KW, U, MIN_BLOCKS>(p, stream, false);
}

// The skinny kernel with each warp's next loads issued as its current ones arrive (CHAIN).
template <int RT, int KW, int U, int MIN_BLOCKS, bool X_SMEM>
cudaError_t chain_skinny(const W4A16Problem& p, cudaStream_t stream) {
  return launch_skinny<__nv_bfloat16, __nv_bfloat16, RT, KW, U, MIN_BLOCKS, true>(p, stream, X_SMEM);
}

// The same on float16 activations and outputs, the activations staged up to 2 rows as the library does.
cudaError_t chain_skinny_f16(const W4A16Problem& p, cudaStream_t stream) {
  return launch_skinny<__half, __half, 1, 8, 1, 3, true>(p, stream, p.m <= 2);
}

__global__ void stream_copy(const uint4* a, uint4* b, int64_t n16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n16; i += int64_t(gridDim.x) * blockDim.x) b[i] = a[i];
}

// Back-to-back independent bf16 MMAs: the tensor cores' rate for mma.sync on this chip.
__global__ void mma_peak(float* out, int iters) {
  uint32_t a[4] = {threadIdx.x, threadIdx.x * 3u, threadIdx.x * 5u, threadIdx.x * 7u};
  float d[8][4] = {};
  for (int i = 0; i < iters; ++i) {
#pragma unroll
    for (int j = 0; j < 8; ++j) mma_16816<__nv_bfloat16>(d[j], a, a[j & 3], a[(j + 1) & 3], d[j]);
  }
  float v = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) v += d[j][0] + d[j][1] + d[j][2] + d[j][3];
  if (v == 1.2345f) out[0] = v;
}

struct Variant {
  std::string name;
  std::function<cudaError_t(const W4A16Problem&, cudaStream_t)> launch;
  bool packed = false;  // on the weights of prepack_mxfp4_weight_cuda (mxfp4_cuda_layout.h)
};

// Codes [n][k/2] and scales [n][k/32] into the CUDA layout, one 16-byte block per thread.
__global__ void pack_weights(const uint8_t* q, const uint8_t* s, int64_t n, int64_t k, uint8_t* out) {
  const int64_t nb = k / 32;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * nb; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t col = i / nb, blk = i % nb;
    *reinterpret_cast<uint4*>(out + mxfp4_cuda_code_offset(col, blk, nb)) =
        *reinterpret_cast<const uint4*>(q + col * (k / 2) + blk * 16);
    out[mxfp4_cuda_scale_offset(col, blk, nb)] = s[col * nb + blk];
  }
}

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "quick";
  const bool profile = argc > 1 && std::string(argv[1]) == "profile";
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  for (int size = 2; size <= 4; ++size) {
    int fit = 0;
    CHECK_CUDA(wgmma_cluster_fit<WgmmaTile>(size, &fit));
    std::printf("wgmma kernel: %d clusters of %d run at once\n", fit, size);
    CHECK_CUDA((cluster_fit<&w4a16_wide<__half, __half, WideTile, false>>(WideTile::THREADS, WideTile::SMEM, size,
                                                                          &fit)));
    std::printf("wide kernel (float16): %d clusters of %d run at once\n", fit, size);
  }
  cudaStream_t st;
  CHECK_CUDA(cudaStreamCreate(&st));

  // ---- copy ----
  const size_t copy_bytes = size_t(1) << 30;
  void *src, *dst;
  CHECK_CUDA(cudaMalloc(&src, copy_bytes));
  CHECK_CUDA(cudaMalloc(&dst, copy_bytes));
  const double t_copy = time_graph([&](int) {
    stream_copy<<<4 * 132 * 4, 256, 0, st>>>(static_cast<const uint4*>(src), static_cast<uint4*>(dst), int64_t(copy_bytes / 16));
  }, 10, st);
  const double copy_rate = 2.0 * copy_bytes / t_copy;
  std::printf("copy: %.2f TB/s\n", copy_rate / 1e12);
  CHECK_CUDA(cudaFree(src));
  CHECK_CUDA(cudaFree(dst));

  // ---- quantize bf16 [16384, 7168] (not when only some M are asked for) ----
  if (!profile && argc <= 2) {
    const int64_t rows = 16384, k = 7168, n = rows * k;
    uint16_t* x;
    float* x32;
    uint8_t *q1, *s1, *q2, *s2;
    unsigned long long* diff;
    CHECK_CUDA(cudaMalloc(&x, n * 2));
    CHECK_CUDA(cudaMalloc(&x32, n * 4));
    CHECK_CUDA(cudaMalloc(&q1, n / 2));
    CHECK_CUDA(cudaMalloc(&q2, n / 2));
    CHECK_CUDA(cudaMalloc(&s1, n / 32));
    CHECK_CUDA(cudaMalloc(&s2, n / 32));
    CHECK_CUDA(cudaMalloc(&diff, 8));
    const double bytes = 2.0 * n + n / 2 + n / 32;
    for (int pass = 0; pass < 2; ++pass) {
      // pass 0: values over 40 binades (all the code paths); pass 1: the full exponent range
      fill_bf16<<<4096, 256, 0, st>>>(x, n, 17 + pass, pass == 0 ? 100 : 0, pass == 0 ? 40 : 255);
      bf16_to_f32<<<4096, 256, 0, st>>>(x, x32, n);
      for (ScaleMode mode : {ScaleMode::rceil, ScaleMode::floor, ScaleMode::ceil, ScaleMode::even}) {
        CHECK_CUDA(quantize_mxfp4(x, FloatType::bf16, rows, k, k, mode, q1, s1, st));
        CHECK_CUDA(quantize_mxfp4(x32, FloatType::f32, rows, k, k, mode, q2, s2, st));
        CHECK_CUDA(cudaMemsetAsync(diff, 0, 8, st));
        count_diff<<<1024, 256, 0, st>>>(q1, q2, n / 2, diff);
        count_diff<<<1024, 256, 0, st>>>(s1, s2, n / 32, diff);
        unsigned long long h = 0;
        CHECK_CUDA(cudaMemcpyAsync(&h, diff, 8, cudaMemcpyDeviceToHost, st));
        CHECK_CUDA(cudaStreamSynchronize(st));
        const double t = time_graph([&](int) { CHECK_CUDA(quantize_mxfp4(x, FloatType::bf16, rows, k, k, mode, q1, s1, st)); }, 20, st);
        std::printf("quantize bf16 mode %d pass %d: %.1f us, %.1f%% of copy, %llu bytes differ from the f32 kernel\n",
                    int(mode), pass, t * 1e6, bytes / t / copy_rate * 100, h);
      }
    }
    CHECK_CUDA(cudaFree(x));
    CHECK_CUDA(cudaFree(x32));
    CHECK_CUDA(cudaFree(q1));
    CHECK_CUDA(cudaFree(q2));
    CHECK_CUDA(cudaFree(s1));
    CHECK_CUDA(cudaFree(s2));
  }

  // ---- W4A16 ----
  const int64_t N = std::getenv("TUNE_N") ? std::atoll(std::getenv("TUNE_N")) : 5760, K = 2880;
  const int64_t wq_bytes = N * K / 2, ws_bytes = N * K / 32;
  const int copies = int(std::max<int64_t>(2, (3 * int64_t(prop.l2CacheSize) + wq_bytes - 1) / wq_bytes));
  uint8_t *wq, *ws, *ws_odd;
  CHECK_CUDA(cudaMalloc(&wq, wq_bytes * copies));
  CHECK_CUDA(cudaMalloc(&ws, ws_bytes * copies));
  CHECK_CUDA(cudaMalloc(&ws_odd, ws_bytes));
  fill_bytes<<<4096, 256, 0, st>>>(wq, wq_bytes * copies, 5, 0, 256);
  fill_bytes<<<4096, 256, 0, st>>>(ws, ws_bytes * copies, 6, 118, 12);
  fill_bytes<<<4096, 256, 0, st>>>(ws_odd, ws_bytes, 7, 60, 130);  // wide: many spans take the exact path
  // The same weights in the CUDA layout (N a multiple of 16; each tile padded to whole 128-byte lines, the padding
  // left as cudaMalloc gives it: the kernels do not read it).
  const int64_t wp_bytes = N / 16 * mxfp4_cuda_tile_bytes(K / 32);
  uint8_t *wp, *wp_odd;
  CHECK_CUDA(cudaMalloc(&wp, wp_bytes * copies));
  CHECK_CUDA(cudaMalloc(&wp_odd, wp_bytes));
  for (int c = 0; c < copies; ++c) pack_weights<<<4096, 256, 0, st>>>(wq + c * wq_bytes, ws + c * ws_bytes, N, K, wp + c * wp_bytes);
  pack_weights<<<4096, 256, 0, st>>>(wq, ws_odd, N, K, wp_odd);
  uint16_t* x;
  void* out;
  double *ref, *mag;
  const int64_t max_m = 1024;
  CHECK_CUDA(cudaMalloc(&x, max_m * K * 2));
  CHECK_CUDA(cudaMalloc(&out, max_m * N * 4));
  CHECK_CUDA(cudaMalloc(&ref, max_m * N * 8));
  CHECK_CUDA(cudaMalloc(&mag, max_m * N * 8));
  // Finite activations (an infinity or NaN in most rows would make most outputs NaN, and the check below vacuous).
  fill_bf16<<<1024, 256, 0, st>>>(x, max_m * K, 9, 122, 8, false);
  // TUNE_F16: the W4A16 variants named "f16" on float16 activations (the same values, exact in float16) and outputs;
  // the others are skipped (`profile` stays bf16). Float16 outputs below its normal range are rounded to steps of
  // 2^-24, which the checks' bounds add (out_floor).
  const bool f16 = std::getenv("TUNE_F16") != nullptr && !profile;
  const double out_floor = f16 ? std::ldexp(1.0, -25) : 0.0;
  if (f16) bf16_to_f16<<<1024, 256, 0, st>>>(x, max_m * K);
  const FloatType act_type = f16 ? FloatType::f16 : FloatType::bf16;
  auto out_to_float = [&](uint16_t b) { return f16 ? f16_to_float(b) : bf16_to_float(b); };

  if (profile) {
    // The library's kernels for ncu: for each M (`profile [M,M,...]`, default 128 and 1024), plain weights then the
    // CUDA layout, each launch on the next weight copy (read from memory, not the L2), twice over.
    std::vector<int64_t> ms;
    for (const char* c = argc > 2 ? argv[2] : "128,1024"; *c;) {
      ms.push_back(std::strtoll(c, const_cast<char**>(&c), 10));
      if (*c == ',') ++c;
    }
    W4A16Problem p;
    p.n = N, p.k = K, p.x = x, p.ldx = K, p.x_type = FloatType::bf16, p.ldw = K / 2, p.ldw_scales = K / 32;
    p.out = out, p.ldo = N, p.out_type = FloatType::bf16;
    int launch = 0;
    for (int rep = 0; rep < 2; ++rep) {
      for (int64_t m : ms) {
        p.m = m;
        for (bool packed : {false, true}) {
          const int c = launch++ % copies;
          p.w_packed = packed;
          p.w = packed ? wp + c * wp_bytes : wq + c * wq_bytes;
          p.w_scales = packed ? nullptr : ws + c * ws_bytes;
          CHECK_CUDA((launch_w4a16_typed<__nv_bfloat16, __nv_bfloat16>(p, st)));
        }
      }
    }
    CHECK_CUDA(cudaStreamSynchronize(st));
    return 0;
  }
  if (argc <= 2 || std::getenv("TUNE_FLOORS")) {  // the floors also with an M list where TUNE_FLOORS is set
    uint32_t* sink;
    CHECK_CUDA(cudaMalloc(&sink, 1 << 20));
    const double t_empty = time_graph([&](int) { empty_kernel<<<360, 256, 0, st>>>(reinterpret_cast<int*>(sink)); }, 4 * copies, st);
    const double t_read8 = time_graph([&](int i) { read_kernel<8, 3><<<360, 256, 0, st>>>(wq + (i % copies) * wq_bytes, K / 2, int(K / 32), sink); }, 4 * copies, st);
    const double t_read16 = time_graph([&](int i) { read_kernel<16, 2><<<360, 512, 0, st>>>(wq + (i % copies) * wq_bytes, K / 2, int(K / 32), sink); }, 4 * copies, st);
    std::printf("floors: empty kernel (360 x 256) %.2f us; the skinny loads alone: kw8 %.2f us (%.1f%% of copy), kw16 %.2f us\n",
                t_empty * 1e6, t_read8 * 1e6, wq_bytes / t_read8 / copy_rate * 100, t_read16 * 1e6);
    for (int warps : {4, 8, 16}) {
      const int iters = 4096;
      const double tm = time_graph([&](int) { mma_peak<<<132 * 2, 32 * warps, 0, st>>>(reinterpret_cast<float*>(sink), iters); }, 5, st);
      std::printf("mma.sync bf16 m16n8k16, %d warps x 2 blocks per SM: %.0f TFLOP/s\n", warps,
                  2.0 * 16 * 8 * 16 * 8 * double(iters) * warps * 264 / tm / 1e12);
    }
    for (int blocks : {132, 264, 528, 1056, 2112}) {
      const double ts = time_graph([&](int i) { stream_kernel<<<blocks, 256, 0, st>>>(reinterpret_cast<const uint4*>(wq + (i % copies) * wq_bytes), wq_bytes / 16, sink); }, 4 * copies, st);
      std::printf("floors: stream %lld bytes, %d blocks x 256: %.2f us (%.1f%% of copy)\n", (long long)wq_bytes, blocks, ts * 1e6, wq_bytes / ts / copy_rate * 100);
    }
  }
  std::vector<Variant> skinny = {
      {"library", launch_w4a16_typed<__nv_bfloat16, __nv_bfloat16>},
      {"library packed", launch_w4a16_typed<__nv_bfloat16, __nv_bfloat16>, true},
      {"library f16", launch_w4a16_typed<__half, __half>},
      {"library packed f16", launch_w4a16_typed<__half, __half>, true},
      {"chain rt1 f16", chain_skinny_f16},
      {"chain rt1 packed f16", chain_skinny_f16, true},
      {"skinny rt1 kw8 u2 b3 gx", launch_skinny_global_x<__nv_bfloat16, __nv_bfloat16, 1, 8, 2, 3>},
      {"chain rt1 kw8 u1 b3", chain_skinny<1, 8, 1, 3, true>},
      {"chain rt1 kw8 u1 b3 gx", chain_skinny<1, 8, 1, 3, false>},
      {"skinny rt1 kw8 u3 b3", staged_skinny<1, 8, 3, 3>},
      {"skinny rt1 kw8 u2 b3", staged_skinny<1, 8, 2, 3>},
      {"skinny rt1 kw8 u4 b2", staged_skinny<1, 8, 4, 2>},
      {"skinny rt1 kw4 u2 b6", staged_skinny<1, 4, 2, 6>},
      {"skinny rt1 kw4 u4 b4", staged_skinny<1, 4, 4, 4>},
      {"skinny rt1 kw16 u2 b1", staged_skinny<1, 16, 2, 1>},
      {"skinny rt1 kw16 u1 b2", staged_skinny<1, 16, 1, 2>},
      {"skinny rt2 kw8 u2 b3", staged_skinny<2, 8, 2, 3>},
      {"skinny rt2 kw8 u2 b3 gx", launch_skinny_global_x<__nv_bfloat16, __nv_bfloat16, 2, 8, 2, 3>},
      {"skinny rt2 kw8 u2 b2 gx", launch_skinny_global_x<__nv_bfloat16, __nv_bfloat16, 2, 8, 2, 2>},
      {"skinny rt2 kw8 u3 b2 gx", launch_skinny_global_x<__nv_bfloat16, __nv_bfloat16, 2, 8, 3, 2>},
      {"skinny rt2 kw4 u2 b4 gx", launch_skinny_global_x<__nv_bfloat16, __nv_bfloat16, 2, 4, 2, 4>},
      {"skinny rt2 kw8 u4 b2 gx", launch_skinny_global_x<__nv_bfloat16, __nv_bfloat16, 2, 8, 4, 2>},
      {"skinny rt2 kw4 u4 b4 gx", launch_skinny_global_x<__nv_bfloat16, __nv_bfloat16, 2, 4, 4, 4>},
      {"skinny rt2 kw4 u4 b4", staged_skinny<2, 4, 4, 4>},
      {"skinny rt2 kw8 u4 b2", staged_skinny<2, 8, 4, 2>},
      {"skinny rt2 kw16 u2 b1", staged_skinny<2, 16, 2, 1>},
  };
  using B = __nv_bfloat16;
  auto wide = [](auto shape, int splits) {
    using S = decltype(shape);
    return [splits](const W4A16Problem& p, cudaStream_t st) { return launch_wide<B, B, S>(p, splits, st); };
  };
  auto wide_f16 = [](int splits) {  // the library's wide shape on float16, K split over `splits`
    return [splits](const W4A16Problem& p, cudaStream_t st) {
      return launch_wide<__half, __half, WideTile>(p, splits, st);
    };
  };
  auto wg = [](auto shape, int splits) {
    using S = decltype(shape);
    return [splits](const W4A16Problem& p, cudaStream_t st) { return launch_wgmma<B, B, S>(p, splits, st); };
  };
  std::vector<Variant> wide_variants = {
      {"library", launch_w4a16_typed<B, B>},
      {"library packed", launch_w4a16_typed<B, B>, true},
      {"library f16", launch_w4a16_typed<__half, __half>},
      {"library packed f16", launch_w4a16_typed<__half, __half>, true},
      {"wgmma 192 p3 s1", wg(WgmmaShape<3, 3, 7, 6>{}, 1)},
      {"wgmma 192 p3 s4", wg(WgmmaShape<3, 3, 7, 6>{}, 4)},
      {"wgmma 192 p2 s1", wg(WgmmaShape<3, 2, 7, 6>{}, 1)},
      {"wgmma 128 p3 s2", wg(WgmmaShape<2, 3, 7, 8>{}, 2)},
      {"wgmma b88 t64 k128 s2", wg(WgmmaNarrow64Tile{}, 2)},
      {"wgmma b88 k128 s2", wg(WgmmaNarrowTile{}, 2)},
      {"wide tm8 nw4 s1", wide(WideShape<8, 4>{}, 1)},
      {"wide tm8 nw4 s2", wide(WideShape<8, 4>{}, 2)},
      {"wide f16 s1", wide_f16(1)},
      {"wide f16 s2", wide_f16(2)},
      {"wide f16 s3", wide_f16(3)},
      {"wide f16 s4", wide_f16(4)},
  };
  std::vector<int64_t> ms = {1, 4, 8, 16, 32, 64, 128, 384, 1024};
  if (argc > 2) {  // tune_cuda quick 128,1024: only these M
    ms.clear();
    for (const char* c = argv[2]; *c;) {
      ms.push_back(std::strtoll(c, const_cast<char**>(&c), 10));
      if (*c == ',') ++c;
    }
  }
  const std::string names = argc > 3 ? argv[3] : "";  // and only the variants whose name contains this (or one of a|b|c)
  for (int64_t m : ms) {
    if (quick && argc <= 2 && (m == 4 || m == 8)) continue;
    std::vector<Variant>& vs = m <= 16 ? skinny : wide_variants;
    reference_gemm<<<unsigned((m * N + 127) / 128), 128, 0, st>>>(x, f16, wq, ws, m, N, K, ref, mag);
    std::vector<double> href(m * N), hmag(m * N);
    CHECK_CUDA(cudaMemcpy(href.data(), ref, m * N * 8, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(hmag.data(), mag, m * N * 8, cudaMemcpyDeviceToHost));
    for (const Variant& v : vs) {
      if (v.name.find("rt1") != std::string::npos && m > 8) continue;
      if ((v.name.find("f16") != std::string::npos) != f16) continue;
      bool picked = false;  // `names` may list several, separated by '|'
      for (size_t a = 0, b = 0; !picked && b != std::string::npos; a = b + 1) {
        b = names.find('|', a);
        picked = v.name.find(names.substr(a, b == std::string::npos ? b : b - a)) != std::string::npos;
      }
      if (!picked) continue;
      W4A16Problem p;
      p.m = m, p.n = N, p.k = K, p.x = x, p.ldx = K, p.x_type = act_type, p.ldw = K / 2, p.ldw_scales = K / 32;
      p.out = out, p.ldo = N, p.out_type = act_type;
      p.w = wq, p.w_scales = ws;
      if (v.packed) p.w = wp, p.w_scales = nullptr, p.w_packed = true;
      CHECK_CUDA(v.launch(p, st));
      std::vector<uint16_t> h(m * N);
      CHECK_CUDA(cudaMemcpy(h.data(), out, m * N * 2, cudaMemcpyDeviceToHost));
      double worst = 0;
      for (int64_t i = 0; i < m * N; ++i) {
        const double bound = (std::max<int64_t>(128, K) + K / 32 + 2) * std::ldexp(1.0, -22) * hmag[i] + std::ldexp(1.0, -8) * std::fabs(href[i]) + out_floor + 1e-30;
        const double e = std::fabs(out_to_float(h[i]) - href[i]) / bound;
        worst = std::isnan(e) ? INFINITY : std::max(worst, e);  // a NaN output where the reference is finite fails
      }
      const double t = time_graph([&](int i) {
        W4A16Problem pi = p;
        if (v.packed) {
          pi.w = wp + (i % copies) * wp_bytes;
        } else {
          pi.w = wq + (i % copies) * wq_bytes, pi.w_scales = ws + (i % copies) * ws_bytes;
        }
        CHECK_CUDA(v.launch(pi, st));
      }, 4 * copies, st);
      // The exact path: scales over 130 binades.
      if (v.packed) {
        p.w = wp_odd;
      } else {
        p.w_scales = ws_odd;
      }
      reference_gemm<<<unsigned((m * N + 127) / 128), 128, 0, st>>>(x, f16, wq, ws_odd, m, N, K, ref, mag);
      std::vector<double> oref(m * N), omag(m * N);
      CHECK_CUDA(cudaMemcpy(oref.data(), ref, m * N * 8, cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaMemcpy(omag.data(), mag, m * N * 8, cudaMemcpyDeviceToHost));
      CHECK_CUDA(v.launch(p, st));
      CHECK_CUDA(cudaMemcpy(h.data(), out, m * N * 2, cudaMemcpyDeviceToHost));
      double worst_odd = 0;
      for (int64_t i = 0; i < m * N; ++i) {
        if (!std::isfinite(oref[i]) || std::fabs(oref[i]) > (f16 ? 65504.0 : 1e38)) continue;  // past the output type's range
        const double bound = (std::max<int64_t>(128, K) + K / 32 + 2) * std::ldexp(1.0, -22) * omag[i] + std::ldexp(1.0, -8) * std::fabs(oref[i]) + out_floor + 1e-38;
        const double e = std::fabs(out_to_float(h[i]) - oref[i]) / bound;
        worst_odd = std::isnan(e) ? INFINITY : std::max(worst_odd, e);
      }
      const double t_odd = time_graph([&](int) { CHECK_CUDA(v.launch(p, st)); }, 20, st);
      std::printf("M=%5lld %-24s %7.2f us  %5.1f%% of copy  %6.1f TFLOP/s  err/bound %.3f | wide scales %7.2f us (L2) err/bound %.3f\n",
                  (long long)m, v.name.c_str(), t * 1e6, (wq_bytes + ws_bytes) / t / copy_rate * 100,
                  2.0 * m * N * K / t / 1e12, worst, t_odd * 1e6, worst_odd);
    }
  }
  std::printf("done\n");
  return 0;
}
