// The MXFP4 rules in their plainest form. Deliberately written differently from the ISA kernels
// (float arithmetic and ilogb here, integer bit tricks and threshold compares there) so that the
// bit-exact tests between them compare two derivations, not one twice.
#include <cmath>
#include <limits>

#include "mxfp4.h"
#include "mxfp4_gemm.h"

namespace mxkernels::core {

const char* scale_mode_name(ScaleMode mode) {
  switch (mode) {
    case ScaleMode::floor: return "floor";
    case ScaleMode::ceil: return "ceil";
    case ScaleMode::even: return "even";
    case ScaleMode::rceil: return "rceil";
  }
  return "?";
}

bool parse_scale_mode(std::string_view name, ScaleMode* out) {
  for (ScaleMode m : {ScaleMode::floor, ScaleMode::ceil, ScaleMode::even, ScaleMode::rceil}) {
    if (name == scale_mode_name(m)) {
      *out = m;
      return true;
    }
  }
  return false;
}

namespace reference {
namespace {

constexpr int kE2m1MaxPow2 = 2;  // the largest E2M1 value, 6, lies in [2^2, 2^3)
constexpr float kE2m1Max = 6.0f;

bool is_power_of_two(float v) { return std::ldexp(1.0f, std::ilogb(v)) == v; }

// The exponent of the block's largest magnitude as the fp32 exponent field reads it: -127 for zero and
// every subnormal (torchao extracts the field, not the true exponent).
int field_exponent(float amax) {
  if (amax < std::numeric_limits<float>::min()) return -127;
  return std::ilogb(amax);
}

int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// The unbiased scale exponent of a finite block.
int scale_exponent(float amax, ScaleMode mode) {
  switch (mode) {
    case ScaleMode::floor:
      return clamp_int(field_exponent(amax) - kE2m1MaxPow2, -127, 127);
    case ScaleMode::ceil: {
      int e = field_exponent(amax);
      // Round up unless amax is an exact power of two (zero counts as one: its mantissa is empty).
      if (amax >= std::numeric_limits<float>::min() && !is_power_of_two(amax)) e += 1;
      if (amax > 0 && amax < std::numeric_limits<float>::min()) e += 1;  // subnormal: non-empty mantissa
      return clamp_int(e - kE2m1MaxPow2, -127, 127);
    }
    case ScaleMode::even: {
      // amax rounded to a power of two, upwards from 1.75 * 2^e on (a carry out of the top two
      // mantissa bits).
      if (amax < std::numeric_limits<float>::min()) {
        const bool carries = amax >= 0.75f * std::numeric_limits<float>::min();
        return clamp_int((carries ? -126 : -127) - kE2m1MaxPow2, -127, 127);
      }
      int e = std::ilogb(amax);
      if (std::ldexp(amax, -e) >= 1.75f) e += 1;
      return clamp_int(e - kE2m1MaxPow2, -127, 127);
    }
    case ScaleMode::rceil: {
      // ceil(log2(amax / 6)), with the division rounded to fp32 first, as cuBLAS defines it.
      const float descale = amax / kE2m1Max;
      if (descale == 0.0f) return -127;
      int e = std::ilogb(descale);
      if (!is_power_of_two(descale)) e += 1;
      return clamp_int(e, -127, 127);
    }
  }
  return 0;
}

// Round-to-nearest-even of a magnitude onto the E2M1 grid {0, .5, 1, 1.5, 2, 3, 4, 6}, saturating at 6.
uint8_t e2m1_magnitude_code(float v) {
  if (v >= kE2m1Max) return 7;
  if (v < 1.0f) return static_cast<uint8_t>(std::nearbyint(v * 2.0f));  // steps of 0.5; 1.0 is code 2
  const uint32_t bits = f32_bits(v);
  const int exp = int(bits >> 23) - 127;  // 0, 1 or 2
  const uint32_t mant = bits & 0x7FFFFFu;
  uint32_t keep = mant >> 22;  // E2M1 keeps one mantissa bit
  const uint32_t rest = mant & 0x3FFFFFu;
  if (rest > 0x200000u || (rest == 0x200000u && (keep & 1u))) keep += 1;
  const uint32_t code = ((uint32_t(exp) + 1) << 1) + keep;  // a carry out of keep bumps the exponent
  return static_cast<uint8_t>(code > 7 ? 7 : code);
}

}  // namespace

float e2m1_value(uint8_t code) {
  static const float kMagnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float m = kMagnitudes[code & 7];
  return (code & 8) ? -m : m;
}

float e8m0_value(uint8_t byte) {
  if (byte == kE8m0Nan) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, int(byte) - 127);
}

void quantize_mxfp4(const void* x, FloatType x_type, int64_t n_blocks, ScaleMode mode, uint8_t* q,
                    uint8_t* scales) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    float v[kMxfp4BlockSize];
    float amax = 0.0f;
    bool special = false;
    for (int i = 0; i < kMxfp4BlockSize; ++i) {
      v[i] = load_as_f32(x, x_type, b * kMxfp4BlockSize + i);
      if (!std::isfinite(v[i])) special = true;
      amax = std::fmax(amax, std::fabs(v[i]));
    }
    uint8_t* qb = q + b * kMxfp4BlockBytes;
    if (special) {
      scales[b] = kE8m0Nan;
      for (int i = 0; i < kMxfp4BlockBytes; ++i) qb[i] = 0;
      continue;
    }
    const int e = scale_exponent(amax, mode);
    scales[b] = static_cast<uint8_t>(e + 127);
    for (int i = 0; i < kMxfp4BlockSize; i += 2) {
      uint8_t codes[2];
      for (int j = 0; j < 2; ++j) {
        float scaled;
        if (mode == ScaleMode::rceil) {
          // Multiply by the reciprocal; a zero exponent byte multiplies by 1 (torchao, TransformerEngine).
          const float rcp = (e == -127) ? 1.0f : std::ldexp(1.0f, -e);
          scaled = std::fabs(v[i + j]) * rcp;
        } else {
          // Divide by the scale, clamped below to the smallest normal fp32 (torchao).
          const float scale = std::fmax(std::ldexp(1.0f, e), std::numeric_limits<float>::min());
          scaled = std::fabs(v[i + j]) / scale;
        }
        const uint8_t sign = std::signbit(v[i + j]) ? 8 : 0;
        codes[j] = static_cast<uint8_t>(sign | e2m1_magnitude_code(scaled));
      }
      qb[i / 2] = static_cast<uint8_t>(codes[0] | (codes[1] << 4));
    }
  }
}

