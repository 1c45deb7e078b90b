// The W4A16 GEMM kernels, templated on the activation type T (bf16 or fp16, the tensor cores' operand type) and the
// output type. Both compute, per 32-value block, the float32 sum of x * E2M1 on the tensor cores (mma.m16n8k16, the
// codes decoded exactly into T in registers), multiply it by the block's E8M0 scale in float32 and add it to the
// float32 total, so any scale (including 0 and 0xFF) is handled exactly as on the CPU.
//
// The MMA's k order inside a block is free as long as both operands follow it: lane t of a quad holds the 8 codes in
// bytes 4t..4t+3 of the block (one 32-bit load) and decode_e2m1x8 pairs them (e0,e4) (e1,e5) (e2,e6) (e3,e7); the
// activations are paired the same way (pair_activations).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>

#include "cuda/cuda_kernels.h"
#include "cuda/device_common.cuh"

namespace mxkernels::core::cuda {
namespace {

// ---- skinny: M <= 16 -------------------------------------------------------------------------------------------
// Weights are the MMA's A operand (16 output columns per warp), the activations its B operand (8 rows per MMA,
// RT of them). KW warps of a block share 16 columns and take every KW-th K block, so together they read whole
// 64-byte runs of each column; each warp keeps U blocks of codes and scales in flight while it computes the last U.
// Their float32 totals are summed in a fixed order through shared memory.
// With X_SMEM the block first copies the m activation rows into shared memory (rows x_pitch bytes apart, a pitch
// of 64 mod 128 so that a quarter warp's two rows fall in different banks); without it (rows too long) each warp
// reads them from global memory.
template <typename T, typename OutT, int RT, int KW, int U, bool X_SMEM>
__global__ void __launch_bounds__(KW * 32) w4a16_skinny(W4A16Problem p, int x_pitch) {
  __shared__ float partial[KW][RT * 4][32];
  extern __shared__ __align__(16) uint8_t x_rows[];
  const float zero4[4] = {0.f, 0.f, 0.f, 0.f};
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t n0 = int64_t(blockIdx.x) * 16;
  const int64_t nb = p.k / 32;
  const int64_t col0 = min(n0 + g, p.n - 1), col1 = min(n0 + g + 8, p.n - 1);
  const uint8_t* w0 = p.w + col0 * p.ldw + 4 * t;
  const uint8_t* w1 = p.w + col1 * p.ldw + 4 * t;
  const uint8_t* s0 = p.w_scales + col0 * p.ldw_scales;
  const uint8_t* s1 = p.w_scales + col1 * p.ldw_scales;
  const T* x = static_cast<const T*>(p.x);
  const int64_t count = nb > warp ? (nb - warp + KW - 1) / KW : 0;  // this warp's blocks: warp + KW * i

  float acc[RT][4];
#pragma unroll
  for (int r = 0; r < RT; ++r) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = 0.f;

  uint32_t cw0[U], cw1[U], cs0[U], cs1[U];
  auto load = [&](int64_t i0, uint32_t* a0, uint32_t* a1, uint32_t* b0, uint32_t* b1) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t i = i0 + u;
      const int64_t b = warp + int64_t(KW) * i;
      const bool valid = i < count;
      a0[u] = valid ? __ldg(reinterpret_cast<const unsigned int*>(w0 + b * 16)) : 0u;
      a1[u] = valid ? __ldg(reinterpret_cast<const unsigned int*>(w1 + b * 16)) : 0u;
      b0[u] = valid ? __ldg(s0 + b) : 0u;
      b1[u] = valid ? __ldg(s1 + b) : 0u;
    }
  };
  load(0, cw0, cw1, cs0, cs1);  // the first weights are in flight while the activations are staged
  if constexpr (X_SMEM) {
    const int64_t chunks = p.k / 8;
    for (int64_t i = threadIdx.x; i < p.m * chunks; i += KW * 32) {
      const int64_t row = i / chunks, c = i % chunks;
      *reinterpret_cast<uint4*>(x_rows + row * x_pitch + c * 16) =
          __ldg(reinterpret_cast<const uint4*>(x + row * p.ldx + c * 8));
    }
    __syncthreads();
  }
  for (int64_t i0 = 0; i0 < count; i0 += U) {
    uint32_t nw0[U], nw1[U], ns0[U], ns1[U];
    if (i0 + U < count) load(i0 + U, nw0, nw1, ns0, ns1);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (i0 + u < count) {
        const int64_t b = warp + int64_t(KW) * (i0 + u);
        uint32_t wa[4], wb[4];
        decode_e2m1x8<T>(cw0[u], wa);
        decode_e2m1x8<T>(cw1[u], wb);
        const uint32_t a0[4] = {wa[0], wb[0], wa[1], wb[1]};
        const uint32_t a1[4] = {wa[2], wb[2], wa[3], wb[3]};
        const float f0 = e8m0_value(cs0[u]), f1 = e8m0_value(cs1[u]);
#pragma unroll
        for (int r = 0; r < RT; ++r) {
          const int64_t row = r * 8 + g;
          uint4 xv = make_uint4(0, 0, 0, 0);
          if (row < p.m) {
            if constexpr (X_SMEM) {
              xv = *reinterpret_cast<const uint4*>(x_rows + row * x_pitch + (b * 32 + 8 * t) * 2);
            } else {
              xv = __ldg(reinterpret_cast<const uint4*>(x + row * p.ldx + b * 32 + 8 * t));
            }
          }
          uint32_t xp[4];
          pair_activations(xv, xp);
          float d[4];
          mma_16816<T>(d, a0, xp[0], xp[1], zero4);
          mma_16816<T>(d, a1, xp[2], xp[3], d);
          acc[r][0] = fmaf(d[0], f0, acc[r][0]);
          acc[r][1] = fmaf(d[1], f0, acc[r][1]);
          acc[r][2] = fmaf(d[2], f1, acc[r][2]);
          acc[r][3] = fmaf(d[3], f1, acc[r][3]);
        }
      }
    }
    if (i0 + U < count) {
#pragma unroll
      for (int u = 0; u < U; ++u) cw0[u] = nw0[u], cw1[u] = nw1[u], cs0[u] = ns0[u], cs1[u] = ns1[u];
    }
  }

