// Scratch (thirteenth pass, bench/RESULTS.md): not part of the library. Switches: PROBE 1 = no compute (consumers
// wait and release), 2 = no copies (compute on whatever shared memory holds, scales forced to 120), 3 = copies only
// (the producer waits for them; no consumers). LOADER 0 = one bulk copy per group for codes and one for scales,
// 1 = cp.async by every consumer thread (all groups in flight), 2 = one bulk copy per row (PARTS splits each row).
// The W4A16 kernel for 1 to 8 activation rows on Hopper: the weights stream through shared memory in the order the
// warps use them, copied by the copy engine (cp.async.bulk) a group of 8 columns at a time, each group behind its
// own mbarrier, so that the first groups arrive early and are multiplied while the rest are in flight. Needs sm_90
// (bulk copies, mbarrier waits); see use_gemv for the shapes it takes.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/cuda_kernels.h"
#include "cuda/device_common.cuh"
#include "cuda/w4a16_kernels.cuh"

namespace mxkernels::core::cuda {
namespace {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_address(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_address(bar)) : "memory");
}
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_address(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(smem_address(bar)),
      "r"(parity)
      : "memory");
}
// `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to shared memory by the copy engine; the
// mbarrier's transaction count goes down by `bytes` when they have landed.
__device__ __forceinline__ void bulk_copy_to_shared(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
          smem_address(dst)),
      "l"(src), "r"(bytes), "r"(smem_address(bar))
      : "memory");
}

constexpr int kGemvMaxWarps = 16;  // consumer warps; one more warp issues the copies and sums the warps' partials
constexpr int kGemvMaxSlots = 16;

// Shared memory: the slots' full and empty barriers, then each slot's partial sums (one float2 per consumer lane),
// then the slots' codes (8 rows of k/2 bytes) and scales (8 rows of k/32 bytes).
struct GemvLayout {
  int slots, warps;
  int64_t k;
  __host__ __device__ int code_bytes() const { return int(16 * (k / 2)); }
  __host__ __device__ int scale_bytes() const { return int(16 * (k / 32)); }
  __host__ __device__ int slot_bytes() const { return code_bytes() + scale_bytes(); }
  __host__ __device__ int partial_offset() const { return 8 * 5 * kGemvMaxSlots; }
  __host__ __device__ int data_offset() const { return partial_offset() + slots * warps * 32 * 16; }
  __host__ __device__ int bytes() const { return data_offset() + slots * slot_bytes(); }
};

