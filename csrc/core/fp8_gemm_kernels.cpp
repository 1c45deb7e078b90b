// FP8 (E4M3) weight GEMM, compiled once per CPU level (see mxfp4_kernels.cpp for the scheme).
//
// Two paths, both accumulating in float32 per K-segment and adding segment · a_scale · b_scale to a total:
// - skinny (m <= 4, decode): each column's fp8 row is converted to float32 in registers and multiplied into
//   every row of A, so the weights are read once, as bytes;
// - packed (larger m): a panel of 2 vectors' worth of columns is converted to float32 once ([k][columns]) and
//   reused by an MR x (2 vectors) register-blocked FMA microkernel over all rows.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <limits>
#include <new>

#include "fp8_gemm.h"
#include "kernel_tables.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace mxkernels::core::MXK_ISA_NS {
namespace {

#include "isa_local.h"

// E4M3 magnitude bits placed in an fp32's exponent and mantissa, times 2^120, give the value (subnormals too,
// with the default floating-point environment); 0x7F / 0xFF are NaN.
constexpr float kE4m3Rebias = 1.329227995784916e+36f;  // 2^120

float e4m3_value(uint8_t b) {
  if ((b & 0x7F) == 0x7F) return std::copysign(std::numeric_limits<float>::quiet_NaN(), (b & 0x80) ? -1.0f : 1.0f);
  const float mag = f32_from_bits(uint32_t(b & 0x7F) << 20) * kE4m3Rebias;
  return (b & 0x80) ? -mag : mag;
}

#if defined(__AVX512F__)

constexpr int kLanes = 16;
constexpr int kMr = 6;
using Vec = __m512;
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vset1(float x) { return _mm512_set1_ps(x); }
inline Vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, Vec v) { _mm512_storeu_ps(p, v); }
// The pair a[0], a[1] repeated over the lanes (vector v of a 64-lane row, lanes in (column, K parity) order).
inline Vec a_lanes(const float* a, int) {
  double d;
  std::memcpy(&d, a, sizeof d);
  return _mm512_castpd_ps(_mm512_set1_pd(d));
}
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vmul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec vadd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline float vsum(Vec a) { return _mm512_reduce_add_ps(a); }
inline Vec vcvt_e4m3(const uint8_t* p) {
  const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m512i t = _mm512_slli_epi32(x, 20);  // mantissa at 20..22, exponent at 23..26, sign at 27
  const __m512i mag = _mm512_and_si512(t, _mm512_set1_epi32(0x07F00000));
  const __m512i sign = _mm512_and_si512(_mm512_slli_epi32(t, 4), _mm512_set1_epi32(int(0x80000000u)));
  const __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_or_si512(mag, sign)), _mm512_set1_ps(kE4m3Rebias));
  const __mmask16 nan = _mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x07F00000));
  return _mm512_mask_blend_ps(nan, v, _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_set1_epi32(0x7FC00000))));
}

// 32 E4M3 codes to float32 values times 2^-8: a sign-extended byte shifted left by 7 and masked is the float16
// with the same exponent and mantissa bits (worth value * 2^-8, subnormals included), which vcvtph2ps widens
// exactly. The byte maximum of the magnitudes tracks NaN codes (0x7F), which this route would not produce.
constexpr int kCvtVecs = 32 / kLanes;
struct NanTrack {
  __m256i max = _mm256_setzero_si256();
  // Bit i: byte i of the 32-byte runs held a NaN code.
  uint32_t positions() const { return uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(max, _mm256_set1_epi8(0x7F)))); }
  bool seen() const { return positions() != 0; }
};
inline void cvt32_e4m3_div256(__m256i bytes, Vec out[kCvtVecs], NanTrack& nan) {
  nan.max = _mm256_max_epu8(nan.max, _mm256_and_si256(bytes, _mm256_set1_epi8(0x7F)));
  const __m512i h = _mm512_and_si512(_mm512_slli_epi16(_mm512_cvtepi8_epi16(bytes), 7), _mm512_set1_epi16(int16_t(0xBF80)));
  out[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
  out[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
}

// 16 codes to float32 values times 2^-8 (the float16 route of cvt32_e4m3_div256, without NaN tracking: the packed
// path checks its columns for NaN codes separately).
inline __m512 cvt16_e4m3_div256(const uint8_t* p) {
  const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16(int16_t(0xBF80))));
}

// r[i] lane c -> r[c] lane i.
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // u[4i + q], 128-bit lane l: rows 4i..4i+3 of column 4l + q
    u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int q = 0; q < 4; ++q) {
    const __m512 p0 = _mm512_shuffle_f32x4(u[q], u[4 + q], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 p1 = _mm512_shuffle_f32x4(u[q], u[4 + q], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512 q0 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 q1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], _MM_SHUFFLE(3, 1, 3, 1));
    r[q] = _mm512_shuffle_f32x4(p0, q0, _MM_SHUFFLE(2, 0, 2, 0));
    r[8 + q] = _mm512_shuffle_f32x4(p0, q0, _MM_SHUFFLE(3, 1, 3, 1));
    r[4 + q] = _mm512_shuffle_f32x4(p1, q1, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + q] = _mm512_shuffle_f32x4(p1, q1, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

#elif defined(__AVX2__)

constexpr int kLanes = 8;
constexpr int kMr = 3;
using Vec = __m256;
inline Vec vzero() { return _mm256_setzero_ps(); }
inline Vec vset1(float x) { return _mm256_set1_ps(x); }
inline Vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec a_lanes(const float* a, int) {
  double d;
  std::memcpy(&d, a, sizeof d);
  return _mm256_castpd_ps(_mm256_set1_pd(d));
}
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec vmul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec vadd(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline float vsum(Vec a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Vec vcvt_e4m3(const uint8_t* p) {
  int64_t eight;
  std::memcpy(&eight, p, 8);
  const __m256i x = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(eight));
  const __m256i t = _mm256_slli_epi32(x, 20);
  const __m256i mag = _mm256_and_si256(t, _mm256_set1_epi32(0x07F00000));
  const __m256i sign = _mm256_and_si256(_mm256_slli_epi32(t, 4), _mm256_set1_epi32(int(0x80000000u)));
  const __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_or_si256(mag, sign)), _mm256_set1_ps(kE4m3Rebias));
  const __m256 nan = _mm256_castsi256_ps(_mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x07F00000)));
  return _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_or_si256(sign, _mm256_set1_epi32(0x7FC00000))), nan);
}

constexpr int kCvtVecs = 32 / kLanes;
struct NanTrack {
  __m256i max = _mm256_setzero_si256();
  // Bit i: byte i of the 32-byte runs held a NaN code.
  uint32_t positions() const { return uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(max, _mm256_set1_epi8(0x7F)))); }
  bool seen() const { return positions() != 0; }
};
inline void cvt32_e4m3_div256(__m256i bytes, Vec out[kCvtVecs], NanTrack& nan) {
  nan.max = _mm256_max_epu8(nan.max, _mm256_and_si256(bytes, _mm256_set1_epi8(0x7F)));
  const __m256i mask = _mm256_set1_epi16(int16_t(0xBF80));
  const __m256i lo = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(bytes)), 7), mask);
  const __m256i hi = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(bytes, 1)), 7), mask);
  out[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(lo));
  out[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(lo, 1));
  out[2] = _mm256_cvtph_ps(_mm256_castsi256_si128(hi));
  out[3] = _mm256_cvtph_ps(_mm256_extracti128_si256(hi, 1));
}

