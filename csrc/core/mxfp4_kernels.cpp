// MXFP4 quantize / dequantize, compiled once per CPU level (see cmake/CpuIsa.cmake): the compiler flags of
// the translation unit decide which branch below is built, MXK_ISA_NS names its namespace.
// The rules are those of mxfp4_reference.cpp; this file derives them with integer and compare tricks
// instead, so the bit-exact tests compare two derivations.
#include <cstring>

#include "mxfp4.h"
#include "kernel_tables.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace mxkernels::core::MXK_ISA_NS {
namespace {

#include "simd_load.h"

constexpr uint32_t kAbsMask = 0x7FFFFFFFu;
constexpr uint32_t kF32Inf = 0x7F800000u;

// 2^k as fp32 for k in [-127, 127].
inline float exp2_int(int k) {
  return k >= -126 ? f32_from_bits(uint32_t(k + 127) << 23) : f32_from_bits(0x00400000u);
}

struct BlockScale {
  uint8_t byte;      // the E8M0 scale
  float multiplier;  // what each value is multiplied by before rounding to E2M1
};

// amax_bits: the bits of the block's largest magnitude, finite.
inline BlockScale block_scale(uint32_t amax_bits, ScaleMode mode) {
  int e;
  switch (mode) {
    case ScaleMode::floor:
      e = int(amax_bits >> 23) - 127 - 2;
      break;
    case ScaleMode::ceil:
      e = int(amax_bits >> 23) - 127 + ((amax_bits & 0x7FFFFFu) != 0) - 2;
      break;
    case ScaleMode::even:
      // A carry out of the top two mantissa bits (mantissa >= 1.75) rounds up to the next power of two.
      e = int(((amax_bits + 0x200000u) & 0xFF800000u) >> 23) - 127 - 2;
      break;
    case ScaleMode::rceil:
    default: {
      const uint32_t d = f32_bits(f32_from_bits(amax_bits) / 6.0f);
      if ((d >> 23) == 0) {
        e = d > 0x00400000u ? -126 : -127;  // subnormal descale: above 2^-127 rounds up to 2^-126
      } else {
        e = int(d >> 23) - 127 + ((d & 0x7FFFFFu) != 0);
      }
      break;
    }
  }
  e = e < -127 ? -127 : (e > 127 ? 127 : e);
  BlockScale s;
  s.byte = static_cast<uint8_t>(e + 127);
  if (mode == ScaleMode::rceil) {
    s.multiplier = (e == -127) ? 1.0f : exp2_int(-e);
  } else {
    s.multiplier = exp2_int(e == -127 ? 126 : -e);  // the scale is clamped below at 2^-126
  }
  return s;
}

// RNE onto {0, .5, 1, 1.5, 2, 3, 4, 6} with saturation, as a count of the rounding boundaries passed.
// Ties go to the even code: > where the lower neighbour is even, >= where the upper one is.
constexpr float kE2m1Bounds[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};

#if defined(__AVX512F__)

// The 32 values of block b as fp32 bit patterns, split into even (elements 0, 2, ..) and odd elements, so
// that the two codes of each output byte sit in the same lane.
template <FloatType T>
inline void load_block_even_odd(const void* x, int64_t b, __m512i* even, __m512i* odd) {
  if constexpr (T == FloatType::bf16) {
    // One 64-byte load holds the block; a bf16 is the top half of its fp32.
    const __m512i v = _mm512_loadu_si512(static_cast<const uint16_t*>(x) + b * 32);
    *even = _mm512_slli_epi32(v, 16);
    *odd = _mm512_and_si512(v, _mm512_set1_epi32(int(0xFFFF0000u)));
  } else {
    __m512i lo, hi;
    if constexpr (T == FloatType::f32) {
      lo = _mm512_loadu_si512(static_cast<const float*>(x) + b * 32);
      hi = _mm512_loadu_si512(static_cast<const float*>(x) + b * 32 + 16);
    } else {
      const __m512i h = _mm512_loadu_si512(static_cast<const uint16_t*>(x) + b * 32);
      lo = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_castsi512_si256(h)));
      hi = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)));
    }
    const __m512i even_idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd_idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    *even = _mm512_permutex2var_epi32(lo, even_idx, hi);
    *odd = _mm512_permutex2var_epi32(lo, odd_idx, hi);
  }
}

