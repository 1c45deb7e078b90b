// MXFP4 quantize / dequantize and per-group FP8 quantization on CUDA. Each reproduces the CPU kernels bit for bit
// (docs/formats.md): the scale rules on the integer bits of the block's largest magnitude, the E2M1 rounding by the
// float bit trick of the AVX-512 level, x86's NaN rules where a CPU division makes a NaN.
#include <cuda_fp8.h>

#include "cuda/cuda_kernels.h"
#include "cuda/device_common.cuh"

namespace mxkernels::core::cuda {
namespace {

constexpr int kMaxGridBlocks = 1 << 20;

// Rows of `chunks` chunks (of 16 values to quantize, 8 to dequantize), spread over a 1-D grid: one row per block
// when a row has at least a block's worth of chunks, else several rows per block. The chunks of one 32-value block
// sit in adjacent lanes whose activity is uniform, so they can exchange values with shuffles.
struct RowChunks {
  int64_t rows, chunks;
  int threads, rows_per_block;
};

RowChunks plan_row_chunks(int64_t rows, int64_t chunks) {
  RowChunks p{rows, chunks, 256, 1};
  if (chunks >= 128) {
    // The block size that leaves the fewest idle lanes in a row's last round.
    double best = 0;
    for (int t : {512, 448, 384, 320, 256, 224, 192, 160, 128}) {
      const double use = double(chunks) / double(((chunks + t - 1) / t) * t);
      if (use > best + 1e-9) best = use, p.threads = t;
    }
  } else {
    p.threads = 128;
    p.rows_per_block = int(128 / chunks);
  }
  return p;
}

int64_t grid_of(const RowChunks& p) {
  const int64_t blocks = (p.rows + p.rows_per_block - 1) / p.rows_per_block;
  return blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks;
}

template <typename Body>
__device__ __forceinline__ void for_each_chunk(int64_t rows, int64_t chunks, int rows_per_block, Body body) {
  const int tid = threadIdx.x;
  if (rows_per_block == 1) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
      for (int64_t c0 = 0; c0 < chunks; c0 += blockDim.x) body(row, c0 + tid, c0 + tid < chunks);
    }
  } else {
    const int r = tid / int(chunks), c = tid % int(chunks);
    for (int64_t row0 = int64_t(blockIdx.x) * rows_per_block; row0 < rows; row0 += int64_t(gridDim.x) * rows_per_block) {
      const int64_t row = row0 + r;
      body(row, c, r < rows_per_block && row < rows);
    }
  }
}

// ---- MXFP4 quantize ------------------------------------------------------------------------------------------

struct BlockScale {
  uint32_t byte;
  float multiplier;  // what each magnitude is multiplied by before rounding to E2M1
};

// amax: the bits of the block's largest magnitude, finite.
__device__ __forceinline__ BlockScale block_scale(uint32_t amax, ScaleMode mode) {
  int e;
  if (mode == ScaleMode::floor) {
    e = int(amax >> 23) - 127 - 2;
  } else if (mode == ScaleMode::ceil) {
    e = int(amax >> 23) - 127 - 2 + ((amax & 0x7FFFFFu) != 0);
  } else if (mode == ScaleMode::even) {
    e = int(((amax + 0x200000u) & 0xFF800000u) >> 23) - 127 - 2;  // mantissa >= 1.75 carries into the exponent
  } else {
    const uint32_t d = bits_of(__fdiv_rn(f32(amax), 6.0f));
    if ((d >> 23) == 0) {
      e = d > 0x00400000u ? -126 : -127;
    } else {
      e = int(d >> 23) - 127 + ((d & 0x7FFFFFu) != 0);
    }
  }
  e = e < -127 ? -127 : (e > 127 ? 127 : e);
  BlockScale s;
  s.byte = uint32_t(e + 127);
  if (mode == ScaleMode::rceil) {
    s.multiplier = e == -127 ? 1.0f : exp2_int(-e);
  } else {
    s.multiplier = exp2_int(e == -127 ? 126 : -e);  // the scale is clamped below at 2^-126
  }
  return s;
}

