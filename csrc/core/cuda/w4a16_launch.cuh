// Which W4A16 kernel runs: the skinny one up to 16 rows; above, the wgmma kernel for bf16 activations where this
// build has it, the device is an sm_90 (Hopper) and its tiles fill the multiprocessors, else the wide mma.sync
// kernel.
#pragma once
#include "cuda/w4a16_kernels.cuh"
#include "cuda/w4a16_wgmma.cuh"

namespace mxkernels::core::cuda {
namespace {

// Tiles of 128 columns x 128 rows (m64n128k16 MMAs), 4 stages of 64 K values per warpgroup.
using WgmmaTile = WgmmaShape<128, 4>;

// The kernel addresses a tile's rows by 32-bit byte offsets from its first row.
inline bool wgmma_fits(const W4A16Problem& p) {
  constexpr int64_t kLimit = int64_t(1) << 31;
  return p.ldx * 2 * WgmmaTile::BT < kLimit && p.ldw * WgmmaTile::BN < kLimit && p.ldw_scales * WgmmaTile::BN < kLimit;
}

// The wgmma kernel where its tiles fill the multiprocessors (one block each); with fewer tiles the wide kernel's K
// split over a cluster measured faster (on an H200 at N=5760, K=2880: M=128 27.5 us wide against 36.6 us wgmma
// unsplit and 41 us split over 2; M=384 71.1 us against 72.1; M=1024 107 us against 154, tests/gpu/tune_cuda.cu).
inline bool use_wgmma(const W4A16Problem& p, const DeviceInfo& info) {
  if (!kHaveWgmma || p.x_type != FloatType::bf16 || p.m <= kW4A16SkinnyMaxM || info.major != 9 || info.minor != 0) {
    return false;
  }
  const int64_t tiles = ((p.n + WgmmaTile::BN - 1) / WgmmaTile::BN) * ((p.m + WgmmaTile::BT - 1) / WgmmaTile::BT);
  return tiles >= info.sms && wgmma_fits(p);
}

template <typename OutT, typename S>
cudaError_t launch_wgmma(const W4A16Problem& p, cudaStream_t stream) {
  const cudaError_t err = prepare_kernel<&w4a16_wgmma<OutT, S>>(S::THREADS, S::SMEM);
  if (err != cudaSuccess) return err;
  const dim3 grid(unsigned((p.n + S::BN - 1) / S::BN), unsigned((p.m + S::BT - 1) / S::BT));
  w4a16_wgmma<OutT, S><<<grid, S::THREADS, S::SMEM, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, typename OutT>
cudaError_t launch_w4a16_typed(const W4A16Problem& p, cudaStream_t stream) {
  DeviceInfo info;
  cudaError_t err = device_info(&info);
  if (err != cudaSuccess) return err;
  if (p.m <= kW4A16SkinnyMaxM) {
    const bool eight = choose_skinny_warps(p.n, info.sms) == 8;
    // Up to 8 rows the activations are staged in shared memory; 9 to 16 rows are read from global memory by each
    // warp (on an H200 at N=5760, K=2880: 10.6 us against 14.6 us staged, tests/gpu/tune_cuda.cu).
    if (p.m <= 8) {
      return eight ? launch_skinny<T, OutT, 1, 8, 2, 3>(p, stream) : launch_skinny<T, OutT, 1, 4, 4, 4>(p, stream);
    }
    return eight ? launch_skinny<T, OutT, 2, 8, 2, 3>(p, stream, false)
                 : launch_skinny<T, OutT, 2, 4, 2, 6>(p, stream, false);
  }
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (use_wgmma(p, info)) return launch_wgmma<OutT, WgmmaTile>(p, stream);
  }
  int splits = 1;
  err = wide_splits<T, OutT>(p, info, &splits);
  if (err != cudaSuccess) return err;
  return launch_wide<T, OutT, WideTile>(p, splits, stream);
}

}  // namespace
}  // namespace mxkernels::core::cuda