#else  // portable scalar level: one-lane "vectors"

constexpr int kLanes = 1;
constexpr int kMr = 4;
using Vec = float;
inline Vec vzero() { return 0.0f; }
inline Vec vset1(float x) { return x; }
inline Vec vload(const float* p) { return *p; }
inline void vstore(float* p, Vec v) { *p = v; }
inline Vec a_lanes(const float* a, int v) { return a[v & 1]; }
inline Vec vfma(Vec a, Vec b, Vec c) { return a * b + c; }
inline Vec vmul(Vec a, Vec b) { return a * b; }
inline Vec vadd(Vec a, Vec b) { return a + b; }
inline float vsum(Vec a) { return a; }
inline Vec vcvt_e4m3(const uint8_t* p) { return e4m3_value(*p); }

constexpr int kCvtVecs = 32;
struct NanTrack {
  uint32_t nan = 0;
  uint32_t positions() const { return nan; }
  bool seen() const { return nan != 0; }
};
inline void cvt32_e4m3_div256(const uint8_t* p, Vec out[kCvtVecs], NanTrack& track) {
  static const struct Table {
    float v[256];
    Table() {
      for (int b = 0; b < 256; ++b) v[b] = e4m3_value(uint8_t(b)) * (1.0f / 256.0f);
    }
  } table;
  for (int i = 0; i < 32; ++i) {
    out[i] = table.v[p[i]];
    if ((p[i] & 0x7F) == 0x7F) track.nan |= uint32_t(1) << i;
  }
}

#endif

#if defined(__AVX512F__) || defined(__AVX2__)
inline void cvt32_e4m3_div256(const uint8_t* p, Vec out[kCvtVecs], NanTrack& nan) {
  cvt32_e4m3_div256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), out, nan);
}

// 16 bytes of E2M1 codes as 32 E4M3 bytes in K order.
inline __m256i e2m1x32_as_e4m3(const uint8_t* p) {
  return e2m1x32_lookup(p, _mm_setr_epi8(0x00, 0x30, 0x38, 0x3C, 0x40, 0x44, 0x48, 0x4C, char(0x80), char(0xB0),
                                         char(0xB8), char(0xBC), char(0xC0), char(0xC4), char(0xC8), char(0xCC)));
}

inline void store_e2m1x32_as_e4m3(const uint8_t* src, uint8_t* dst) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), e2m1x32_as_e4m3(src));
}

// 32 weights of row j from K index k (a multiple of 32 for E2M1), as float32 values times 2^-8.
inline void cvt32_weights(const Fp8GemmProblem& p, int64_t j, int64_t k, Vec out[kCvtVecs], NanTrack& nan) {
  if (p.b_codes == WeightCodes::e2m1) return cvt32_e4m3_div256(e2m1x32_as_e4m3(e2m1_block_codes(p, j, k / 32)), out, nan);
  cvt32_e4m3_div256(p.b + j * p.ldb + k, out, nan);
}
#else
inline void store_e2m1x32_as_e4m3(const uint8_t* src, uint8_t* dst) {
  for (int i = 0; i < 16; ++i) {
    dst[2 * i] = e4m3_of_e2m1(src[i] & 0xF);
    dst[2 * i + 1] = e4m3_of_e2m1(src[i] >> 4);
  }
}

inline void cvt32_weights(const Fp8GemmProblem& p, int64_t j, int64_t k, Vec out[kCvtVecs], NanTrack& nan) {
  if (p.b_codes == WeightCodes::e2m1) {
    uint8_t codes[32];
    store_e2m1x32_as_e4m3(e2m1_block_codes(p, j, k / 32), codes);
    return cvt32_e4m3_div256(codes, out, nan);
  }
  cvt32_e4m3_div256(p.b + j * p.ldb + k, out, nan);
}
#endif

constexpr int kNr = 2 * kLanes;  // columns per panel

inline void prefetch(const uint8_t* p) {
#if defined(__AVX2__) || defined(__AVX512F__)
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
#else
  __builtin_prefetch(p);
#endif
}

// --- skinny path ------------------------------------------------------------------------------------------

// Rows [0, M) of column j (M <= 4), two columns at a time when pair is set, for more independent sums. The weights
// are converted 32 at a time as value * 2^-8; the total is multiplied by 2^8 at the end (not the scales: an E8M0
// scale of 2^127 times 2^8 would overflow).
template <int M>
void skinny_columns(const Fp8GemmProblem& p, int64_t j, bool pair, int64_t n_end, float* out /* [M][2] */) {
  const int cols = pair ? 2 : 1;
  const int64_t prefetch_rows = std::min<int64_t>(4, n_end - (j + 2));
  Vec total[M][2];
  for (int r = 0; r < M; ++r) total[r][0] = total[r][1] = vzero();
  float total_tail[M][2] = {};
  NanTrack nan[2];
  int64_t a_row[M], b_row[2];
  for (int r = 0; r < M; ++r) a_row[r] = p.a_scale.row_offset(r);
  for (int c = 0; c < cols; ++c) b_row[c] = p.b_scale.row_offset(j + c);
  for (int64_t k0 = 0, kb = 0; k0 < p.k; k0 += p.k_segment, ++kb) {
    const int64_t k1 = k0 + p.k_segment;
    Vec acc[M][2];
    for (int r = 0; r < M; ++r) acc[r][0] = acc[r][1] = vzero();
    int64_t k = k0;
    for (; k + 32 <= k1; k += 32) {
      // Rows are short (a few KiB): ask for the next pair's lines ahead of the hardware prefetcher.
      const bool e2m1 = p.b_codes == WeightCodes::e2m1;
      if ((k & (e2m1 ? 127 : 63)) == 0 && prefetch_rows > 0) {
        for (int64_t q = 0; q < prefetch_rows; ++q) {
          prefetch(e2m1 ? e2m1_block_codes(p, j + 2 + q, k / 32) : p.b + (j + 2 + q) * p.ldb + k);
        }
      }
      Vec b0[kCvtVecs], b1[kCvtVecs];
      cvt32_weights(p, j, k, b0, nan[0]);
      if (pair) cvt32_weights(p, j + 1, k, b1, nan[1]);
      for (int v = 0; v < kCvtVecs; ++v) {
        for (int r = 0; r < M; ++r) {
          const Vec a = vload(p.a + r * p.lda + k + v * kLanes);
          acc[r][0] = vfma(a, b0[v], acc[r][0]);
          if (pair) acc[r][1] = vfma(a, b1[v], acc[r][1]);
        }
      }
    }
    float tail[M][2] = {};
    for (; k < k1; ++k) {
      for (int c = 0; c < cols; ++c) {
        const float b = e4m3_value(fp8_weight_code(p, j + c, k));
        for (int r = 0; r < M; ++r) tail[r][c] += p.a[r * p.lda + k] * b;
      }
    }
    const int64_t a_k = p.a_scale.k_offset(kb), b_k = p.b_scale.k_offset(kb);
    for (int r = 0; r < M; ++r) {
      for (int c = 0; c < cols; ++c) {
        const float s = p.a_scale.value(a_row[r] + a_k) * p.b_scale.value(b_row[c] + b_k);
        total[r][c] = vfma(acc[r][c], vset1(s), total[r][c]);
        total_tail[r][c] += tail[r][c] * s;
      }
    }
  }
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < cols; ++c) {
      // A NaN weight makes its whole column NaN, as IEEE arithmetic would.
      out[r * 2 + c] = nan[c].seen() ? std::numeric_limits<float>::quiet_NaN() : vsum(total[r][c]) * 256.0f + total_tail[r][c];
    }
  }
}