// Columns go in groups of 8 to the blocks in turn (group i of block b is b + i * gridDim.x), each block's groups
// through `slots` slots of shared memory. K goes in steps of 64 values to `warps` consumer warps, SPW steps each
// (warp w takes steps w * SPW ... w * SPW + SPW - 1), so that a warp's activations stay in its registers for all
// its groups. A step is one mma.m16n8k16 column group: the 8 columns are the B operand, lane t of quad n holding
// the 16 codes (8 bytes) t of column n's step, the activation rows (up to 8) the A operand's rows 0..7, in the
// same k order (decode_e2m1x8's pairs, pair_activations). The scales are folded into the decoded codes as in the
// skinny kernel (span_scale, bf16 only); a group whose scales do not allow it takes each block alone. The producer
// warp sums the consumer warps' partials of a group once they have released its slot, then stores them.
template <typename OutT, int SPW, int PROBE = 0, int LOADER = 0, int PARTS = 1>
__global__ void __launch_bounds__(32 * (kGemvMaxWarps + 1)) w4a16_gemv(W4A16Problem p, GemvLayout layout) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using T = __nv_bfloat16;
  extern __shared__ __align__(16) uint8_t smem[];
  uint64_t* full = reinterpret_cast<uint64_t*>(smem);
  uint64_t* empty = full + 4 * kGemvMaxSlots;
  float4* partials = reinterpret_cast<float4*>(smem + layout.partial_offset());
  uint8_t* data = smem + layout.data_offset();
  const int warps = layout.warps, slots = layout.slots;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t groups = p.n / 16;
  const int my_groups = int((groups - blockIdx.x + gridDim.x - 1) / gridDim.x);
  const int code_bytes = layout.code_bytes(), slot_bytes = layout.slot_bytes();
  const int row_bytes = int(p.k / 2), scale_row = int(p.k / 32), steps = int(p.k / 64);

  if (threadIdx.x == 0) {
    for (int s = 0; s < slots * PARTS; ++s) mbarrier_init(full + s, LOADER == 1 ? uint32_t(warps * 32) : 1u);
    for (int s = 0; s < slots; ++s) {
      mbarrier_init(empty + s, uint32_t(warps * 32));
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (warp == warps) {  // the producer
    auto issue = [&](int i) {
      const int slot = i % slots;
      const int64_t group = blockIdx.x + int64_t(i) * gridDim.x;
      uint8_t* dst = data + slot * slot_bytes;
      if (LOADER == 2) {
        const int pb = row_bytes / PARTS;
        if (lane == 0) {
          for (int q = 0; q < PARTS; ++q)
            mbarrier_arrive_expect_tx(full + slot * PARTS + q, uint32_t(16 * pb + (q == 0 ? layout.scale_bytes() : 0)));
        }
        __syncwarp();
        if (lane == 16) bulk_copy_to_shared(dst + code_bytes, p.w_scales + group * 16 * p.ldw_scales, uint32_t(layout.scale_bytes()), full + slot * PARTS);
        for (int q = 0; q < PARTS; ++q) {
          if (lane < 16) bulk_copy_to_shared(dst + q * 16 * pb + lane * pb, p.w + (group * 16 + lane) * p.ldw + q * pb, uint32_t(pb), full + slot * PARTS + q);
        }
        return;
      }
      mbarrier_arrive_expect_tx(full + slot, uint32_t(slot_bytes));
      bulk_copy_to_shared(dst, p.w + group * 16 * p.ldw, uint32_t(code_bytes), full + slot);
      bulk_copy_to_shared(dst + code_bytes, p.w_scales + group * 16 * p.ldw_scales, uint32_t(layout.scale_bytes()),
                          full + slot);
    };
    if ((lane == 0 || LOADER == 2) && PROBE != 2 && LOADER != 1) {
      for (int i = 0; i < slots && i < my_groups; ++i) issue(i);
    }
    for (int i = 0; i < my_groups; ++i) {
      const int slot = i % slots;
      if (PROBE == 3) {
        for (int q = 0; q < PARTS; ++q) mbarrier_wait(full + slot * PARTS + q, uint32_t((i / slots) & 1));
        continue;
      }
      mbarrier_wait(empty + slot, uint32_t((i / slots) & 1));
      const int64_t col = (blockIdx.x + int64_t(i) * gridDim.x) * 16 + g;
      if (2 * t < p.m) {
        float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int w = 0; w < kGemvMaxWarps; ++w) {
          if (w < warps) {
            const float4 v = partials[(slot * warps + w) * 32 + lane];
            sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
          }
        }
        const float b0 = p.bias ? p.bias[col] : 0.f, b1 = p.bias ? p.bias[col + 8] : 0.f;
        store_out<OutT>(p.out, 2 * t * p.ldo + col, sum.x + b0);
        store_out<OutT>(p.out, 2 * t * p.ldo + col + 8, sum.z + b1);
        if (2 * t + 1 < p.m) {
          store_out<OutT>(p.out, (2 * t + 1) * p.ldo + col, sum.y + b0);
          store_out<OutT>(p.out, (2 * t + 1) * p.ldo + col + 8, sum.w + b1);
        }
      }
      __syncwarp();  // every lane has read the slot's partials before it is refilled
      if ((lane == 0 || LOADER == 2) && i + slots < my_groups && PROBE != 2 && LOADER != 1) issue(i + slots);
    }
    return;
  }

  if (LOADER == 1 && PROBE != 2) {
    // every consumer thread copies its share of every group (slots == my_groups), in group order
    const int chunks = slot_bytes / 16, code_chunks = code_bytes / 16;
    for (int i = 0; i < my_groups; ++i) {
      const int64_t group = blockIdx.x + int64_t(i) * gridDim.x;
      uint8_t* dst = data + i * slot_bytes;
      for (int c = threadIdx.x; c < chunks; c += warps * 32) {
        const uint8_t* src = c < code_chunks ? p.w + group * 16 * p.ldw + 16 * c
                                             : p.w_scales + group * 16 * p.ldw_scales + 16 * (c - code_chunks);
        cp_async16(dst + 16 * c, src, 16);
      }
      asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_address(full + i)) : "memory");
    }
  }

  if (PROBE == 3) return;
  // The warp's activations: row g (zero past M), its SPW steps' 16 values at 16 t, paired as the MMAs take them.
  const T* xg = static_cast<const T*>(p.x);
  uint32_t xa[SPW][4], xb[SPW][4];
