// The W4A16 GEMM kernels, templated on the activation type T (bf16 or fp16, the tensor cores' operand type) and the
// output type. Both work in spans of 128 K values (4 blocks): the tensor cores (mma.m16n8k16, the codes decoded
// exactly into T in registers) sum a span's products in float32, with each block's scale applied to its decoded
// values where that is exact (span_scale: in bf16 the scale itself over 2^10, in fp16 relative to the span's
// largest), and the span's sum is multiplied by the rest of the scale in float32 and added to the float32 total
// (the skinny kernel for up to 8 rows of bf16 chains the MMAs straight into its totals, kept at 2^-10 times).
// Where that is not exact (scale 0 or 254 next to ordinary ones, NaN), each block's sum is taken alone and multiplied
// by its own scale, as on the CPU.
//
// The MMA's k order is free as long as both operands follow it: lane t of a quad holds the whole block t of the span
// (one 16-byte load per column), decode_e2m1x8 pairs each word's codes (e0,e4) (e1,e5) (e2,e6) (e3,e7), and the
// activations are paired the same way (pair_activations).
#pragma once
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <type_traits>

#include "cuda/cuda_kernels.h"
#include "cuda/device_common.cuh"
#include "mxfp4_cuda_layout.h"

namespace mxkernels::core::cuda {
namespace {

// Scale folding for a span: lane t of a quad holds block t of a column (codes q, scale s). The span's scale is the
// largest of the 4 scales, ignoring blocks whose codes are all (signed) zeros, which contribute the same whatever
// the scale (NaN scales excepted); each block's own factor is 2^shift relative to it. `ok` where the fold is exact.
struct FoldedScale {
  uint32_t span_scale;
  int shift;
  bool ok;
};

template <typename T>
__device__ __forceinline__ FoldedScale fold_scales(const uint32_t q[4], uint32_t s) {
  const bool zero = ((q[0] | q[1] | q[2] | q[3]) & 0x77777777u) == 0 && s != 0xFFu;
  uint32_t top = zero ? 0u : s;
  top = max(top, __shfl_xor_sync(0xFFFFFFFFu, top, 1));
  top = max(top, __shfl_xor_sync(0xFFFFFFFFu, top, 2));
  FoldedScale f;
  f.span_scale = top;
  f.shift = zero ? 0 : int(s) - int(top);
  f.ok = top != 0xFFu && f.shift >= E2m1Decode<T>::kMinFoldShift;
  return f;
}

// How a span's blocks of one column are scaled on the fast path: decoded times `factor` (a pair of T), the span's
// float32 sum times `sum_scale`. In bf16 the factor is the block's own scale over a fixed 2^kBf16ScaleOffset: for s
// in [67, 128] + kBf16ScaleOffset (weights of magnitude 2^-61 to 12288), 2^(s-127-offset) times a code is a normal
// bf16 in [2^-61, 12], exact, and the sum's scale is the constant 2^offset (no shuffles, no search for the largest).
// fp16's range is too narrow for that, so it folds relative to the span's largest scale (fold_scales). `ok` is false
// where the span must take the exact block-by-block path.
struct SpanScale {
  uint32_t factor;
  float sum_scale;
  bool ok;
};

constexpr uint32_t kBf16ScaleOffset = 10;

template <typename T>
__device__ __forceinline__ SpanScale span_scale(const uint32_t q[4], uint32_t s) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    // 2^(s-1-offset) in each half (bf16 exponent field s+126-offset): the raw decode is 2^-126 times the code.
    return {(s + 126u - kBf16ScaleOffset) * 0x00800080u, float(1u << kBf16ScaleOffset),
            s - (67u + kBf16ScaleOffset) <= 61u};
  } else {
    const FoldedScale f = fold_scales<T>(q, s);
    return {fold_factor<T>(f.shift), e8m0_value(f.span_scale), f.ok};
  }
}

// Word i of lane t's block in columns g and g + 8 (codes q0, q1), decoded times f0 / f1 into the A operands of the
// span's two MMAs for that word: rows g and g + 8, K slots (2t, 2t + 1) and (2t + 8, 2t + 9).
template <typename T>
__device__ __forceinline__ void decode_word_pair(uint32_t q0, uint32_t q1, uint32_t f0, uint32_t f1, uint32_t a[2][4]) {
  uint32_t wa[4], wb[4];
  decode_e2m1x8<T>(q0, f0, wa);
  decode_e2m1x8<T>(q1, f1, wb);
  a[0][0] = wa[0], a[0][1] = wb[0], a[0][2] = wa[1], a[0][3] = wb[1];
  a[1][0] = wa[2], a[1][1] = wb[2], a[1][2] = wa[3], a[1][3] = wb[3];
}

// All 4 words (the whole span) at once, the codes of lanes whose `keep` is zero made zero.
template <typename T>
__device__ __forceinline__ void decode_span(const uint32_t q0[4], const uint32_t q1[4], uint32_t f0, uint32_t f1,
                                            uint32_t keep, uint32_t a[4][2][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) decode_word_pair<T>(q0[i] & keep, q1[i] & keep, f0, f1, a[i]);
}

// acc += d times the column scales: d[0], d[1] belong to column g (g0), d[2], d[3] to column g + 8 (g1).
__device__ __forceinline__ void scale_add(float acc[4], const float d[4], float g0, float g1) {
  acc[0] = fmaf(d[0], g0, acc[0]);
  acc[1] = fmaf(d[1], g0, acc[1]);
  acc[2] = fmaf(d[2], g1, acc[2]);
  acc[3] = fmaf(d[3], g1, acc[3]);
}