template <int M>
void skinny(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end) {
  float out[M * 2];
  for (int64_t j = n_begin; j < n_end;) {
    const bool pair = j + 1 < n_end;
    skinny_columns<M>(p, j, pair, n_end, out);
    for (int c = 0; c < (pair ? 2 : 1); ++c) {
      for (int r = 0; r < M; ++r) {
        const float v = out[r * 2 + c] + (p.bias ? p.bias[j + c] : 0.0f);
        store_from_f32(p.c, p.c_type, r * p.ldc + j + c, v);
      }
    }
    j += pair ? 2 : 1;
  }
}

// --- prepacked weights -------------------------------------------------------------------------------------

// A K-pair row of a full prepacked panel is 64 codes in (column, K parity) order. Vectors hold them in that order;
// pairs of A are broadcast to match, so each lane sums one column's even or odd K values, added up at the end.
constexpr int kPairVecs = 64 / kLanes;

bool full_prepacked_panel(const Fp8GemmProblem& p, int64_t j0, int64_t n_end) {
  return n_end - j0 >= kFp8PanelColumns && p.n - j0 >= kFp8PanelColumns;
}

// Columns of a 32-column panel holding a NaN code, from the byte positions tracked over its pair rows.
uint64_t pair_row_nan_columns(const NanTrack nan[2]) {
  uint64_t mask = 0;
  for (int h = 0; h < 2; ++h) {
    const uint32_t pos = nan[h].positions();
    for (int c = 0; c < 16; ++c) {
      if ((pos >> (2 * c)) & 3u) mask |= uint64_t(1) << (16 * h + c);
    }
  }
  return mask;
}

// Rows [0, M) of the full panel at j0: total [M][64] (lanes as the pair rows), scaled per segment.
template <int M>
uint64_t skinny_prepacked_panel(const Fp8GemmProblem& p, int64_t j0, float* col_scale /* [64] */, float* total) {
  const uint8_t* panel = p.b + j0 * p.k;
  for (int i = 0; i < M * 64; ++i) total[i] = 0.0f;
  NanTrack nan[2];
  int64_t b_row[64], a_row[M];
  for (int l = 0; l < 64; ++l) b_row[l] = p.b_scale.row_offset(j0 + l / 2);
  for (int r = 0; r < M; ++r) a_row[r] = p.a_scale.row_offset(r);
  for (int64_t k0 = 0, kb = 0; k0 < p.k; k0 += p.k_segment, ++kb) {
    Vec acc[M][kPairVecs];
    for (int r = 0; r < M; ++r) {
      for (int v = 0; v < kPairVecs; ++v) acc[r][v] = vzero();
    }
    for (int64_t kp = k0 / 2; kp < (k0 + p.k_segment) / 2; ++kp) {
      const uint8_t* row = panel + kp * 64;
      // 64 pair rows ahead. On the device's Xeon (2 threads) this matched the plain path where 1 KiB ahead ran
      // 1.3x slower; on the EPYC every distance from 0 to 4 KiB measured the same.
      prefetch(row + 4096);
      Vec b[kPairVecs];
      cvt32_e4m3_div256(row, b, nan[0]);
      cvt32_e4m3_div256(row + 32, b + kCvtVecs, nan[1]);
      for (int r = 0; r < M; ++r) {
        const float* a = p.a + r * p.lda + 2 * kp;
        for (int v = 0; v < kPairVecs; ++v) acc[r][v] = vfma(a_lanes(a, v), b[v], acc[r][v]);
      }
    }
    const int64_t a_k = p.a_scale.k_offset(kb), b_k = p.b_scale.k_offset(kb);
    for (int l = 0; l < 64; ++l) col_scale[l] = p.b_scale.value(b_row[l] + b_k);
    for (int r = 0; r < M; ++r) {
      const Vec sa = vset1(p.a_scale.value(a_row[r] + a_k));
      for (int v = 0; v < kPairVecs; ++v) {
        float* t = total + r * 64 + v * kLanes;
        vstore(t, vfma(acc[r][v], vmul(vload(col_scale + v * kLanes), sa), vload(t)));
      }
    }
  }
  return pair_row_nan_columns(nan);
}

template <int M>
void skinny_prepacked(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end) {
  alignas(64) float col_scale[64];
  alignas(64) float total[M * 64];
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kFp8PanelColumns) {
    if (!full_prepacked_panel(p, j0, n_end)) {
      // The narrow last panel (n not a multiple of 32): a few columns, plain loops.
      reference::fp8_gemm(p, j0, n_end);
      return;
    }
    const uint64_t nan = skinny_prepacked_panel<M>(p, j0, col_scale, total);
    for (int r = 0; r < M; ++r) {
      for (int c = 0; c < kFp8PanelColumns; ++c) {
        float v = (total[r * 64 + 2 * c] + total[r * 64 + 2 * c + 1]) * 256.0f;
        if ((nan >> c) & 1) v = std::numeric_limits<float>::quiet_NaN();
        store_from_f32(p.c, p.c_type, r * p.ldc + j0 + c, v + (p.bias ? p.bias[j0 + c] : 0.0f));
      }
    }
  }
}

#if defined(__AVX512F__)
// A pair row of a full panel as the even-K and the odd-K rows of float32 values times 2^-8, 32 columns each.
inline void cvt_pair_row(const uint8_t* row, __m512 even[2], __m512 odd[2], NanTrack nan[2]) {
  __m512 v[4];
  cvt32_e4m3_div256(row, v, nan[0]);
  cvt32_e4m3_div256(row + 32, v + 2, nan[1]);
  const __m512i take_even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i take_odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (int h = 0; h < 2; ++h) {
    even[h] = _mm512_permutex2var_ps(v[2 * h], take_even, v[2 * h + 1]);
    odd[h] = _mm512_permutex2var_ps(v[2 * h], take_odd, v[2 * h + 1]);
  }
}
#endif

// --- packed path ------------------------------------------------------------------------------------------

// Columns [j0, j0 + kNr) of B as float32 values times 2^-8, [k][kNr]; columns past n_end are zero. Returns
// the mask of columns holding a NaN code.
// E4M3 values times 2^-8, by code.
const float* e4m3_div256_table() {
  static const struct Table {
    float v[256];
    Table() {
      for (int b = 0; b < 256; ++b) v[b] = e4m3_value(uint8_t(b)) * (1.0f / 256.0f);
    }
  } table;
  return table.v;
}

// The mask of the columns [j0, min(j0 + kNr, n_end)) holding a NaN code.
uint64_t nan_columns(const Fp8GemmProblem& p, int64_t j0, int64_t n_end) {
  uint64_t mask = 0;
  for (int c = 0; c < kNr && j0 + c < n_end; ++c) {
    uint8_t max_mag = 0;
    if (p.b_prepacked) {
      for (int64_t k = 0; k < p.k; ++k) max_mag = std::max<uint8_t>(max_mag, fp8_weight_code(p, j0 + c, k) & 0x7F);
    } else {
      const uint8_t* row = p.b + (j0 + c) * p.ldb;
      for (int64_t k = 0; k < p.k; ++k) max_mag = std::max<uint8_t>(max_mag, row[k] & 0x7F);
    }
    if (max_mag == 0x7F) mask |= uint64_t(1) << c;
  }
  return mask;
}

