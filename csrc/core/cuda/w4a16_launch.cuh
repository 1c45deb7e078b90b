// Which W4A16 kernel runs: the skinny one up to 16 rows; above, the wgmma kernel for bf16 and fp16 activations where
// this build has it and the device is an sm_90 (Hopper), else the wide mma.sync kernel.
#pragma once
#include "cuda/w4a16_kernels.cuh"
#include "cuda/w4a16_wgmma.cuh"

namespace mxkernels::core::cuda {
namespace {

// Tiles of 192 columns x 128 rows, three producer warpgroups, rings of 7 activation and 6 code stages (the fastest
// on an H200 at N=5760, K=2880 for M = 128, 384 and 1024, tests/gpu/tune_cuda.cu; the 7 activation slots also hold
// the partial sums).
using WgmmaTile = WgmmaShape<3, 3, 7, 6>;
// Tiles of 88 columns x 128 (or 64) rows with the decoded weights as the MMAs' B operand (m64n88k16, two (one) per
// 16 K values), stages of 128 K values, rings of 4 activation and 3 code stages: for one tile of rows, where at
// N=5760 66 tiles split over clusters of 2 fill the H100's 132 SMs (WgmmaTile: 30 tiles split over 4, 120 blocks), so
// each block exchanges a third as many partial sums. On an H100 at N=5760, K=2880 (tests/gpu/tune_in_process.py,
// against WgmmaTile): 128 rows, M=128 15.9 us against 16.85; 64 rows, M=32 13.25 against 14.5, M=64 13.85 against
// 15.3 (with 128 rows M=64 took 15.5). More ring slots measured slower (bench/RESULTS.md, twenty-second pass). Since
// their decode stores meet no bank conflicts: M=128 14.9 us, M=32 12.3, M=64 13.0 (twenty-third pass).
using WgmmaNarrowTile = WgmmaShape<2, 3, 4, 3, 88, 128>;
using WgmmaNarrow64Tile = WgmmaShape<1, 3, 4, 3, 88, 128>;

// The kernel copies the activations by a tensor map (32-bit coordinates, rows 16-byte aligned).
inline bool wgmma_fits(const W4A16Problem& p) {
  return p.m <= INT32_MAX && p.k <= INT32_MAX && p.ldx % 8 == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0;
}

// The activations' tensor map for the wgmma kernel: [m][k] bf16 or fp16 rows ldx apart, boxes of 64 values x BT
// rows stored with the 128-byte swizzle of the MMAs' descriptors; rows past M and values past K read as zeros. The
// driver's encoder is found once, through the runtime.
template <typename S>
cudaError_t activation_tensor_map(const W4A16Problem& p, CUtensorMap* map) {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      fn = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  if (encode == nullptr) return cudaErrorNotSupported;
  const cuuint64_t dims[2] = {cuuint64_t(p.k), cuuint64_t(p.m)};
  const cuuint64_t strides[1] = {cuuint64_t(p.ldx) * 2};
  const cuuint32_t box[2] = {64, cuuint32_t(wgmma_box_rows<S>(p.m))}, element_strides[2] = {1, 1};
  const CUtensorMapDataType type =
      p.x_type == FloatType::f16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  const CUresult r = encode(map, type, 2, const_cast<void*>(p.x), dims, strides, box, element_strides,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

inline bool use_wgmma(const W4A16Problem& p, const DeviceInfo& info) {
  return kHaveWgmma && (p.x_type == FloatType::bf16 || p.x_type == FloatType::f16) && p.m > kW4A16SkinnyMaxM &&
         info.major == 9 && info.minor == 0 &&
         wgmma_fits(p);
}

// How many clusters of `size` (2 to 4) wgmma blocks of shape S the device runs at once: on the H100, N=8064 at M=128
// split over 3 (42 clusters of WgmmaTile, 39 fit) took two waves, 36.1 us (tests/gpu/tune_cuda.cu).
template <typename S>
cudaError_t wgmma_cluster_fit(int size, int* clusters) {
  // (The kernels for other types and layouts take the same threads and shared memory, one block per SM.)
  return cluster_fit<&w4a16_wgmma<__nv_bfloat16, __nv_bfloat16, S, false>>(S::THREADS, S::SMEM, size, clusters);
}

template <typename S>
int64_t wgmma_tiles(const W4A16Problem& p) {
  return ((p.n + S::BN - 1) / S::BN) * ((p.m + S::BT - 1) / S::BT);
}
template <typename S>
int64_t wgmma_stages(const W4A16Problem& p) {
  return (p.k / 32 + S::STAGE_BLOCKS - 1) / S::STAGE_BLOCKS;
}

// K split over a cluster of up to 4 blocks where the tiles alone leave SMs idle (one block per SM): the most splits
// whose clusters all run at once (on an H200 at N=5760, K=2880, M=384: 90 tiles unsplit 49.6 us, split over 4 in 2.7
// waves 55.1 us; M=128: 30 tiles unsplit 49.8 us, split over 4 19.5 us).
template <typename S>
cudaError_t wgmma_splits(const W4A16Problem& p, const DeviceInfo& info, int* splits) {
  const int64_t tiles = wgmma_tiles<S>(p), stages = wgmma_stages<S>(p);
  *splits = 1;
  for (int s = 2; s <= 4 && s <= stages && tiles * s <= info.sms; ++s) {
    int fit = 0;
    const cudaError_t err = wgmma_cluster_fit<S>(s, &fit);
    if (err != cudaSuccess) return err;
    if (tiles <= fit) *splits = s;
  }
  return cudaSuccess;
}

// The wgmma kernel's shape and split for a problem: WgmmaNarrow64Tile for up to 64 rows, WgmmaNarrowTile for 65 to
// 128, where it splits K (what it saves is most of the exchange of partial sums) and the columns x K values a block
// decodes, times the waves of blocks, come to no more than with WgmmaTile; else WgmmaTile. On an H100 at M=128
// (tests/gpu/tune_in_process.py): N=2880 12.7 us against 15.75 (33 tiles split over 3 against 15 over 4), N=5760 15.9
// against 16.85; unsplit at N=8064 (92 tiles) it took 23.9 us against 22.7 for WgmmaTile's 42 tiles split over 2,
// whose shared-memory traffic per value is a fifth lower (bench/RESULTS.md).
enum class WgmmaTiles { wide, narrow, narrow64 };
struct WgmmaPlan {
  WgmmaTiles tiles = WgmmaTiles::wide;
  int splits = 1;
};
template <typename S>
int64_t wgmma_block_work(const W4A16Problem& p, const DeviceInfo& info, int splits) {
  const int64_t blocks = wgmma_tiles<S>(p) * splits, waves = (blocks + info.sms - 1) / info.sms;
  return S::BN * ((wgmma_stages<S>(p) + splits - 1) / splits) * S::STAGE_K * waves;
}
template <typename Narrow>
cudaError_t plan_narrow_wgmma(const W4A16Problem& p, const DeviceInfo& info, WgmmaTiles tiles, WgmmaPlan* plan) {
  int narrow_splits = 1;
  const cudaError_t err = wgmma_splits<Narrow>(p, info, &narrow_splits);
  if (err != cudaSuccess) return err;
  if (narrow_splits > 1 &&
      wgmma_block_work<Narrow>(p, info, narrow_splits) <= wgmma_block_work<WgmmaTile>(p, info, plan->splits)) {
    plan->tiles = tiles, plan->splits = narrow_splits;
  }
  return cudaSuccess;
}
inline cudaError_t plan_wgmma(const W4A16Problem& p, const DeviceInfo& info, WgmmaPlan* plan) {
  *plan = WgmmaPlan{};
  const cudaError_t err = wgmma_splits<WgmmaTile>(p, info, &plan->splits);
  if (err != cudaSuccess) return err;
  if (p.m <= WgmmaNarrow64Tile::BT) return plan_narrow_wgmma<WgmmaNarrow64Tile>(p, info, WgmmaTiles::narrow64, plan);
  if (p.m <= WgmmaNarrowTile::BT) return plan_narrow_wgmma<WgmmaNarrowTile>(p, info, WgmmaTiles::narrow, plan);
  return cudaSuccess;
}

template <typename T, typename OutT, typename S, bool PACKED>
cudaError_t launch_wgmma_layout(const W4A16Problem& p, int splits, cudaStream_t stream) {
  cudaError_t err = prepare_kernel<&w4a16_wgmma<T, OutT, S, PACKED>>(S::THREADS, S::SMEM);
  if (err != cudaSuccess) return err;
  CUtensorMap x_map;
  err = activation_tensor_map<S>(p, &x_map);
  if (err != cudaSuccess) return err;
  return launch_tiles(w4a16_wgmma<T, OutT, S, PACKED>, p, S::BN, S::BT, S::THREADS, S::SMEM, splits, stream, x_map);
}

template <typename T, typename OutT, typename S>
cudaError_t launch_wgmma(const W4A16Problem& p, int splits, cudaStream_t stream) {
  if (p.w_packed) return launch_wgmma_layout<T, OutT, S, true>(p, splits, stream);
  return launch_wgmma_layout<T, OutT, S, false>(p, splits, stream);
}

template <typename T, typename OutT>
cudaError_t launch_w4a16_typed(const W4A16Problem& p, cudaStream_t stream) {
  DeviceInfo info;
  cudaError_t err = device_info(&info);
  if (err != cudaSuccess) return err;
  if (p.m <= kW4A16SkinnyMaxM) {
    const bool eight = choose_skinny_warps(p.n, info.sms) == 8;
    // The activations are staged in shared memory for 1 or 2 rows; from 3 rows on each warp reads them from global
    // memory (on an H200 at N=5760, K=2880, tests/gpu/tune_cuda.cu: M=2 6.5 us staged against 6.8, M=3 7.0
    // against 6.8, M=7 8.1 against 6.9, M=16 14.6 against 10.6). With 8 warps a block, up to 8 rows, each warp
    // chains its loads, one span in flight (on an H100, the same tool: M=1 6.5 us against 7.0 with two spans
    // issued at a time, M=2 6.5-6.7 against 6.9, M=3 6.8 against 7.2, M=8 7.15 against 7.4); from 9 rows on the
    // chained kernel runs out of registers. fp16 chains too (no spill; on an H100, tune_in_process.py: M=1 7.21 us
    // against 7.81 with two spans issued at a time, 6.37 against 7.60 packed, M=8 7.63 against 8.08, 7.20 against
    // 7.65 packed).
    if (p.m <= 8) {
      const bool stage_x = p.m <= 2;
      if (!eight) return launch_skinny<T, OutT, 1, 4, 4, 4>(p, stream, stage_x);
      return launch_skinny<T, OutT, 1, 8, 1, 3, true>(p, stream, stage_x);
    }
    return eight ? launch_skinny<T, OutT, 2, 8, 2, 3>(p, stream, false)
                 : launch_skinny<T, OutT, 2, 4, 2, 6>(p, stream, false);
  }
  if (use_wgmma(p, info)) {
    WgmmaPlan plan;
    err = plan_wgmma(p, info, &plan);
    if (err != cudaSuccess) return err;
    if (plan.tiles == WgmmaTiles::narrow64) return launch_wgmma<T, OutT, WgmmaNarrow64Tile>(p, plan.splits, stream);
    if (plan.tiles == WgmmaTiles::narrow) return launch_wgmma<T, OutT, WgmmaNarrowTile>(p, plan.splits, stream);
    return launch_wgmma<T, OutT, WgmmaTile>(p, plan.splits, stream);
  }
  int splits = 1;
  err = wide_splits<T, OutT>(p, info, &splits);
  if (err != cudaSuccess) return err;
  return launch_wide<T, OutT, WideTile>(p, splits, stream);
}

}  // namespace
}  // namespace mxkernels::core::cuda