// Where lane t finds block t of a column in each span of 4 blocks: its 16 code bytes at code + c * kCode and its scale
// at scale + c * kScale in whole spans c, elsewhere in the partial last span (last_span_block). Plain rows, or the
// packed layout (PACKED, mxfp4_cuda_layout.h), in which a warp's 16 columns of one span are 1024 contiguous code bytes
// and 64 contiguous scale bytes. The layout is a template parameter of the kernels: a run-time one took registers
// that the skinny kernel then spilled, and instructions that slowed the wgmma kernel's producers.
struct SpanBlock {
  const uint8_t* code;
  const uint8_t* scale;
};

template <bool PACKED>
struct SpanSteps {
  static constexpr int kCode = PACKED ? int(2 * kMxfp4CudaPairCodeBytes) : 64;
  static constexpr int kScale = PACKED ? int(2 * kMxfp4CudaPairScaleBytes) : 4;
};

template <bool PACKED>
__device__ __forceinline__ SpanBlock first_span_block(const W4A16Problem& p, int64_t col, int t, int nb) {
  if constexpr (PACKED) {
    // mxfp4_cuda_tile_bytes in 32 bits (mxfp4_gemm_w4a16 checks that it fits): with the 64-bit helper itself ptxas
    // issued the first loads code, scale, scale, code (SASS), the order that measured 0.3-0.5 us slower (see below).
    constexpr int kLine = int(kMxfp4CudaLineBytes);
    const uint8_t* tile = p.w + (col >> 4) * int64_t((nb * int(kMxfp4CudaTileBlockBytes) + kLine - 1) & -kLine);
    const int row = int(col & 15);
    return {tile + (t >> 1) * int(kMxfp4CudaPairCodeBytes) + row * 32 + (t & 1) * 16,
            tile + nb * 256 + (t >> 1) * int(kMxfp4CudaPairScaleBytes) + row * 2 + (t & 1)};
  }
  return {p.w + col * p.ldw + 16 * t, p.w_scales + col * p.ldw_scales + t};
}

// Block t of the partial span (nb % 4 blocks; t below that).
template <bool PACKED>
__device__ __forceinline__ SpanBlock last_span_block(const W4A16Problem& p, int64_t col, int t, int nb) {
  const int blk = nb / 4 * 4 + t;
  if constexpr (PACKED) {
    return {p.w + mxfp4_cuda_code_offset(col, blk, nb), p.w + mxfp4_cuda_scale_offset(col, blk, nb)};
  }
  return {p.w + col * p.ldw + 16 * blk, p.w_scales + col * p.ldw_scales + blk};
}

// ---- skinny: M <= 16 -------------------------------------------------------------------------------------------
// Weights are the MMA's A operand (16 output columns per warp), the activations its B operand (8 rows per MMA,
// RT of them). A warp works through spans of 128 values (4 blocks): lane t of a quad loads the whole 16-byte block
// t of its two columns with one load each, so the k slots of one MMA hold 4 values of each of the 4 blocks. KW
// warps of a block share 16 columns and take every KW-th span, each keeping U spans in flight; the whole spans run
// without conditions, and the last, partial one (K not a multiple of 128) is taken by one warp afterwards.
// With CHAIN a warp issues the loads of its next spans as soon as those of its current span have arrived (their
// address depends on the loaded codes through `zero`, a kernel argument that is always 0, so that neither compiler
// can hoist them), not after the span's arithmetic. All warps then keep few bytes in flight at the start, so that
// the first spans arrive early and are decoded while the rest stream in (issued all at once, every warp's first span
// completes near the end of the whole transfer). With X_SMEM the partial span's loads go out with the warp's first
// ones; reading the activations from global memory the kernel has no registers to hold them through its loop (it
// spilled), so there the partial span is loaded after the whole ones, by the warp with the fewest of those.
// A span whose scales pass span_scale has them applied to the decoded codes, and its 8 MMAs run as two float32
// chains; otherwise each block's sum is taken alone (the other lanes' operands zeroed) and multiplied by its scale
// in float32, as the CPU does (scales 0, 254, 0xFF...). Either way the span's sum is then added to the float32 total.
// Rows past M are read as copies of row M-1 and their sums dropped.
// With X_SMEM the block first copies the m activation rows into shared memory while its first weights are in
// flight, already paired as the MMAs take them (pair_activations) and zero past K, rows x_pitch bytes apart (16 mod
// 128) and the 16-byte chunks j of a row at j ^ (bit 3 of j moved to bit 1), so that the 8 lanes of a quarter warp
// (two rows, blocks t = 0..3) hit distinct banks; without it (rows too long) each warp reads them from global memory.
__device__ __forceinline__ int skinny_x_chunk(int j) { return j ^ ((j >> 2) & 2); }