#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int j = 0; j < 4; ++j) partial[warp][r * 4 + j][lane] = acc[r][j];
  __syncthreads();
  for (int idx = threadIdx.x; idx < RT * 4 * 32; idx += KW * 32) {
    const int reg = idx >> 5, ln = idx & 31;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < KW; ++w) sum += partial[w][reg][ln];
    const int r = reg >> 2, j = reg & 3;
    const int64_t col = n0 + (ln >> 2) + (j >= 2 ? 8 : 0);
    const int64_t row = r * 8 + 2 * (ln & 3) + (j & 1);
    if (row < p.m && col < p.n) store_out<OutT>(p.out, row * p.ldo + col, p.bias ? sum + p.bias[col] : sum);
  }
}

// ---- tiled: M > 16 ----------------------------------------------------------------------------------------------
// A BM x BN tile per block of WM x WN warps, each warp MT x NT MMA tiles (16 x 8). K runs in stages of SB blocks
// (64 values), STAGES deep, activations and codes arriving by cp.async. The scale bytes (rows of any alignment, so
// no cp.async) are read for SCALE_CHUNK blocks at a time into a table, at the start and every SCALE_CHUNK blocks:
// a load per stage would wait out a memory latency each time. Activation rows are 128 bytes in shared memory,
// their two 64-byte halves swapped on odd rows, so that the 16-byte fragment loads of a quarter warp (rows g, g+1)
// hit distinct banks; code rows are 48 bytes apart for the same reason.
template <int WM_, int WN_, int MT_, int NT_>
struct TiledShape {
  static constexpr int WM = WM_, WN = WN_, MT = MT_, NT = NT_;
  static constexpr int BM = WM * MT * 16, BN = WN * NT * 8, THREADS = WM * WN * 32;
  static constexpr int SB = 2, STAGES = 4;
  static constexpr int A_PITCH = SB * 64, B_PITCH = SB * 16 + 16;
  static constexpr int A_STAGE = BM * A_PITCH, B_STAGE = BN * B_PITCH;
  static constexpr int STAGE_BYTES = A_STAGE + B_STAGE;
  static constexpr int SCALE_CHUNK = 256, SCALE_PITCH = SCALE_CHUNK + 4;  // +4: the 8 columns a warp reads, 8 banks
  static constexpr int SMEM = STAGES * STAGE_BYTES + BN * SCALE_PITCH;
};

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <typename T, typename OutT, typename S>
__global__ void __launch_bounds__(S::THREADS) w4a16_tiled(W4A16Problem p) {
  extern __shared__ __align__(16) uint8_t smem[];
  const float zero4[4] = {0.f, 0.f, 0.f, 0.f};
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wm = warp / S::WN, wn = warp % S::WN;
  const int64_t m0 = int64_t(blockIdx.y) * S::BM, n0 = int64_t(blockIdx.x) * S::BN;
  const int64_t nb = p.k / 32;
  const int stages_total = int((nb + S::SB - 1) / S::SB);
  const T* x = static_cast<const T*>(p.x);

  auto a_smem = [&](int slot) { return smem + slot * S::STAGE_BYTES; };
  auto b_smem = [&](int slot) { return smem + slot * S::STAGE_BYTES + S::A_STAGE; };
  uint8_t* const scale_table = smem + S::STAGES * S::STAGE_BYTES;

  auto issue = [&](int stage, int slot) {
    const int64_t kb0 = int64_t(stage) * S::SB;
    uint8_t* as = a_smem(slot);
    for (int c = tid; c < S::BM * S::SB * 4; c += S::THREADS) {
      const int row = c / (S::SB * 4), lc = c % (S::SB * 4);
      const int64_t gm = m0 + row, blk = kb0 + lc / 4;
      const bool valid = gm < p.m && blk < nb;
      const T* src = valid ? x + gm * p.ldx + blk * 32 + (lc % 4) * 8 : x;
      cp_async16(as + row * S::A_PITCH + ((lc ^ ((row & 1) << 2)) * 16), src, valid ? 16 : 0);
    }
    uint8_t* bs = b_smem(slot);
    for (int c = tid; c < S::BN * S::SB; c += S::THREADS) {
      const int col = c / S::SB, j = c % S::SB;
      const int64_t gn = n0 + col, blk = kb0 + j;
      const bool valid = gn < p.n && blk < nb;
      cp_async16(bs + col * S::B_PITCH + j * 16, valid ? p.w + gn * p.ldw + blk * 16 : p.w, valid ? 16 : 0);
    }
  };
  // Scales of blocks [first, first + SCALE_CHUNK); those past K (up to the end of the last stage) or past N read
  // as 0, a finite scale for their zero-filled codes.
  auto load_scales = [&](int64_t first) {
    const int count = int(min(int64_t(S::SCALE_CHUNK), (nb - first + S::SB - 1) / S::SB * S::SB));
    for (int i = tid; i < S::BN * count; i += S::THREADS) {
      const int col = i / count, j = i % count;
      const int64_t gn = n0 + col;
      scale_table[col * S::SCALE_PITCH + j] =
          gn < p.n && first + j < nb ? __ldg(p.w_scales + gn * p.ldw_scales + first + j) : 0;
    }
  };

  float acc[S::MT][S::NT][4];
#pragma unroll
  for (int mi = 0; mi < S::MT; ++mi)
#pragma unroll
    for (int ni = 0; ni < S::NT; ++ni) acc[mi][ni][0] = acc[mi][ni][1] = acc[mi][ni][2] = acc[mi][ni][3] = 0.f;

#pragma unroll
  for (int s = 0; s < S::STAGES - 1; ++s) {
    if (s < stages_total) issue(s, s);
    cp_async_commit();
  }
  load_scales(0);  // overlaps the copies in flight; the first barrier below publishes it

  for (int it = 0; it < stages_total; ++it) {
    cp_async_wait<S::STAGES - 2>();
    __syncthreads();
    const int64_t kb0 = int64_t(it) * S::SB;
    if (kb0 > 0 && kb0 % S::SCALE_CHUNK == 0) {  // every warp is past the previous stage: refill the table
      load_scales(kb0);
      __syncthreads();
    }
    const int next = it + S::STAGES - 1;
    if (next < stages_total) issue(next, next % S::STAGES);
    cp_async_commit();

    const int slot = it % S::STAGES;
    const uint8_t* as = a_smem(slot);
    const uint8_t* bs = b_smem(slot);
    const uint8_t* ss = scale_table + kb0 % S::SCALE_CHUNK;
#pragma unroll
    for (int j = 0; j < S::SB; ++j) {
      uint32_t a[S::MT][2][4];
#pragma unroll
      for (int mi = 0; mi < S::MT; ++mi) {
        const int row_lo = wm * S::MT * 16 + mi * 16 + g, row_hi = row_lo + 8;
        const int lc = j * 4 + t;
        const uint4 vlo = *reinterpret_cast<const uint4*>(as + row_lo * S::A_PITCH + ((lc ^ ((row_lo & 1) << 2)) * 16));
        const uint4 vhi = *reinterpret_cast<const uint4*>(as + row_hi * S::A_PITCH + ((lc ^ ((row_hi & 1) << 2)) * 16));
        uint32_t pl[4], ph[4];
        pair_activations(vlo, pl);
        pair_activations(vhi, ph);
        a[mi][0][0] = pl[0], a[mi][0][1] = ph[0], a[mi][0][2] = pl[1], a[mi][0][3] = ph[1];
        a[mi][1][0] = pl[2], a[mi][1][1] = ph[2], a[mi][1][2] = pl[3], a[mi][1][3] = ph[3];
      }
      uint32_t b[S::NT][4];
      float f0[S::NT], f1[S::NT];
#pragma unroll
      for (int ni = 0; ni < S::NT; ++ni) {
        const int col = wn * S::NT * 8 + ni * 8 + g;
        decode_e2m1x8<T>(*reinterpret_cast<const uint32_t*>(bs + col * S::B_PITCH + j * 16 + 4 * t), b[ni]);
        const int sc = wn * S::NT * 8 + ni * 8 + 2 * t;
        f0[ni] = e8m0_value(ss[sc * S::SCALE_PITCH + j]);
        f1[ni] = e8m0_value(ss[(sc + 1) * S::SCALE_PITCH + j]);
      }
#pragma unroll
      for (int mi = 0; mi < S::MT; ++mi) {
#pragma unroll
        for (int ni = 0; ni < S::NT; ++ni) {
          float d[4];
          mma_16816<T>(d, a[mi][0], b[ni][0], b[ni][1], zero4);
          mma_16816<T>(d, a[mi][1], b[ni][2], b[ni][3], d);
          acc[mi][ni][0] = fmaf(d[0], f0[ni], acc[mi][ni][0]);
          acc[mi][ni][1] = fmaf(d[1], f1[ni], acc[mi][ni][1]);
          acc[mi][ni][2] = fmaf(d[2], f0[ni], acc[mi][ni][2]);
          acc[mi][ni][3] = fmaf(d[3], f1[ni], acc[mi][ni][3]);
        }
      }
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int mi = 0; mi < S::MT; ++mi) {
#pragma unroll
    for (int ni = 0; ni < S::NT; ++ni) {
      const int64_t col = n0 + wn * S::NT * 8 + ni * 8 + 2 * t;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = m0 + wm * S::MT * 16 + mi * 16 + g + 8 * h;
        if (row >= p.m) continue;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          if (col + e < p.n) {
            const float v = acc[mi][ni][2 * h + e];
            store_out<OutT>(p.out, row * p.ldo + col + e, p.bias ? v + p.bias[col + e] : v);
          }
        }
      }
    }
  }
}

