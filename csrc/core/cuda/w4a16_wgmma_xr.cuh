// Experiment: the W4A16 wgmma kernel with the activations as the MMAs' register operand (A) and the decoded weights
// as the shared-memory operand (B). The activations go from global memory straight into registers in a K order
// permuted within each 32-value block (lane t of a quad loads values 8t..8t+7, one 16-byte load, which become its
// K slots 2t, 2t+1, 2t+8, 2t+9 of the block's two k16 steps); the producers write the decoded weights in the same
// order, which only regroups the pairs they already hold. So the activations take no shared memory at all.
#pragma once
#include "cuda/w4a16_wgmma.cuh"

namespace mxkernels::core::cuda {
namespace {

// D (64 x 192, float32) += A (64 x 16 bf16, registers) * B (16 x 192 bf16, a K-major swizzled tile in shared memory).
__device__ __forceinline__ void wgmma_rs_m64n192(float (&d)[96], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95"
      "}, {%96, %97, %98, %99}, %100, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b)
      : "memory");
}

// CWG = 2 consumer warpgroups (64 activation rows each, all 192 columns: m64n192k16 with the activations in
// registers) and PWG producer warpgroups that copy the codes (cp.async), decode them into a ring of B_SLOTS swizzled
// bf16 tiles and hand them over through named barriers.
// A_SETS: activation register sets per consumer (1: the next stage's are loaded once this stage's MMAs are done,
// prefetched into L1 two stages ahead; 2 or 3: loaded A_SETS - 1 stages ahead). PROBE (timing only, wrong results),
// bits: 1 no MMAs, 2 no decode, 4 no activation loads, 8 no code copies. WORDS: a producer's decode unit is WORDS
// 4-byte words of codes (4: a whole 32-value block, 2: half of one). L1_AHEAD: the activations of stage it + L1_AHEAD
// are prefetched into L1 at stage it (0: none).
template <int PWG_, int B_SLOTS_, int CODE_SLOTS_, int CONSUMER_REGS_, int A_SETS_ = 2, int PROBE_ = 0, int WORDS_ = 4,
          int L1_AHEAD_ = 0>
struct XrShape {
  static constexpr int L1_AHEAD = L1_AHEAD_;
  static constexpr int WORDS = WORDS_, UNIT_BYTES = 4 * WORDS_, UNITS_PER_BLOCK = 4 / WORDS_;
  static constexpr int A_SETS = A_SETS_, PROBE = PROBE_;
  static constexpr int BN = 192, BT = 128, PRODUCERS = 128 * PWG_, THREADS = 256 + PRODUCERS;
  static constexpr int B_SLOTS = B_SLOTS_, CODE_SLOTS = CODE_SLOTS_;
  static constexpr int B_BYTES = BN * 128, CODE_BYTES = BN * 32;
  static constexpr int CODE_RING = 0, B_RING = CODE_SLOTS * CODE_BYTES, RINGS = B_RING + B_SLOTS * B_BYTES;
  static constexpr int PART_PITCH = BN + 8;  // floats: the float2 stores of the D fragments hit distinct banks
  static constexpr int PART_BYTES = BT * PART_PITCH * 4;
  static constexpr int SMEM = (RINGS > PART_BYTES ? RINGS : PART_BYTES) + 1024;
  static constexpr int UNITS = BN * 2 * UNITS_PER_BLOCK, DECODE_UNITS = (UNITS + PRODUCERS - 1) / PRODUCERS;
  static constexpr int LAUNCH_REGS = 65536 / THREADS / 8 * 8;
  static constexpr int CONSUMER_REGS = CONSUMER_REGS_;
  static constexpr int PRODUCER_REGS = (LAUNCH_REGS - (CONSUMER_REGS - LAUNCH_REGS) * 256 / PRODUCERS) / 8 * 8;
  static_assert(PRODUCER_REGS >= 40, "registers for the producers");
  static_assert((CONSUMER_REGS - LAUNCH_REGS) * 256 <= (LAUNCH_REGS - PRODUCER_REGS) * PRODUCERS, "setmaxnreg");
  static_assert(B_SLOTS >= 2 && 2 * B_SLOTS + 1 < 16 && CODE_SLOTS >= 2 && SMEM <= 227 * 1024, "rings");
};

template <typename OutT, typename S>
__global__ void __launch_bounds__(S::THREADS, 1) w4a16_wgmma_xr(W4A16Problem p, int splits) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int BT = S::BT, BN = S::BN;
  constexpr int kFull = 1, kEmpty = 1 + S::B_SLOTS, kConsumers = 1 + 2 * S::B_SLOTS;  // named barrier ids
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - (static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw)) & 1023)) & 1023);
  const int tid = threadIdx.x;
  const int wg = __shfl_sync(0xFFFFFFFFu, tid >> 7, 0);
  const int64_t n0 = int64_t(blockIdx.x) * BN, m0 = int64_t(blockIdx.y) * BT;
  const int nblk = int(p.k / 32), nst = (nblk + 1) / 2;
  const int st_begin = int(int64_t(nst) * blockIdx.z / splits), st_end = int(int64_t(nst) * (blockIdx.z + 1) / splits);
  const int n_it = st_end - st_begin;
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x);
  bool bad = false;
  float* part = reinterpret_cast<float*>(smem);

  if (wg >= 2) {
    // ---- producers ----
    setmaxnreg_dec<S::PRODUCER_REGS>();
    const int u = tid - 256;
    // Unit b: part b % UNITS_PER_BLOCK of block (b / UNITS_PER_BLOCK) % 2 of column b / (2 UNITS_PER_BLOCK); its
    // codes lie at byte b UNIT_BYTES of a code slot.
    constexpr int kUnits = S::UNITS, kUpb = S::UNITS_PER_BLOCK;
    const uint8_t* w_unit[S::DECODE_UNITS];
    const uint8_t* s_col[S::DECODE_UNITS];
#pragma unroll
    for (int i = 0; i < S::DECODE_UNITS; ++i) {
      const int b = min(u + S::PRODUCERS * i, kUnits - 1), col = b / (2 * kUpb), blk = (b / kUpb) & 1;
      w_unit[i] = p.w + min(n0 + col, p.n - 1) * p.ldw + blk * 16 + (b % kUpb) * S::UNIT_BYTES;
      s_col[i] = p.w_scales + min(n0 + col, p.n - 1) * p.ldw_scales + blk;
    }
    auto issue_codes = [&](int it, int slot_index) {
      if ((S::PROBE & 8) == 0 && it < n_it) {
        uint8_t* slot = smem + S::CODE_RING + slot_index * S::CODE_BYTES;
        const int64_t k0 = int64_t(st_begin + it) * 64;
#pragma unroll
        for (int i = 0; i < S::DECODE_UNITS; ++i) {
          const int b = u + S::PRODUCERS * i;
          if (kUnits % S::PRODUCERS == 0 || b < kUnits) {
            const bool ok = k0 + ((b / kUpb) & 1) * 32 < p.k;
            if constexpr (S::WORDS == 4) {
              cp_async16(slot + b * 16, ok ? w_unit[i] + k0 / 2 : p.w, ok ? 16 : 0);
            } else {
              const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(slot + b * 8));
              asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst),
                           "l"(ok ? w_unit[i] + k0 / 2 : p.w), "r"(ok ? 8 : 0));
            }
          }
        }
      }
      cp_async_commit();
    };
    uint32_t sc0[S::DECODE_UNITS], sc1[S::DECODE_UNITS], sc2[S::DECODE_UNITS];
    auto load_scales = [&](int it, uint32_t (&dst)[S::DECODE_UNITS]) {
      const int b0 = 2 * (st_begin + it);
#pragma unroll
      for (int i = 0; i < S::DECODE_UNITS; ++i) {
        const int blk = b0 + (((u + S::PRODUCERS * i) / kUpb) & 1);
        dst[i] = it < n_it && blk < nblk ? uint32_t(__ldg(s_col[i] + b0)) : 127u;
      }
    };
    int b_slot = 0, code_slot = 0;
    auto step = [&](int it, const uint32_t (&cur)[S::DECODE_UNITS], uint32_t (&ahead)[S::DECODE_UNITS]) {
      load_scales(it + 2, ahead);
      cp_async_wait<S::CODE_SLOTS - 2>();  // this thread's codes of stage it have landed
      if (it >= S::B_SLOTS) named_sync(kEmpty + b_slot, S::THREADS);  // stage it - B_SLOTS's MMAs are done
      const uint8_t* codes = smem + S::CODE_RING + code_slot * S::CODE_BYTES;
      uint8_t* b_tile = smem + S::B_RING + b_slot * S::B_BYTES;
#pragma unroll
      for (int i = 0; i < S::DECODE_UNITS; ++i) {
        const int b = u + S::PRODUCERS * i, col = b / (2 * kUpb), blk = (b / kUpb) & 1, part_w = (b % kUpb) * S::WORDS;
        if (kUnits % S::PRODUCERS != 0 && b >= kUnits) continue;
        if constexpr ((S::PROBE & 2) != 0) continue;
        uint32_t q[S::WORDS];
        if constexpr (S::WORDS == 4) {
          const uint4 v = *reinterpret_cast<const uint4*>(codes + b * 16);
          q[0] = v.x, q[1] = v.y, q[2] = v.z, q[3] = v.w;
        } else {
          const uint2 v = *reinterpret_cast<const uint2*>(codes + b * 8);
          q[0] = v.x, q[1] = v.y;
        }
        uint32_t any = 0;
#pragma unroll
        for (int w = 0; w < S::WORDS; ++w) any |= q[w];
        const uint32_t sv = cur[i];
        const bool in_window = sv - 77u <= 61u;
        bad |= !in_window && ((any & 0x77777777u) != 0 || sv == 0xFFu);
        const uint32_t f = ((in_window ? sv : 127u) + 126u - kBf16ScaleOffset) * 0x00800080u;
        uint32_t pr[S::WORDS][4];
#pragma unroll
        for (int w = 0; w < S::WORDS; ++w) decode_e2m1x8_in_order(q[w], f, pr[w]);
        // Chunk j of the block's 64 bytes holds pair j of each word (word t: values 8t..8t+7, lane t's); this unit's
        // words fill its part of each chunk.
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          uint8_t* dst = b_tile + col * 128 + (((blk * 4 + j) ^ (col & 7)) << 4);
          if constexpr (S::WORDS == 4) {
            *reinterpret_cast<uint4*>(dst) = make_uint4(pr[0][j], pr[1][j], pr[2][j], pr[3][j]);
          } else {
            *reinterpret_cast<uint2*>(dst + 4 * part_w) = make_uint2(pr[0][j], pr[1][j]);
          }
        }
      }
      fence_proxy_async();
      named_arrive(kFull + b_slot, S::THREADS);
      // The codes of stage it + CODE_SLOTS - 1 go where stage it - 1's were (this thread has decoded them).
      issue_codes(it + S::CODE_SLOTS - 1, code_slot == 0 ? S::CODE_SLOTS - 1 : code_slot - 1);
      b_slot = b_slot + 1 == S::B_SLOTS ? 0 : b_slot + 1;
      code_slot = code_slot + 1 == S::CODE_SLOTS ? 0 : code_slot + 1;
    };
    for (int v = 0; v < S::CODE_SLOTS - 1; ++v) issue_codes(v, v);
    load_scales(0, sc0);
    load_scales(1, sc1);
    for (int it = 0; it < n_it; it += 3) {
      step(it, sc0, sc2);
      if (it + 1 < n_it) step(it + 1, sc1, sc0);
      if (it + 2 < n_it) step(it + 2, sc2, sc1);
    }
    cp_async_wait<0>();
  } else {
    // ---- consumers: warpgroup `wg` takes activation rows 64 wg .. 64 wg + 63 ----
    setmaxnreg_inc<S::CONSUMER_REGS>();
    float acc[96];
#pragma unroll
    for (int i = 0; i < 96; ++i) acc[i] = 0.f;
    const int lane = tid & 31, g = lane >> 2, t = lane & 3, wq = (tid >> 5) & 3;
    const int row0 = 64 * wg + 16 * wq + g;
    const uint4* xr0 = reinterpret_cast<const uint4*>(x + min(m0 + row0, p.m - 1) * p.ldx) + t;
    const uint4* xr1 = reinterpret_cast<const uint4*>(x + min(m0 + row0 + 8, p.m - 1) * p.ldx) + t;
    // Stage it's fragments: a[4 s + r] is register r of k16 step s (r: 0 row g, 1 row g + 8; +2 the upper K slots).
    auto load_act = [&](int it, uint32_t (&a)[16]) {
      const int64_t k0 = int64_t(st_begin + it) * 64;
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int64_t kc = k0 + 32 * c;
        uint4 v0 = make_uint4(0, 0, 0, 0), v1 = v0;
        if ((S::PROBE & 4) == 0 && kc < p.k) {
          v0 = __ldg(xr0 + kc / 8);
          v1 = __ldg(xr1 + kc / 8);
        }
        a[8 * c + 0] = v0.x, a[8 * c + 2] = v0.y, a[8 * c + 4] = v0.z, a[8 * c + 6] = v0.w;
        a[8 * c + 1] = v1.x, a[8 * c + 3] = v1.y, a[8 * c + 5] = v1.z, a[8 * c + 7] = v1.w;
      }
    };
    auto prefetch_act = [&](int it) {
      const int64_t k0 = int64_t(st_begin + it) * 64;
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int64_t kc = k0 + 32 * c;
        if ((S::PROBE & 4) == 0 && kc < p.k) {
          asm volatile("prefetch.global.L1 [%0];" ::"l"(xr0 + kc / 8));
          asm volatile("prefetch.global.L1 [%0];" ::"l"(xr1 + kc / 8));
        }
      }
    };
    // Set it % A_SETS holds stage it's fragments. Stage it + A_SETS - 1's loads go into the set of stage it - 1
    // (whose MMAs are done) only after stage it's MMAs are issued: wgmma.fence waits for loads in flight.
    uint32_t a0[16], a1[16], a2[S::A_SETS == 3 ? 16 : 1];
    int b_slot = 0;
    auto stage = [&](int it, uint32_t (&a)[16], uint32_t (&next)[16]) {
      if (S::A_SETS == 1 && it + 2 < n_it) prefetch_act(it + 2);
      if (S::L1_AHEAD > 0 && it + S::L1_AHEAD < n_it) prefetch_act(it + S::L1_AHEAD);
      named_sync(kFull + b_slot, S::THREADS);
      const uint64_t desc_b = swizzled_tile_descriptor(smem + S::B_RING + b_slot * S::B_BYTES);
      keep_registers(acc);
      wgmma_fence();
      if constexpr ((S::PROBE & 1) == 0) {
#pragma unroll
        for (int s = 0; s < 4; ++s) {
          const uint32_t frag[4] = {a[4 * s], a[4 * s + 1], a[4 * s + 2], a[4 * s + 3]};
          wgmma_rs_m64n192(acc, frag, desc_b + 2 * s);
        }
      } else {
#pragma unroll
        for (int i = 0; i < 16; ++i) acc[i] += __uint_as_float(a[i]);
      }
      wgmma_commit();
      if (S::A_SETS > 1 && it + S::A_SETS - 1 < n_it) load_act(it + S::A_SETS - 1, next);
      wgmma_wait<0>();
      keep_registers(acc);
      if (it + S::B_SLOTS < n_it) named_arrive(kEmpty + b_slot, S::THREADS);
      if (S::A_SETS == 1 && it + 1 < n_it) load_act(it + 1, a);
      b_slot = b_slot + 1 == S::B_SLOTS ? 0 : b_slot + 1;
    };
    load_act(0, a0);
    if constexpr (S::A_SETS == 3) {
      if (n_it > 1) load_act(1, a1);
      for (int it = 0; it < n_it; it += 3) {
        stage(it, a0, a2);
        if (it + 1 < n_it) stage(it + 1, a1, a0);
        if (it + 2 < n_it) stage(it + 2, a2, a1);
      }
    } else if constexpr (S::A_SETS == 2) {
      for (int it = 0; it < n_it; it += 2) {
        stage(it, a0, a1);
        if (it + 1 < n_it) stage(it + 1, a1, a0);
      }
    } else {
      if (n_it > 1) prefetch_act(1);
      for (int it = 0; it < n_it; ++it) stage(it, a0, a0);
    }
    // Both consumer warpgroups' MMAs are done before the partial sums overwrite the rings.
    named_sync(kConsumers, 256);
    const float total_scale = float(1u << kBf16ScaleOffset);