template <typename T, typename OutT, int RT, int KW, int U, int MIN_BLOCKS, bool X_SMEM, bool CHAIN, bool PACKED>
__global__ void __launch_bounds__(KW * 32, MIN_BLOCKS) w4a16_skinny(W4A16Problem p, int x_pitch, uint32_t zero) {
  __shared__ float partial[KW][RT * 4][32];
  extern __shared__ __align__(16) uint8_t x_rows[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t n0 = int64_t(blockIdx.x) * 16;
  const int nb = int(p.k / 32), full = nb / 4, rem = nb % 4;
  const int64_t col0 = min(n0 + g, p.n - 1), col1 = min(n0 + g + 8, p.n - 1);
  // Packed, the block's columns are one whole tile (N a multiple of 16), and column g + 8 is 8 rows further than
  // column g: no pointers of its own.
  const SpanBlock b0 = first_span_block<PACKED>(p, PACKED ? n0 + g : col0, t, nb);
  const SpanBlock b1 =
      PACKED ? SpanBlock{b0.code + 8 * 32, b0.scale + 8 * 2} : first_span_block<PACKED>(p, col1, t, nb);
  const uint8_t *w0 = b0.code, *w1 = b1.code, *s0 = b0.scale, *s1 = b1.scale;
  constexpr int code_step = SpanSteps<PACKED>::kCode, scale_step = SpanSteps<PACKED>::kScale;
  static_assert(!PACKED || code_step == 16 * scale_step, "one offset for codes and scales");
  const T* xg = static_cast<const T*>(p.x);
  const uint8_t* x_row[RT];
#pragma unroll
  for (int r = 0; r < RT; ++r) {
    const int64_t row = min(int64_t(r * 8 + g), p.m - 1);
    x_row[r] = X_SMEM ? x_rows + row * x_pitch + 64 * t : reinterpret_cast<const uint8_t*>(xg + row * p.ldx) + 64 * t;
  }
  // In bf16 the fast path's span sums all take the same factor (kBf16ScaleOffset), so its MMAs add straight into
  // the totals, in two chains (acc[r][0], acc[r][1]), kept 2^-kBf16ScaleOffset times the true value; the exact path's
  // block sums are added at that scale too, and the totals are rescaled once at the end. fp16 scales each span's
  // sums (acc[r][0] only), and so do two row tiles (RT = 2), whose registers the second chain would take.
  constexpr bool kScaledTotals = std::is_same_v<T, __nv_bfloat16> && RT == 1;
  float acc[RT][2][4];
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h) acc[r][h][0] = acc[r][h][1] = acc[r][h][2] = acc[r][h][3] = 0.f;

  // Chunk i (8 values) of lane t's block in span c for row tile r, paired for the MMAs; `valid` false past K.
  auto x_pairs = [&](int c, int i, int r, bool valid, uint32_t xp[4]) {
    if constexpr (X_SMEM) {
      const uint4 v = *reinterpret_cast<const uint4*>(x_row[r] + c * 256 + 16 * (i ^ (t & 2)));
      xp[0] = v.x, xp[1] = v.y, xp[2] = v.z, xp[3] = v.w;
    } else {
      uint4 v = make_uint4(0, 0, 0, 0);
      if (valid) v = __ldg(reinterpret_cast<const uint4*>(x_row[r] + c * 256 + 16 * i));
      pair_activations(v, xp);
    }
  };
  // The span's products on the lanes whose `keep` is all ones (the others' codes and activations zeroed), decoded
  // times f0 / f1 (columns g / g + 8), their sums times g0 / g1 added to the totals.
  auto add_span = [&](auto masked, int c, bool valid, const uint32_t q0[4], const uint32_t q1[4], uint32_t f0,
                      uint32_t f1, uint32_t keep, float g0, float g1) {
    // Two chains of 4 MMAs (each word's first and second), interleaved, so that no MMA waits for the one just
    // before it: into the totals themselves (kDirect), or into the span's own sums d, then scaled and added.
    constexpr bool kDirect = kScaledTotals && !decltype(masked)::value;
    float d[RT][2][4];
#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int j = 0; j < 4; ++j) d[r][h][j] = kDirect ? acc[r][h][j] : 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint32_t a[2][4];
      decode_word_pair<T>(masked ? q0[i] & keep : q0[i], masked ? q1[i] & keep : q1[i], f0, f1, a);
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        uint32_t xp[4];
        x_pairs(c, i, r, valid, xp);
        if constexpr (decltype(masked)::value) {
#pragma unroll
          for (int e = 0; e < 4; ++e) xp[e] &= keep;
        }
        mma_16816<T>(d[r][0], a[0], xp[0], xp[1], d[r][0]);
        mma_16816<T>(d[r][1], a[1], xp[2], xp[3], d[r][1]);
      }
    }
