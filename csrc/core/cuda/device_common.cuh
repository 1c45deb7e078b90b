// Device helpers shared by the CUDA kernels: float bit views, E8M0 / E2M1 conversions, the tensor-core MMA.
// Internal linkage throughout, so each .cu file keeps its own copy.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "float_types.h"

namespace mxkernels::core::cuda {
namespace {

constexpr uint32_t kAbsMask = 0x7FFFFFFFu;
constexpr uint32_t kF32Inf = 0x7F800000u;
constexpr uint32_t kF32QuietNan = 0x7FC00000u;

__device__ __forceinline__ float f32(uint32_t bits) { return __uint_as_float(bits); }
__device__ __forceinline__ uint32_t bits_of(float v) { return __float_as_uint(v); }

// 2^k as float32 for k in [-127, 127] (2^-127 is subnormal).
__device__ __forceinline__ float exp2_int(int k) {
  return k >= -126 ? f32(uint32_t(k + 127) << 23) : f32(0x00400000u);
}

// The value of an E8M0 byte, 2^(s - 127), NaN for 0xFF.
__device__ __forceinline__ float e8m0_value(uint32_t s) {
  uint32_t bits = s << 23;
  bits = s == 0 ? 0x00400000u : bits;
  bits = s == 0xFF ? kF32QuietNan : bits;
  return f32(bits);
}

// The value of an E2M1 code (bit 3 sign): its bits placed as a float 2^-126 times too small (0.5 is subnormal),
// rescaled exactly.
__device__ __forceinline__ float e2m1_value(uint32_t code) {
  return f32(((code & 7u) << 22) | ((code & 8u) << 28)) * 8.507059173023462e37f;  // 2^126
}

// float16 to float32 bits; a NaN keeps its sign and payload as on the CPU (the hardware conversion makes every NaN
// the canonical positive one).
__device__ __forceinline__ uint32_t f16_bits_to_f32_bits(uint32_t h) {
  if ((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0) return ((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13);
  return bits_of(__half2float(__ushort_as_half(uint16_t(h))));
}

// A value of type T as float32 bits.
template <FloatType T>
__device__ __forceinline__ uint32_t load_bits(const void* p, int64_t i) {
  if constexpr (T == FloatType::f32) {
    return static_cast<const uint32_t*>(p)[i];
  } else if constexpr (T == FloatType::bf16) {
    return uint32_t(static_cast<const uint16_t*>(p)[i]) << 16;
  } else {
    return f16_bits_to_f32_bits(static_cast<const uint16_t*>(p)[i]);
  }
}

// Rounds float32 to the output type as the CPU's store_from_f32 does (to nearest even; NaN stays a quiet NaN of
// the same sign).
template <FloatType T>
__device__ __forceinline__ uint16_t narrow(float v) {
  if constexpr (T == FloatType::bf16) {
    uint32_t u = bits_of(v);
    if ((u & kAbsMask) > kF32Inf) return uint16_t((u >> 16) | 0x0040u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
  } else {
    const uint32_t u = bits_of(v);
    if ((u & kAbsMask) > kF32Inf) {
      return uint16_t(((u >> 16) & 0x8000u) | 0x7E00u | ((u >> 13) & 0x3FFu));
    }
    return __half_as_ushort(__float2half_rn(v));
  }
}

// The eight E2M1 codes of a 32-bit word (element i in bits 4i..4i+3) as four pairs of 16-bit floats, exact:
// pair[0] = (e0, e4), pair[1] = (e1, e5), pair[2] = (e2, e6), pair[3] = (e3, e7). The sign and the three magnitude
// bits of the codes in bits 12..15 and 28..31 are moved into place as a float whose exponent field is the code's
// exponent, a value 2^-126 (bf16) or 2^-14 (fp16) times too small (0.5 lands on a subnormal); one multiply by
// `factor` (a pair of equal 16-bit floats, fold_factor) rescales it, and may scale it by a power of two on the way.
template <typename T>
struct E2m1Decode;
template <>
struct E2m1Decode<__nv_bfloat16> {
  using Pair = __nv_bfloat162;
  static constexpr int kShift = 6;              // magnitude bits 12..14 to 6..8: the bf16 exponent's low bits
  static constexpr uint16_t kRescale = 0x7E80;  // 2^126
  static constexpr int kMantissaBits = 7;
  static constexpr int kMinFoldShift = -60;  // see fold_factor
};
template <>
struct E2m1Decode<__half> {
  using Pair = __half2;
  static constexpr int kShift = 3;              // to 9..11: the fp16 exponent's low bits
  static constexpr uint16_t kRescale = 0x7400;  // 2^14
  static constexpr int kMantissaBits = 10;
  static constexpr int kMinFoldShift = -13;
};

// kRescale * 2^shift as a pair of 16-bit floats, for decode_e2m1x8: the decoded values are 2^shift times
// the codes' values, for shift in [kMinFoldShift, 0], where they are normal numbers of T (and, in bf16, their
// products with activations above 2^-66 are normal float32), so exact.
template <typename T>
__device__ __forceinline__ uint32_t fold_factor(int shift) {
  const uint32_t f = uint32_t(int(E2m1Decode<T>::kRescale) + shift * (1 << E2m1Decode<T>::kMantissaBits));
  return f * 0x10001u;
}

// In bf16 the sign moves 6 bits further than the magnitude, so one multiply places both: a code alone in its nibble
// (bits 4j..4j+3 of each half), times 2^(12-4j) + 2^(6-4j), lands at bits 12..15 and 6..9, apart, and the mask keeps
// the sign from the first copy and the magnitude from the second (one mask, one multiply, one mask per pair, where
// the shifts take two each). fp16's gap of 3 bits would make the copies overlap, so it shifts.
__device__ __forceinline__ uint32_t spread_e2m1_bf16(uint32_t nibbles, uint32_t times) {
  uint32_t v;
  asm("mul.lo.u32 %0, %1, %2;" : "=r"(v) : "r"(nibbles), "r"(times));
  return v & 0x81C081C0u;
}

template <typename T>
__device__ __forceinline__ void decode_e2m1x8(uint32_t q, uint32_t factor, uint32_t pair[4]) {
  using D = E2m1Decode<T>;
  const typename D::Pair f = *reinterpret_cast<const typename D::Pair*>(&factor);
  uint32_t raw[4];
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const uint32_t q8 = q >> 8;
    raw[0] = spread_e2m1_bf16(q & 0x000F000Fu, 0x1040u);
    raw[1] = spread_e2m1_bf16(q & 0x00F000F0u, 0x0104u);
    raw[2] = spread_e2m1_bf16(q8 & 0x000F000Fu, 0x1040u);
    raw[3] = spread_e2m1_bf16(q8 & 0x00F000F0u, 0x0104u);
  } else {
#pragma unroll
    for (int i = 3; i >= 0; --i) {
      raw[i] = (q & 0x80008000u) | ((q & 0x70007000u) >> D::kShift);
      q <<= 4;
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    typename D::Pair v = __hmul2(*reinterpret_cast<const typename D::Pair*>(&raw[i]), f);
    pair[i] = *reinterpret_cast<uint32_t*>(&v);
  }
}

// Weight codes and scales, read once per call: SKIP_L1 loads them without allocating in L1 (`.L1::no_allocate`),
// else through the read-only path (__ldg). Which one a kernel takes is measured (w4a16_skinny).
template <bool SKIP_L1>
__device__ __forceinline__ uint4 load_weights16(const void* p) {
  if constexpr (SKIP_L1) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
  } else {
    return __ldg(static_cast<const uint4*>(p));
  }
}
template <bool SKIP_L1>
__device__ __forceinline__ uint32_t load_weights8(const void* p) {
  if constexpr (SKIP_L1) {
    uint32_t v;
    asm volatile("ld.global.nc.L1::no_allocate.u8 %0, [%1];" : "=r"(v) : "l"(p));
    return v;
  } else {
    return __ldg(static_cast<const uint8_t*>(p));
  }
}

// Eight consecutive activations (x0..x7 as four 32-bit pairs) reordered to match decode_e2m1x8's pairs:
// (x0, x4), (x1, x5), (x2, x6), (x3, x7).
__device__ __forceinline__ void pair_activations(const uint4& v, uint32_t pair[4]) {
  pair[0] = __byte_perm(v.x, v.z, 0x5410);
  pair[1] = __byte_perm(v.x, v.z, 0x7632);
  pair[2] = __byte_perm(v.y, v.w, 0x5410);
  pair[3] = __byte_perm(v.y, v.w, 0x7632);
}

// D = A (16x16, row) * B (16x8, col) + C on the tensor cores, float32 accumulators.
template <typename T>
__device__ __forceinline__ void mma_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1, const float c[4]);

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1,
                                                         const float c[4]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

template <>
__device__ __forceinline__ void mma_16816<__half>(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1,
                                                  const float c[4]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

template <typename OutT>
__device__ __forceinline__ void store_out(void* out, int64_t i, float v);

template <>
__device__ __forceinline__ void store_out<float>(void* out, int64_t i, float v) {
  static_cast<float*>(out)[i] = v;
}
template <>
__device__ __forceinline__ void store_out<__nv_bfloat16>(void* out, int64_t i, float v) {
  static_cast<uint16_t*>(out)[i] = narrow<FloatType::bf16>(v);
}
template <>
__device__ __forceinline__ void store_out<__half>(void* out, int64_t i, float v) {
  static_cast<uint16_t*>(out)[i] = narrow<FloatType::f16>(v);
}

}  // namespace
}  // namespace mxkernels::core::cuda
