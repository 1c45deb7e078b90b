// FP8 E4M3 quantization, compiled once per CPU level (see mxfp4_kernels.cpp for the scheme). The rules are those of
// fp8_reference.cpp, derived here with integer tricks: from 2^-6 up, round the fp32 mantissa to three bits (add
// half an ulp minus one plus the kept bit) and rebias the exponent; below, add 2^14 so the FPU rounds to a
// multiple of 2^-9 and read the steps off the low bits.
#include <cmath>
#include <cstring>

#include "fp8.h"
#include "kernel_tables.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace mxkernels::core::MXK_ISA_NS {
namespace {

#include "simd_load.h"

constexpr uint32_t kAbsMask = 0x7FFFFFFFu;
constexpr uint32_t kSmallestNormalBits = 0x3C800000u;  // 2^-6
constexpr float kSubnormalMagic = 16384.0f;            // 2^14: its ulp is 2^-9

// max(amax, eps) / 448 (NaN-propagating), rounded up to a power of two when ue8m0.
inline float group_scale(uint32_t amax_bits, float eps, bool ue8m0) {
  const float amax = f32_from_bits(amax_bits);
  const float scale = (amax < eps ? eps : amax) / kFp8E4m3Max;
  if (!ue8m0) return scale;
  const uint32_t b = f32_bits(scale);
  if ((b & 0x7FFFFFu) == 0 || (b >> 23) >= 0xFF) return scale;  // a power of two, Inf or NaN
  if ((b >> 23) != 0) return f32_from_bits(((b >> 23) + 1) << 23);
  return std::ldexp(1.0f, std::ilogb(scale) + 1);  // subnormal scale
}

inline uint8_t encode_scalar(float x, float scale) {
  float v = x / scale;
  if (!std::isnan(v)) v = v > kFp8E4m3Max ? kFp8E4m3Max : (v < -kFp8E4m3Max ? -kFp8E4m3Max : v);
  const uint32_t bits = f32_bits(v);
  const uint32_t a = bits & kAbsMask;
  const uint8_t sign = uint8_t((bits >> 24) & 0x80u);
  if (a > 0x7F800000u) return uint8_t(sign | 0x7F);
  if (a < kSmallestNormalBits) {
    return uint8_t(sign | (f32_bits(f32_from_bits(a) + kSubnormalMagic) - f32_bits(kSubnormalMagic)));
  }
  return uint8_t(sign | (((a + 0x7FFFFu + ((a >> 20) & 1u)) >> 20) - (120u << 3)));
}

#if defined(__AVX512F__)

constexpr int kLanes = 16;

template <FloatType T>
uint32_t abs_max_bits_t(const void* x, int64_t n) {
  __m512i m = _mm512_setzero_si512();
  const __m512i abs_mask = _mm512_set1_epi32(int(kAbsMask));
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_castps_si512(load16<T>(x, i)), abs_mask));
  uint32_t r = _mm512_reduce_max_epu32(m);
  for (; i < n; ++i) {
    const uint32_t b = f32_bits(load_as_f32(x, T, i)) & kAbsMask;
    r = b > r ? b : r;
  }
  return r;
}

// 16 values to 16 codes.
inline __m128i encode16(__m512 x, __m512 scale) {
  // The constant first: min/max return their second operand on NaN, so NaN survives the clamp.
  const __m512 v = _mm512_max_ps(_mm512_set1_ps(-kFp8E4m3Max), _mm512_min_ps(_mm512_set1_ps(kFp8E4m3Max), _mm512_div_ps(x, scale)));
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i a = _mm512_and_si512(bits, _mm512_set1_epi32(int(kAbsMask)));
  const __m512i kept = _mm512_and_si512(_mm512_srli_epi32(a, 20), _mm512_set1_epi32(1));
  const __m512i normal = _mm512_sub_epi32(
      _mm512_srli_epi32(_mm512_add_epi32(a, _mm512_add_epi32(kept, _mm512_set1_epi32(0x7FFFF))), 20),
      _mm512_set1_epi32(120 << 3));
  const __m512i sub = _mm512_sub_epi32(
      _mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(kSubnormalMagic))),
      _mm512_set1_epi32(int(f32_bits(kSubnormalMagic))));
  __m512i code = _mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(a, _mm512_set1_epi32(int(kSmallestNormalBits))), normal, sub);
  code = _mm512_mask_blend_epi32(_mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000)), code, _mm512_set1_epi32(0x7F));
  code = _mm512_or_si512(code, _mm512_and_si512(_mm512_srli_epi32(bits, 24), _mm512_set1_epi32(0x80)));
  return _mm512_cvtepi32_epi8(code);
}

template <FloatType T>
void quantize_scaled_t(const void* x, int64_t n, float scale, uint8_t* q) {
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), encode16(load16<T>(x, i), s));
  for (; i < n; ++i) q[i] = encode_scalar(load_as_f32(x, T, i), scale);
}

#elif defined(__AVX2__)

constexpr int kLanes = 8;