#pragma unroll
  for (int s = 0; s < SPW; ++s) {
    const int step = warp * SPW + s;
    uint4 v0 = make_uint4(0, 0, 0, 0), v1 = v0;
    if (g < p.m && step < steps) {
      const uint4* src = reinterpret_cast<const uint4*>(xg + g * p.ldx + 64 * step + 16 * t);
      v0 = __ldg(src);
      v1 = __ldg(src + 1);
    }
    pair_activations(v0, xa[s]);
    pair_activations(v1, xb[s]);
  }

  for (int i = 0; i < my_groups; ++i) {
    const int slot = i % slots;
    const uint8_t* codes = data + slot * slot_bytes;
    const uint8_t* scales = codes + code_bytes;
    const int part = PARTS == 1 ? 0 : (warp * SPW) / (steps / PARTS);
    if (PROBE != 2) {
      if (PARTS > 1 && part > 0) mbarrier_wait(full + slot * PARTS, uint32_t((i / slots) & 1));
      mbarrier_wait(full + slot * PARTS + part, uint32_t((i / slots) & 1));
    }
    if (PROBE == 1) {
      mbarrier_arrive(empty + slot);
      continue;
    }
    uint32_t sc0[SPW], sc1[SPW];
    uint2 q0[SPW], q1[SPW];
    bool ok = true;
#pragma unroll
    for (int s = 0; s < SPW; ++s) {
      const int step = warp * SPW + s;
      sc0[s] = sc1[s] = 127u;
      q0[s] = q1[s] = make_uint2(0, 0);
      if (step < steps) {
        const int sofs = g * scale_row + 2 * step + (t >> 1), cofs = PARTS == 1 ? g * row_bytes + 32 * step + 8 * t : part * 16 * (row_bytes / PARTS) + g * (row_bytes / PARTS) + 32 * step + 8 * t - part * (row_bytes / PARTS);
        sc0[s] = PROBE == 2 ? 120u : scales[sofs];
        sc1[s] = PROBE == 2 ? 120u : scales[sofs + 8 * scale_row];
        q0[s] = *reinterpret_cast<const uint2*>(codes + cofs);
        q1[s] = *reinterpret_cast<const uint2*>(codes + cofs + 8 * (PARTS == 1 ? row_bytes : row_bytes / PARTS));
      }
      ok = ok && sc0[s] - (67u + kBf16ScaleOffset) <= 61u && sc1[s] - (67u + kBf16ScaleOffset) <= 61u;
    }
    float d[2][4] = {};
    float exact[4] = {0.f, 0.f, 0.f, 0.f};
    if (__all_sync(0xFFFFFFFFu, ok)) {
#pragma unroll
      for (int s = 0; s < SPW; ++s) {
        if (warp * SPW + s >= steps) break;
        const uint32_t f0 = (sc0[s] + 126u - kBf16ScaleOffset) * 0x00800080u;
        const uint32_t f1 = (sc1[s] + 126u - kBf16ScaleOffset) * 0x00800080u;
        uint32_t a0[4], b0[4], a1[4], b1[4];
        decode_e2m1x8<T>(q0[s].x, f0, a0);
        decode_e2m1x8<T>(q0[s].y, f0, b0);
        decode_e2m1x8<T>(q1[s].x, f1, a1);
        decode_e2m1x8<T>(q1[s].y, f1, b1);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const uint32_t a[4] = {a0[j], a1[j], b0[j], b1[j]};
          mma_16816<T>(d[j & 1], a, xa[s][j], xb[s][j], d[j & 1]);
        }
      }
    } else {
      // Each half of a step (t = 0, 1: one block; t = 2, 3: the next) alone, its codes decoded unscaled and the
      // other half's codes and activations zero, the sums times each column's scale in float32.
#pragma unroll
      for (int s = 0; s < SPW; ++s) {
        if (warp * SPW + s >= steps) break;
#pragma unroll 1
        for (int h = 0; h < 2; ++h) {
          const uint32_t keep = (t >> 1) == h ? 0xFFFFFFFFu : 0u;
          uint32_t a0[4], b0[4], a1[4], b1[4];
          decode_e2m1x8<T>(q0[s].x & keep, fold_factor<T>(0), a0);
          decode_e2m1x8<T>(q0[s].y & keep, fold_factor<T>(0), b0);
          decode_e2m1x8<T>(q1[s].x & keep, fold_factor<T>(0), a1);
          decode_e2m1x8<T>(q1[s].y & keep, fold_factor<T>(0), b1);
          float e[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const uint32_t a[4] = {a0[j], a1[j], b0[j], b1[j]};
            mma_16816<T>(e, a, xa[s][j] & keep, xb[s][j] & keep, e);
          }
          const float s0 = e8m0_value(__shfl_sync(0xFFFFFFFFu, sc0[s], g * 4 + 2 * h));
          const float s1 = e8m0_value(__shfl_sync(0xFFFFFFFFu, sc1[s], g * 4 + 2 * h));
          exact[0] = fmaf(e[0], s0, exact[0]);
          exact[1] = fmaf(e[1], s0, exact[1]);
          exact[2] = fmaf(e[2], s1, exact[2]);
          exact[3] = fmaf(e[3], s1, exact[3]);
        }
      }
    }
    const float unit = float(1u << kBf16ScaleOffset);
    partials[(slot * warps + warp) * 32 + lane] =
        make_float4(fmaf(d[0][0] + d[1][0], unit, exact[0]), fmaf(d[0][1] + d[1][1], unit, exact[1]),
                    fmaf(d[0][2] + d[1][2], unit, exact[2]), fmaf(d[0][3] + d[1][3], unit, exact[3]));
    mbarrier_arrive(empty + slot);
  }
