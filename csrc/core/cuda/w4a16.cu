#include "cuda/w4a16_internal.h"
#include "cuda/w4a16_launch.cuh"

namespace mxkernels::core::cuda {

cudaError_t mxfp4_gemm_w4a16(const W4A16Problem& p, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0) return cudaSuccess;
  if (p.k % 32 != 0 || p.k == 0) return cudaErrorInvalidValue;
  if (p.k > (int64_t(1) << 30)) return cudaErrorInvalidValue;  // the kernels index K in 32-bit bytes
  // Packed weights: whole tiles of 16 columns, and a tile's bytes indexed in 32 bits too.
  if (p.w_packed && (p.n % kMxfp4CudaTileColumns != 0 || mxfp4_cuda_tile_bytes(p.k / 32) > (int64_t(1) << 31) - 1)) {
    return cudaErrorInvalidValue;
  }
  if (p.x_type == FloatType::bf16 && p.out_type == FloatType::bf16) return w4a16_bf16_to_bf16(p, stream);
  if (p.x_type == FloatType::bf16 && p.out_type == FloatType::f32) return w4a16_bf16_to_f32(p, stream);
  if (p.x_type == FloatType::f16 && p.out_type == FloatType::f16) return w4a16_f16_to_f16(p, stream);
  return cudaErrorInvalidValue;
}

const char* mxfp4_gemm_w4a16_kernel_name(int64_t m, int64_t n, int64_t k) {
  DeviceInfo info;
  if (device_info(&info) != cudaSuccess) return "unknown (no CUDA device)";
  if (m <= kW4A16SkinnyMaxM) {
    const bool eight = choose_skinny_warps(n, info.sms) == 8;
    if (m <= 8) return eight ? "skinny 16 columns x 8 rows, 8 warps over K" : "skinny 16 columns x 8 rows, 4 warps over K";
    return eight ? "skinny 16 columns x 16 rows, 8 warps over K" : "skinny 16 columns x 16 rows, 4 warps over K";
  }
  W4A16Problem p;
  p.m = m, p.n = n, p.k = k, p.ldx = k, p.ldw = k / 2, p.ldw_scales = k / 32;
  if (use_wgmma(p, info)) {
    static const char* kNames[4] = {
        "wgmma 192 columns x 128 rows", "wgmma 192 columns x 128 rows, K split over a cluster of 2",
        "wgmma 192 columns x 128 rows, K split over a cluster of 3",
        "wgmma 192 columns x 128 rows, K split over a cluster of 4"};
    static const char* kNarrowNames[4] = {
        "wgmma 88 columns x 128 rows (weights as B)",
        "wgmma 88 columns x 128 rows (weights as B), K split over a cluster of 2",
        "wgmma 88 columns x 128 rows (weights as B), K split over a cluster of 3",
        "wgmma 88 columns x 128 rows (weights as B), K split over a cluster of 4"};
    static const char* kNarrow64Names[4] = {
        "wgmma 88 columns x 64 rows (weights as B)",
        "wgmma 88 columns x 64 rows (weights as B), K split over a cluster of 2",
        "wgmma 88 columns x 64 rows (weights as B), K split over a cluster of 3",
        "wgmma 88 columns x 64 rows (weights as B), K split over a cluster of 4"};
    WgmmaPlan plan;
    if (plan_wgmma(p, info, &plan) != cudaSuccess) return "unknown (no CUDA device)";
    const char* const* names = plan.tiles == WgmmaTiles::narrow64 ? kNarrow64Names
                               : plan.tiles == WgmmaTiles::narrow ? kNarrowNames
                                                                  : kNames;
    return names[plan.splits - 1];
  }
  int splits = 1;
  if (wide_splits<__nv_bfloat16, __nv_bfloat16>(p, info, &splits) != cudaSuccess) return "unknown (no CUDA device)";
  static const char* kNames[4] = {"wide 64x64", "wide 64x64, K split over a cluster of 2",
                                  "wide 64x64, K split over a cluster of 3", "wide 64x64, K split over a cluster of 4"};
  return kNames[splits - 1];
}

}  // namespace mxkernels::core::cuda