// ---- launching -----------------------------------------------------------------------------------------------

struct DeviceInfo {
  int sms = 0;
};

inline cudaError_t device_info(DeviceInfo* info) {
  constexpr int kMaxDevices = 64;
  static int sms[kMaxDevices] = {};
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  if (dev < 0 || dev >= kMaxDevices) return cudaErrorInvalidDevice;
  if (sms[dev] == 0) {
    err = cudaDeviceGetAttribute(&sms[dev], cudaDevAttrMultiProcessorCount, dev);
    if (err != cudaSuccess) return err;
  }
  info->sms = sms[dev];
  return cudaSuccess;
}

// Lets `Kernel` take `bytes` of dynamic shared memory (above 48 KB it must opt in), once per device; a template on
// the kernel itself, so that each kernel has its own record.
template <auto Kernel>
cudaError_t allow_dynamic_smem(int bytes) {
  constexpr int kMaxDevices = 64;
  static bool done[kMaxDevices] = {};
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  if (dev < 0 || dev >= kMaxDevices) return cudaErrorInvalidDevice;
  if (!done[dev]) {
    err = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (err != cudaSuccess) return err;
    done[dev] = true;
  }
  return cudaSuccess;
}

using Shape128x64 = TiledShape<2, 4, 4, 2>;
using Shape128x48 = TiledShape<4, 2, 2, 3>;
using Shape64x64 = TiledShape<2, 4, 2, 2>;
using Shape64x48 = TiledShape<2, 2, 2, 3>;
using Shape32x64 = TiledShape<1, 4, 2, 2>;