#else
  __trap();  // launched only on compute capability 9.0 and above (use_gemv)
#endif
}

// Steps of 64 K values per consumer warp that the launcher instantiates (see launch_gemv).
constexpr int kGemvStepsPerWarp[] = {1, 2, 3, 4, 6, 8};

inline int gemv_steps_per_warp(int64_t k) {
  const int64_t steps = k / 64;
  for (int spw : kGemvStepsPerWarp) {
    if ((steps + spw - 1) / spw <= kGemvMaxWarps) return spw;
  }
  return 0;
}

// The shapes the kernel takes: bf16 activations, 1 to 8 rows, whole groups of 8 columns, K a multiple of 64 (whole
// steps, and each group's scales a multiple of 16 bytes) up to what the warps' registers hold, the codes and scales
// contiguous and 16-byte aligned (bulk copies), and a device that has bulk copies.
inline bool gemv_fits(const W4A16Problem& p, int major, int max_smem) {
  if (p.x_type != FloatType::bf16 || p.m < 1 || p.m > 8 || p.n % 16 != 0 || p.k % 64 != 0 || major < 9) return false;
  if (p.ldw != p.k / 2 || p.ldw_scales != p.k / 32) return false;
  if (reinterpret_cast<uintptr_t>(p.w) % 16 != 0 || reinterpret_cast<uintptr_t>(p.w_scales) % 16 != 0) return false;
  if (gemv_steps_per_warp(p.k) == 0) return false;
  const GemvLayout one{1, kGemvMaxWarps, p.k};
  return one.bytes() <= max_smem;
}

template <typename OutT, int SPW, int PROBE = 0, int LOADER = 0, int PARTS = 1>
cudaError_t launch_gemv_spw(const W4A16Problem& p, int sms, int max_slots, cudaStream_t stream, int blocks_per_sm = 1) {
  const int kMaxSmem = 227 * 1024 / blocks_per_sm - 1024;
  const int64_t groups = p.n / 16;
  const int grid = int(std::min<int64_t>(groups, int64_t(sms) * blocks_per_sm));
  const int per_block = int((groups + grid - 1) / grid);
  GemvLayout layout{1, int((p.k / 64 + SPW - 1) / SPW), p.k};
  while (layout.slots < per_block && layout.slots < max_slots && layout.slots < kGemvMaxSlots) {
    GemvLayout more = layout;
    ++more.slots;
    if (more.bytes() > kMaxSmem) break;
    if (LOADER == 1 && more.slots > per_block) break;
    layout = more;
  }
  if (LOADER == 1 && layout.slots < per_block) return cudaErrorInvalidValue;
  const cudaError_t err = prepare_kernel<&w4a16_gemv<OutT, SPW, PROBE, LOADER, PARTS>>(32 * (kGemvMaxWarps + 1), 227 * 1024);
  if (err != cudaSuccess) return err;
  w4a16_gemv<OutT, SPW, PROBE, LOADER, PARTS><<<grid, 32 * (layout.warps + 1), size_t(layout.bytes()), stream>>>(p, layout);
  return cudaGetLastError();
}

template <typename OutT>
cudaError_t launch_gemv(const W4A16Problem& p, int sms, int max_slots, cudaStream_t stream) {
  switch (gemv_steps_per_warp(p.k)) {
    case 1: return launch_gemv_spw<OutT, 1>(p, sms, max_slots, stream);
    case 2: return launch_gemv_spw<OutT, 2>(p, sms, max_slots, stream);
    case 3: return launch_gemv_spw<OutT, 3>(p, sms, max_slots, stream);
    case 4: return launch_gemv_spw<OutT, 4>(p, sms, max_slots, stream);
    case 6: return launch_gemv_spw<OutT, 6>(p, sms, max_slots, stream);
    case 8: return launch_gemv_spw<OutT, 8>(p, sms, max_slots, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace
}  // namespace mxkernels::core::cuda
