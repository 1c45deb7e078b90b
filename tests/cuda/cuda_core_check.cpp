// The torch-free CUDA kernels against the CPU reference kernels, on the first CUDA device: the quantizers and the
// dequantizer bit for bit, the W4A16 GEMM within its float32 bound. Without a device it exits with 77, which ctest
// reports as skipped (CI compiles and links it; the device machine runs it, tests/gpu/run.sh).
#include <algorithm>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "check_cuda.h"
#include "cuda/cuda_kernels.h"
#include "fp8.h"
#include "mxfp4.h"

using namespace mxkernels::core;

namespace {

int failures = 0;

template <typename T>
T* to_device(const std::vector<T>& h) {
  T* d = nullptr;
  CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&d), h.size() * sizeof(T) + 16));
  CHECK_CUDA(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <typename T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  CHECK_CUDA(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

void expect(bool ok, const char* what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAILED: %s\n", what);
  }
}

// Random values over many binades, with the edge values of docs/formats.md mixed in.
std::vector<float> values(size_t n, std::mt19937& rng) {
  std::vector<float> v(n);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int> exp(-140, 20), pick(0, 63);
  const float edges[] = {0.f, -0.f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.f, 6.f, -6.f, 1e-40f, 3e38f,
                         INFINITY, -INFINITY, NAN};
  for (size_t i = 0; i < n; ++i) {
    v[i] = std::ldexp(normal(rng), exp(rng) / 8);
    if (pick(rng) == 0) v[i] = edges[pick(rng) % (sizeof(edges) / sizeof(edges[0]))] * (pick(rng) < 32 ? 1.f : 0.125f);
  }
  return v;
}

std::vector<uint16_t> as_type(const std::vector<float>& v, FloatType t) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) store_from_f32(out.data(), t, int64_t(i), v[i]);
  return out;
}

void check_quantizers(std::mt19937& rng) {
  const int64_t rows = 513, k = 2048;
  const std::vector<float> x = values(size_t(rows * k), rng);
  for (FloatType t : {FloatType::f32, FloatType::bf16, FloatType::f16}) {
    std::vector<uint16_t> x16;
    const void* host = x.data();
    if (t != FloatType::f32) x16 = as_type(x, t), host = x16.data();
    const size_t bytes = size_t(rows * k) * size_t(float_type_bytes(t));
    void* dx = nullptr;
    CHECK_CUDA(cudaMalloc(&dx, bytes));
    CHECK_CUDA(cudaMemcpy(dx, host, bytes, cudaMemcpyHostToDevice));
    uint8_t *dq = nullptr, *ds = nullptr;
    CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&dq), size_t(rows * k)));
    CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&ds), size_t(rows * k / 32) * 4));
    for (ScaleMode mode : {ScaleMode::floor, ScaleMode::ceil, ScaleMode::even, ScaleMode::rceil}) {
      std::vector<uint8_t> q_ref(size_t(rows * k / 2)), s_ref(size_t(rows * k / 32));
      reference::quantize_mxfp4(host, t, rows * k / 32, mode, q_ref.data(), s_ref.data());
      CHECK_CUDA(cuda::quantize_mxfp4(dx, t, rows, k, k, mode, dq, ds, nullptr));
      expect(to_host(dq, q_ref.size()) == q_ref && to_host(ds, s_ref.size()) == s_ref, "quantize_mxfp4 bits");
      // Dequantize the reference codes back, into each output type.
      for (FloatType o : {FloatType::f32, FloatType::bf16, FloatType::f16}) {
        const size_t out_bytes = size_t(rows * k) * size_t(float_type_bytes(o));
        std::vector<uint8_t> ref(out_bytes);
        reference::dequantize_mxfp4(q_ref.data(), s_ref.data(), rows * k / 32, o, ref.data());
        void* dout = nullptr;
        CHECK_CUDA(cudaMalloc(&dout, out_bytes));
        CHECK_CUDA(cudaMemcpy(dq, q_ref.data(), q_ref.size(), cudaMemcpyHostToDevice));
        CHECK_CUDA(cudaMemcpy(ds, s_ref.data(), s_ref.size(), cudaMemcpyHostToDevice));
        CHECK_CUDA(cuda::dequantize_mxfp4(dq, k / 2, ds, k / 32, rows, k, o, dout, nullptr));
        expect(to_host(static_cast<uint8_t*>(dout), out_bytes) == ref, "dequantize_mxfp4 bits");
        CHECK_CUDA(cudaFree(dout));
      }
    }
    for (int64_t group : {int64_t(128), int64_t(32), int64_t(2048)}) {
      for (bool ue8m0 : {false, true}) {
        std::vector<uint8_t> q_ref(size_t(rows * k));
        std::vector<float> s_ref(size_t(rows * k / group));
        reference::quantize_fp8_groups(host, t, rows * k / group, group, 1e-10f, ue8m0, q_ref.data(), s_ref.data());
        float* dscale = reinterpret_cast<float*>(ds);
        CHECK_CUDA(cuda::quantize_fp8_groups(dx, t, rows, k, k, group, 1e-10f, ue8m0, dq, dscale, nullptr));
        const std::vector<float> s = to_host(dscale, s_ref.size());
        expect(to_host(dq, q_ref.size()) == q_ref &&
                   std::memcmp(s.data(), s_ref.data(), s.size() * sizeof(float)) == 0,
               "quantize_fp8_groups bits");
      }
    }
    CHECK_CUDA(cudaFree(dx));
    CHECK_CUDA(cudaFree(dq));
    CHECK_CUDA(cudaFree(ds));
  }
}