#pragma unroll
    for (int j = 0; j < 24; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float2 v = make_float2(acc[4 * j + 2 * h] * total_scale, acc[4 * j + 2 * h + 1] * total_scale);
        *reinterpret_cast<float2*>(part + (row0 + 8 * h) * S::PART_PITCH + 8 * j + 2 * t) = v;
      }
  }
  bad = __syncthreads_or(bad) != 0;
  __syncthreads();

  if (bad) {
    const int b_begin = 2 * st_begin, b_end = min(2 * st_end, nblk);
    const int rows = int(min(int64_t(BT), p.m - m0));
    for (int item = tid; item < 2 * BN; item += S::THREADS) {
      const int c = item % BN, r_begin = item < BN ? 0 : BT / 2, r_end = min(r_begin + BT / 2, rows);
      if (n0 + c >= p.n) continue;
      const uint8_t* wr = p.w + (n0 + c) * p.ldw;
      for (int b = b_begin; b < b_end; ++b) {
        const uint4 q = __ldg(reinterpret_cast<const uint4*>(wr + 16 * b));
        const uint32_t word[4] = {q.x, q.y, q.z, q.w};
        float w[32];
#pragma unroll
        for (int k = 0; k < 32; ++k) w[k] = e2m1_value((word[k >> 3] >> (4 * (k & 7))) & 0xFu);
        const float scale = e8m0_value(p.w_scales[(n0 + c) * p.ldw_scales + b]);
        for (int r = r_begin; r < r_end; ++r) {
          const uint4* xr = reinterpret_cast<const uint4*>(x + (m0 + r) * p.ldx + 32 * b);
          float sum = 0.f;
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const uint4 v = __ldg(xr + i);
            const uint32_t xs[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              sum = fmaf(__uint_as_float(xs[e] << 16), w[8 * i + 2 * e], sum);
              sum = fmaf(__uint_as_float(xs[e] & 0xFFFF0000u), w[8 * i + 2 * e + 1], sum);
            }
          }
          float& total = part[r * S::PART_PITCH + c];
          total = b == b_begin ? sum * scale : total + sum * scale;
        }
      }
    }
  }
  __syncthreads();

  const int rank = splits > 1 ? int(blockIdx.z) : 0;
  constexpr int kGroups = BN / 4, kRowsPerRound = S::THREADS / kGroups;
  namespace cg = cooperative_groups;
  const float* ranks[4] = {part, part, part, part};
  if (splits > 1) {
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();
#pragma unroll
    for (int q = 0; q < 4; ++q) ranks[q] = cluster.map_shared_rank(part, q < splits ? q : 0);
  }
  const int rows = int(min(int64_t(BT), p.m - m0));
  const int my_rows = rows > rank ? (rows - rank + splits - 1) / splits : 0;
  if (tid < kRowsPerRound * kGroups) {
    const int group = tid % kGroups, first = tid / kGroups;
    const int64_t col = n0 + 4 * group;
    float bias[4] = {0.f, 0.f, 0.f, 0.f};
    if (p.bias) {
#pragma unroll
      for (int e = 0; e < 4; ++e) bias[e] = col + e < p.n ? p.bias[col + e] : 0.f;
    }
    const bool whole = col + 4 <= p.n && reinterpret_cast<uintptr_t>(p.out) % 16 == 0 && p.ldo % 4 == 0;
#pragma unroll 2
    for (int rr = first; rr < my_rows; rr += kRowsPerRound) {
      const int r = rank + splits * rr, off = r * S::PART_PITCH + 4 * group;
      float4 v = *reinterpret_cast<const float4*>(ranks[0] + off);
#pragma unroll
      for (int q = 1; q < 4; ++q) {
        if (q < splits) {
          const float4 o = *reinterpret_cast<const float4*>(ranks[q] + off);
          v.x += o.x, v.y += o.y, v.z += o.z, v.w += o.w;
        }
      }
      const float out4[4] = {v.x + bias[0], v.y + bias[1], v.z + bias[2], v.w + bias[3]};
      store_out4<OutT>(p, (m0 + r) * p.ldo + col, out4, whole, int(min(int64_t(4), p.n - col)));
    }
  }
  if (splits > 1) cg::this_cluster().sync();
#else
  __trap();
#endif
}

template <typename OutT, typename S>
cudaError_t launch_wgmma_xr(const W4A16Problem& p, int splits, cudaStream_t stream) {
  const cudaError_t err = prepare_kernel<&w4a16_wgmma_xr<OutT, S>>(S::THREADS, S::SMEM);
  if (err != cudaSuccess) return err;
  return launch_tiles(w4a16_wgmma_xr<OutT, S>, p, S::BN, S::BT, S::THREADS, S::SMEM, splits, stream);
}

}  // namespace
}  // namespace mxkernels::core::cuda
