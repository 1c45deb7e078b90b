// Scalar float conversions shared by the reference kernels and the scalar ISA level.
// Written on bit patterns so that results do not depend on the FPU's rounding or flush modes.
#pragma once
#include <cstdint>
#include <cstring>

namespace mxkernels::core {

enum class FloatType : uint8_t { f32 = 0, bf16 = 1, f16 = 2 };

static inline const char* float_type_name(FloatType t) {
  switch (t) {
    case FloatType::f32: return "float32";
    case FloatType::bf16: return "bfloat16";
    case FloatType::f16: return "float16";
  }
  return "?";
}

static inline int float_type_bytes(FloatType t) { return t == FloatType::f32 ? 4 : 2; }

static inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

static inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

// Round to nearest even; NaN stays a quiet NaN of the same sign.
static inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x0040u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return f32_from_bits(sign | 0x7F800000u | (mant << 13));
  if (exp != 0) return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return f32_from_bits(sign);
  // Subnormal half: renormalise into an fp32 normal.
  int shift = 0;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    ++shift;
  }
  mant &= 0x3FFu;
  return f32_from_bits(sign | (uint32_t(113 - shift) << 23) | (mant << 13));
}

// Round to nearest even with overflow to infinity, as IEEE conversion does.
static inline uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return uint16_t(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x477FF000u) return uint16_t(sign | 0x7C00u);  // rounds to >= 65520: infinity
  if (a >= 0x38800000u) {                                  // normal half
    uint32_t r = a + 0x0FFFu + ((a >> 13) & 1u) - (uint32_t(112) << 23);
    return uint16_t(sign | (r >> 13));
  }
  if (a < 0x33000000u) return sign;  // below half the smallest subnormal (2^-25): zero
  // Subnormal half: value = mant * 2^-24, rounded to nearest even.
  uint32_t exp = a >> 23;
  uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;
  uint32_t shift = 126 - exp;  // 14..24 for this range
  uint32_t q = mant >> shift;
  uint32_t rem = mant & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return uint16_t(sign | q);
}

static inline float load_as_f32(const void* p, FloatType t, int64_t i) {
  switch (t) {
    case FloatType::f32: return static_cast<const float*>(p)[i];
    case FloatType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case FloatType::f16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
  }
  return 0.f;
}

static inline void store_from_f32(void* p, FloatType t, int64_t i, float v) {
  switch (t) {
    case FloatType::f32: static_cast<float*>(p)[i] = v; return;
    case FloatType::bf16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); return;
    case FloatType::f16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); return;
  }
}

}  // namespace mxkernels::core