void dequantize_mxfp4(const uint8_t* q, const uint8_t* scales, int64_t n_blocks, FloatType out_type,
                      void* out) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float scale = e8m0_value(scales[b]);
    for (int i = 0; i < kMxfp4BlockSize; ++i) {
      const uint8_t byte = q[b * kMxfp4BlockBytes + i / 2];
      const uint8_t code = (i & 1) ? (byte >> 4) : (byte & 0xF);
      store_from_f32(out, out_type, b * kMxfp4BlockSize + i, e2m1_value(code) * scale);
    }
  }
}

}  // namespace reference
}  // namespace mxkernels::core

namespace mxkernels::core {

float mxfp4_block_value(int32_t sum, uint8_t sa, uint8_t sw) {
  if (sa == 0xFF || sw == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  // In double the product is exact (|sum| < 2^13, 2^-256 <= scale <= 2^252); the conversion rounds once.
  return float(double(sum) * std::ldexp(1.0, int(sa) + int(sw) - 256));
}

namespace reference {
void mxfp4_gemm(const Mxfp4GemmProblem& p, int64_t n_begin, int64_t n_end) {
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = n_begin; j < n_end; ++j) {
      float total = 0.0f;
      for (int64_t b = 0; b < p.k / 32; ++b) {
        const uint8_t* a = p.a + i * p.lda + b * 16;
        const uint8_t* w = mxfp4_block_codes(p, j, b);
        int32_t sum = 0;
        for (int t = 0; t < 16; ++t) {
          sum += e2m1_times2(a[t] & 0xF) * e2m1_times2(w[t] & 0xF) + e2m1_times2(a[t] >> 4) * e2m1_times2(w[t] >> 4);
        }
        total += mxfp4_block_value(sum, p.a_scale[i * p.lda_scale + b], p.b_scale[j * p.ldb_scale + b]);
      }
      store_from_f32(p.c, p.c_type, i * p.ldc + j, total + (p.bias ? p.bias[j] : 0.0f));
    }
  }
}
}  // namespace reference

}  // namespace mxkernels::core
