// The FP8 GEMM kernels of every CPU level against a float64 reference, within the error bound of float32
// accumulation: |C - C64| <= 2 (K + 4) 2^-24 sum_k |a b sa sb| + one rounding into the output type.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cpu_isa.h"
#include "fp8.h"
#include "fp8_gemm.h"
#include "mxfp4_gemm.h"

namespace core = mxkernels::core;
using core::CpuIsa;
using core::FloatType;

namespace {

enum class Layout { tensor, row, block };

struct Case {
  int64_t m, n, k;
  Layout a_layout, b_layout;
  bool bias;
  FloatType out;
  bool bf16_a = false;  // activations rounded to bf16 and flagged so: levels with bf16 dot products use them
};

std::string describe(const Case& c, CpuIsa isa) {
  return std::string(core::cpu_isa_name(isa)) + (c.bf16_a ? " bf16 a" : "") + " m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) +
         " k=" + std::to_string(c.k) + " a_layout=" + std::to_string(int(c.a_layout)) + " b_layout=" +
         std::to_string(int(c.b_layout)) + " bias=" + std::to_string(c.bias) + " out=" + core::float_type_name(c.out);
}

void run_case(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> pos(0.5f, 2.0f);
  const bool blocked = c.a_layout == Layout::block || c.b_layout == Layout::block;
  const int64_t seg = blocked ? 128 : c.k;
  const int64_t kb = c.k / seg;
  std::vector<float> a(size_t(c.m * c.k));
  for (auto& v : a) v = c.bf16_a ? core::bf16_to_f32(core::f32_to_bf16(normal(rng))) : normal(rng);
  std::vector<uint8_t> b(size_t(c.n * c.k));
  for (auto& v : b) v = core::reference::e4m3_from_f32(normal(rng) * 8.0f);
  // Scales in their natural shapes, indexed as the op layer indexes them.
  core::Fp8ScaleIndex sa, sb;
  std::vector<float> a_scale, b_scale;
  switch (c.a_layout) {
    case Layout::tensor: a_scale = {pos(rng)}; break;
    case Layout::row: a_scale.resize(size_t(c.m)); sa.ld = 1; break;
    case Layout::block: a_scale.resize(size_t(c.m * kb)); sa.ld = kb; sa.k_stride = 1; break;
  }
  switch (c.b_layout) {
    case Layout::tensor: b_scale = {pos(rng)}; break;
    case Layout::row: b_scale.resize(size_t(c.n)); sb.ld = 1; break;
    case Layout::block: b_scale.resize(size_t(((c.n + 127) / 128) * kb)); sb.ld = kb; sb.k_stride = 1; sb.block = 128; break;
  }
  for (auto& v : a_scale) v = pos(rng);
  for (auto& v : b_scale) v = pos(rng) / 64.0f;
  sa.scale = a_scale.data();
  sb.scale = b_scale.data();
  std::vector<float> bias(size_t(c.n));
  for (auto& v : bias) v = normal(rng);

  // float64 reference and the absolute-value sums for the bound.
  std::vector<double> want(size_t(c.m * c.n)), mag(size_t(c.m * c.n));
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double s = 0, m = 0;
      for (int64_t k = 0; k < c.k; ++k) {
        const double t = double(a[i * c.k + k]) * core::reference::e4m3_to_f32(b[j * c.k + k]) * sa.at(i, k / seg) *
                         sb.at(j, k / seg);
        s += t;
        m += std::fabs(t);
      }
      if (c.bias) {
        s += bias[j];
        m += std::fabs(bias[j]);
      }
      want[i * c.n + j] = s;
      mag[i * c.n + j] = m;
    }
  }
  const double out_rel = c.out == FloatType::f32 ? std::ldexp(1.0, -24) : c.out == FloatType::bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  const double out_abs = c.out == FloatType::f16 ? std::ldexp(1.0, -25) : 0.0;

  // The same weights prepacked (K even): panels of 32 columns.
  std::vector<uint8_t> packed(b.size());
  if (c.k % 2 == 0) core::prepack_fp8_weight(b.data(), c.k, c.n, c.k, 0, (c.n + 31) / 32, packed.data());

  for (CpuIsa isa : core::compiled_cpu_isas()) {
    if (!core::cpu_isa_supported(isa)) continue;
    for (bool prepacked : {false, true}) {
    if (prepacked && c.k % 2 != 0) continue;
    std::vector<uint8_t> out(size_t(c.m * c.n) * core::float_type_bytes(c.out), 0xEE);
    core::Fp8GemmProblem p;
    p.m = c.m; p.n = c.n; p.k = c.k;
    p.a = a.data(); p.lda = c.k;
    p.b = prepacked ? packed.data() : b.data(); p.ldb = c.k;
    p.b_prepacked = prepacked;
    p.a_scale = sa; p.b_scale = sb;
    p.k_segment = seg;
    p.a_bf16_exact = c.bf16_a;
    p.bias = c.bias ? bias.data() : nullptr;
    p.c = out.data(); p.c_type = c.out; p.ldc = c.n;
    // Two column ranges, as two threads would compute them (prepacked: split on a panel boundary).
    const int64_t split = prepacked ? c.n / 2 / 32 * 32 : c.n / 2;
    core::fp8_gemm_kernels(isa).gemm(p, 0, split);
    core::fp8_gemm_kernels(isa).gemm(p, split, c.n);
    for (int64_t i = 0; i < c.m * c.n; ++i) {
      const double got = core::load_as_f32(out.data(), c.out, i);
      const double tol = 2.0 * double(c.k + 4) * std::ldexp(1.0, -24) * mag[i] + out_rel * std::fabs(want[i]) + out_abs;
      ASSERT_LE(std::fabs(got - want[i]), tol) << describe(c, isa) << (prepacked ? " prepacked" : "") << " at " << i
                                               << ": got " << got << " want " << want[i];
    }
    }
  }
}