// E2M1 codes (sign in bit 3) of 16 values, by arithmetic: from 1 up, round the fp32 mantissa to one bit
// (add half an ulp minus one, plus the kept bit: ties to even) and rebias the exponent; below 1, add 2^22
// so the FPU rounds to a multiple of 0.5 (ties to even) and read the halves off the low bits.
inline __m512i encode16(__m512i bits, __m512 multiplier) {
  const __m512i mag_bits = _mm512_and_si512(bits, _mm512_set1_epi32(int(kAbsMask)));
  const __m512 v = _mm512_min_ps(_mm512_mul_ps(_mm512_castsi512_ps(mag_bits), multiplier), _mm512_set1_ps(6.0f));
  const __m512i vb = _mm512_castps_si512(v);
  const __m512i kept = _mm512_and_si512(_mm512_srli_epi32(vb, 22), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(vb, _mm512_add_epi32(kept, _mm512_set1_epi32(0x1FFFFF)));
  const __m512i normal = _mm512_sub_epi32(_mm512_srli_epi32(rounded, 22), _mm512_set1_epi32(252));
  const __m512i halves = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(v, _mm512_set1_ps(4194304.0f))),
                                          _mm512_set1_epi32(0x4A800000));
  const __m512i code = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, _mm512_set1_ps(1.0f), _CMP_LT_OQ), normal, halves);
  return _mm512_or_si512(code, _mm512_srli_epi32(_mm512_andnot_si512(mag_bits, bits), 28));
}

// Lane j of the result is the maximum of m[j]'s 16 lanes: four rounds of pairwise merges, each halving the
// lanes per block and doubling the blocks per vector.
inline __m512i reduce_max_16x16(__m512i m[16]) {
  const __m512i lo_idx[4] = {
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
      _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27),
      _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29),
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)};
  const __m512i hi_idx[4] = {
      _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31),
      _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31),
      _mm512_setr_epi32(2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31),
      _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)};
  int n = 16;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < n / 2; ++i) {
      m[i] = _mm512_max_epu32(_mm512_permutex2var_epi32(m[2 * i], lo_idx[round], m[2 * i + 1]),
                              _mm512_permutex2var_epi32(m[2 * i], hi_idx[round], m[2 * i + 1]));
    }
    n /= 2;
  }
  return m[0];
}

// block_scale() for 16 blocks at once; lanes whose amax is not finite get byte 0xFF.
inline void block_scales16(__m512i amax, ScaleMode mode, __m512i* bytes, __m512* multipliers, __mmask16* special) {
  const __m512i field = _mm512_srli_epi32(amax, 23);
  const __m512i one = _mm512_set1_epi32(1);
  __m512i e;
  switch (mode) {
    case ScaleMode::floor:
      e = _mm512_sub_epi32(field, _mm512_set1_epi32(129));
      break;
    case ScaleMode::ceil:
      e = _mm512_sub_epi32(field, _mm512_set1_epi32(129));
      e = _mm512_mask_add_epi32(e, _mm512_test_epi32_mask(amax, _mm512_set1_epi32(0x7FFFFF)), e, one);
      break;
    case ScaleMode::even: {
      const __m512i r = _mm512_and_si512(_mm512_add_epi32(amax, _mm512_set1_epi32(0x200000)),
                                         _mm512_set1_epi32(int(0xFF800000u)));
      e = _mm512_sub_epi32(_mm512_srli_epi32(r, 23), _mm512_set1_epi32(129));
      break;
    }
    case ScaleMode::rceil:
    default: {
      const __m512i d = _mm512_castps_si512(_mm512_div_ps(_mm512_castsi512_ps(amax), _mm512_set1_ps(6.0f)));
      const __m512i dfield = _mm512_srli_epi32(d, 23);
      e = _mm512_sub_epi32(dfield, _mm512_set1_epi32(127));
      e = _mm512_mask_add_epi32(e, _mm512_test_epi32_mask(d, _mm512_set1_epi32(0x7FFFFF)), e, one);
      // Subnormal quotient: above 2^-127 rounds up to 2^-126, the rest is 2^-127.
      const __m512i sub_e = _mm512_mask_blend_epi32(_mm512_cmpgt_epu32_mask(d, _mm512_set1_epi32(0x00400000)),
                                                    _mm512_set1_epi32(-127), _mm512_set1_epi32(-126));
      e = _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(dfield, _mm512_setzero_si512()), e, sub_e);
      break;
    }
  }
  e = _mm512_min_epi32(_mm512_max_epi32(e, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
  const __mmask16 lowest = _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(-127));
  __m512i mult_bits;
  if (mode == ScaleMode::rceil) {
    // 2^-e; the lowest exponent multiplies by 1; 2^-127 (only from e = 127) is the subnormal 0x00400000.
    mult_bits = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_set1_epi32(127), e), 23);
    mult_bits = _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(127)), mult_bits,
                                        _mm512_set1_epi32(0x00400000));
    mult_bits = _mm512_mask_blend_epi32(lowest, mult_bits, _mm512_set1_epi32(0x3F800000));
  } else {
    // 1 / max(2^e, 2^-126).
    mult_bits = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_set1_epi32(127), e), 23);
    mult_bits = _mm512_mask_blend_epi32(lowest, mult_bits, _mm512_set1_epi32(253 << 23));
  }
  *special = _mm512_cmpge_epu32_mask(amax, _mm512_set1_epi32(int(kF32Inf)));
  *bytes = _mm512_mask_blend_epi32(*special, _mm512_add_epi32(e, _mm512_set1_epi32(127)), _mm512_set1_epi32(0xFF));
  *multipliers = _mm512_castsi512_ps(mult_bits);
}

