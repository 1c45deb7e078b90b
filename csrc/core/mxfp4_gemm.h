// W4A4: C = A · Bᵀ with both operands MXFP4 (E2M1 codes, an E8M0 scale per 32 along K). Twice an E2M1 value is an
// integer in [-12, 12], so each block's sum of 32 products is an exact integer (|sum| <= 4608); the block's value
// sum · 2^(sa - 127) · 2^(sw - 127) / 4 is rounded once to float32 and added to a float32 total in block order.
// Every level computes the same numbers in the same order, so the results are bitwise those of the reference.
#pragma once
#include <cstdint>

#include "cpu_isa.h"
#include "float_types.h"
#include "fp8_gemm.h"  // the prepacked MXFP4 layout

namespace mxkernels::core {

struct Mxfp4GemmProblem {
  int64_t m = 0, n = 0, k = 0;  // k a multiple of 32
  const uint8_t* a = nullptr;   // [m][k / 2] codes, row stride lda
  int64_t lda = 0;
  const uint8_t* a_scale = nullptr;  // [m][k / 32] E8M0, row stride lda_scale
  int64_t lda_scale = 0;
  // [n][k / 2] codes, row stride ldb; or the prepacked blob (b_prepacked; ldb unused). A call's column range must
  // start on a column-group boundary (a multiple of 4).
  const uint8_t* b = nullptr;
  int64_t ldb = 0;
  bool b_prepacked = false;
  const uint8_t* b_scale = nullptr;  // [n][k / 32] E8M0, row stride ldb_scale
  int64_t ldb_scale = 0;
  const float* bias = nullptr;  // [n] or null
  void* c = nullptr;            // [m][n] of c_type, row stride ldc
  FloatType c_type = FloatType::bf16;
  int64_t ldc = 0;
};

// The 16 code bytes of block `block` of weight column j.
inline const uint8_t* mxfp4_block_codes(const Mxfp4GemmProblem& p, int64_t j, int64_t block) {
  return mxfp4_block_codes(p.b, p.ldb, p.b_prepacked, p.n, p.k, j, block);
}

// Twice the E2M1 value of code 0..15, as an integer.
inline int e2m1_times2(uint8_t code) {
  const int mag = int((0x0C08060403020100ull >> (8 * (code & 7))) & 0xFF);
  return (code & 8) ? -mag : mag;
}

// sum · 2^(sa + sw - 256), rounded once to float32; NaN if either scale is 0xFF.
float mxfp4_block_value(int32_t sum, uint8_t sa, uint8_t sw);

// Computes the columns [n_begin, n_end) of C for every row.
using Mxfp4GemmFn = void (*)(const Mxfp4GemmProblem& p, int64_t n_begin, int64_t n_end);

struct Mxfp4GemmKernels {
  Mxfp4GemmFn gemm;
};

const Mxfp4GemmKernels& mxfp4_gemm_kernels(CpuIsa isa);
const Mxfp4GemmKernels& mxfp4_gemm_kernels();

namespace reference {
// Plain loops: integer block sums, mxfp4_block_value, float32 totals in block order.
void mxfp4_gemm(const Mxfp4GemmProblem& p, int64_t n_begin, int64_t n_end);
}  // namespace reference

}  // namespace mxkernels::core