#pragma unroll
    for (int r = 0; r < RT; ++r) {
      if constexpr (kDirect) {
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[r][h][j] = d[r][h][j];
      } else {
        scale_add(acc[r][0], d[r][0], g0, g1);
        scale_add(acc[r][0], d[r][1], g0, g1);
      }
    }
  };
  auto run_span = [&](int c, bool valid, const uint4& cw0, const uint4& cw1, uint32_t cs0, uint32_t cs1) {
    const uint32_t q0[4] = {cw0.x, cw0.y, cw0.z, cw0.w};
    const uint32_t q1[4] = {cw1.x, cw1.y, cw1.z, cw1.w};
    const SpanScale ss0 = span_scale<T>(q0, cs0), ss1 = span_scale<T>(q1, cs1);
    if (__all_sync(0xFFFFFFFFu, ss0.ok && ss1.ok)) {
      add_span(std::false_type{}, c, valid, q0, q1, ss0.factor, ss1.factor, 0u, ss0.sum_scale, ss1.sum_scale);
    } else {
#pragma unroll 1
      for (int blk = 0; blk < 4; ++blk) {
        // Block blk alone: the other lanes' codes and activations are zero (not just the codes, so that an
        // infinite activation elsewhere does not make a NaN here).
        // (At the totals' scale: 2^-kBf16ScaleOffset times an E8M0 value is exact, 2^-137 at the least.)
        constexpr float kTotalsScale = kScaledTotals ? 1.0f / float(1u << kBf16ScaleOffset) : 1.0f;
        add_span(std::true_type{}, c, valid, q0, q1, fold_factor<T>(0), fold_factor<T>(0), t == blk ? 0xFFFFFFFFu : 0u,
                 e8m0_value(__shfl_sync(0xFFFFFFFFu, cs0, (lane & ~3) | blk)) * kTotalsScale,
                 e8m0_value(__shfl_sync(0xFFFFFFFFu, cs1, (lane & ~3) | blk)) * kTotalsScale);
      }
    }
  };

  // The weights skip L1 on packed weights and where the activations are staged. On an H100, in the slower state
  // that bench_cuda measures (tests/gpu/tune_in_process.py, bench/RESULTS.md), that took M=1 packed from 5.96-5.99
  // to 5.80-5.83 us, M=3 packed from 6.79-6.84 to 6.64-6.66 and M=2 plain from 6.80-6.82 to 6.60-6.62. Plain weights
  // with the activations in global memory (M >= 3) measured 3% slower without L1, so they keep __ldg.
  constexpr bool kSkipL1 = PACKED || X_SMEM;
  uint4 cw0[U], cw1[U];
  uint32_t cs0[U], cs1[U];
  auto load = [&](int u, int c, uint32_t off = 0) {
    // Packed, the scales' step is the codes' over 16: one offset for both (fewer registers).
    const int code_off = c * code_step;
    const int scale_off = PACKED ? code_off >> 4 : c * scale_step;
    cw0[u] = load_weights16<kSkipL1>(w0 + code_off + off);
    cw1[u] = load_weights16<kSkipL1>(w1 + code_off + off);
    cs0[u] = load_weights8<kSkipL1>(s0 + scale_off + off);
    cs1[u] = load_weights8<kSkipL1>(s1 + scale_off + off);
  };
  // The partial span's block t of both columns (t < rem). Packed, it is where a whole span's would be unless it is
  // the odd last block, which is alone in its pair: rows of 16 code bytes and of 1 scale byte.
  // Its addresses are found afresh from the problem's, not kept through the loop.
  auto load_last = [&](uint4& a, uint4& b, uint32_t& sa, uint32_t& sb) {
    const SpanBlock f0 = first_span_block<PACKED>(p, PACKED ? n0 + g : col0, t, nb);
    const SpanBlock f1 =
        PACKED ? SpanBlock{f0.code + 8 * 32, f0.scale + 8 * 2} : first_span_block<PACKED>(p, col1, t, nb);
    SpanBlock l0 = {f0.code + full * code_step, f0.scale + full * scale_step};
    SpanBlock l1 = {f1.code + full * code_step, f1.scale + full * scale_step};
    if constexpr (PACKED) {
      if (4 * full + t == nb - 1 && nb % 2 == 1) {  // then t is even: rows g and g + 8 at 16 g and 16 g + 128
        l0 = {l0.code - g * 16, l0.scale - g};
        l1 = {l0.code + 128, l0.scale + 8};
      }
    }
    a = load_weights16<kSkipL1>(l0.code);
    b = load_weights16<kSkipL1>(l1.code);
    sa = load_weights8<kSkipL1>(l0.scale);
    sb = load_weights8<kSkipL1>(l1.scale);
  };
  static_assert(!CHAIN || U == 1, "the chained kernel keeps one span in flight");
  // Chained, span c's loads take the loaded codes through `zero` (dep, see above). Packed, the addresses run along
  // (one 64-bit add for the codes and one for the scales per span: column g + 8's are at fixed offsets from column
  // g's); plain weights take four pointers, which would not all fit in registers, so their offsets are recomputed.
  const uint8_t *next_w = w0 + warp * code_step, *next_s = s0 + warp * scale_step;
  auto load_next = [&](int c, uint32_t dep) {
    if constexpr (PACKED) {
      next_w += KW * code_step + dep;
      next_s += KW * scale_step + dep;
      cw0[0] = load_weights16<kSkipL1>(next_w);
      cw1[0] = load_weights16<kSkipL1>(next_w + 8 * 32);
      cs0[0] = load_weights8<kSkipL1>(next_s);
      cs1[0] = load_weights8<kSkipL1>(next_s + 8 * 2);
    } else {
      load(0, c, dep);
    }
  };
  // ptxas issues these first loads as codes (column g, then g + 8), then scales. Changes to the address arithmetic
  // above that let it interleave them (code, scale, scale, code) or put the scales first cost 0.3-0.5 us at M = 1 and
  // 2 on an H100; the loop's order does not matter (bench/RESULTS.md, twenty-fourth pass). Check the SASS after
  // changing this prologue.
#pragma unroll
  for (int u = 0; u < U; ++u) {
    if (warp + KW * u < full) load(u, warp + KW * u);  // in flight while the activations are staged
  }
  const int rem_warp = full % KW;
  uint4 ra = make_uint4(0, 0, 0, 0), rb = make_uint4(0, 0, 0, 0);
  uint32_t rsa = 127u, rsb = 127u;
  constexpr bool kEarlyLast = CHAIN && X_SMEM;  // the partial span loaded with the first ones (see above)
  if (kEarlyLast && rem != 0 && warp == rem_warp && t < rem) load_last(ra, rb, rsa, rsb);
  if constexpr (X_SMEM) {
    // Four chunks per thread in flight at a time: the rows' loads must not wait for each other.
    constexpr int kBatch = 4;
    const int chunks = (full + (rem != 0)) * 16, k_chunks = int(p.k / 8), total = int(p.m) * chunks;
    // i / chunks by a float multiply: exact here, as total <= 6400 (the rows fit in kSkinnyMaxXBytes).
    const float inv_chunks = 1.0f / float(chunks);
    for (int i0 = threadIdx.x; i0 < total; i0 += kBatch * KW * 32) {
      uint4 v[kBatch];
      int dst[kBatch];
#pragma unroll
      for (int e = 0; e < kBatch; ++e) {
        const int i = i0 + e * KW * 32, row = int((float(i) + 0.5f) * inv_chunks), j = i - row * chunks;
        v[e] = make_uint4(0, 0, 0, 0);
        dst[e] = i < total ? row * x_pitch + skinny_x_chunk(j) * 16 : -1;
        if (i < total && j < k_chunks) v[e] = __ldg(reinterpret_cast<const uint4*>(xg + row * p.ldx + j * 8));
      }
#pragma unroll
      for (int e = 0; e < kBatch; ++e) {
        uint32_t xp[4];
        pair_activations(v[e], xp);
        if (dst[e] >= 0) *reinterpret_cast<uint4*>(x_rows + dst[e]) = make_uint4(xp[0], xp[1], xp[2], xp[3]);
      }
    }
    __syncthreads();
  }

  if constexpr (CHAIN) {
    // The last span comes after the loop, so that every load in it is unconditional, and on packed weights the
    // loop is unrolled twice: the span in hand and the one in flight then swap registers instead of being copied
    // (on plain weights, whose loads take more registers, that made the kernel spill).
    constexpr int kUnroll = PACKED ? 2 : 1;
    if (warp < full) {
      int c = warp;
#pragma unroll kUnroll
      for (; c + KW < full; c += KW) {
        const uint4 a = cw0[0], b = cw1[0];
        const uint32_t sa = cs0[0], sb = cs1[0];
        load_next(c + KW, (a.x ^ b.x) & zero);
        run_span(c, true, a, b, sa, sb);
      }
      run_span(c, true, cw0[0], cw1[0], cs0[0], cs1[0]);
    }
  } else {
    for (int c0 = warp; c0 < full; c0 += KW * U) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = c0 + KW * u;
        if (c >= full) break;
        run_span(c, true, cw0[u], cw1[u], cs0[u], cs1[u]);
        if (c + KW * U < full) load(u, c + KW * U);
      }
    }
  }
  if (kEarlyLast && rem != 0 && warp == rem_warp) {
    run_span(full, t < rem, ra, rb, rsa, rsb);
  } else if (!kEarlyLast && rem != 0 && warp == rem_warp) {
    // The partial span: blocks past K have zero codes, a finite scale and zero activations.
    const bool valid = t < rem;
    uint4 a = make_uint4(0, 0, 0, 0), b = make_uint4(0, 0, 0, 0);
    uint32_t sa = 127u, sb = 127u;
    if (valid) load_last(a, b, sa, sb);
    run_span(full, valid, a, b, sa, sb);
  }