void check_w4a16(std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> normal(0.f, 1.f);
  // Above 16 rows on Hopper: the wgmma kernel, K split over a cluster where its tiles are few; the shape with n = 400
  // has one scale outside the decode's window, so its tile takes the exact path. {m, n, k, ldx, fp16}: K = 352 ends in
  // a half stage (the tensor copy of the activations reads zeros past K), and rows ldx > K apart. bf16 activations
  // give float32 outputs, fp16 ones fp16 outputs. 17 to 128 rows (40, 72, 100) take the 88-column tiles with the
  // weights as the MMAs' B operand where they split K (activation boxes of M rows rounded up to 8; K = 352 ends in a
  // lone block).
  const int64_t shapes[][5] = {{1, 72, 320, 320, 0},    {5, 72, 320, 320, 0},    {16, 72, 320, 320, 0},
                               {40, 72, 320, 320, 0},   {130, 72, 320, 320, 0},  {130, 8448, 320, 320, 0},
                               {200, 400, 320, 320, 0}, {40, 200, 352, 352, 0},  {150, 72, 352, 376, 0},
                               {100, 400, 352, 376, 0}, {3, 72, 320, 320, 1},    {130, 8448, 320, 320, 1},
                               {200, 400, 320, 320, 1}, {150, 72, 352, 376, 1},  {72, 400, 320, 320, 1}};
  for (const auto& shape : shapes) {
    const int64_t m = shape[0], n = shape[1], k = shape[2], ldx = shape[3];
    const FloatType x_type = shape[4] ? FloatType::f16 : FloatType::bf16;
    const FloatType out_type = shape[4] ? FloatType::f16 : FloatType::f32;
    std::vector<uint8_t> w(size_t(n * k / 2)), s(size_t(n * k / 32));
    for (auto& b : w) b = uint8_t(byte(rng));
    // Scales in the decode's window (in fp16 those from 129 on take a second multiply), and for n = 400 one outside
    // it (fp16: below it, as one above would overflow fp16's outputs).
    std::uniform_int_distribution<int> scale(118, shape[4] ? 132 : 130);
    for (auto& b : s) b = uint8_t(scale(rng));
    if (n == 400) s[size_t(250 * k / 32 + 3)] = shape[4] ? 100 : 150;
    std::vector<float> xf(size_t(m * ldx));
    for (auto& v : xf) v = normal(rng);
    const std::vector<uint16_t> x = as_type(xf, x_type);
    std::vector<float> bias(static_cast<size_t>(n));
    for (auto& v : bias) v = normal(rng);
    uint8_t* dw = to_device(w);
    uint8_t* ds = to_device(s);
    uint16_t* dx = to_device(x);
    float* db = to_device(bias);
    float* dout = nullptr;  // float32 or fp16 values
    CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&dout), size_t(m * n) * sizeof(float)));
    cuda::W4A16Problem p;
    p.m = m, p.n = n, p.k = k, p.x = dx, p.ldx = ldx, p.x_type = x_type, p.w = dw, p.ldw = k / 2;
    p.w_scales = ds, p.ldw_scales = k / 32, p.bias = db, p.out = dout, p.ldo = n, p.out_type = out_type;
    CHECK_CUDA(cuda::mxfp4_gemm_w4a16(p, nullptr));
    const std::vector<float> raw = to_host(dout, size_t(m * n));
    std::vector<float> out(size_t(m * n));
    for (size_t i = 0; i < out.size(); ++i) out[i] = load_as_f32(raw.data(), out_type, int64_t(i));
    bool ok = true;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double ref = bias[size_t(j)], mag = std::fabs(bias[size_t(j)]);
        for (int64_t kk = 0; kk < k; ++kk) {
          const uint8_t byte_ = w[size_t(j * k / 2 + kk / 2)];
          const double wv = double(reference::e2m1_value(kk % 2 ? byte_ >> 4 : byte_ & 0xF)) *
                            double(reference::e8m0_value(s[size_t(j * k / 32 + kk / 32)]));
          const double xv = double(load_as_f32(x.data(), x_type, i * ldx + kk));
          ref += xv * wv;
          mag += std::fabs(xv * wv);
        }
        // float32 sums of chains of up to max(128, k) products in the tensor cores, then up to k/32 span, block or
        // partial totals: (max(128, k) + k/32 + 1) roundings of 2^-23 relative to the magnitude, doubled for the
        // tensor cores' truncating adds; fp16 outputs add their rounding (half an ulp, 2^-25 absolute below 2^-14).
        double bound = 2.0 * double(std::max<int64_t>(128, k) + k / 32 + 1) * 0x1p-23 * mag;
        if (out_type == FloatType::f16) bound += 0x1p-11 * std::fabs(ref) + 0x1p-25;
        ok = ok && std::fabs(double(out[size_t(i * n + j)]) - ref) <= bound;
      }
    }
    expect(ok, shape[4] ? "mxfp4_gemm_w4a16 (fp16) within the float32 bound"
                        : "mxfp4_gemm_w4a16 within the float32 bound");
    for (void* ptr : {static_cast<void*>(dw), static_cast<void*>(ds), static_cast<void*>(dx), static_cast<void*>(db),
                      static_cast<void*>(dout)})
      CHECK_CUDA(cudaFree(ptr));
  }
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  std::mt19937 rng(20261122);
  check_quantizers(rng);
  check_w4a16(rng);
  std::printf("%s (%d failures)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