template <FloatType T>
void quantize_blocks(const void* x, int64_t n_blocks, ScaleMode mode, uint8_t* q, uint8_t* scales) {
  const __m512i abs_mask = _mm512_set1_epi32(int(kAbsMask));
  int64_t b = 0;
  // Groups of 16 blocks: one reduction tree and one vector scale computation for all of them.
  for (; b + 16 <= n_blocks; b += 16) {
    __m512i even[16], odd[16], m[16];
    for (int j = 0; j < 16; ++j) {
      load_block_even_odd<T>(x, b + j, &even[j], &odd[j]);
      m[j] = _mm512_max_epu32(_mm512_and_si512(even[j], abs_mask), _mm512_and_si512(odd[j], abs_mask));
    }
    __m512i bytes;
    __m512 multipliers;
    __mmask16 special;
    block_scales16(reduce_max_16x16(m), mode, &bytes, &multipliers, &special);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(scales + b), _mm512_cvtepi32_epi8(bytes));
    alignas(64) float mult[16];
    _mm512_store_ps(mult, multipliers);
    for (int j = 0; j < 16; ++j) {
      const __m512 mj = _mm512_set1_ps(mult[j]);
      const __m512i packed = _mm512_or_si512(encode16(even[j], mj), _mm512_slli_epi32(encode16(odd[j], mj), 4));
      const __m128i codes = ((special >> j) & 1) ? _mm_setzero_si128() : _mm512_cvtepi32_epi8(packed);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + (b + j) * 16), codes);
    }
  }
  for (; b < n_blocks; ++b) {
    __m512i even, odd;
    load_block_even_odd<T>(x, b, &even, &odd);
    const uint32_t amax = _mm512_reduce_max_epu32(
        _mm512_max_epu32(_mm512_and_si512(even, abs_mask), _mm512_and_si512(odd, abs_mask)));
    __m128i* out = reinterpret_cast<__m128i*>(q + b * 16);
    if (amax >= kF32Inf) {
      scales[b] = kE8m0Nan;
      _mm_storeu_si128(out, _mm_setzero_si128());
      continue;
    }
    const BlockScale s = block_scale(amax, mode);
    scales[b] = s.byte;
    const __m512 m = _mm512_set1_ps(s.multiplier);
    _mm_storeu_si128(out, _mm512_cvtepi32_epi8(_mm512_or_si512(encode16(even, m), _mm512_slli_epi32(encode16(odd, m), 4))));
  }
}

inline __m512 e2m1_table16() {
  return _mm512_setr_ps(0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f, -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f);
}

template <FloatType T>
inline void store16(void* out, int64_t i, __m512 v) {
  if constexpr (T == FloatType::f32) {
    _mm512_storeu_ps(static_cast<float*>(out) + i, v);
  } else if constexpr (T == FloatType::bf16) {
    // Round to nearest even; dequantized values are never NaN here (NaN blocks are filled separately).
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(out) + i), _mm512_cvtepi32_epi16(r));
  } else {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(out) + i),
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

