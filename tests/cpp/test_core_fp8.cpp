// FP8 E4M3 quantization on every CPU level this machine runs, bit for bit against the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu_isa.h"
#include "fp8.h"
#include "core_test_utils.h"
#include "mxfp4_cases.h"

namespace core = mxkernels::core;
using core::CpuIsa;
using core::FloatType;

namespace {

using mxkernels::testing::encode;
using mxkernels::testing::runnable_isas;

bool same_scale(float a, float b) { return (std::isnan(a) && std::isnan(b)) || core::f32_bits(a) == core::f32_bits(b); }

void expect_groups_match(std::vector<float> values, int64_t group_size, const char* what) {
  const int64_t n_groups = int64_t(values.size()) / group_size;
  values.resize(size_t(n_groups * group_size));
  for (CpuIsa isa : runnable_isas()) {
    for (FloatType type : {FloatType::f32, FloatType::bf16, FloatType::f16}) {
      const std::vector<uint8_t> x = encode(values, type);
      for (bool ue8m0 : {false, true}) {
        for (float eps : {1e-10f, 1e-4f}) {
          std::vector<uint8_t> q_ref(values.size(), 0xAB), q(values.size(), 0xCD);
          std::vector<float> s_ref(static_cast<size_t>(n_groups)), s(static_cast<size_t>(n_groups));
          core::reference::quantize_fp8_groups(x.data(), type, n_groups, group_size, eps, ue8m0, q_ref.data(), s_ref.data());
          core::fp8_kernels(isa).quantize_groups(x.data(), type, n_groups, group_size, eps, ue8m0, q.data(), s.data());
          for (int64_t g = 0; g < n_groups; ++g) {
            ASSERT_TRUE(same_scale(s_ref[g], s[g])) << what << " isa=" << core::cpu_isa_name(isa) << " type="
                                                    << core::float_type_name(type) << " group " << g;
          }
          for (size_t i = 0; i < values.size(); ++i) {
            ASSERT_EQ(int(q_ref[i]), int(q[i])) << what << " isa=" << core::cpu_isa_name(isa) << " type="
                                                << core::float_type_name(type) << " ue8m0=" << ue8m0 << " value " << i
                                                << " = " << core::load_as_f32(x.data(), type, int64_t(i));
          }
        }
      }
    }
  }
}

TEST(Fp8Core, EveryBf16PatternAtScaleOne) {
  // Scale 1 turns quantize_scaled into the plain cast: every bf16 value (ties, subnormals, ±448 and beyond,
  // infinities, NaNs) through every level.
  std::vector<float> v(65536);
  for (uint32_t i = 0; i < 65536; ++i) v[i] = core::bf16_to_f32(uint16_t(i));
  const std::vector<uint8_t> x = encode(v, FloatType::f32);
  std::vector<uint8_t> want(v.size());
  core::reference::quantize_fp8_scaled(x.data(), FloatType::f32, int64_t(v.size()), 1.0f, want.data());
  for (CpuIsa isa : runnable_isas()) {
    std::vector<uint8_t> got(v.size());
    core::fp8_kernels(isa).quantize_scaled(x.data(), FloatType::f32, int64_t(v.size()), 1.0f, got.data());
    for (size_t i = 0; i < v.size(); ++i)
      ASSERT_EQ(int(want[i]), int(got[i])) << core::cpu_isa_name(isa) << " value " << v[i];
  }
}

TEST(Fp8Core, GroupsMatchReference) {
  expect_groups_match(mxkernels::testing::random_blocks(512, 5, -30, 30), 128, "random g=128");
  expect_groups_match(mxkernels::testing::random_blocks(512, 6, -140, 120), 32, "wide g=32");
  expect_groups_match(mxkernels::testing::random_blocks(64, 7, -10, 10), 7 * 32, "g=224");
  std::vector<float> odd = mxkernels::testing::random_blocks(20, 8, -10, 10);
  odd.resize(21 * 29);
  expect_groups_match(odd, 21, "g=21 (vector tails)");
  expect_groups_match(mxkernels::testing::edge_blocks(), 32, "edge g=32");
}

TEST(Fp8Core, ReferenceRules) {
  namespace ref = core::reference;
  // Every finite code survives decode -> encode; NaN codes keep their sign.
  for (int c = 0; c < 256; ++c) {
    const float v = ref::e4m3_to_f32(uint8_t(c));
    if ((c & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(v));
      EXPECT_EQ(int(ref::e4m3_from_f32(v)), c);
      continue;
    }
    EXPECT_EQ(int(ref::e4m3_from_f32(v)), c) << v;
  }
  EXPECT_EQ(ref::e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(ref::e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(ref::e4m3_from_f32(1000.0f), 0x7E);                        // saturates
  EXPECT_EQ(ref::e4m3_from_f32(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(ref::e4m3_from_f32(std::ldexp(1.0f, -10)), 0x00);         // tie between 0 and 2^-9: even
  EXPECT_EQ(ref::e4m3_from_f32(std::ldexp(3.0f, -10)), 0x02);         // tie between 2^-9 and 2^-8: even
  EXPECT_EQ(ref::e4m3_from_f32(1.0625f), 0x38);                         // tie between 1 and 1.125: even
  EXPECT_EQ(ref::e4m3_from_f32(1.1875f), 0x3A);                         // tie between 1.125 and 1.25: even
  // Scales: eps floors an all-zero group; ue8m0 rounds up to a power of two; NaN propagates.
  EXPECT_EQ(core::fp8_scale(0.0f, 1e-10f, false), 1e-10f / 448.0f);
  EXPECT_EQ(core::fp8_scale(448.0f, 1e-10f, false), 1.0f);
  EXPECT_EQ(core::fp8_scale(449.0f, 1e-10f, true), 2.0f);
  EXPECT_EQ(core::fp8_scale(224.0f, 1e-10f, true), 0.5f);
  EXPECT_TRUE(std::isnan(core::fp8_scale(std::nanf(""), 1e-10f, true)));
  EXPECT_EQ(ref::round_up_pow2(std::ldexp(1.5f, -140)), std::ldexp(1.0f, -139));
}

TEST(Fp8Core, NonFiniteGroups) {
  // A NaN makes the group's scale NaN and every code NaN; an infinity makes the scale +Inf, itself NaN (Inf/Inf)
  // and the other values ±0.
  std::vector<float> v(64, 1.0f);
  v[3] = std::nanf("");
  v[32 + 5] = -std::numeric_limits<float>::infinity();
  v[32 + 6] = -2.0f;
  for (CpuIsa isa : runnable_isas()) {
    std::vector<uint8_t> q(64);
    std::vector<float> s(2);
    core::fp8_kernels(isa).quantize_groups(v.data(), FloatType::f32, 2, 32, 1e-10f, false, q.data(), s.data());
    EXPECT_TRUE(std::isnan(s[0]));
    for (int i = 0; i < 32; ++i) EXPECT_EQ(q[i] & 0x7F, 0x7F);
    EXPECT_TRUE(std::isinf(s[1]));
    EXPECT_EQ(q[32 + 5], 0xFF);  // -Inf / +Inf = -NaN
    EXPECT_EQ(q[32 + 6], 0x80);  // -2 / Inf = -0
    EXPECT_EQ(q[32], 0x00);
  }
}

TEST(Fp8Core, AbsMaxBits) {
  std::vector<float> v = mxkernels::testing::random_blocks(100, 9, -20, 20);
  v.resize(3199);
  for (CpuIsa isa : runnable_isas()) {
    for (FloatType type : {FloatType::f32, FloatType::bf16, FloatType::f16}) {
      const std::vector<uint8_t> x = encode(v, type);
      EXPECT_EQ(core::reference::abs_max_bits(x.data(), type, 3199), core::fp8_kernels(isa).abs_max_bits(x.data(), type, 3199));
    }
  }
}

}  // namespace