#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      partial[warp][r * 4 + j][lane] = kScaledTotals ? acc[r][0][j] + acc[r][1][j] : acc[r][0][j];
    }
  __syncthreads();
  for (int idx = threadIdx.x; idx < RT * 4 * 32; idx += KW * 32) {
    const int reg = idx >> 5, ln = idx & 31;
    const int r = reg >> 2, j = reg & 3;
    const int64_t col = n0 + (ln >> 2) + (j >= 2 ? 8 : 0);
    const int64_t row = r * 8 + 2 * (ln & 3) + (j & 1);
    if (row >= p.m || col >= p.n) continue;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < KW; ++w) sum += partial[w][reg][ln];
    if constexpr (kScaledTotals) sum *= float(1u << kBf16ScaleOffset);
    store_out<OutT>(p.out, row * p.ldo + col, p.bias ? sum + p.bias[col] : sum);
  }
}

// ---- cp.async -------------------------------------------------------------------------------------------------

// The shared-state-space address of a pointer into this block's shared memory.
__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = shared_address(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ---- wide: M > 16 -----------------------------------------------------------------------------------------------
// The skinny kernel's scheme (weights as the MMA's A operand, lane t holding the whole block t of a 128-value span,
// scales applied per span) for many rows: NW warps of 16 columns share a tile of BM = 8 TM activation rows, staged
// span by span (STAGES deep, cp.async) in shared memory; each warp holds its next span's codes in registers while
// it computes the current one, so each code is loaded and decoded once per block and used for TM MMAs. Rows are
// 256 bytes in shared memory, chunk j of row r at wide_x_chunk(j, r), so that the 8 lanes of a quarter warp (rows
// g, g+1, blocks t = 0..3) hit distinct banks.
// K may be split over a cluster of `splits` blocks (gridDim.z): each sums its share of the spans, then the cluster's
// partial sums are added in rank order through distributed shared memory, each block storing every splits-th tile.
template <int TM_, int NW_>
struct WideShape {
  static constexpr int TM = TM_, NW = NW_;
  static constexpr int BM = 8 * TM, BN = 16 * NW, THREADS = 32 * NW;
  static constexpr int STAGES = 3, STAGE_BYTES = BM * 256;
  static constexpr int PARTIAL_BYTES = NW * TM * 4 * 32 * 4;
  static constexpr int SMEM = STAGES * STAGE_BYTES > PARTIAL_BYTES ? STAGES * STAGE_BYTES : PARTIAL_BYTES;
};

__device__ __forceinline__ int wide_x_chunk(int j, int row) { return j ^ ((j >> 2) & 2) ^ (row & 1); }

template <typename T, typename OutT, typename S, bool PACKED>
__global__ void __launch_bounds__(S::THREADS) w4a16_wide(W4A16Problem p, int splits) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t m0 = int64_t(blockIdx.y) * S::BM;
  const int64_t n0 = int64_t(blockIdx.x) * S::BN + warp * 16;
  const int nb = int(p.k / 32), spans = (nb + 3) / 4;
  const int c_begin = int(int64_t(spans) * blockIdx.z / splits);
  const int c_end = int(int64_t(spans) * (blockIdx.z + 1) / splits);
  const int64_t col0 = min(n0 + g, p.n - 1), col1 = min(n0 + g + 8, p.n - 1);
  const SpanBlock b0 = first_span_block<PACKED>(p, col0, t, nb), b1 = first_span_block<PACKED>(p, col1, t, nb);
  const int full = nb / 4;
  constexpr int code_step = SpanSteps<PACKED>::kCode, scale_step = SpanSteps<PACKED>::kScale;
  const int64_t rows_left = p.m - m0;
  const T* x = static_cast<const T*>(p.x);
  // Byte offset of chunk i of lane t's block for row g of a stage (row 8 tile + g is 2048 tile bytes further).
  int x_off[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) x_off[i] = g * 256 + wide_x_chunk(4 * t + i, g) * 16;

  // Each thread copies the same chunks of every span (chunk j = thread % 16 of rows thread / 16 + r THREADS / 16),
  // so that little is computed per copy; rows past M read row m0 (their sums are dropped), and only the partial last
  // span needs a check against K.
  static_assert(S::THREADS % 16 == 0, "a thread's chunks share their column");
  constexpr int kChunks = S::BM * 16, kRounds = (kChunks + S::THREADS - 1) / S::THREADS;
  const int x_j = threadIdx.x & 15, x_row0 = threadIdx.x >> 4;
  const T* x_first = x + m0 * p.ldx + x_j * 8;
  auto issue_x = [&](int c, int slot) {
    uint8_t* stage = smem + slot * S::STAGE_BYTES;
    const bool valid = 4 * c + (x_j >> 2) < nb;
#pragma unroll
    for (int r = 0; r < kRounds; ++r) {
      const int row = x_row0 + r * (S::THREADS / 16);
      if (kChunks % S::THREADS == 0 || row < S::BM) {
        const T* src = x_first + int64_t(row < rows_left ? row : 0) * p.ldx + int64_t(c) * 128;
        cp_async16(stage + row * 256 + wide_x_chunk(x_j, row) * 16, valid ? src : x, valid ? 16 : 0);
      }
    }
  };
  auto load_w = [&](int c, uint4& a, uint4& b, uint32_t& sa, uint32_t& sb) {
    a = b = make_uint4(0, 0, 0, 0);
    sa = sb = 127u;
    if (c < full) {
      a = __ldg(reinterpret_cast<const uint4*>(b0.code + c * code_step));
      b = __ldg(reinterpret_cast<const uint4*>(b1.code + c * code_step));
      sa = __ldg(b0.scale + c * scale_step);
      sb = __ldg(b1.scale + c * scale_step);
    } else if (4 * c + t < nb) {
      const SpanBlock l0 = last_span_block<PACKED>(p, col0, t, nb), l1 = last_span_block<PACKED>(p, col1, t, nb);
      a = __ldg(reinterpret_cast<const uint4*>(l0.code));
      b = __ldg(reinterpret_cast<const uint4*>(l1.code));
      sa = __ldg(l0.scale);
      sb = __ldg(l1.scale);
    }
  };
  float acc[S::TM][4];
#pragma unroll
  for (int i = 0; i < S::TM; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;

  uint4 cw0, cw1;
  uint32_t cs0 = 127u, cs1 = 127u;
  cw0 = cw1 = make_uint4(0, 0, 0, 0);
  if (c_begin < c_end) load_w(c_begin, cw0, cw1, cs0, cs1);
#pragma unroll
  for (int s = 0; s < S::STAGES - 1; ++s) {
    if (c_begin + s < c_end) issue_x(c_begin + s, s);
    cp_async_commit();
  }

  for (int c = c_begin; c < c_end; ++c) {
    const int it = c - c_begin;
    cp_async_wait<S::STAGES - 2>();
    __syncthreads();
    if (c + S::STAGES - 1 < c_end) issue_x(c + S::STAGES - 1, (it + S::STAGES - 1) % S::STAGES);
    cp_async_commit();
    uint4 nw0 = make_uint4(0, 0, 0, 0), nw1 = make_uint4(0, 0, 0, 0);
    uint32_t ns0 = 127u, ns1 = 127u;
    if (c + 1 < c_end) load_w(c + 1, nw0, nw1, ns0, ns1);

    const uint8_t* xs = smem + (it % S::STAGES) * S::STAGE_BYTES;
    auto x_chunk = [&](int tile, int i) { return *reinterpret_cast<const uint4*>(xs + tile * 2048 + x_off[i]); };
    const uint32_t q0[4] = {cw0.x, cw0.y, cw0.z, cw0.w};
    const uint32_t q1[4] = {cw1.x, cw1.y, cw1.z, cw1.w};
    // The span's products on lanes whose `keep` is all ones (the others' codes and activations zeroed), decoded
    // times f0 / f1 (columns g / g + 8), their sums multiplied by g0 / g1 and added to the totals. The tiles' MMA
    // chains are interleaved (i outer), so that no MMA waits for the previous one's result.
    auto add_span = [&](auto masked, uint32_t f0, uint32_t f1, uint32_t keep, float g0, float g1) {
      uint32_t a[4][2][4];
      decode_span<T>(q0, q1, f0, f1, masked ? keep : 0xFFFFFFFFu, a);
      float d[S::TM][4];
#pragma unroll
      for (int tile = 0; tile < S::TM; ++tile) d[tile][0] = d[tile][1] = d[tile][2] = d[tile][3] = 0.f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int tile = 0; tile < S::TM; ++tile) {
          uint32_t xp[4];
          pair_activations(x_chunk(tile, i), xp);
          if constexpr (decltype(masked)::value) {
#pragma unroll
            for (int e = 0; e < 4; ++e) xp[e] &= keep;
          }
          mma_16816<T>(d[tile], a[i][0], xp[0], xp[1], d[tile]);
          mma_16816<T>(d[tile], a[i][1], xp[2], xp[3], d[tile]);
        }
      }
#pragma unroll
      for (int tile = 0; tile < S::TM; ++tile) scale_add(acc[tile], d[tile], g0, g1);
    };
    const SpanScale ss0 = span_scale<T>(q0, cs0), ss1 = span_scale<T>(q1, cs1);
    if (__all_sync(0xFFFFFFFFu, ss0.ok && ss1.ok)) {
      add_span(std::false_type{}, ss0.factor, ss1.factor, 0u, ss0.sum_scale, ss1.sum_scale);
    } else {
#pragma unroll 1
      for (int blk = 0; blk < 4; ++blk) {  // block by block, as in w4a16_skinny
        add_span(std::true_type{}, fold_factor<T>(0), fold_factor<T>(0), t == blk ? 0xFFFFFFFFu : 0u,
                 e8m0_value(__shfl_sync(0xFFFFFFFFu, cs0, (lane & ~3) | blk)),
                 e8m0_value(__shfl_sync(0xFFFFFFFFu, cs1, (lane & ~3) | blk)));
      }
    }
    cw0 = nw0, cw1 = nw1, cs0 = ns0, cs1 = ns1;
  }
  cp_async_wait<0>();

  // D fragment of a tile: d[0], d[1] column g, rows 2t and 2t + 1; d[2], d[3] column g + 8.
  auto store_tile = [&](int tile, const float v[4]) {
    const int64_t row = m0 + tile * 8 + 2 * t;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t r = row + (j & 1), col = n0 + g + (j >= 2 ? 8 : 0);
      if (r < p.m && col < p.n) store_out<OutT>(p.out, r * p.ldo + col, p.bias ? v[j] + p.bias[col] : v[j]);
    }
  };
  if (splits == 1) {
#pragma unroll
    for (int tile = 0; tile < S::TM; ++tile) store_tile(tile, acc[tile]);
    return;
  }
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  __syncthreads();  // every warp is done with the activation stages, which now hold the partial sums
  float* partial = reinterpret_cast<float*>(smem);
  auto at = [&](int w, int tile, int j) { return ((w * S::TM + tile) * 4 + j) * 32 + lane; };
