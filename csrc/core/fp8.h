// FP8 E4M3 ("e4m3fn": no infinities, NaN = S.1111.111, largest finite 448) quantization with float32 scales.
// The rules are written out in docs/formats.md; the reference kernels below are their executable form.
#pragma once
#include <cstdint>

#include "cpu_isa.h"
#include "float_types.h"

namespace mxkernels::core {

constexpr float kFp8E4m3Max = 448.0f;

// Quantizes n_groups consecutive groups of group_size values (contiguous) each with its own scale:
//   scale = max(amax, eps) / 448, rounded up to a power of two when ue8m0;
//   q = e4m3(clamp(x / scale, -448, 448)), to nearest even.
using QuantizeFp8GroupsFn = void (*)(const void* x, FloatType x_type, int64_t n_groups, int64_t group_size, float eps,
                                     bool ue8m0, uint8_t* q, float* scales);
// q[i] = e4m3(clamp(x[i] / scale, -448, 448)) for n contiguous values.
using QuantizeFp8ScaledFn = void (*)(const void* x, FloatType x_type, int64_t n, float scale, uint8_t* q);
// The bits of the largest |x[i]| (fp32 bit order: NaN above +Inf above every finite value).
using AbsMaxBitsFn = uint32_t (*)(const void* x, FloatType x_type, int64_t n);

struct Fp8Kernels {
  QuantizeFp8GroupsFn quantize_groups;
  QuantizeFp8ScaledFn quantize_scaled;
  AbsMaxBitsFn abs_max_bits;
};

// max(amax, eps) / 448 in float32 (NaN-propagating), rounded up to a power of two when ue8m0: the scale rule
// of every FP8 quantizer here.
float fp8_scale(float amax, float eps, bool ue8m0);

const Fp8Kernels& fp8_kernels(CpuIsa isa);
const Fp8Kernels& fp8_kernels();

namespace reference {
void quantize_fp8_groups(const void* x, FloatType x_type, int64_t n_groups, int64_t group_size, float eps, bool ue8m0,
                         uint8_t* q, float* scales);
void quantize_fp8_scaled(const void* x, FloatType x_type, int64_t n, float scale, uint8_t* q);
uint32_t abs_max_bits(const void* x, FloatType x_type, int64_t n);
// The E4M3 code of v, to nearest even, saturating at ±448; NaN keeps its sign (0x7F / 0xFF).
uint8_t e4m3_from_f32(float v);
float e4m3_to_f32(uint8_t code);
// The smallest power of two >= s (s > 0); NaN and +Inf stay.
float round_up_pow2(float s);
}  // namespace reference

}  // namespace mxkernels::core