TEST(Fp8GemmCore, MatchesFloat64WithinAccumulationBound) {
  uint32_t seed = 1;
  for (int64_t m : {1, 2, 3, 4, 5, 7, 13}) {
    for (int64_t n : {1, 17, 64, 130}) {
      for (Layout al : {Layout::tensor, Layout::row, Layout::block}) {
        for (Layout bl : {Layout::tensor, Layout::row, Layout::block}) {
          run_case({m, n, 256, al, bl, (m + n) % 2 == 0, FloatType::f32}, seed++);
        }
      }
    }
  }
}

TEST(Fp8GemmCore, OutputTypesBiasAndOddK) {
  uint32_t seed = 100;
  for (FloatType out : {FloatType::f32, FloatType::bf16, FloatType::f16}) {
    for (int64_t m : {1, 4, 6, 9}) {
      run_case({m, 33, 100, Layout::row, Layout::row, true, out}, seed++);     // K not a multiple of the lanes
      run_case({m, 40, 384, Layout::block, Layout::block, true, out}, seed++);
    }
  }
}

TEST(Fp8GemmCore, Bf16ActivationsEveryLevel) {
  uint32_t seed = 200;
  for (int64_t m : {5, 6, 7, 13, 64}) {
    for (Layout al : {Layout::tensor, Layout::row, Layout::block}) {
      for (Layout bl : {Layout::tensor, Layout::row, Layout::block}) {
        Case c{m, 130, 256, al, bl, m % 2 == 0, FloatType::f32};
        c.bf16_a = true;
        run_case(c, seed++);
      }
    }
  }
  for (int64_t k : {100, 33}) {  // K odd or not a multiple of 16: padded pairs and scalar panel tails
    Case c{9, 40, k, Layout::row, Layout::row, true, FloatType::bf16};
    c.bf16_a = true;
    run_case(c, seed++);
  }
}

TEST(Fp8GemmCore, PrepackedLayout) {
  // n = 40: one full panel and one of 8 columns; k = 6.
  const int64_t n = 40, k = 6;
  std::vector<uint8_t> b(size_t(n * k)), packed(b.size(), 0xEE);
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(i * 7);
  core::prepack_fp8_weight(b.data(), k, n, k, 0, 2, packed.data());
  EXPECT_EQ(packed[0], b[0]);          // column 0, k 0
  EXPECT_EQ(packed[1], b[1]);          // column 0, k 1
  EXPECT_EQ(packed[2], b[k]);          // column 1, k 0
  EXPECT_EQ(packed[64], b[2]);         // second pair row: column 0, k 2
  EXPECT_EQ(packed[32 * k], b[32 * k]);                   // the second panel starts at column 32
  EXPECT_EQ(packed[32 * k + 2 * 8], b[32 * k + 2]);       // its pair rows are 8 columns wide
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t kk = 0; kk < k; ++kk) EXPECT_EQ(packed[core::fp8_prepacked_offset(n, k, j, kk)], b[j * k + kk]);
  }
}