// The E2M1 code (sign in bit 3) of a float32 given by its bits, scaled: from 1 up the fp32 mantissa is rounded to one
// bit (half an ulp minus one plus the kept bit: ties to even) and the exponent rebiased; below 1, adding 2^22 makes
// the FPU round to a multiple of 0.5 (ties to even).
__device__ __forceinline__ uint32_t e2m1_code(uint32_t bits, float multiplier) {
  const float v = fminf(f32(bits & kAbsMask) * multiplier, 6.0f);
  const uint32_t vb = bits_of(v);
  const uint32_t normal = ((vb + 0x1FFFFFu + ((vb >> 22) & 1u)) >> 22) - 252u;
  const uint32_t halves = bits_of(v + 4194304.0f) - 0x4A800000u;
  return (v < 1.0f ? halves : normal) | ((bits >> 28) & 8u);
}

// Eight consecutive values from x[offset] on, as float32 bits.
template <FloatType T>
__device__ __forceinline__ void load8(const void* x, int64_t offset, uint32_t v[8]) {
  if constexpr (T == FloatType::f32) {
    const uint4 a = *reinterpret_cast<const uint4*>(static_cast<const float*>(x) + offset);
    const uint4 b = *reinterpret_cast<const uint4*>(static_cast<const float*>(x) + offset + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
    const uint4 a = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(x) + offset);
    const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (T == FloatType::bf16) {
        v[2 * i] = w[i] << 16;
        v[2 * i + 1] = w[i] & 0xFFFF0000u;
      } else {
        v[2 * i] = f16_bits_to_f32_bits(w[i] & 0xFFFFu);
        v[2 * i + 1] = f16_bits_to_f32_bits(w[i] >> 16);
      }
    }
  }
}

template <FloatType T>
__global__ void quantize_mxfp4_kernel(const void* x, int64_t rows, int64_t k, int64_t ldx, ScaleMode mode,
                                      uint8_t* q, uint8_t* scales, int rows_per_block) {
  // 16 values per lane, two lanes per block: both 16-byte (or four, for float32) loads are in flight at once.
  const int64_t chunks = k / 16;
  for_each_chunk(rows, chunks, rows_per_block, [&](int64_t row, int64_t c, bool active) {
    uint32_t v[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) v[i] = 0;
    if (active) {
      load8<T>(x, row * ldx + c * 16, v);
      load8<T>(x, row * ldx + c * 16 + 8, v + 8);
    }
    uint32_t amax = 0;
#pragma unroll
    for (int i = 0; i < 16; ++i) amax = max(amax, v[i] & kAbsMask);
    amax = max(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, 1));
    if (!active) return;
    uint2 codes = make_uint2(0, 0);
    uint32_t byte = 0xFF;
    if (amax < kF32Inf) {
      const BlockScale s = block_scale(amax, mode);
      byte = s.byte;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        codes.x |= e2m1_code(v[i], s.multiplier) << (4 * i);
        codes.y |= e2m1_code(v[i + 8], s.multiplier) << (4 * i);
      }
    }
    reinterpret_cast<uint2*>(q + row * (k / 2))[c] = codes;
    if ((c & 1) == 0) scales[row * (k / 32) + c / 2] = uint8_t(byte);
  });
}