// 8 bytes of codes to 16 code indices, element order.
inline __m512i unpack16(const uint8_t* q) {
  const __m512i v = _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
  return _mm512_and_si512(_mm512_or_si512(v, _mm512_slli_epi64(v, 28)), _mm512_set1_epi32(0xF));
}

template <FloatType T>
void dequantize_blocks(const uint8_t* q, const uint8_t* scales, int64_t n_blocks, void* out) {
  const __m512 table = e2m1_table16();
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t sb = scales[b];
    const __m512 scale = _mm512_set1_ps(sb == kE8m0Nan ? f32_from_bits(0x7FC00000u) : exp2_int(int(sb) - 127));
    for (int h = 0; h < 2; ++h) {
      const __m512 v = _mm512_permutexvar_ps(unpack16(q + b * 16 + h * 8), table);
      store16<T>(out, b * 32 + h * 16, _mm512_mul_ps(v, scale));
    }
  }
}

#elif defined(__AVX2__)

// 8 values to 4 bytes of packed codes (returned in the low 32 bits).
inline uint32_t encode8(__m256i bits, __m256 multiplier) {
  const __m256i mag_bits = _mm256_and_si256(bits, _mm256_set1_epi32(int(kAbsMask)));
  const __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(mag_bits), multiplier);
  __m256i c = _mm256_srli_epi32(_mm256_andnot_si256(mag_bits, bits), 28);
  // A true compare is all ones, i.e. -1: subtracting it counts the boundary.
  c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_set1_ps(kE2m1Bounds[0]), _CMP_GT_OQ)));
  c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_set1_ps(kE2m1Bounds[1]), _CMP_GE_OQ)));
  c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_set1_ps(kE2m1Bounds[2]), _CMP_GT_OQ)));
  c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_set1_ps(kE2m1Bounds[3]), _CMP_GE_OQ)));
  c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_set1_ps(kE2m1Bounds[4]), _CMP_GT_OQ)));
  c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_set1_ps(kE2m1Bounds[5]), _CMP_GE_OQ)));
  c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_set1_ps(kE2m1Bounds[6]), _CMP_GT_OQ)));
  const __m256i pairs = _mm256_or_si256(c, _mm256_srli_epi64(c, 28));  // bytes 0, 8 of each 128-bit half
  const __m256i gather = _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                          0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i g = _mm256_shuffle_epi8(pairs, gather);
  const uint32_t lo = uint32_t(_mm_cvtsi128_si32(_mm256_castsi256_si128(g))) & 0xFFFFu;
  const uint32_t hi = uint32_t(_mm_cvtsi128_si32(_mm256_extracti128_si256(g, 1))) & 0xFFFFu;
  return lo | (hi << 16);
}

template <FloatType T>
void quantize_blocks(const void* x, int64_t n_blocks, ScaleMode mode, uint8_t* q, uint8_t* scales) {
  const __m256i abs_mask = _mm256_set1_epi32(int(kAbsMask));
  for (int64_t b = 0; b < n_blocks; ++b) {
    __m256i v[4];
    __m256i m = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_castps_si256(load8<T>(x, b * 32 + j * 8));
      m = _mm256_max_epu32(m, _mm256_and_si256(v[j], abs_mask));
    }
    __m128i m4 = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, _MM_SHUFFLE(1, 0, 3, 2)));
    m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, _MM_SHUFFLE(2, 3, 0, 1)));
    const uint32_t amax = uint32_t(_mm_cvtsi128_si32(m4));
    uint8_t* out = q + b * 16;
    if (amax >= kF32Inf) {
      scales[b] = kE8m0Nan;
      std::memset(out, 0, 16);
      continue;
    }
    const BlockScale s = block_scale(amax, mode);
    scales[b] = s.byte;
    const __m256 mul = _mm256_set1_ps(s.multiplier);
    for (int j = 0; j < 4; ++j) {
      const uint32_t packed = encode8(v[j], mul);
      std::memcpy(out + j * 4, &packed, 4);
    }
  }
}

template <FloatType T>
inline void store8(void* out, int64_t i, __m256 v) {
  if constexpr (T == FloatType::f32) {
    _mm256_storeu_ps(static_cast<float*>(out) + i, v);
  } else if constexpr (T == FloatType::bf16) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i), packed);
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i),
                     _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