// Columns [j0, j0 + kNr) of prepacked weights (within one 32-column panel: kNr divides 32) into the float32 panel
// [k][kNr], by table, walking the pair rows in order; returns the NaN columns.
uint64_t pack_prepacked_panel(const Fp8GemmProblem& p, int64_t j0, int64_t n_end, const float* table, float* panel) {
  const int64_t base = j0 / kFp8PanelColumns * kFp8PanelColumns;
  const int64_t width = std::min<int64_t>(kFp8PanelColumns, p.n - base);
  const int cols = int(std::min<int64_t>(kNr, n_end - j0));
  const uint8_t* rows = p.b + base * p.k + (j0 - base) * 2;
  uint8_t max_mag[kNr] = {};
  for (int64_t kp = 0; kp < p.k / 2; ++kp) {
    const uint8_t* row = rows + kp * width * 2;
    for (int c = 0; c < kNr; ++c) {
      const uint8_t e = c < cols ? row[2 * c] : 0, o = c < cols ? row[2 * c + 1] : 0;
      panel[(2 * kp) * kNr + c] = table[e];
      panel[(2 * kp + 1) * kNr + c] = table[o];
      max_mag[c] = std::max<uint8_t>(max_mag[c], uint8_t(std::max(e & 0x7F, o & 0x7F)));
    }
  }
  uint64_t mask = 0;
  for (int c = 0; c < cols; ++c) {
    if (max_mag[c] == 0x7F) mask |= uint64_t(1) << c;
  }
  return mask;
}

uint64_t pack_panel(const Fp8GemmProblem& p, int64_t j0, int64_t n_end, float* panel) {
  const float* table = e4m3_div256_table();
  if (p.b_prepacked) {
#if defined(__AVX512F__)
    static_assert(kNr == kFp8PanelColumns, "the AVX-512 panel is a prepacked panel");
    if (full_prepacked_panel(p, j0, n_end)) {
      NanTrack nan[2];
      for (int64_t kp = 0; kp < p.k / 2; ++kp) {
        __m512 even[2], odd[2];
        cvt_pair_row(p.b + j0 * p.k + kp * 64, even, odd, nan);
        for (int h = 0; h < 2; ++h) {
          _mm512_storeu_ps(panel + (2 * kp) * kNr + 16 * h, even[h]);
          _mm512_storeu_ps(panel + (2 * kp + 1) * kNr + 16 * h, odd[h]);
        }
      }
      return pair_row_nan_columns(nan);
    }
#endif
    return pack_prepacked_panel(p, j0, n_end, table, panel);
  }
  int64_t k_done = 0;
#if defined(__AVX512F__)
  // 16 columns x 16 K values at a time: convert each column's run, transpose, store panel rows.
  for (; k_done + 16 <= p.k; k_done += 16) {
    for (int cg = 0; cg < kNr; cg += 16) {
      __m512 r[16];
      for (int c = 0; c < 16; ++c) {
        const int64_t j = j0 + cg + c;
        r[c] = j < n_end ? cvt16_e4m3_div256(p.b + j * p.ldb + k_done) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int kk = 0; kk < 16; ++kk) _mm512_storeu_ps(panel + (k_done + kk) * kNr + cg, r[kk]);
    }
  }
#endif
  for (int c = 0; c < kNr; ++c) {
    const int64_t j = j0 + c;
    const uint8_t* row = p.b + j * p.ldb;
    for (int64_t k = k_done; k < p.k; ++k) panel[k * kNr + c] = j < n_end ? table[row[k]] : 0.0f;
  }
  return nan_columns(p, j0, n_end);
}

// Rows [i0, i0 + MR) x the panel's columns; cols (<= kNr) of them are stored.
template <int MR>
void micro_kernel(const Fp8GemmProblem& p, const float* panel, const float* col_scale /* [segments][kNr] */,
                  int64_t i0, int64_t j0, int cols) {
  Vec total[MR][2];
  for (int r = 0; r < MR; ++r) total[r][0] = total[r][1] = vzero();
  for (int64_t k0 = 0, kb = 0; k0 < p.k; k0 += p.k_segment, ++kb) {
    Vec acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = vzero();
    const float* a = p.a + i0 * p.lda;
    for (int64_t k = k0; k < k0 + p.k_segment; ++k) {
      const Vec b0 = vload(panel + k * kNr), b1 = vload(panel + k * kNr + kLanes);
      for (int r = 0; r < MR; ++r) {
        const Vec ar = vset1(a[r * p.lda + k]);
        acc[r][0] = vfma(ar, b0, acc[r][0]);
        acc[r][1] = vfma(ar, b1, acc[r][1]);
      }
    }
    const Vec s0 = vload(col_scale + kb * kNr), s1 = vload(col_scale + kb * kNr + kLanes);
    for (int r = 0; r < MR; ++r) {
      const Vec sa = vset1(p.a_scale.at(i0 + r, kb));
      total[r][0] = vfma(acc[r][0], vmul(sa, s0), total[r][0]);
      total[r][1] = vfma(acc[r][1], vmul(sa, s1), total[r][1]);
    }
  }
  alignas(64) float row[kNr];
  for (int r = 0; r < MR; ++r) {
    std::memcpy(row, &total[r][0], sizeof(Vec));
    std::memcpy(row + kLanes, &total[r][1], sizeof(Vec));
    for (int c = 0; c < cols; ++c) {
      const float v = row[c] * 256.0f + (p.bias ? p.bias[j0 + c] : 0.0f);
      store_from_f32(p.c, p.c_type, (i0 + r) * p.ldc + j0 + c, v);
    }
  }
}

// The panel holds values times 2^-8; the microkernels multiply their totals by 2^8 when storing. A column
// with a NaN code gets a NaN scale, so its outputs are NaN as IEEE arithmetic would make them.
void fill_column_scales(const Fp8GemmProblem& p, int64_t j0, int cols, uint64_t nan_mask, float* col_scale) {
  int64_t row[kNr];
  for (int c = 0; c < cols; ++c) row[c] = p.b_scale.row_offset(j0 + c);
  for (int64_t kb = 0; kb < p.k / p.k_segment; ++kb) {
    const int64_t k_off = p.b_scale.k_offset(kb);
    for (int c = 0; c < kNr; ++c) {
      const float s = c < cols ? p.b_scale.value(row[c] + k_off) : 0.0f;
      col_scale[kb * kNr + c] = ((nan_mask >> c) & 1) ? std::numeric_limits<float>::quiet_NaN() : s;
    }
  }
}

// E2M1 weights: columns [j0, j0 + cols) widened to E4M3 rows in staging ([cols][k] bytes), as a plain E4M3
// problem of cols columns that the panel packers read as they read FP8 weights.
Fp8GemmProblem stage_e2m1_columns(const Fp8GemmProblem& p, int64_t j0, int cols, uint8_t* staging) {
  for (int c = 0; c < cols; ++c) {
    for (int64_t b = 0; b < p.k / 32; ++b) store_e2m1x32_as_e4m3(e2m1_block_codes(p, j0 + c, b), staging + c * p.k + 32 * b);
  }
  Fp8GemmProblem staged = p;
  staged.b = staging;
  staged.ldb = p.k;
  staged.n = cols;
  staged.b_codes = WeightCodes::e4m3;
  staged.b_prepacked = false;
  return staged;
}