#pragma unroll
  for (int tile = 0; tile < S::TM; ++tile)
#pragma unroll
    for (int j = 0; j < 4; ++j) partial[at(warp, tile, j)] = acc[tile][j];
  cluster.sync();
  const int rank = int(cluster.block_rank());
#pragma unroll
  for (int tile = 0; tile < S::TM; ++tile) {
    if (tile % splits != rank || tile * 8 >= rows_left) continue;
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    for (int r = 0; r < splits; ++r) {
      const float* other = cluster.map_shared_rank(partial, r);
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] += other[at(warp, tile, j)];
    }
    store_tile(tile, v);
  }
  cluster.sync();  // the others' partial sums stay in place until every block has read them
#endif
}

// ---- launching -----------------------------------------------------------------------------------------------

struct DeviceInfo {
  int sms = 0;
  int major = 0, minor = 0;  // compute capability; clusters need 9, wgmma 9.0
};

inline cudaError_t device_info(DeviceInfo* info) {
  constexpr int kMaxDevices = 64;
  static int sms[kMaxDevices] = {}, major[kMaxDevices] = {}, minor[kMaxDevices] = {};
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  if (dev < 0 || dev >= kMaxDevices) return cudaErrorInvalidDevice;
  if (sms[dev] == 0) {
    err = cudaDeviceGetAttribute(&major[dev], cudaDevAttrComputeCapabilityMajor, dev);
    if (err != cudaSuccess) return err;
    err = cudaDeviceGetAttribute(&minor[dev], cudaDevAttrComputeCapabilityMinor, dev);
    if (err != cudaSuccess) return err;
    err = cudaDeviceGetAttribute(&sms[dev], cudaDevAttrMultiProcessorCount, dev);
    if (err != cudaSuccess) return err;
  }
  info->sms = sms[dev];
  info->major = major[dev];
  info->minor = minor[dev];
  return cudaSuccess;
}