struct TiledChoice {
  int index;  // into the shapes above, in that order
  int bm, bn;
};

// The tile whose busiest multiprocessor has the least work: waves of tiles times a tile's MMA work plus its
// operand loads (which favour larger tiles on ties).
inline TiledChoice choose_tile(int64_t m, int64_t n, int sms) {
  const int shapes[5][2] = {{128, 64}, {128, 48}, {64, 64}, {64, 48}, {32, 64}};
  TiledChoice best{0, 128, 64};
  double best_cost = 0;
  for (int i = 0; i < 5; ++i) {
    const int64_t bm = shapes[i][0], bn = shapes[i][1];
    const int64_t tiles = ((m + bm - 1) / bm) * ((n + bn - 1) / bn);
    const double waves = double((tiles + sms - 1) / sms);
    const double cost = waves * double(bm * bn + 32 * (bm + bn));
    if (i == 0 || cost < best_cost) best = {i, int(bm), int(bn)}, best_cost = cost;
  }
  return best;
}

inline int choose_skinny_warps(int64_t n, int sms) {
  const int64_t tiles = (n + 15) / 16;
  return tiles * 4 < int64_t(16) * sms ? 8 : 4;
}

template <typename T, typename OutT, typename S>
cudaError_t launch_tiled(const W4A16Problem& p, cudaStream_t stream) {
  const cudaError_t err = allow_dynamic_smem<&w4a16_tiled<T, OutT, S>>(S::SMEM);
  if (err != cudaSuccess) return err;
  const dim3 grid(unsigned((p.n + S::BN - 1) / S::BN), unsigned((p.m + S::BM - 1) / S::BM));
  w4a16_tiled<T, OutT, S><<<grid, S::THREADS, S::SMEM, stream>>>(p);
  return cudaGetLastError();
}