// Staging space for E2M1 panels (none for E4M3).
struct Staging {
  explicit Staging(const Fp8GemmProblem& p)
      : buffer(p.b_codes == WeightCodes::e2m1 ? size_t(kNr * p.k) / sizeof(float) + 1 : 1) {}
  uint8_t* bytes() { return reinterpret_cast<uint8_t*>(buffer.data); }
  FloatBuffer buffer;
};

void packed(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end) {
  const int64_t segments = p.k / p.k_segment;
  FloatBuffer panel(size_t(p.k) * kNr);
  FloatBuffer col_scale(size_t(segments) * kNr);
  Staging staging(p);
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kNr) {
    const int cols = int(std::min<int64_t>(kNr, n_end - j0));
    const uint64_t nan = p.b_codes == WeightCodes::e2m1
                             ? pack_panel(stage_e2m1_columns(p, j0, cols, staging.bytes()), 0, cols, panel.data)
                             : pack_panel(p, j0, n_end, panel.data);
    fill_column_scales(p, j0, cols, nan, col_scale.data);
    int64_t i = 0;
    for (; i + kMr <= p.m; i += kMr) micro_kernel<kMr>(p, panel.data, col_scale.data, i, j0, cols);
    switch (p.m - i) {
      case 1: micro_kernel<1>(p, panel.data, col_scale.data, i, j0, cols); break;
      case 2: micro_kernel<2>(p, panel.data, col_scale.data, i, j0, cols); break;
      case 3: if constexpr (kMr > 3) micro_kernel<3>(p, panel.data, col_scale.data, i, j0, cols); break;
      case 4: if constexpr (kMr > 4) micro_kernel<4>(p, panel.data, col_scale.data, i, j0, cols); break;
      case 5: if constexpr (kMr > 5) micro_kernel<5>(p, panel.data, col_scale.data, i, j0, cols); break;
      default: break;
    }
  }
}

#if defined(__AVX512BF16__)

// Columns [j0, j0 + kNr) of B as bf16 pairs [k/2][kNr] (low half k even, high half k odd), values times 2^-8:
// exact, since an E4M3 value has at most 4 significant bits. K is padded with zeros to k_pairs * 2.
uint64_t pack_panel_bf16(const Fp8GemmProblem& p, int64_t j0, int64_t n_end, int64_t k_pairs, uint32_t* panel) {
  const float* table = e4m3_div256_table();
  if (p.b_prepacked && full_prepacked_panel(p, j0, n_end)) {
    // Pair rows are already in the bf16 pair order: convert, no transpose.
    NanTrack nan[2];
    for (int64_t kp = 0; kp < p.k / 2; ++kp) {
      for (int h = 0; h < 2; ++h) {
        __m512 v[2];
        cvt32_e4m3_div256(p.b + j0 * p.k + kp * 64 + 32 * h, v, nan[h]);
        _mm512_storeu_si512(panel + kp * kNr + 16 * h, (__m512i)_mm512_cvtne2ps_pbh(v[1], v[0]));
      }
    }
    for (int64_t kp = p.k / 2; kp < k_pairs; ++kp) {
      for (int c = 0; c < kNr; ++c) panel[kp * kNr + c] = 0u;
    }
    return pair_row_nan_columns(nan);
  }
  int64_t k_done = 0;
  for (; !p.b_prepacked && k_done + 16 <= p.k; k_done += 16) {
    for (int cg = 0; cg < kNr; cg += 16) {
      __m512 r[16];
      for (int c = 0; c < 16; ++c) {
        const int64_t j = j0 + cg + c;
        r[c] = j < n_end ? cvt16_e4m3_div256(p.b + j * p.ldb + k_done) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int t = 0; t < 8; ++t) {
        const __m512i even = _mm512_srli_epi32(_mm512_castps_si512(r[2 * t]), 16);
        const __m512i odd = _mm512_and_si512(_mm512_castps_si512(r[2 * t + 1]), _mm512_set1_epi32(int(0xFFFF0000u)));
        _mm512_storeu_si512(panel + (k_done / 2 + t) * kNr + cg, _mm512_or_si512(even, odd));
      }
    }
  }
  for (int c = 0; c < kNr; ++c) {
    const int64_t j = j0 + c;
    for (int64_t k = k_done; k < k_pairs * 2; k += 2) {
      auto half = [&](int64_t kk) -> uint32_t {
        return (j < n_end && kk < p.k) ? f32_bits(table[fp8_weight_code(p, j, kk)]) >> 16 : 0u;
      };
      panel[(k / 2) * kNr + c] = half(k) | (half(k + 1) << 16);
    }
  }
  return nan_columns(p, j0, n_end);
}

template <int MR>
void micro_kernel_bf16(const Fp8GemmProblem& p, const uint32_t* panel, const uint32_t* a_pairs, int64_t k_pairs,
                       const float* col_scale, int64_t i0, int64_t j0, int cols) {
  __m512 total[MR][2];
  for (int r = 0; r < MR; ++r) total[r][0] = total[r][1] = _mm512_setzero_ps();
  for (int64_t k0 = 0, kb = 0; k0 < p.k; k0 += p.k_segment, ++kb) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const int64_t kp_end = (std::min(k0 + p.k_segment, p.k) + 1) / 2;
    for (int64_t kp = k0 / 2; kp < kp_end; ++kp) {
      const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + kp * kNr);
      const __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + kp * kNr + 16);
      for (int r = 0; r < MR; ++r) {
        const __m512bh a = (__m512bh)_mm512_set1_epi32(int(a_pairs[(i0 + r) * k_pairs + kp]));
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(col_scale + kb * kNr), s1 = _mm512_loadu_ps(col_scale + kb * kNr + 16);
    for (int r = 0; r < MR; ++r) {
      const __m512 sa = _mm512_set1_ps(p.a_scale.at(i0 + r, kb));
      total[r][0] = _mm512_fmadd_ps(acc[r][0], _mm512_mul_ps(sa, s0), total[r][0]);
      total[r][1] = _mm512_fmadd_ps(acc[r][1], _mm512_mul_ps(sa, s1), total[r][1]);
    }
  }
  alignas(64) float row[kNr];
  for (int r = 0; r < MR; ++r) {
    _mm512_store_ps(row, total[r][0]);
    _mm512_store_ps(row + 16, total[r][1]);
    for (int c = 0; c < cols; ++c) {
      const float v = row[c] * 256.0f + (p.bias ? p.bias[j0 + c] : 0.0f);
      store_from_f32(p.c, p.c_type, (i0 + r) * p.ldc + j0 + c, v);
    }
  }
}

