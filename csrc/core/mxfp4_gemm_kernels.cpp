// W4A4 MXFP4 GEMM, compiled once per CPU level (see mxfp4_kernels.cpp for the scheme). With AVX-512 VNNI the block sums
// come from vpdpbusd: activations as unsigned bytes 2a + 12 (in [0, 24]), weights as signed bytes 2w, and each block's
// accumulator starting at -12 · (sum of its 2w), so that it ends at exactly sum(2a · 2w). The other levels run the
// reference loops. Block values and totals follow the reference's arithmetic exactly (see mxfp4_gemm.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "kernel_tables.h"
#include "mxfp4_gemm.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace mxkernels::core::MXK_ISA_NS {
namespace {

#include "isa_local.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)

constexpr int kNr = 32;  // columns per panel: two vectors of 16 int32 lanes
constexpr int kMr = 4;   // rows per microkernel step

// E8M0 byte as the float exponent it contributes (NaN for 0xFF).
inline float scale_exponent(uint8_t e, float offset) {
  return e == 0xFF ? std::numeric_limits<float>::quiet_NaN() : float(e) + offset;
}

// Weight columns [j0, j0 + cols) as a panel: 2w as int8 in [k / 4][32][4] (a K quad per column and lane), the block
// accumulators' starting values -12 · sum(2w) as int32 [blocks][32], and the weight scales as exponents sw - 256,
// [blocks][32]. Columns past cols are zero.
void pack_weights(const Mxfp4GemmProblem& p, int64_t j0, int cols, int8_t* panel, int32_t* start, float* w_exp) {
  const int64_t blocks = p.k / 32;
  const __m128i twice = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
  uint32_t* dwords = reinterpret_cast<uint32_t*>(panel);
  for (int c = 0; c < kNr; ++c) {
    for (int64_t b = 0; b < blocks; ++b) {
      alignas(32) uint32_t quad[8] = {};
      if (c < cols) _mm256_store_si256(reinterpret_cast<__m256i*>(quad), e2m1x32_lookup(mxfp4_block_codes(p, j0 + c, b), twice));
      for (int q = 0; q < 8; ++q) dwords[(b * 8 + q) * kNr + c] = quad[q];
      w_exp[b * kNr + c] = c < cols ? scale_exponent(p.b_scale[(j0 + c) * p.ldb_scale + b], -256.0f) : 0.0f;
    }
  }
  const __m512i twelve = _mm512_set1_epi8(12);
  for (int64_t b = 0; b < blocks; ++b) {
    __m512i sum[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int q = 0; q < 8; ++q) {
      for (int h = 0; h < 2; ++h) sum[h] = _mm512_dpbusd_epi32(sum[h], twelve, _mm512_loadu_si512(dwords + (b * 8 + q) * kNr + 16 * h));
    }
    for (int h = 0; h < 2; ++h) _mm512_storeu_si512(start + b * kNr + 16 * h, _mm512_sub_epi32(_mm512_setzero_si512(), sum[h]));
  }
}

// Rows [i0, i0 + MR) x the panel's columns; cols (<= 32) of them are stored.
template <int MR>
void micro_kernel(const Mxfp4GemmProblem& p, const uint8_t* a_u, const float* a_exp, const int8_t* panel,
                  const int32_t* start, const float* w_exp, int64_t i0, int64_t j0, int cols) {
  const int64_t blocks = p.k / 32;
  const uint32_t* b_dwords = reinterpret_cast<const uint32_t*>(panel);
  __m512 total[MR][2];
  for (int r = 0; r < MR; ++r) total[r][0] = total[r][1] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m512i acc[MR][2];
    const __m512i s0 = _mm512_loadu_si512(start + b * kNr), s1 = _mm512_loadu_si512(start + b * kNr + 16);
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = s0;
      acc[r][1] = s1;
    }
    for (int q = 0; q < 8; ++q) {
      const __m512i w0 = _mm512_loadu_si512(b_dwords + (b * 8 + q) * kNr);
      const __m512i w1 = _mm512_loadu_si512(b_dwords + (b * 8 + q) * kNr + 16);
      for (int r = 0; r < MR; ++r) {
        int32_t quad;
        std::memcpy(&quad, a_u + (i0 + r) * p.k + b * 32 + 4 * q, 4);
        const __m512i a = _mm512_set1_epi32(quad);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, w0);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, w1);
      }
    }
    const __m512 e0 = _mm512_loadu_ps(w_exp + b * kNr), e1 = _mm512_loadu_ps(w_exp + b * kNr + 16);
    for (int r = 0; r < MR; ++r) {
      // scalef rounds sum · 2^e once, as the reference's double product converted to float32 (sums are exact in float).
      const __m512 ea = _mm512_set1_ps(a_exp[(i0 + r) * blocks + b]);
      total[r][0] = _mm512_add_ps(total[r][0], _mm512_scalef_ps(_mm512_cvtepi32_ps(acc[r][0]), _mm512_add_ps(e0, ea)));
      total[r][1] = _mm512_add_ps(total[r][1], _mm512_scalef_ps(_mm512_cvtepi32_ps(acc[r][1]), _mm512_add_ps(e1, ea)));
    }
  }
  alignas(64) float row[kNr];
  for (int r = 0; r < MR; ++r) {
    _mm512_store_ps(row, total[r][0]);
    _mm512_store_ps(row + 16, total[r][1]);
    for (int c = 0; c < cols; ++c) store_from_f32(p.c, p.c_type, (i0 + r) * p.ldc + j0 + c, row[c] + (p.bias ? p.bias[j0 + c] : 0.0f));
  }
}