template <FloatType T>
uint32_t abs_max_bits_t(const void* x, int64_t n) {
  __m256i m = _mm256_setzero_si256();
  const __m256i abs_mask = _mm256_set1_epi32(int(kAbsMask));
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_castps_si256(load8<T>(x, i)), abs_mask));
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), m);
  uint32_t r = 0;
  for (uint32_t l : lanes) r = l > r ? l : r;
  for (; i < n; ++i) {
    const uint32_t b = f32_bits(load_as_f32(x, T, i)) & kAbsMask;
    r = b > r ? b : r;
  }
  return r;
}

// 8 values to 8 codes (in the low 64 bits).
inline uint64_t encode8(__m256 x, __m256 scale) {
  const __m256 v = _mm256_max_ps(_mm256_set1_ps(-kFp8E4m3Max), _mm256_min_ps(_mm256_set1_ps(kFp8E4m3Max), _mm256_div_ps(x, scale)));
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i a = _mm256_and_si256(bits, _mm256_set1_epi32(int(kAbsMask)));
  const __m256i kept = _mm256_and_si256(_mm256_srli_epi32(a, 20), _mm256_set1_epi32(1));
  const __m256i normal = _mm256_sub_epi32(
      _mm256_srli_epi32(_mm256_add_epi32(a, _mm256_add_epi32(kept, _mm256_set1_epi32(0x7FFFF))), 20),
      _mm256_set1_epi32(120 << 3));
  const __m256i sub = _mm256_sub_epi32(
      _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(kSubnormalMagic))),
      _mm256_set1_epi32(int(f32_bits(kSubnormalMagic))));
  // a is non-negative as int32, so signed compares order it correctly.
  const __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(kSmallestNormalBits)), a);
  const __m256i is_nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000));
  __m256i code = _mm256_blendv_epi8(normal, sub, is_sub);
  code = _mm256_blendv_epi8(code, _mm256_set1_epi32(0x7F), is_nan);
  code = _mm256_or_si256(code, _mm256_and_si256(_mm256_srli_epi32(bits, 24), _mm256_set1_epi32(0x80)));
  const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(code), _mm256_extracti128_si256(code, 1));
  return uint64_t(_mm_cvtsi128_si64(_mm_packus_epi16(w, w)));
}

template <FloatType T>
void quantize_scaled_t(const void* x, int64_t n, float scale, uint8_t* q) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const uint64_t codes = encode8(load8<T>(x, i), s);
    std::memcpy(q + i, &codes, 8);
  }
  for (; i < n; ++i) q[i] = encode_scalar(load_as_f32(x, T, i), scale);
}

#else  // portable scalar level

template <FloatType T>
uint32_t abs_max_bits_t(const void* x, int64_t n) {
  uint32_t r = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = f32_bits(load_as_f32(x, T, i)) & kAbsMask;
    r = b > r ? b : r;
  }
  return r;
}

template <FloatType T>
void quantize_scaled_t(const void* x, int64_t n, float scale, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) q[i] = encode_scalar(load_as_f32(x, T, i), scale);
}

#endif

template <FloatType T>
void quantize_groups_t(const void* x, int64_t n_groups, int64_t group_size, float eps, bool ue8m0, uint8_t* q,
                       float* scales) {
  const int64_t bytes = float_type_bytes(T);
  for (int64_t g = 0; g < n_groups; ++g) {
    const void* xg = static_cast<const char*>(x) + g * group_size * bytes;
    scales[g] = group_scale(abs_max_bits_t<T>(xg, group_size), eps, ue8m0);
    quantize_scaled_t<T>(xg, group_size, scales[g], q + g * group_size);
  }
}

void quantize_groups(const void* x, FloatType t, int64_t n_groups, int64_t group_size, float eps, bool ue8m0,
                     uint8_t* q, float* scales) {
  switch (t) {
    case FloatType::f32: return quantize_groups_t<FloatType::f32>(x, n_groups, group_size, eps, ue8m0, q, scales);
    case FloatType::bf16: return quantize_groups_t<FloatType::bf16>(x, n_groups, group_size, eps, ue8m0, q, scales);
    case FloatType::f16: return quantize_groups_t<FloatType::f16>(x, n_groups, group_size, eps, ue8m0, q, scales);
  }
}

void quantize_scaled(const void* x, FloatType t, int64_t n, float scale, uint8_t* q) {
  switch (t) {
    case FloatType::f32: return quantize_scaled_t<FloatType::f32>(x, n, scale, q);
    case FloatType::bf16: return quantize_scaled_t<FloatType::bf16>(x, n, scale, q);
    case FloatType::f16: return quantize_scaled_t<FloatType::f16>(x, n, scale, q);
  }
}

uint32_t abs_max_bits(const void* x, FloatType t, int64_t n) {
  switch (t) {
    case FloatType::f32: return abs_max_bits_t<FloatType::f32>(x, n);
    case FloatType::bf16: return abs_max_bits_t<FloatType::bf16>(x, n);
    case FloatType::f16: return abs_max_bits_t<FloatType::f16>(x, n);
  }
  return 0;
}

}  // namespace

const Fp8Kernels kFp8Kernels = {&quantize_groups, &quantize_scaled, &abs_max_bits};

}  // namespace mxkernels::core::MXK_ISA_NS