// The packed path with bf16 dot products (two multiply-adds per lane and instruction), for activations that
// are bf16 values; products are exact, sums float32 (vdpbf16ps flushes subnormal inputs and results to zero).
[[maybe_unused]] void packed_bf16(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end) {
  const int64_t k_pairs = (p.k + 1) / 2;
  FloatBuffer a_buf(size_t(p.m * k_pairs)), panel_buf(size_t(k_pairs * kNr)), col_scale(size_t(p.k / p.k_segment) * kNr);
  auto* a_pairs = reinterpret_cast<uint32_t*>(a_buf.data);
  auto* panel = reinterpret_cast<uint32_t*>(panel_buf.data);
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t kp = 0; kp < k_pairs; ++kp) {
      const uint32_t lo = f32_bits(p.a[i * p.lda + 2 * kp]) >> 16;
      const uint32_t hi = 2 * kp + 1 < p.k ? f32_bits(p.a[i * p.lda + 2 * kp + 1]) >> 16 : 0u;
      a_pairs[i * k_pairs + kp] = lo | (hi << 16);
    }
  }
  Staging staging(p);
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kNr) {
    const int cols = int(std::min<int64_t>(kNr, n_end - j0));
    const uint64_t nan = p.b_codes == WeightCodes::e2m1
                             ? pack_panel_bf16(stage_e2m1_columns(p, j0, cols, staging.bytes()), 0, cols, k_pairs, panel)
                             : pack_panel_bf16(p, j0, n_end, k_pairs, panel);
    fill_column_scales(p, j0, cols, nan, col_scale.data);
    int64_t i = 0;
    for (; i + kMr <= p.m; i += kMr) micro_kernel_bf16<kMr>(p, panel, a_pairs, k_pairs, col_scale.data, i, j0, cols);
    switch (p.m - i) {
      case 1: micro_kernel_bf16<1>(p, panel, a_pairs, k_pairs, col_scale.data, i, j0, cols); break;
      case 2: micro_kernel_bf16<2>(p, panel, a_pairs, k_pairs, col_scale.data, i, j0, cols); break;
      case 3: micro_kernel_bf16<3>(p, panel, a_pairs, k_pairs, col_scale.data, i, j0, cols); break;
      case 4: micro_kernel_bf16<4>(p, panel, a_pairs, k_pairs, col_scale.data, i, j0, cols); break;
      case 5: micro_kernel_bf16<5>(p, panel, a_pairs, k_pairs, col_scale.data, i, j0, cols); break;
      default: break;
    }
  }
}

#endif

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)

// The AMX tile configuration (palette 1): tiles 0-3 accumulate 16x16 float32 blocks of C, 4-5 hold 16 rows x 32
// bf16 of A, 6-7 hold 16 k-pairs x 16 columns of B (bf16 pairs, the layout of pack_panel_bf16). Every tile row
// is 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

// The bf16 packed path on AMX: 32 rows x 32 columns per step as 2 x 2 tiles, K in steps of 32; each K-segment's
// tile sums are stored, scaled and added to float32 totals with AVX-512. Rows and K are padded with zeros to
// multiples of 32.
void packed_amx(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end) {
  const bool single_segment = p.k_segment == p.k;
  const int64_t k_pad = (p.k + 31) / 32 * 32;  // segments of 128 already are multiples of 32
  const int64_t seg = single_segment ? k_pad : p.k_segment;
  const int64_t k_pairs = k_pad / 2;
  const int64_t m_pad = (p.m + 31) / 32 * 32;
  FloatBuffer a_buf(size_t(m_pad * k_pairs)), panel_buf(size_t(k_pairs * kNr)),
      col_scale(size_t(p.k / p.k_segment) * kNr), tiles(32 * 32), total(32 * 32);
  auto* a_pairs = reinterpret_cast<uint32_t*>(a_buf.data);
  auto* panel = reinterpret_cast<uint32_t*>(panel_buf.data);
  for (int64_t i = 0; i < m_pad; ++i) {
    for (int64_t kp = 0; kp < k_pairs; ++kp) {
      auto half = [&](int64_t k) -> uint32_t { return (i < p.m && k < p.k) ? f32_bits(p.a[i * p.lda + k]) >> 16 : 0u; };
      a_pairs[i * k_pairs + kp] = half(2 * kp) | (half(2 * kp + 1) << 16);
    }
  }
  const TileConfig config;
  _tile_loadconfig(&config);
  const int64_t a_stride = k_pairs * 4;
  Staging staging(p);
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kNr) {
    const int cols = int(std::min<int64_t>(kNr, n_end - j0));
    const uint64_t nan = p.b_codes == WeightCodes::e2m1
                             ? pack_panel_bf16(stage_e2m1_columns(p, j0, cols, staging.bytes()), 0, cols, k_pairs, panel)
                             : pack_panel_bf16(p, j0, n_end, k_pairs, panel);
    fill_column_scales(p, j0, cols, nan, col_scale.data);
    for (int64_t i0 = 0; i0 < p.m; i0 += 32) {
      const int rows = int(std::min<int64_t>(32, p.m - i0));
      for (int i = 0; i < 32 * 32; ++i) total.data[i] = 0.0f;
      for (int64_t k0 = 0, kb = 0; k0 < k_pad; k0 += seg, ++kb) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t k = k0; k < k0 + seg; k += 32) {
          const int64_t kp = k / 2;
          _tile_loadd(4, a_pairs + i0 * k_pairs + kp, a_stride);
          _tile_loadd(5, a_pairs + (i0 + 16) * k_pairs + kp, a_stride);
          _tile_loadd(6, panel + kp * kNr, kNr * 4);
          _tile_loadd(7, panel + kp * kNr + 16, kNr * 4);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
        float* t = tiles.data;  // [32][32] float32: C00 | C01 over C10 | C11
        _tile_stored(0, t, 32 * 4);
        _tile_stored(1, t + 16, 32 * 4);
        _tile_stored(2, t + 16 * 32, 32 * 4);
        _tile_stored(3, t + 16 * 32 + 16, 32 * 4);
        const __m512 s0 = _mm512_loadu_ps(col_scale.data + kb * kNr), s1 = _mm512_loadu_ps(col_scale.data + kb * kNr + 16);
        for (int r = 0; r < rows; ++r) {
          const __m512 sa = _mm512_set1_ps(p.a_scale.at(i0 + r, kb));
          float* tr = total.data + r * 32;
          _mm512_storeu_ps(tr, _mm512_fmadd_ps(_mm512_loadu_ps(t + r * 32), _mm512_mul_ps(sa, s0), _mm512_loadu_ps(tr)));
          _mm512_storeu_ps(tr + 16, _mm512_fmadd_ps(_mm512_loadu_ps(t + r * 32 + 16), _mm512_mul_ps(sa, s1),
                                                    _mm512_loadu_ps(tr + 16)));
        }
      }
      for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
          const float v = total.data[r * 32 + c] * 256.0f + (p.bias ? p.bias[j0 + c] : 0.0f);
          store_from_f32(p.c, p.c_type, (i0 + r) * p.ldc + j0 + c, v);
        }
      }
    }
  }
  _tile_release();
}

#endif


#if defined(__AVX512F__)
// --- MXFP4 decode path (e2m1 codes, m <= 4) ------------------------------------------------------------------------
//
// Blocks are taken in pairs: the 32 code bytes of blocks 2t and 2t + 1 of a column (contiguous in both layouts, see
// mxfp4_prepacked_code_offset; an odd last block is padded with zero codes, zero activations and scale 0). The
// activations are reordered once per call to the lanes' K values.