void gemm(const Mxfp4GemmProblem& p, int64_t n_begin, int64_t n_end) {
  if (p.m == 0 || n_begin >= n_end) return;
  const int64_t blocks = p.k / 32;
  // The activations once per call: 2a + 12 as bytes [m][k], scale exponents [m][blocks].
  FloatBuffer a_u_buf(size_t(p.m * p.k) / 4 + 1), a_exp_buf(size_t(p.m * blocks));
  auto* a_u = reinterpret_cast<uint8_t*>(a_u_buf.data);
  float* a_exp = a_exp_buf.data;
  const __m128i shifted = _mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t b = 0; b < blocks; ++b) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a_u + i * p.k + b * 32), e2m1x32_lookup(p.a + i * p.lda + b * 16, shifted));
      a_exp[i * blocks + b] = scale_exponent(p.a_scale[i * p.lda_scale + b], 0.0f);
    }
  }
  FloatBuffer panel_buf(size_t(p.k) * kNr / 4), start_buf(size_t(blocks * kNr)), w_exp_buf(size_t(blocks * kNr));
  auto* panel = reinterpret_cast<int8_t*>(panel_buf.data);
  auto* start = reinterpret_cast<int32_t*>(start_buf.data);
  float* w_exp = w_exp_buf.data;
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kNr) {
    const int cols = int(std::min<int64_t>(kNr, n_end - j0));
    pack_weights(p, j0, cols, panel, start, w_exp);
    int64_t i = 0;
    for (; i + kMr <= p.m; i += kMr) {
      micro_kernel<kMr>(p, a_u, a_exp, panel, start, w_exp, i, j0, cols);
    }
    switch (p.m - i) {
      case 1: micro_kernel<1>(p, a_u, a_exp, panel, start, w_exp, i, j0, cols); break;
      case 2: micro_kernel<2>(p, a_u, a_exp, panel, start, w_exp, i, j0, cols); break;
      case 3: micro_kernel<3>(p, a_u, a_exp, panel, start, w_exp, i, j0, cols); break;
      default: break;
    }
  }
}

#else

void gemm(const Mxfp4GemmProblem& p, int64_t n_begin, int64_t n_end) { reference::mxfp4_gemm(p, n_begin, n_end); }

#endif

}  // namespace

const Mxfp4GemmKernels kMxfp4GemmKernels = {&gemm};

}  // namespace mxkernels::core::MXK_ISA_NS