template <FloatType T>
void dequantize_blocks(const uint8_t* q, const uint8_t* scales, int64_t n_blocks, void* out) {
  const __m256 magnitudes = _mm256_setr_ps(0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t sb = scales[b];
    const __m256 scale = _mm256_set1_ps(sb == kE8m0Nan ? f32_from_bits(0x7FC00000u) : exp2_int(int(sb) - 127));
    for (int j = 0; j < 4; ++j) {
      int32_t four;
      std::memcpy(&four, q + b * 16 + j * 4, 4);
      const __m256i v = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four));
      const __m256i idx = _mm256_and_si256(_mm256_or_si256(v, _mm256_slli_epi64(v, 28)), _mm256_set1_epi32(0xF));
      const __m256 mag = _mm256_permutevar8x32_ps(magnitudes, idx);  // uses the low 3 bits
      const __m256i sign = _mm256_slli_epi32(_mm256_srli_epi32(idx, 3), 31);
      const __m256 val = _mm256_xor_ps(mag, _mm256_castsi256_ps(sign));
      store8<T>(out, b * 32 + j * 8, _mm256_mul_ps(val, scale));
    }
  }
}

#else  // portable scalar level

inline uint8_t e2m1_code(uint32_t bits, float multiplier) {
  const float v = f32_from_bits(bits & kAbsMask) * multiplier;
  uint8_t c = uint8_t((bits >> 28) & 8u);
  c += v > kE2m1Bounds[0];
  c += v >= kE2m1Bounds[1];
  c += v > kE2m1Bounds[2];
  c += v >= kE2m1Bounds[3];
  c += v > kE2m1Bounds[4];
  c += v >= kE2m1Bounds[5];
  c += v > kE2m1Bounds[6];
  return c;
}

template <FloatType T>
void quantize_blocks(const void* x, int64_t n_blocks, ScaleMode mode, uint8_t* q, uint8_t* scales) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint32_t bits[32];
    uint32_t amax = 0;
    for (int i = 0; i < 32; ++i) {
      bits[i] = f32_bits(load_as_f32(x, T, b * 32 + i));
      const uint32_t a = bits[i] & kAbsMask;
      amax = a > amax ? a : amax;
    }
    uint8_t* out = q + b * 16;
    if (amax >= kF32Inf) {
      scales[b] = kE8m0Nan;
      std::memset(out, 0, 16);
      continue;
    }
    const BlockScale s = block_scale(amax, mode);
    scales[b] = s.byte;
    for (int i = 0; i < 16; ++i)
      out[i] = uint8_t(e2m1_code(bits[2 * i], s.multiplier) | (e2m1_code(bits[2 * i + 1], s.multiplier) << 4));
  }
}

template <FloatType T>
void dequantize_blocks(const uint8_t* q, const uint8_t* scales, int64_t n_blocks, void* out) {
  static const float kValues[16] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f,
                                    -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t sb = scales[b];
    const float scale = sb == kE8m0Nan ? f32_from_bits(0x7FC00000u) : exp2_int(int(sb) - 127);
    for (int i = 0; i < 16; ++i) {
      const uint8_t byte = q[b * 16 + i];
      store_from_f32(out, T, b * 32 + 2 * i, kValues[byte & 0xF] * scale);
      store_from_f32(out, T, b * 32 + 2 * i + 1, kValues[byte >> 4] * scale);
    }
  }
}

#endif

void quantize(const void* x, FloatType x_type, int64_t n_blocks, ScaleMode mode, uint8_t* q, uint8_t* scales) {
  switch (x_type) {
    case FloatType::f32: return quantize_blocks<FloatType::f32>(x, n_blocks, mode, q, scales);
    case FloatType::bf16: return quantize_blocks<FloatType::bf16>(x, n_blocks, mode, q, scales);
    case FloatType::f16: return quantize_blocks<FloatType::f16>(x, n_blocks, mode, q, scales);
  }
}

void dequantize(const uint8_t* q, const uint8_t* scales, int64_t n_blocks, FloatType out_type, void* out) {
  switch (out_type) {
    case FloatType::f32: return dequantize_blocks<FloatType::f32>(q, scales, n_blocks, out);
    case FloatType::bf16: return dequantize_blocks<FloatType::bf16>(q, scales, n_blocks, out);
    case FloatType::f16: return dequantize_blocks<FloatType::f16>(q, scales, n_blocks, out);
  }
}

}  // namespace

const Mxfp4Kernels kMxfp4Kernels = {&quantize, &dequantize};

}  // namespace mxkernels::core::MXK_ISA_NS