constexpr int kSkinnyMaxXBytes = 100 * 1024;

inline int skinny_x_pitch(int64_t k) { return int((k * 2) % 128 == 0 ? k * 2 + 64 : k * 2); }

template <typename T, typename OutT, int RT, int KW>
cudaError_t launch_skinny(const W4A16Problem& p, cudaStream_t stream) {
  const int pitch = skinny_x_pitch(p.k);
  const int64_t x_bytes = p.m * int64_t(pitch);
  const unsigned grid = unsigned((p.n + 15) / 16);
  if (x_bytes > kSkinnyMaxXBytes) {
    w4a16_skinny<T, OutT, RT, KW, 8, false><<<grid, KW * 32, 0, stream>>>(p, 0);
    return cudaGetLastError();
  }
  const cudaError_t err = allow_dynamic_smem<&w4a16_skinny<T, OutT, RT, KW, 8, true>>(kSkinnyMaxXBytes);
  if (err != cudaSuccess) return err;
  w4a16_skinny<T, OutT, RT, KW, 8, true><<<grid, KW * 32, size_t(x_bytes), stream>>>(p, pitch);
  return cudaGetLastError();
}

template <typename T, typename OutT>
cudaError_t launch_w4a16_typed(const W4A16Problem& p, cudaStream_t stream) {
  DeviceInfo info;
  cudaError_t err = device_info(&info);
  if (err != cudaSuccess) return err;
  if (p.m <= kW4A16SkinnyMaxM) {
    const bool eight = choose_skinny_warps(p.n, info.sms) == 8;
    if (p.m <= 8) return eight ? launch_skinny<T, OutT, 1, 8>(p, stream) : launch_skinny<T, OutT, 1, 4>(p, stream);
    return eight ? launch_skinny<T, OutT, 2, 8>(p, stream) : launch_skinny<T, OutT, 2, 4>(p, stream);
  }
  switch (choose_tile(p.m, p.n, info.sms).index) {
    case 0: return launch_tiled<T, OutT, Shape128x64>(p, stream);
    case 1: return launch_tiled<T, OutT, Shape128x48>(p, stream);
    case 2: return launch_tiled<T, OutT, Shape64x64>(p, stream);
    case 3: return launch_tiled<T, OutT, Shape64x48>(p, stream);
    default: return launch_tiled<T, OutT, Shape32x64>(p, stream);
  }
}

}  // namespace
}  // namespace mxkernels::core::cuda