// bfloat16 input: the same codes, computed on pairs of values in 32-bit registers (bf16x2 arithmetic and SIMD
// integer steps whose halves cannot carry into each other), one lane per block. Scaling by a power of two is exact
// in bf16 down to 2^-126, and anything smaller is code 0 either way.
__device__ __forceinline__ uint32_t bf16x2_mul(uint32_t a, uint32_t b) {
  uint32_t d;
#if __CUDA_ARCH__ >= 900
  asm("mul.rn.bf16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
#else
  asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(0x80008000u));
#endif
  return d;
}
__device__ __forceinline__ uint32_t bf16x2_add(uint32_t a, uint32_t b) {
  uint32_t d;
#if __CUDA_ARCH__ >= 900
  asm("add.rn.bf16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
#else
  asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(0x3F803F80u), "r"(b));
#endif
  return d;
}
__device__ __forceinline__ uint32_t bf16x2_min(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("min.bf16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
  return d;
}
__device__ __forceinline__ uint32_t u16x2_max(uint32_t a, uint32_t b) {
  uint32_t d;
#if __CUDA_ARCH__ >= 900
  asm("max.u16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
#else
  d = __vmaxu2(a, b);
#endif
  return d;
}

// The E2M1 codes of two bf16 values (a pair: value 0 in the low half), scaled by `multiplier2` (a bf16 power of
// two in both halves), in bits 0..3 and 16..19. With w = min(|v| * multiplier, 6): from 2 up the 7-bit mantissa is
// rounded to one bit (ties to even) and the exponent rebiased, ((w + 0x1F + lsb + (4 << 6)) >> 6) & 7 being the
// code; below 2, w + 64 in bf16 rounds to a multiple of 0.5 (ties to even) whose count of halves is the code.
__device__ __forceinline__ uint32_t e2m1_codes_bf16x2(uint32_t v, uint32_t multiplier2) {
  const uint32_t w = bf16x2_min(bf16x2_mul(v & 0x7FFF7FFFu, multiplier2), 0x40C040C0u);
  const uint32_t normal = ((w + 0x011F011Fu + ((w >> 6) & 0x00010001u)) >> 6) & 0x00070007u;
  const uint32_t halves = bf16x2_add(w, 0x42804280u) - 0x42804280u;
  uint32_t two_or_more;  // bit 14 (w >= 2) moved to each byte's sign and replicated over its half
  asm("prmt.b32 %0, %1, 0, 0xBB99;\n" : "=r"(two_or_more) : "r"(w << 1));
  return (two_or_more & normal) | (~two_or_more & halves) | ((v >> 12) & 0x00080008u);
}

__global__ void quantize_mxfp4_bf16_kernel(const uint16_t* x, int64_t rows, int64_t k, int64_t ldx, ScaleMode mode,
                                           uint8_t* q, uint8_t* scales, int rows_per_block) {
  for_each_chunk(rows, k / 32, rows_per_block, [&](int64_t row, int64_t c, bool active) {
    if (!active) return;
    const uint4* src = reinterpret_cast<const uint4*>(x + row * ldx + c * 32);
    uint4 in[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) in[i] = src[i];
    const uint32_t v[16] = {in[0].x, in[0].y, in[0].z, in[0].w, in[1].x, in[1].y, in[1].z, in[1].w,
                            in[2].x, in[2].y, in[2].z, in[2].w, in[3].x, in[3].y, in[3].z, in[3].w};
    uint32_t m2 = 0;
#pragma unroll
    for (int i = 0; i < 16; ++i) m2 = u16x2_max(m2, v[i] & 0x7FFF7FFFu);
    const uint32_t amax = max(m2 << 16, m2 & 0xFFFF0000u);
    uint4 out = make_uint4(0, 0, 0, 0);
    uint32_t byte = 0xFF;
    if (amax < kF32Inf) {
      const BlockScale s = block_scale(amax, mode);
      byte = s.byte;
      const uint32_t m = (bits_of(s.multiplier) >> 16) * 0x10001u;
      uint32_t words[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t bytes[4];  // byte i: the codes of values 2i and 2i + 1 of these 8 (in bits 0..7)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const uint32_t c2 = e2m1_codes_bf16x2(v[4 * j + i], m);
          bytes[i] = c2 | (c2 >> 12);
        }
        words[j] = __byte_perm(__byte_perm(bytes[0], bytes[1], 0x0040), __byte_perm(bytes[2], bytes[3], 0x0040), 0x5410);
      }
      out = make_uint4(words[0], words[1], words[2], words[3]);
    }
    reinterpret_cast<uint4*>(q + row * (k / 2))[c] = out;
    scales[row * (k / 32) + c] = uint8_t(byte);
  });
}

// ---- MXFP4 dequantize ----------------------------------------------------------------------------------------

template <FloatType T>
__global__ void dequantize_mxfp4_kernel(const uint8_t* q, int64_t ldq, const uint8_t* scales, int64_t lds,
                                        int64_t rows, int64_t k, void* out, int rows_per_block) {
  const int64_t chunks = k / 8;
  for_each_chunk(rows, chunks, rows_per_block, [&](int64_t row, int64_t c, bool active) {
    if (!active) return;
    const uint32_t codes = reinterpret_cast<const uint32_t*>(q + row * ldq)[c];
    const uint32_t s = scales[row * lds + c / 4];
    const float scale = e8m0_value(s);
    float v[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      v[i] = s == 0xFF ? f32(kF32QuietNan) : e2m1_value((codes >> (4 * i)) & 0xFu) * scale;
    }
    const int64_t o = row * k + c * 8;
    if constexpr (T == FloatType::f32) {
      float4* dst = reinterpret_cast<float4*>(static_cast<float*>(out) + o);
      dst[0] = make_float4(v[0], v[1], v[2], v[3]);
      dst[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
      uint32_t w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) w[i] = uint32_t(narrow<T>(v[2 * i])) | (uint32_t(narrow<T>(v[2 * i + 1])) << 16);
      *reinterpret_cast<uint4*>(static_cast<uint16_t*>(out) + o) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  });
}

// ---- FP8 per-group quantize ----------------------------------------------------------------------------------

// max(amax, eps) / 448, rounded up to a power of two when ue8m0 (core::fp8_scale); a NaN comes out as 0x7FC00000.
__device__ __forceinline__ float fp8_scale(float amax, float eps, bool ue8m0) {
  const float clamped = amax < eps ? eps : amax;
  float s = __fdiv_rn(clamped, 448.0f);
  if (isnan(s)) return f32(kF32QuietNan);
  if (ue8m0 && s > 0.0f && !isinf(s)) {
    const uint32_t b = bits_of(s);
    if (b < 0x00800000u) {
      s = f32(1u << (32 - __clz(b - 1)));
    } else if ((b & 0x7FFFFFu) != 0) {
      s = f32(((b >> 23) + 1) << 23);
    }
  }
  return s;
}

// e4m3(clamp(x / scale, -448, 448)) with the NaN that x86's division would make: x's own NaN, else scale's, else the
// invalid-operation NaN (negative).
__device__ __forceinline__ uint8_t e4m3_of_quotient(float x, float scale) {
  const float r = __fdiv_rn(x, scale);
  if (isnan(r)) {
    const bool negative = isnan(x) ? signbit(x) : (isnan(scale) ? signbit(scale) : true);
    return negative ? 0xFF : 0x7F;
  }
  const float c = fminf(fmaxf(r, -448.0f), 448.0f);
  return uint8_t(__nv_cvt_float_to_fp8(c, __NV_SATFINITE, __NV_E4M3));
}

template <FloatType T>
__global__ void quantize_fp8_kernel(const void* x, int64_t rows, int64_t k, int64_t ldx, int64_t group_size,
                                    float eps, bool ue8m0, uint8_t* q, float* scales) {
  const int lane = threadIdx.x & 31;
  const int64_t groups_per_row = k / group_size, groups = rows * groups_per_row;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t g = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; g < groups; g += warps) {
    const int64_t row = g / groups_per_row, first = row * ldx + (g % groups_per_row) * group_size;
    uint32_t amax = 0;
    for (int64_t i = lane; i < group_size; i += 32) {
      const uint32_t a = load_bits<T>(x, first + i) & kAbsMask;
      amax = max(amax, a > kF32Inf ? kF32QuietNan : a);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = max(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
    const float scale = fp8_scale(f32(amax), eps, ue8m0);
    uint8_t* qg = q + row * k + (g % groups_per_row) * group_size;
    for (int64_t i = lane; i < group_size; i += 32) qg[i] = e4m3_of_quotient(f32(load_bits<T>(x, first + i)), scale);
    if (lane == 0) scales[g] = scale;
  }
}

template <template <FloatType> class Launch, typename... Args>
cudaError_t by_type(FloatType t, Args... args) {
  switch (t) {
    case FloatType::f32: return Launch<FloatType::f32>::run(args...);
    case FloatType::bf16: return Launch<FloatType::bf16>::run(args...);
    case FloatType::f16: return Launch<FloatType::f16>::run(args...);
  }
  return cudaErrorInvalidValue;
}

template <FloatType T>
struct QuantizeMxfp4Launch {
  static cudaError_t run(const void* x, int64_t rows, int64_t k, int64_t ldx, ScaleMode mode, uint8_t* q,
                         uint8_t* scales, cudaStream_t stream) {
    if constexpr (T == FloatType::bf16) {
      const RowChunks p = plan_row_chunks(rows, k / 32);
      quantize_mxfp4_bf16_kernel<<<unsigned(grid_of(p)), p.threads, 0, stream>>>(
          static_cast<const uint16_t*>(x), rows, k, ldx, mode, q, scales, p.rows_per_block);
      return cudaGetLastError();
    }
    const RowChunks p = plan_row_chunks(rows, k / 16);
    quantize_mxfp4_kernel<T><<<unsigned(grid_of(p)), p.threads, 0, stream>>>(x, rows, k, ldx, mode, q, scales,
                                                                               p.rows_per_block);
    return cudaGetLastError();
  }
};

template <FloatType T>
struct DequantizeMxfp4Launch {
  static cudaError_t run(const uint8_t* q, int64_t ldq, const uint8_t* scales, int64_t lds, int64_t rows, int64_t k,
                         void* out, cudaStream_t stream) {
    const RowChunks p = plan_row_chunks(rows, k / 8);
    dequantize_mxfp4_kernel<T><<<unsigned(grid_of(p)), p.threads, 0, stream>>>(q, ldq, scales, lds, rows, k, out,
                                                                                 p.rows_per_block);
    return cudaGetLastError();
  }
};

template <FloatType T>
struct QuantizeFp8Launch {
  static cudaError_t run(const void* x, int64_t rows, int64_t k, int64_t ldx, int64_t group_size, float eps,
                         bool ue8m0, uint8_t* q, float* scales, cudaStream_t stream) {
    const int64_t groups = rows * (k / group_size);
    const int threads = 256;
    int64_t blocks = (groups + threads / 32 - 1) / (threads / 32);
    blocks = blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks;
    quantize_fp8_kernel<T><<<unsigned(blocks), threads, 0, stream>>>(x, rows, k, ldx, group_size, eps, ue8m0, q,
                                                                      scales);
    return cudaGetLastError();
  }
};

}  // namespace

cudaError_t quantize_mxfp4(const void* x, FloatType x_type, int64_t rows, int64_t k, int64_t x_row_stride,
                           ScaleMode mode, uint8_t* q, uint8_t* scales, cudaStream_t stream) {
  if (rows == 0 || k == 0) return cudaSuccess;
  return by_type<QuantizeMxfp4Launch>(x_type, x, rows, k, x_row_stride, mode, q, scales, stream);
}

cudaError_t dequantize_mxfp4(const uint8_t* q, int64_t q_row_stride, const uint8_t* scales, int64_t scale_row_stride,
                             int64_t rows, int64_t k, FloatType out_type, void* out, cudaStream_t stream) {
  if (rows == 0 || k == 0) return cudaSuccess;
  return by_type<DequantizeMxfp4Launch>(out_type, q, q_row_stride, scales, scale_row_stride, rows, k, out, stream);
}

cudaError_t quantize_fp8_groups(const void* x, FloatType x_type, int64_t rows, int64_t k, int64_t x_row_stride,
                                int64_t group_size, float eps, bool ue8m0, uint8_t* q, float* scales,
                                cudaStream_t stream) {
  if (rows == 0 || k == 0) return cudaSuccess;
  return by_type<QuantizeFp8Launch>(x_type, x, rows, k, x_row_stride, group_size, eps, ue8m0, q, scales, stream);
}

}  // namespace mxkernels::core::cuda
