// The FP8 rules in plain float arithmetic (frexp, nearbyint); the ISA kernels derive the same bits with integer
// tricks, so the tests between them compare two derivations.
#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>

#include "fp8.h"
#include "fp8_gemm.h"

namespace mxkernels::core::reference {

uint8_t e4m3_from_f32(float v) {
  const uint8_t sign = std::signbit(v) ? 0x80 : 0x00;
  if (std::isnan(v)) return uint8_t(sign | 0x7F);
  float a = std::fabs(v);
  if (a >= kFp8E4m3Max) return uint8_t(sign | 0x7E);
  if (a < 0.015625f) {  // below 2^-6: subnormal steps of 2^-9; 8 steps is the smallest normal, code 0x08
    return uint8_t(sign | uint8_t(std::nearbyint(std::ldexp(a, 9))));
  }
  int e;
  const float m = std::frexp(a, &e);               // a = m * 2^e, m in [0.5, 1)
  float steps = std::nearbyint(m * 16.0f);          // 3 mantissa bits: m in eighths of [1, 2) -> [8, 16]
  if (steps == 16.0f) {
    steps = 8.0f;
    e += 1;
  }
  const int biased = (e - 1) + 7;
  const uint8_t code = uint8_t((biased << 3) | (int(steps) - 8));
  return uint8_t(sign | (code > 0x7E ? 0x7E : code));
}

float e4m3_to_f32(uint8_t code) {
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  const int e = (code >> 3) & 0xF, m = code & 7;
  if (e == 0xF && m == 7) return std::copysign(std::numeric_limits<float>::quiet_NaN(), sign);
  if (e == 0) return sign * std::ldexp(float(m), -9);
  return sign * std::ldexp(1.0f + m / 8.0f, e - 7);
}

float round_up_pow2(float s) {
  if (!(s > 0) || std::isinf(s)) return s;
  int e;
  const float m = std::frexp(s, &e);
  return m == 0.5f ? s : std::ldexp(1.0f, e);
}


static float clamp_to_e4m3_range(float v) {
  if (std::isnan(v)) return v;
  return v > kFp8E4m3Max ? kFp8E4m3Max : (v < -kFp8E4m3Max ? -kFp8E4m3Max : v);
}

void quantize_fp8_scaled(const void* x, FloatType x_type, int64_t n, float scale, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) q[i] = e4m3_from_f32(clamp_to_e4m3_range(load_as_f32(x, x_type, i) / scale));
}

uint32_t abs_max_bits(const void* x, FloatType x_type, int64_t n) {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(load_as_f32(x, x_type, i));
    const uint32_t b = std::isnan(a) ? 0x7FC00000u : f32_bits(a);
    m = b > m ? b : m;
  }
  return m;
}

void quantize_fp8_groups(const void* x, FloatType x_type, int64_t n_groups, int64_t group_size, float eps, bool ue8m0,
                         uint8_t* q, float* scales) {
  const int64_t elem = float_type_bytes(x_type);
  for (int64_t g = 0; g < n_groups; ++g) {
    const void* xg = static_cast<const char*>(x) + g * group_size * elem;
    const float amax = f32_from_bits(abs_max_bits(xg, x_type, group_size));
    scales[g] = fp8_scale(amax, eps, ue8m0);
    quantize_fp8_scaled(xg, x_type, group_size, scales[g], q + g * group_size);
  }
}

void fp8_gemm(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end) {
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = n_begin; j < n_end; ++j) {
      float total = 0.0f;
      for (int64_t k0 = 0, kb = 0; k0 < p.k; k0 += p.k_segment, ++kb) {
        float acc = 0.0f;
        for (int64_t k = k0; k < k0 + p.k_segment; ++k) acc += p.a[i * p.lda + k] * e4m3_to_f32(fp8_weight_code(p, j, k));
        total += acc * (p.a_scale.at(i, kb) * p.b_scale.at(j, kb));
      }
      if (p.bias != nullptr) total += p.bias[j];
      store_from_f32(p.c, p.c_type, i * p.ldc + j, total);
    }
  }
}

}  // namespace mxkernels::core::reference

namespace mxkernels::core {
void prepack_fp8_weight(const uint8_t* b, int64_t ldb, int64_t n, int64_t k, int64_t panel_begin, int64_t panel_end,
                        uint8_t* out) {
  for (int64_t j = panel_begin * kFp8PanelColumns; j < std::min(n, panel_end * kFp8PanelColumns); ++j) {
    for (int64_t kk = 0; kk < k; ++kk) out[fp8_prepacked_offset(n, k, j, kk)] = b[j * ldb + kk];
  }
}

void prepack_mxfp4_codes(const uint8_t* q, int64_t ldq, int64_t n, int64_t k, int64_t group_begin, int64_t group_end,
                         uint8_t* out) {
  for (int64_t j = group_begin * kMxfp4GroupColumns; j < std::min(n, group_end * kMxfp4GroupColumns); ++j) {
    for (int64_t b = 0; b < k / 32; ++b) std::memcpy(out + mxfp4_prepacked_code_offset(n, k, j, b), q + j * ldq + b * 16, 16);
  }
}

float fp8_scale(float amax, float eps, bool ue8m0) {
  const float clamped = amax < eps ? eps : amax;  // NaN stays NaN, as torch.clamp
  const float scale = clamped / kFp8E4m3Max;
  return ue8m0 ? reference::round_up_pow2(scale) : scale;
}
}  // namespace mxkernels::core