// Lets `Kernel` take `bytes` of dynamic shared memory (above 48 KB it must opt in), once per device, and returns
// how many of its blocks of `threads` fit on a multiprocessor; a template on the kernel itself, so that each kernel
// has its own record.
template <auto Kernel>
cudaError_t prepare_kernel(int threads, int bytes, int* blocks_per_sm = nullptr) {
  constexpr int kMaxDevices = 64;
  static int fit[kMaxDevices] = {};
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  if (dev < 0 || dev >= kMaxDevices) return cudaErrorInvalidDevice;
  if (fit[dev] == 0) {
    err = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (err != cudaSuccess) return err;
    int n = 0;
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, Kernel, threads, size_t(bytes));
    if (err != cudaSuccess) return err;
    fit[dev] = n > 0 ? n : 1;
  }
  if (blocks_per_sm) *blocks_per_sm = fit[dev];
  return cudaSuccess;
}

inline int choose_skinny_warps(int64_t n, int sms) {
  const int64_t tiles = (n + 15) / 16;
  return tiles * 4 < int64_t(16) * sms ? 8 : 4;
}

constexpr int kSkinnyMaxXBytes = 100 * 1024;

// Whole spans of 256 bytes, plus 16 so that the pitch is 16 mod 128 (see w4a16_skinny).
inline int skinny_x_pitch(int64_t k) { return int((k + 127) / 128 * 256 + 16); }

// stage_x: copy the activations to shared memory where they fit (see w4a16_skinny).
template <typename T, typename OutT, int RT, int KW, int U, int MIN_BLOCKS, bool CHAIN, bool PACKED>
cudaError_t launch_skinny_layout(const W4A16Problem& p, cudaStream_t stream, bool stage_x) {
  const int pitch = skinny_x_pitch(p.k);
  const int64_t x_bytes = p.m * int64_t(pitch);
  const unsigned grid = unsigned((p.n + 15) / 16);
  if (!stage_x || x_bytes > kSkinnyMaxXBytes) {
    w4a16_skinny<T, OutT, RT, KW, U, MIN_BLOCKS, false, CHAIN, PACKED><<<grid, KW * 32, 0, stream>>>(p, 0, 0u);
    return cudaGetLastError();
  }
  const cudaError_t err =
      prepare_kernel<&w4a16_skinny<T, OutT, RT, KW, U, MIN_BLOCKS, true, CHAIN, PACKED>>(KW * 32, kSkinnyMaxXBytes);
  if (err != cudaSuccess) return err;
  w4a16_skinny<T, OutT, RT, KW, U, MIN_BLOCKS, true, CHAIN, PACKED>
      <<<grid, KW * 32, size_t(x_bytes), stream>>>(p, pitch, 0u);
  return cudaGetLastError();
}