TEST(Fp8GemmCore, PrepackedLargeShapes) {
  uint32_t seed = 300;
  for (int64_t m : {1, 4, 5, 64}) {
    run_case({m, 96, 2880, Layout::row, Layout::row, m % 2 == 0, FloatType::bf16}, seed++);
    run_case({m, 160, 384, Layout::block, Layout::block, true, FloatType::f32}, seed++);
    Case c{m, 64, 256, Layout::tensor, Layout::row, false, FloatType::f32};
    c.bf16_a = true;
    run_case(c, seed++);
  }
}

TEST(Fp8GemmCore, NanWeightsPropagate) {
  // n = 2 (the narrow-panel route when prepacked) and n = 34 (a full panel, then a narrow one); NaN codes in
  // column 0 at an even K and in column 17 at an odd K.
  for (int64_t n : {2, 34}) {
    std::vector<uint8_t> b(size_t(n * 32), 0x38);  // 1.0
    b[4] = 0x7F;
    if (n > 17) b[17 * 32 + 9] = 0xFF;
    std::vector<uint8_t> packed(b.size());
    core::prepack_fp8_weight(b.data(), 32, n, 32, 0, (n + 31) / 32, packed.data());
    float scale = 1.0f;
    for (CpuIsa isa : core::compiled_cpu_isas()) {
      if (!core::cpu_isa_supported(isa)) continue;
      for (bool prepacked : {false, true}) {
        for (int64_t m : {1, 5}) {             // skinny and packed paths
          for (bool bf16_a : {false, true}) {  // and the bf16 / AMX packed paths where the level has them
            std::vector<float> a(size_t(m * 32), 1.0f), out(size_t(m * n));
            core::Fp8GemmProblem p;
            p.m = m; p.n = n; p.k = 32; p.a = a.data(); p.lda = 32;
            p.b = prepacked ? packed.data() : b.data(); p.ldb = 32; p.b_prepacked = prepacked;
            p.a_scale.scale = &scale; p.b_scale.scale = &scale; p.k_segment = 32;
            p.c = out.data(); p.c_type = FloatType::f32; p.ldc = n;
            p.a_bf16_exact = bf16_a;
            core::fp8_gemm_kernels(isa).gemm(p, 0, n);
            const std::string where = std::string(core::cpu_isa_name(isa)) + " n=" + std::to_string(n) +
                                      " m=" + std::to_string(m) + (prepacked ? " prepacked" : "");
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t j = 0; j < n; ++j) {
                if (j == 0 || j == 17) {
                  EXPECT_TRUE(std::isnan(out[i * n + j])) << where << " column " << j;
                } else {
                  EXPECT_EQ(out[i * n + j], 32.0f) << where << " column " << j;
                }
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

namespace {

// MXFP4 weights (E2M1 codes, E8M0 scales per 32) through the same kernels, against float64.
// With prepacked set, the weights go through the prepacked MXFP4 layout (codes regrouped, scales after them). With
// n > 2 the last column's first scale is 0xFF (NaN): that column must come out NaN.
void run_e2m1_case(int64_t m, int64_t n, int64_t k, bool bf16_a, bool bias_on, uint32_t seed, bool prepacked = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> code(0, 255), exponent(120, 134);
  std::vector<float> a(static_cast<size_t>(m * k)), bias(static_cast<size_t>(n));
  for (auto& v : a) v = bf16_a ? core::bf16_to_f32(core::f32_to_bf16(normal(rng))) : normal(rng);
  for (auto& v : bias) v = normal(rng);
  std::vector<uint8_t> w(size_t(n * k / 2)), s(size_t(n * k / 32));
  for (auto& v : w) v = uint8_t(code(rng));
  for (auto& v : s) v = uint8_t(exponent(rng));
  s[0] = 0;    // 2^-127, a subnormal float32
  if (s.size() > 1) s[1] = 230;  // 2^103 (2^127 would overflow float32 results with these activations)
  const bool nan_column = n > 2;
  if (nan_column) s[size_t((n - 1) * (k / 32))] = 0xFF;
  std::vector<uint8_t> blob(size_t(n * (k / 32) * 17));
  core::prepack_mxfp4_codes(w.data(), k / 2, n, k, 0, (n + 3) / 4, blob.data());
  std::copy(s.begin(), s.end(), blob.begin() + core::mxfp4_prepacked_scale_offset(n, k));
  static const float kE2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  auto value = [&](int64_t j, int64_t kk) {
    const uint8_t c = uint8_t(w[j * k / 2 + kk / 2] >> (4 * (kk & 1))) & 0xF;
    return double(c & 8 ? -kE2m1[c & 7] : kE2m1[c & 7]) * std::ldexp(1.0, int(s[j * k / 32 + kk / 32]) - 127);
  };
  std::vector<double> want(size_t(m * n)), mag(size_t(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double t = bias_on ? bias[j] : 0.0, u = bias_on ? std::fabs(bias[j]) : 0.0;
      for (int64_t kk = 0; kk < k; ++kk) {
        t += double(a[i * k + kk]) * value(j, kk);
        u += std::fabs(double(a[i * k + kk]) * value(j, kk));
      }
      want[i * n + j] = t;
      mag[i * n + j] = u;
    }
  }
  float one = 1.0f;
  for (CpuIsa isa : core::compiled_cpu_isas()) {
    if (!core::cpu_isa_supported(isa)) continue;
    std::vector<float> out(size_t(m * n), -7.0f);
    core::Fp8GemmProblem p;
    p.m = m; p.n = n; p.k = k; p.a = a.data(); p.lda = k;
    p.b = w.data(); p.ldb = k / 2; p.b_codes = core::WeightCodes::e2m1;
    p.a_scale.scale = &one;
    p.b_scale.e8m0 = s.data(); p.b_scale.ld = k / 32; p.b_scale.k_stride = 1;
    if (prepacked) {
      p.b = blob.data();
      p.b_prepacked = true;
      p.b_scale.e8m0 = blob.data() + core::mxfp4_prepacked_scale_offset(n, k);
    }
    p.k_segment = 32;
    p.a_bf16_exact = bf16_a;
    p.bias = bias_on ? bias.data() : nullptr;
    p.c = out.data(); p.c_type = FloatType::f32; p.ldc = n;
    // Two column ranges, split on a column group (and 32-column panel) boundary as the op layer splits them.
    const int64_t split = std::min<int64_t>(n, 32);
    core::fp8_gemm_kernels(isa).gemm(p, 0, split);
    core::fp8_gemm_kernels(isa).gemm(p, split, n);
    for (int64_t i = 0; i < m * n; ++i) {
      if (nan_column && i % n == n - 1) {
        ASSERT_TRUE(std::isnan(out[i])) << core::cpu_isa_name(isa) << " m=" << m << " n=" << n << " k=" << k << " at " << i;
        continue;
      }
      const double tol = 2.0 * double(k + 4) * std::ldexp(1.0, -24) * mag[i] + std::ldexp(1.0, -24) * std::fabs(want[i]);
      ASSERT_LE(std::fabs(out[i] - want[i]), tol) << core::cpu_isa_name(isa) << " m=" << m << " n=" << n << " k=" << k
                                                  << " bf16_a=" << bf16_a << " prepacked=" << prepacked << " at " << i;
    }
  }
}

TEST(Mxfp4GemmCore, E2m1WeightsMatchFloat64EveryLevel) {
  uint32_t seed = 500;
  for (bool prepacked : {false, true}) {
    for (int64_t m : {1, 2, 3, 4, 5, 64}) {
      for (int64_t n : {1, 31, 32, 70}) {
        for (int64_t k : {32, 64, 288}) {
          for (bool bf16_a : {false, true}) run_e2m1_case(m, n, k, bf16_a, n % 2 == 1, seed++, prepacked);
        }
      }
    }
    run_e2m1_case(9, 40, 2880, true, true, seed++, prepacked);
    run_e2m1_case(1, 40, 2880, true, false, seed++, prepacked);
    run_e2m1_case(4, 37, 4096, false, true, seed++, prepacked);
  }
}

TEST(Mxfp4GemmCore, PrepackedLayout) {
  // n = 6: a full group of 4 and a group of 2; k = 96: one block pair and an odd last block.
  const int64_t n = 6, k = 96;
  std::vector<uint8_t> q(size_t(n * k / 2)), blob(size_t(n * (k / 32) * 17), 0xEE);
  for (size_t i = 0; i < q.size(); ++i) q[i] = uint8_t(i % 200);  // never the 0xEE of the unwritten bytes
  core::prepack_mxfp4_codes(q.data(), k / 2, n, k, 0, 2, blob.data());
  EXPECT_EQ(core::mxfp4_prepacked_code_offset(n, k, 1, 1), 1 * 32 + 16);       // group 0, pair 0, column 1, block 1
  EXPECT_EQ(core::mxfp4_prepacked_code_offset(n, k, 2, 2), 4 * 32 + 2 * 16);   // group 0, odd last block, column 2
  EXPECT_EQ(core::mxfp4_prepacked_code_offset(n, k, 5, 0), 4 * 3 * 16 + 1 * 32);  // group 1 (w = 2), column 5
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t b = 0; b < k / 32; ++b) {
      for (int i = 0; i < 16; ++i) {
        ASSERT_EQ(blob[size_t(core::mxfp4_prepacked_code_offset(n, k, j, b) + i)], q[size_t(j * k / 2 + b * 16 + i)]);
      }
    }
  }
  // The codes fill exactly the first n * (k / 32) * 16 bytes.
  for (size_t i = 0; i < size_t(core::mxfp4_prepacked_scale_offset(n, k)); ++i) ASSERT_NE(blob[i], 0xEE) << i;
}

TEST(Mxfp4GemmCore, E8m0Values) {
  EXPECT_EQ(core::Fp8ScaleIndex::e8m0_value(127), 1.0f);
  EXPECT_EQ(core::Fp8ScaleIndex::e8m0_value(0), std::ldexp(1.0f, -127));
  EXPECT_EQ(core::Fp8ScaleIndex::e8m0_value(254), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(core::Fp8ScaleIndex::e8m0_value(255)));
  for (int c = 0; c < 16; ++c) {
    const float e2m1 = (c & 8 ? -1.0f : 1.0f) * std::array<float, 8>{0, 0.5f, 1, 1.5f, 2, 3, 4, 6}[c & 7];
    EXPECT_EQ(core::reference::e4m3_to_f32(core::e4m3_of_e2m1(uint8_t(c))), e2m1) << c;
  }
}

}  // namespace

namespace {

// W4A4: every level bitwise equal to the reference, and the reference equal to an independent computation (block sums of
// the E2M1 values in double, exact; times both scales in double, exact; rounded to float32 and added in block order).
void run_w4a4_case(int64_t m, int64_t n, int64_t k, bool prepacked, bool bias_on, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(0, 255), exponent(112, 140);
  std::normal_distribution<float> normal;
  const int64_t blocks = k / 32;
  std::vector<uint8_t> a(size_t(m * k / 2)), sa(size_t(m * blocks)), w(size_t(n * k / 2)), sw(size_t(n * blocks));
  std::vector<float> bias(static_cast<size_t>(n));
  for (auto& v : a) v = uint8_t(code(rng));
  for (auto& v : w) v = uint8_t(code(rng));
  for (auto& v : sa) v = uint8_t(exponent(rng));
  for (auto& v : sw) v = uint8_t(exponent(rng));
  for (auto& v : bias) v = normal(rng);
  sa[0] = 0;    // 2^-127: with sw, block values far below float32's subnormals round to zero or a subnormal
  sw[0] = 2;
  if (sw.size() > 1) sw[1] = 254;  // 2^127: overflows to inf unless the block sum is 0
  if (n > 2) sw[size_t((n - 1) * blocks)] = 0xFF;  // the last column NaN
  if (m > 1) sa[size_t(blocks)] = 0xFF;           // the second row NaN
  std::vector<uint8_t> blob(size_t(n * blocks * 17));
  core::prepack_mxfp4_codes(w.data(), k / 2, n, k, 0, (n + 3) / 4, blob.data());
  std::copy(sw.begin(), sw.end(), blob.begin() + core::mxfp4_prepacked_scale_offset(n, k));

  static const double kE2m1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  auto value = [](uint8_t byte, int64_t kk) {
    const uint8_t c = uint8_t(byte >> (4 * (kk & 1))) & 0xF;
    return c & 8 ? -kE2m1[c & 7] : kE2m1[c & 7];
  };
  std::vector<float> want(size_t(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float total = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) {
        double sum = 0.0;
        for (int64_t kk = 32 * b; kk < 32 * b + 32; ++kk) sum += value(a[i * k / 2 + kk / 2], kk) * value(w[j * k / 2 + kk / 2], kk);
        const uint8_t ea = sa[i * blocks + b], ew = sw[j * blocks + b];
        total += (ea == 0xFF || ew == 0xFF) ? NAN : float(sum * std::ldexp(1.0, ea - 127) * std::ldexp(1.0, ew - 127));
      }
      want[i * n + j] = total + (bias_on ? bias[j] : 0.0f);
    }
  }
  auto run = [&](const core::Mxfp4GemmKernels& kernels) {
    std::vector<float> out(size_t(m * n), -7.0f);
    core::Mxfp4GemmProblem p;
    p.m = m; p.n = n; p.k = k; p.a = a.data(); p.lda = k / 2; p.a_scale = sa.data(); p.lda_scale = blocks;
    p.b = prepacked ? blob.data() : w.data(); p.ldb = k / 2; p.b_prepacked = prepacked;
    p.b_scale = prepacked ? blob.data() + core::mxfp4_prepacked_scale_offset(n, k) : sw.data(); p.ldb_scale = blocks;
    p.bias = bias_on ? bias.data() : nullptr;
    p.c = out.data(); p.c_type = FloatType::f32; p.ldc = n;
    const int64_t split = std::min<int64_t>(n, 32);
    kernels.gemm(p, 0, split);
    kernels.gemm(p, split, n);
    return out;
  };
  auto same = [](float x, float y) { return std::memcmp(&x, &y, 4) == 0 || (std::isnan(x) && std::isnan(y)); };
  const core::Mxfp4GemmKernels reference_kernels{&core::reference::mxfp4_gemm};
  const std::vector<float> ref = run(reference_kernels);
  for (int64_t i = 0; i < m * n; ++i) ASSERT_TRUE(same(ref[i], want[i])) << "reference at " << i << ": " << ref[i] << " vs " << want[i];
  for (CpuIsa isa : core::compiled_cpu_isas()) {
    if (!core::cpu_isa_supported(isa)) continue;
    const std::vector<float> out = run(core::mxfp4_gemm_kernels(isa));
    for (int64_t i = 0; i < m * n; ++i) {
      ASSERT_TRUE(same(out[i], want[i])) << core::cpu_isa_name(isa) << " m=" << m << " n=" << n << " k=" << k
                                         << " prepacked=" << prepacked << " at " << i << ": " << out[i] << " vs " << want[i];
    }
  }
}

TEST(Mxfp4W4a4Core, EveryLevelBitwiseEqualToExactBlockSums) {
  uint32_t seed = 900;
  for (bool prepacked : {false, true}) {
    for (int64_t m : {1, 2, 3, 4, 5, 9}) {
      for (int64_t n : {1, 31, 32, 70}) {
        for (int64_t k : {32, 64, 288}) run_w4a4_case(m, n, k, prepacked, (m + n) % 2 == 0, seed++);
      }
    }
    run_w4a4_case(13, 40, 2880, prepacked, true, seed++);
  }
}

TEST(Mxfp4W4a4Core, BlockValue) {
  EXPECT_EQ(core::mxfp4_block_value(4608, 127, 127), 1152.0f);  // 32 products of 6 x 6, / 4 ... times 1
  EXPECT_EQ(core::mxfp4_block_value(1, 0, 0), 0.0f);           // 2^-256
  EXPECT_EQ(core::mxfp4_block_value(1, 127, 8), std::ldexp(1.0f, -121));
  EXPECT_TRUE(std::isinf(core::mxfp4_block_value(2, 254, 254)));
  EXPECT_TRUE(std::isnan(core::mxfp4_block_value(0, 0xFF, 127)));
  const std::array<int, 8> twice{0, 1, 2, 3, 4, 6, 8, 12};
  for (int c = 0; c < 16; ++c) EXPECT_EQ(core::e2m1_times2(uint8_t(c)), (c & 8 ? -1 : 1) * twice[c & 7]);
}

}  // namespace
