// C = A · Bᵀ with FP8 E4M3 weights B [N, K] and float32 activations A [M, K] (the op layer converts fp8 or
// 16-bit activations to float32 exactly), per-row / per-column / per-block float32 scales, optional bias.
// The same kernels run MXFP4 weights (E2M1 codes, an E8M0 scale per 32 along K): every E2M1 value is an E4M3
// value, so the codes are widened to E4M3 in registers (or per panel) and the scales read as powers of two.
#pragma once
#include <cstdint>

#include "cpu_isa.h"
#include "float_types.h"

namespace mxkernels::core {

// Where the scale of (row or column i, K-segment kb) lives: scale[(i / block) * ld + kb * k_stride].
// Per tensor: ld = 0, k_stride = 0. Per row / channel: ld = 1, k_stride = 0, block = 1. Per 128-group of
// K: k_stride = 1. Blocks of 128 columns: block = 128. A scale that spans several K-segments (128-wide scale blocks
// summed over 32- or 64-value segments when K is no multiple of 128): k_div segments per scale.
struct Fp8ScaleIndex {
  const float* scale = nullptr;
  int64_t ld = 0;
  int64_t k_stride = 0;
  int64_t block = 1;
  int64_t k_div = 1;
  // When set, the scales are E8M0 bytes (2^(e - 127); 0xFF is NaN) at the same indices, and scale is unused.
  const uint8_t* e8m0 = nullptr;
  float at(int64_t i, int64_t kb) const { return value(row_offset(i) + k_offset(kb)); }
  // The two halves of the index, for kernels that hoist the divisions out of their K loops.
  int64_t row_offset(int64_t i) const { return (i / block) * ld; }
  int64_t k_offset(int64_t kb) const { return (kb / k_div) * k_stride; }
  float value(int64_t idx) const { return e8m0 != nullptr ? e8m0_value(e8m0[idx]) : scale[idx]; }
  static float e8m0_value(uint8_t e) {
    if (e == 0xFF) return f32_from_bits(0x7FC00000u);
    return e == 0 ? f32_from_bits(0x00400000u) : f32_from_bits(uint32_t(e) << 23);  // 2^-127 is subnormal
  }
};

// How the weight codes are stored.
enum class WeightCodes : uint8_t {
  e4m3,  // one E4M3 byte per value
  e2m1,  // two E2M1 codes per byte, element 2i in the low nibble (ldb counts bytes); K a multiple of 32
};

// Prepacked weights (prepack_fp8_weight) keep one byte per E4M3 code, in the order the packed kernels read them:
// panels of kFp8PanelColumns columns; the panel of columns [j0, j0 + w), w = min(32, n - j0), starts at byte
// j0 * k and holds [k / 2][w][2], i.e. for each pair of K values each column's two codes. K must be even.
constexpr int64_t kFp8PanelColumns = 32;

inline int64_t fp8_prepacked_offset(int64_t n, int64_t k, int64_t j, int64_t kk) {
  const int64_t j0 = j / kFp8PanelColumns * kFp8PanelColumns;
  const int64_t w = n - j0 < kFp8PanelColumns ? n - j0 : kFp8PanelColumns;
  return j0 * k + (kk / 2) * w * 2 + (j - j0) * 2 + (kk & 1);
}

// Prepacked MXFP4 weights (prepack_mxfp4_weight), one blob of n * (k / 32) * 17 bytes: first the codes, in groups of
// kMxfp4GroupColumns columns; the group of columns [j0, j0 + w), w = min(4, n - j0), starts at byte j0 * (k / 32) * 16
// and holds, for each pair of blocks (64 K values), the pair's 32 code bytes of each of its w columns side by side,
// [k / 64][w][32], then, when k / 32 is odd, the last block's 16 bytes per column, [w][16]. A decode step reads two
// 64-byte lines for four columns, in one stream. Then the E8M0 scales, [n][k / 32] as in w_scales.
constexpr int64_t kMxfp4GroupColumns = 4;

inline int64_t mxfp4_prepacked_code_offset(int64_t n, int64_t k, int64_t j, int64_t block) {
  const int64_t j0 = j / kMxfp4GroupColumns * kMxfp4GroupColumns;
  const int64_t w = n - j0 < kMxfp4GroupColumns ? n - j0 : kMxfp4GroupColumns;
  const int64_t pairs = k / 64, base = j0 * (k / 32) * 16;
  if (block < 2 * pairs) return base + (block / 2) * w * 32 + (j - j0) * 32 + (block & 1) * 16;
  return base + pairs * w * 32 + (j - j0) * 16;
}
inline int64_t mxfp4_prepacked_scale_offset(int64_t n, int64_t k) { return n * (k / 32) * 16; }

// The 16 code bytes of E2M1 block `block` (K values [32 block, 32 block + 32)) of column j, in plain codes [n][k / 2]
// (row stride ld) or the prepacked layout.
inline const uint8_t* mxfp4_block_codes(const uint8_t* codes, int64_t ld, bool prepacked, int64_t n, int64_t k, int64_t j,
                                        int64_t block) {
  return prepacked ? codes + mxfp4_prepacked_code_offset(n, k, j, block) : codes + j * ld + block * 16;
}

struct Fp8GemmProblem {
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;  // [m, k], row stride lda
  int64_t lda = 0;
  // [n, k] E4M3, row stride ldb; or, with b_prepacked, the prepacked layout (ldb unused). With prepacked weights
  // a call's column range must start on a panel boundary and end on one or at n.
  const uint8_t* b = nullptr;
  int64_t ldb = 0;
  bool b_prepacked = false;  // with e2m1 codes: the prepacked MXFP4 layout (the scales are b_scale, as for plain)
  WeightCodes b_codes = WeightCodes::e4m3;
  Fp8ScaleIndex a_scale, b_scale;
  // Sums are taken in float32 over segments of this many K values, each scaled and added to the total
  // (128 when a scale varies along K, else k).
  int64_t k_segment = 0;
  // Every activation is a bfloat16 value (fp8 or bf16 inputs): levels with bf16 dot products may use them, exactly.
  bool a_bf16_exact = false;
  const float* bias = nullptr;  // [n] or null
  void* c = nullptr;            // [m, n] of c_type, row stride ldc
  FloatType c_type = FloatType::f32;
  int64_t ldc = 0;
};

// The E4M3 byte of the E2M1 code 0..15 (exact: E2M1 values are E4M3 values).
// (The magnitudes 0 .5 1 1.5 2 3 4 6 are packed into one constant, byte i for code i: a static table here would be
// a symbol shared between the per-level objects, which tests/CMakeLists.txt forbids.)
inline uint8_t e4m3_of_e2m1(uint8_t code) {
  return uint8_t(((0x4C4844403C383000ull >> (8 * (code & 7))) & 0xFF) | ((code & 8) << 4));
}

inline const uint8_t* e2m1_block_codes(const Fp8GemmProblem& p, int64_t j, int64_t block) {
  return mxfp4_block_codes(p.b, p.ldb, p.b_prepacked, p.n, p.k, j, block);
}

// The E4M3 byte of weight (j, kk), whatever the storage.
inline uint8_t fp8_weight_code(const Fp8GemmProblem& p, int64_t j, int64_t kk) {
  if (p.b_codes == WeightCodes::e2m1) {
    return e4m3_of_e2m1(uint8_t(e2m1_block_codes(p, j, kk / 32)[(kk % 32) / 2] >> (4 * (kk & 1))) & 0xF);
  }
  return p.b_prepacked ? p.b[fp8_prepacked_offset(p.n, p.k, j, kk)] : p.b[j * p.ldb + kk];
}

// Writes the prepacked layout of the panels [panel_begin, panel_end) of b [n, k] (row stride ldb, k even).
void prepack_fp8_weight(const uint8_t* b, int64_t ldb, int64_t n, int64_t k, int64_t panel_begin, int64_t panel_end,
                        uint8_t* out);

// Writes the codes of the column groups [group_begin, group_end) of E2M1 codes q [n][k / 2] (row stride ldq) in the
// prepacked MXFP4 layout; out is the blob's start. The scales are copied by the caller.
void prepack_mxfp4_codes(const uint8_t* q, int64_t ldq, int64_t n, int64_t k, int64_t group_begin, int64_t group_end,
                         uint8_t* out);

// Computes the columns [n_begin, n_end) of C for every row.
using Fp8GemmFn = void (*)(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end);

struct Fp8GemmKernels {
  Fp8GemmFn gemm;
};

const Fp8GemmKernels& fp8_gemm_kernels(CpuIsa isa);
const Fp8GemmKernels& fp8_gemm_kernels();

namespace reference {
// Plain loops, the same segment rule, float32 sums in K order.
void fp8_gemm(const Fp8GemmProblem& p, int64_t n_begin, int64_t n_end);
}  // namespace reference

}  // namespace mxkernels::core