// count (<= 16) E8M0 bytes as float32 scales (0xFF is NaN, 0 is 2^-127), stored to out.
inline void store_e8m0_scales(const uint8_t* e, int count, float* out) {
  const __mmask16 live = __mmask16((1u << count) - 1u);
  const __m512i x = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(live, e));
  __m512i bits = _mm512_slli_epi32(x, 23);
  bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(x, _mm512_setzero_si512()), _mm512_set1_epi32(0x00400000));
  bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(x, _mm512_set1_epi32(0xFF)), _mm512_set1_epi32(0x7FC00000));
  _mm512_mask_storeu_ps(out, live, _mm512_castsi512_ps(bits));
}

// Column j's scales as float32, padded with one 0 when the block count is odd.
inline void column_scales(const Fp8GemmProblem& p, int64_t j, float* out) {
  const int64_t blocks = p.k / 32;
  const uint8_t* e = p.b_scale.e8m0 + j * p.b_scale.ld;
  for (int64_t b = 0; b < blocks; b += 16) store_e8m0_scales(e + b, int(std::min<int64_t>(16, blocks - b)), out + b);
  if (blocks & 1) out[blocks] = 0.0f;
}

// Blocks 2t and 2t + 1's scales as [s0 x 8 | s1 x 8].
inline __m512 pair_scales(const float* s, int64_t t) {
  return _mm512_insertf32x8(_mm512_set1_ps(s[2 * t]), _mm256_set1_ps(s[2 * t + 1]), 1);
}

// Columns [j, j + C) (within one prepacked group, or plain) and the next C columns to prefetch.
template <int C>
struct ColumnCodes {
  ColumnCodes(const Fp8GemmProblem& p, int64_t j) : p(p), j(j), full_pairs(p.k / 64) {
    for (int c = 0; c < C; ++c) first[c] = e2m1_block_codes(p, j + c, 0);
    const int64_t group = j / kMxfp4GroupColumns * kMxfp4GroupColumns;
    step = p.b_prepacked ? std::min<int64_t>(kMxfp4GroupColumns, p.n - group) * 32 : 32;
  }
  __m256i load(int c, int64_t t) const {
    if (t < full_pairs) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first[c] + t * step));
    return _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(e2m1_block_codes(p, j + c, 2 * t))));
  }
  // The columns' codes are one contiguous run (contiguous plain rows, or a prepacked group) read at 32 C bytes per pair.
  // Rows are short (k / 2 bytes), too short for the hardware prefetcher to find each row's stream in time: fetch the
  // run kPrefetchAhead bytes ahead, as a line stream.
  void prefetch_ahead(int64_t t) const {
    const uint8_t* at = first[0] + kPrefetchAhead + t * 32 * C;
    for (int line = 0; line < (32 * C + 63) / 64; ++line) prefetch(at + 64 * line);
  }
  static constexpr int64_t kPrefetchAhead = 8192;  // measured best of 2, 8, 16 and 32 KiB (bench_core_mxfp4, bench_mxfp4_gemm.py)
  const Fp8GemmProblem& p;
  int64_t j, full_pairs, step;
  const uint8_t* first[C];
};

// The float32 route: a pair's 32 bytes widened to one byte per 32-bit lane (16 bytes at a time); vpermps reads only
// the low 4 index bits, so one permute of this 16-entry table decodes the low nibbles (even K), and one more after a
// shift the high ones (odd K).
inline __m512 e2m1_value_table() {
  return _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f,
                        -6.0f);
}

// a_split: per row and block pair, 4 vectors of 16 floats, lane i: K values 2i, 2i + 1, 32 + 2i, 32 + 2i + 1 of the pair.
template <int M, int C>
void mxfp4_decode_columns(const Fp8GemmProblem& p, const float* a_split, int64_t j, int64_t n_end, float* scale_buf,
                          float out[M][C]) {
  const int64_t blocks = p.k / 32, pairs = (blocks + 1) / 2, padded = 2 * pairs;
  for (int c = 0; c < C; ++c) column_scales(p, j + c, scale_buf + c * padded);
  const ColumnCodes<C> codes(p, j);
  const __m512 table = e2m1_value_table();
  __m512 total[M][C];
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < C; ++c) total[r][c] = _mm512_setzero_ps();
  }
  for (int64_t t = 0; t < pairs; ++t) {
    codes.prefetch_ahead(t);
    for (int c = 0; c < C; ++c) {
      const __m256i bytes = codes.load(c, t);
      // Lane i of w0 (w1): byte i of block 2t (2t + 1).
      const __m512i w0 = _mm512_cvtepu8_epi32(_mm256_castsi256_si128(bytes));
      const __m512i w1 = _mm512_cvtepu8_epi32(_mm256_extracti128_si256(bytes, 1));
      const __m512 s0 = _mm512_set1_ps(scale_buf[c * padded + 2 * t]), s1 = _mm512_set1_ps(scale_buf[c * padded + 2 * t + 1]);
      for (int r = 0; r < M; ++r) {
        const float* a = a_split + (r * pairs + t) * 64;
        const __m512 sum0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + 16), _mm512_permutexvar_ps(_mm512_srli_epi32(w0, 4), table),
                                            _mm512_mul_ps(_mm512_loadu_ps(a), _mm512_permutexvar_ps(w0, table)));
        const __m512 sum1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + 48), _mm512_permutexvar_ps(_mm512_srli_epi32(w1, 4), table),
                                            _mm512_mul_ps(_mm512_loadu_ps(a + 32), _mm512_permutexvar_ps(w1, table)));
        total[r][c] = _mm512_fmadd_ps(sum1, s1, _mm512_fmadd_ps(sum0, s0, total[r][c]));
      }
    }
  }
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < C; ++c) out[r][c] = _mm512_reduce_add_ps(total[r][c]);
  }
}

#if defined(__AVX512BF16__)
// The route for bf16-exact activations: vdpbf16ps multiplies two pairs per lane, so one vpermw of a 32-entry bf16
// table decodes a whole block where the float32 route takes two vpermps (the permutes bound that route). The pair's
// 32 bytes widened to words (word i = byte i) index the low nibbles as they are (vpermw reads 5 index bits, so the
// table holds the 16 values twice) and the high nibbles after a shift by 4. Dword lane L then holds the K values
// 4L and 4L + 2 (low nibbles) or 4L + 1 and 4L + 3 (high nibbles) of the pair; lanes 0-7 are block 2t. Products are
// exact (bf16 x E2M1), sums float32.
inline __m512i e2m1_bf16_table() {
  return _mm512_set_epi16(int16_t(0xC0C0), int16_t(0xC080), int16_t(0xC040), int16_t(0xC000), int16_t(0xBFC0),
                          int16_t(0xBF80), int16_t(0xBF00), int16_t(0x8000), 0x40C0, 0x4080, 0x4040, 0x4000, 0x3FC0,
                          0x3F80, 0x3F00, 0x0000, int16_t(0xC0C0), int16_t(0xC080), int16_t(0xC040), int16_t(0xC000),
                          int16_t(0xBFC0), int16_t(0xBF80), int16_t(0xBF00), int16_t(0x8000), 0x40C0, 0x4080, 0x4040,
                          0x4000, 0x3FC0, 0x3F80, 0x3F00, 0x0000);
}