template <typename T, typename OutT, int RT, int KW, int U, int MIN_BLOCKS, bool CHAIN = false>
cudaError_t launch_skinny(const W4A16Problem& p, cudaStream_t stream, bool stage_x = true) {
  if (p.w_packed) return launch_skinny_layout<T, OutT, RT, KW, U, MIN_BLOCKS, CHAIN, true>(p, stream, stage_x);
  return launch_skinny_layout<T, OutT, RT, KW, U, MIN_BLOCKS, CHAIN, false>(p, stream, stage_x);
}

// The shape of the wide kernel: 64 rows x 64 columns per block (the fastest on an H200 at N=5760, K=2880 for M
// from 128 to 1024, tests/gpu/tune_cuda.cu).
using WideTile = WideShape<8, 4>;

// A cluster of `size` blocks along z.
inline cudaLaunchAttribute cluster_along_z(int size) {
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = 1;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = unsigned(size);
  return attr;
}

// How many clusters of `size` (2 to 4) blocks of `Kernel` the device runs at once (cudaOccupancyMaxActiveClusters),
// once per device and size. A cluster's blocks share a GPC, so fewer clusters fit than the SM count suggests (on the
// H100, the wgmma kernel: 66 clusters of 2, 39 of 3, 30 of 4).
template <auto Kernel>
cudaError_t cluster_fit(int threads, int smem, int size, int* clusters) {
  constexpr int kMaxDevices = 64;
  static int fit[kMaxDevices][5] = {};
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  if (dev < 0 || dev >= kMaxDevices || size < 2 || size > 4) return cudaErrorInvalidValue;
  if (fit[dev][size] == 0) {
    err = prepare_kernel<Kernel>(threads, smem);
    if (err != cudaSuccess) return err;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(1, 1, unsigned(size));
    cfg.blockDim = dim3(unsigned(threads));
    cfg.dynamicSmemBytes = size_t(smem);
    cudaLaunchAttribute attr[1] = {cluster_along_z(size)};
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    int n = 0;
    err = cudaOccupancyMaxActiveClusters(&n, Kernel, &cfg);
    if (err != cudaSuccess) return err;
    fit[dev][size] = n > 0 ? n : -1;
  }
  *clusters = fit[dev][size] > 0 ? fit[dev][size] : 0;
  return cudaSuccess;
}

// K splits (1 to 4, at most one per K step of the kernel): only when one block per tile leaves multiprocessor slots
// idle (a split costs a cluster barrier and the exchange of partial sums, and measured slower than more waves), then
// the fewest waves per split, the waves counted in the clusters of that size that run at once (`Kernel`'s blocks of
// `threads` with `smem` bytes; slots = blocks per SM times SMs would count more than fit).
template <auto Kernel>
cudaError_t choose_splits(int64_t tiles, int64_t k_steps, int slots, bool clusters, int threads, int smem,
                          int* splits) {
  *splits = 1;
  if (!clusters || tiles >= slots) return cudaSuccess;
  double best_cost = 1.0;
  for (int s = 2; s <= 4 && s <= k_steps; ++s) {
    int fit = 0;
    const cudaError_t err = cluster_fit<Kernel>(threads, smem, s, &fit);
    if (err != cudaSuccess) return err;
    if (fit == 0) continue;
    const double cost = double((tiles + fit - 1) / fit) / s;
    if (cost < best_cost) *splits = s, best_cost = cost;
  }
  return cudaSuccess;
}

// Launches a tiled W4A16 kernel (column tiles of bn, row tiles of bm) with K split over `splits` blocks along z,
// which form a cluster when there is more than one.
// The kernel's arguments are p, splits and then `extra`.
template <typename Kernel, typename... Extra>
cudaError_t launch_tiles(Kernel kernel, const W4A16Problem& p, int bn, int bm, int threads, int smem, int splits,
                         cudaStream_t stream, const Extra&... extra) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned((p.n + bn - 1) / bn), unsigned((p.m + bm - 1) / bm), unsigned(splits));
  cfg.blockDim = dim3(unsigned(threads));
  cfg.dynamicSmemBytes = size_t(smem);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1] = {cluster_along_z(splits)};
  cfg.attrs = attr;
  cfg.numAttrs = splits > 1 ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, p, splits, extra...);
}

template <typename T, typename OutT, typename S, bool PACKED>
cudaError_t launch_wide_layout(const W4A16Problem& p, int splits, cudaStream_t stream) {
  const cudaError_t err = prepare_kernel<&w4a16_wide<T, OutT, S, PACKED>>(S::THREADS, S::SMEM);
  if (err != cudaSuccess) return err;
  return launch_tiles(w4a16_wide<T, OutT, S, PACKED>, p, S::BN, S::BM, S::THREADS, S::SMEM, splits, stream);
}

template <typename T, typename OutT, typename S>
cudaError_t launch_wide(const W4A16Problem& p, int splits, cudaStream_t stream) {
  if (p.w_packed) return launch_wide_layout<T, OutT, S, true>(p, splits, stream);
  return launch_wide_layout<T, OutT, S, false>(p, splits, stream);
}

template <typename T, typename OutT>
cudaError_t wide_splits(const W4A16Problem& p, const DeviceInfo& info, int* splits) {
  int fit = 1;
  // The plain and packed kernels differ only in addresses: the same fit.
  const cudaError_t err =
      prepare_kernel<&w4a16_wide<T, OutT, WideTile, false>>(WideTile::THREADS, WideTile::SMEM, &fit);
  if (err != cudaSuccess) return err;
  const int64_t tiles = ((p.m + WideTile::BM - 1) / WideTile::BM) * ((p.n + WideTile::BN - 1) / WideTile::BN);
  return choose_splits<&w4a16_wide<T, OutT, WideTile, false>>(tiles, (p.k / 32 + 3) / 4, fit * info.sms,
                                                              info.major >= 9, WideTile::THREADS, WideTile::SMEM,
                                                              splits);
}

}  // namespace
}  // namespace mxkernels::core::cuda
