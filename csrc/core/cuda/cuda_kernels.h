// The CUDA kernels' launchers: torch-free, on raw device pointers and explicit row strides, each enqueued on the
// caller's stream. They compute what the CPU kernels compute (docs/formats.md): the quantizers and the dequantizer
// bit for bit, the W4A16 GEMM within the bound of its float32 block sums. Every launcher returns the launch's
// cudaError_t; the ops layer turns it into an error.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "float_types.h"
#include "mxfp4.h"

namespace mxkernels::core::cuda {

// x: rows of k values (k a multiple of 32, rows x_row_stride elements apart, 16-byte aligned); q: rows of k/2
// bytes (16-byte aligned), scales: rows of k/32 bytes, both contiguous.
cudaError_t quantize_mxfp4(const void* x, FloatType x_type, int64_t rows, int64_t k, int64_t x_row_stride,
                           ScaleMode mode, uint8_t* q, uint8_t* scales, cudaStream_t stream);

// q: rows of k/2 bytes (q_row_stride apart, 4-byte aligned), scales: rows of k/32 bytes (scale_row_stride apart);
// out: rows of k values of out_type, contiguous and 16-byte aligned.
cudaError_t dequantize_mxfp4(const uint8_t* q, int64_t q_row_stride, const uint8_t* scales, int64_t scale_row_stride,
                             int64_t rows, int64_t k, FloatType out_type, void* out, cudaStream_t stream);

// Per-group E4M3 with float32 scales, as core::reference::quantize_fp8_groups: x rows of k values (x_row_stride
// apart), k a multiple of group_size; q rows of k bytes and scales rows of k/group_size, both contiguous.
cudaError_t quantize_fp8_groups(const void* x, FloatType x_type, int64_t rows, int64_t k, int64_t x_row_stride,
                                int64_t group_size, float eps, bool ue8m0, uint8_t* q, float* scales,
                                cudaStream_t stream);

// out[m][n] = sum over k of x[m][k] * w[n][k] (+ bias[n]), with w MXFP4: codes [n][k/2] and E8M0 scales [n][k/32].
// The tensor cores sum spans of 128 products in float32 (the blocks' scales folded into the decoded codes where that
// is exact, else block by block), each span's sum is multiplied by its scale in float32 and added to the column's
// float32 total (docs/formats.md).
struct W4A16Problem {
  int64_t m = 0, n = 0, k = 0;  // k a multiple of 32
  const void* x = nullptr;      // [m][k] bfloat16 or float16, rows ldx elements apart, 16-byte aligned
  int64_t ldx = 0;
  FloatType x_type = FloatType::bf16;
  const uint8_t* w = nullptr;  // [n][k/2] codes, rows ldw bytes apart, 16-byte aligned
  int64_t ldw = 0;
  const uint8_t* w_scales = nullptr;  // [n][k/32], rows ldw_scales bytes apart (any alignment)
  int64_t ldw_scales = 0;
  // Instead: w in the layout of mxfp4_cuda_layout.h (codes and scales in one buffer of tiles padded to 128-byte
  // lines, 16-byte aligned, n a multiple of 16); ldw, w_scales and ldw_scales are then unused.
  bool w_packed = false;
  const float* bias = nullptr;  // [n] or null
  void* out = nullptr;          // [m][n] of out_type (x_type, or float32), rows ldo elements apart
  int64_t ldo = 0;
  FloatType out_type = FloatType::bf16;
};

// M up to this runs the skinny kernel (16 columns per block, K split over its warps); above it the wide one (tiles
// of 64 rows and 64 columns), or with bf16 activations on Hopper (sm_90a builds) the wgmma one (192 columns x 128
// rows).
constexpr int64_t kW4A16SkinnyMaxM = 16;

cudaError_t mxfp4_gemm_w4a16(const W4A16Problem& p, cudaStream_t stream);

// Which kernel and tile mxfp4_gemm_w4a16 would run for this shape with bf16 activations on the current device
// ("skinny ...", "wide 64x64..." or "wgmma ..."), for benchmarks and tests.
const char* mxfp4_gemm_w4a16_kernel_name(int64_t m, int64_t n, int64_t k);

}  // namespace mxkernels::core::cuda