template <int M, int C>
void mxfp4_decode_columns_bf16(const Fp8GemmProblem& p, const uint32_t* a_pairs, int64_t j, int64_t n_end,
                               float* scale_buf, float out[M][C]) {
  const int64_t blocks = p.k / 32, pairs = (blocks + 1) / 2, padded = 2 * pairs;
  for (int c = 0; c < C; ++c) column_scales(p, j + c, scale_buf + c * padded);
  const ColumnCodes<C> codes(p, j);
  const __m512i table = e2m1_bf16_table();
  __m512 total[M][C];
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < C; ++c) total[r][c] = _mm512_setzero_ps();
  }
  for (int64_t t = 0; t < pairs; ++t) {
    codes.prefetch_ahead(t);
    for (int c = 0; c < C; ++c) {
      const __m512i words = _mm512_cvtepu8_epi16(codes.load(c, t));
      const __m512bh lo = (__m512bh)_mm512_permutexvar_epi16(words, table);
      const __m512bh hi = (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(words, 4), table);
      const __m512 s = pair_scales(scale_buf + c * padded, t);
      for (int r = 0; r < M; ++r) {
        const uint32_t* a = a_pairs + (r * pairs + t) * 32;
        const __m512 sum = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)_mm512_loadu_si512(a), lo),
                                            (__m512bh)_mm512_loadu_si512(a + 16), hi);
        total[r][c] = _mm512_fmadd_ps(sum, s, total[r][c]);
      }
    }
  }
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < C; ++c) out[r][c] = _mm512_reduce_add_ps(total[r][c]);
  }
}
#endif

template <int M, int C, bool Bf16>
void mxfp4_decode_store(const Fp8GemmProblem& p, const void* a_ready, int64_t j, int64_t n_end, float* scale_buf) {
  float out[M][C];
#if defined(__AVX512BF16__)
  if constexpr (Bf16) {
    mxfp4_decode_columns_bf16<M, C>(p, static_cast<const uint32_t*>(a_ready), j, n_end, scale_buf, out);
  } else
#endif
  {
    mxfp4_decode_columns<M, C>(p, static_cast<const float*>(a_ready), j, n_end, scale_buf, out);
  }
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < C; ++c) store_from_f32(p.c, p.c_type, r * p.ldc + j + c, out[r][c] + (p.bias ? p.bias[j + c] : 0.0f));
  }
}

// W4A16 decode: activations unscaled (a_scale 1), E8M0 column scales per 32-block; each block's sum is float32,
// scaled, and added to a float32 total per lane.
template <int M, bool Bf16>
void mxfp4_decode(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end) {
  constexpr int C = M <= 2 ? 4 : 2;  // independent columns per step, as the 32 registers allow
  const int64_t blocks = p.k / 32, pairs = (blocks + 1) / 2;
  // Per row and block pair, 64 values (float32 route) or 32 dwords of bf16 pairs, zero past K.
  FloatBuffer a_ready(size_t(M * pairs * 64)), scale_buf(size_t(C * 2 * pairs));
  for (int r = 0; r < M; ++r) {
    for (int64_t t = 0; t < pairs; ++t) {
      auto a = [&](int64_t kk) { return 64 * t + kk < p.k ? p.a[r * p.lda + 64 * t + kk] : 0.0f; };
      if (Bf16) {
        // Lane L of the low-nibble vector: K values 4L, 4L + 2; of the high-nibble vector: 4L + 1, 4L + 3. The values
        // are bf16 values (a_bf16_exact): their float32 bits' high halves are exact.
        uint32_t* dst = reinterpret_cast<uint32_t*>(a_ready.data) + (r * pairs + t) * 32;
        for (int l = 0; l < 16; ++l) {
          dst[l] = (f32_bits(a(4 * l)) >> 16) | (f32_bits(a(4 * l + 2)) & 0xFFFF0000u);
          dst[16 + l] = (f32_bits(a(4 * l + 1)) >> 16) | (f32_bits(a(4 * l + 3)) & 0xFFFF0000u);
        }
      } else {
        // Vector h (0, 1: the first 16 bytes; 2, 3: the next), lane i: byte 16 (h / 2) + i, low nibble (h even) or high.
        float* dst = a_ready.data + (r * pairs + t) * 64;
        for (int h = 0; h < 4; ++h) {
          for (int i = 0; i < 16; ++i) dst[16 * h + i] = a(2 * (16 * (h / 2) + i) + (h & 1));
        }
      }
    }
  }
  int64_t j = n_begin;
  for (; j + C <= n_end; j += C) mxfp4_decode_store<M, C, Bf16>(p, a_ready.data, j, n_end, scale_buf.data);
  for (; j < n_end; ++j) mxfp4_decode_store<M, 1, Bf16>(p, a_ready.data, j, n_end, scale_buf.data);
}

bool mxfp4_decode_fits(const Fp8GemmProblem& p) {
  return p.b_codes == WeightCodes::e2m1 && p.m >= 1 && p.m <= 4 && p.b_scale.e8m0 != nullptr && p.b_scale.k_stride == 1 &&
         p.b_scale.k_div == 1 && p.b_scale.block == 1 && p.a_scale.e8m0 == nullptr && p.a_scale.ld == 0 && p.a_scale.k_stride == 0 &&
         p.a_scale.scale != nullptr && *p.a_scale.scale == 1.0f && p.k_segment == 32;
}
#endif

void gemm(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end) {
#if defined(__AVX512F__)
  if (mxfp4_decode_fits(p)) {
#if defined(__AVX512BF16__)
    if (p.a_bf16_exact) {
      switch (p.m) {
        case 1: return mxfp4_decode<1, true>(p, n_begin, n_end);
        case 2: return mxfp4_decode<2, true>(p, n_begin, n_end);
        case 3: return mxfp4_decode<3, true>(p, n_begin, n_end);
        default: return mxfp4_decode<4, true>(p, n_begin, n_end);
      }
    }
#endif
    switch (p.m) {
      case 1: return mxfp4_decode<1, false>(p, n_begin, n_end);
      case 2: return mxfp4_decode<2, false>(p, n_begin, n_end);
      case 3: return mxfp4_decode<3, false>(p, n_begin, n_end);
      default: return mxfp4_decode<4, false>(p, n_begin, n_end);
    }
  }
#endif
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
  if (p.a_bf16_exact && p.m > 4) return packed_amx(p, n_begin, n_end);
#elif defined(__AVX512BF16__)
  if (p.a_bf16_exact && p.m > 4) return packed_bf16(p, n_begin, n_end);
#endif
  if (p.b_prepacked && p.b_codes == WeightCodes::e4m3) {
    switch (p.m) {
      case 0: return;
      case 1: return skinny_prepacked<1>(p, n_begin, n_end);
      case 2: return skinny_prepacked<2>(p, n_begin, n_end);
      case 3: return skinny_prepacked<3>(p, n_begin, n_end);
      case 4: return skinny_prepacked<4>(p, n_begin, n_end);
      default: return packed(p, n_begin, n_end);
    }
  }
  switch (p.m) {
    case 0: return;
    case 1: return skinny<1>(p, n_begin, n_end);
    case 2: return skinny<2>(p, n_begin, n_end);
    case 3: return skinny<3>(p, n_begin, n_end);
    case 4: return skinny<4>(p, n_begin, n_end);
    default: return packed(p, n_begin, n_end);
  }
}

}  // namespace

const Fp8GemmKernels kFp8GemmKernels = {&gemm};

}  // namespace mxkernels::core::MXK_ISA_NS
