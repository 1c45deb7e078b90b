// Every CPU level this machine runs, bit for bit against the scalar reference (csrc/core/mxfp4_reference.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_isa.h"
#include "mxfp4.h"
#include "core_test_utils.h"
#include "mxfp4_cases.h"

namespace core = mxkernels::core;
using core::CpuIsa;
using core::FloatType;
using core::ScaleMode;

namespace {

const ScaleMode kModes[] = {ScaleMode::floor, ScaleMode::ceil, ScaleMode::even, ScaleMode::rceil};
const FloatType kTypes[] = {FloatType::f32, FloatType::bf16, FloatType::f16};

using mxkernels::testing::encode;
using mxkernels::testing::runnable_isas;

struct Quantized {
  std::vector<uint8_t> q, scales;
};

Quantized run_quantize(core::QuantizeMxfp4Fn fn, const std::vector<uint8_t>& x, FloatType type, int64_t n_blocks,
                       ScaleMode mode) {
  Quantized r{std::vector<uint8_t>(size_t(n_blocks) * 16, 0xAB), std::vector<uint8_t>(size_t(n_blocks), 0xAB)};
  fn(x.data(), type, n_blocks, mode, r.q.data(), r.scales.data());
  return r;
}

// Index of the first differing block, or -1.
int64_t first_mismatch(const Quantized& a, const Quantized& b, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i) {
    if (a.scales[i] != b.scales[i] || std::memcmp(&a.q[i * 16], &b.q[i * 16], 16) != 0) return i;
  }
  return -1;
}

std::string describe_block(const std::vector<uint8_t>& x, FloatType type, int64_t block) {
  std::string s;
  for (int i = 0; i < 32; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.9g", i ? " " : "", core::load_as_f32(x.data(), type, block * 32 + i));
    s += buf;
  }
  return s;
}

void expect_quantize_matches_reference(const std::vector<float>& values, const char* what) {
  const int64_t n_blocks = int64_t(values.size() / 32);
  for (CpuIsa isa : runnable_isas()) {
    const core::Mxfp4Kernels& k = core::mxfp4_kernels(isa);
    for (FloatType type : kTypes) {
      const std::vector<uint8_t> x = encode(values, type);
      for (ScaleMode mode : kModes) {
        const Quantized want = run_quantize(&core::reference::quantize_mxfp4, x, type, n_blocks, mode);
        const Quantized got = run_quantize(k.quantize, x, type, n_blocks, mode);
        const int64_t bad = first_mismatch(want, got, n_blocks);
        EXPECT_EQ(bad, -1) << what << ": isa=" << core::cpu_isa_name(isa) << " type=" << core::float_type_name(type)
                           << " mode=" << core::scale_mode_name(mode) << " block " << bad << " = ["
                           << (bad >= 0 ? describe_block(x, type, bad) : "") << "] scale want "
                           << int(bad >= 0 ? want.scales[bad] : 0) << " got " << int(bad >= 0 ? got.scales[bad] : 0);
      }
    }
  }
}

TEST(Mxfp4Core, SomeLevelBeyondScalarIsTestedOnX86) {
  // On x86-64 hosts with AVX2 (every CI machine) the SIMD kernels must be among those tested.
  if (!core::cpu_isa_supported(CpuIsa::avx2)) GTEST_SKIP() << "no AVX2 here";
  EXPECT_GE(runnable_isas().size(), 2u);
}

TEST(Mxfp4Core, QuantizeRandomMatchesReference) {
  expect_quantize_matches_reference(mxkernels::testing::random_blocks(4096, 1234), "random");
  expect_quantize_matches_reference(mxkernels::testing::random_blocks(4096, 99, -20, 20), "random narrow");
}

TEST(Mxfp4Core, QuantizeEdgeCasesMatchReference) {
  expect_quantize_matches_reference(mxkernels::testing::edge_blocks(), "edge");
}

TEST(Mxfp4Core, QuantizeEveryBf16BitPatternMatchesReference) {
  // All 65536 bf16 values, 32 to a block, and again with each block's maximum pushed to the front.
  std::vector<float> v(65536);
  for (uint32_t i = 0; i < 65536; ++i) v[i] = core::bf16_to_f32(uint16_t(i));
  expect_quantize_matches_reference(v, "all bf16");
  for (size_t b = 0; b + 32 <= v.size(); b += 32) std::swap(v[b], v[b + (b / 32) % 32]);
  expect_quantize_matches_reference(v, "all bf16, shuffled");
}

TEST(Mxfp4Core, ReferenceRules) {
  // Spot checks of the rules in docs/formats.md, independent of any kernel.
  auto quantize_one = [](std::vector<float> b, ScaleMode mode) {
    b.resize(32, 0.0f);
    Quantized r{std::vector<uint8_t>(16), std::vector<uint8_t>(1)};
    core::reference::quantize_mxfp4(b.data(), FloatType::f32, 1, mode, r.q.data(), r.scales.data());
    return r;
  };
  // 6.0: floor takes 2^(2-2) = 1 and the code of 6 (0x7); rceil: ceil(log2(6/6)) = 0.
  EXPECT_EQ(quantize_one({6.0f}, ScaleMode::floor).scales[0], 127);
  EXPECT_EQ(quantize_one({6.0f}, ScaleMode::floor).q[0], 0x7);
  EXPECT_EQ(quantize_one({6.0f}, ScaleMode::rceil).scales[0], 127);
  // 7.0: floor keeps scale 1 and saturates to 6; ceil and rceil move to scale 2 and give 3.5 -> 4 (0x6).
  EXPECT_EQ(quantize_one({7.0f}, ScaleMode::floor).q[0], 0x7);
  EXPECT_EQ(quantize_one({7.0f}, ScaleMode::ceil).scales[0], 128);
  EXPECT_EQ(quantize_one({7.0f}, ScaleMode::ceil).q[0], 0x6);
  EXPECT_EQ(quantize_one({7.0f}, ScaleMode::rceil).scales[0], 128);
  // even: 7 = 1.75 * 4 rounds up to 8, scale 2; 6.9 does not.
  EXPECT_EQ(quantize_one({7.0f}, ScaleMode::even).scales[0], 128);
  EXPECT_EQ(quantize_one({6.9f}, ScaleMode::even).scales[0], 127);
  // Ties at scale 1 (block max 4 pins floor's scale to 1): 0.25 -> 0, 0.75 -> 1.0, 1.25 -> 1.0, 1.75 -> 2.
  const Quantized t = quantize_one({4.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f}, ScaleMode::floor);
  EXPECT_EQ(t.scales[0], 127);
  EXPECT_EQ(t.q[0], 0x06);  // 4 -> 0x6, 0.25 -> 0x0
  EXPECT_EQ(t.q[1], 0x22);  // 0.75 -> 0x2, 1.25 -> 0x2
  EXPECT_EQ(t.q[2], 0x44);  // 1.75 -> 0x4, 2.5 -> 0x4
  EXPECT_EQ(t.q[3], 0x66);  // 3.5 -> 0x6, 5.0 -> 0x6
  // Zeros: scale byte 0 and codes carrying the sign.
  const Quantized z = quantize_one({0.0f, -0.0f}, ScaleMode::rceil);
  EXPECT_EQ(z.scales[0], 0);
  EXPECT_EQ(z.q[0], 0x80);
  // NaN or infinity anywhere: scale 0xFF, every code 0.
  for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    for (ScaleMode mode : kModes) {
      const Quantized n = quantize_one({1.0f, bad, -2.0f}, mode);
      EXPECT_EQ(n.scales[0], 0xFF);
      for (uint8_t b : n.q) EXPECT_EQ(b, 0);
    }
  }
}

TEST(Mxfp4Core, DequantizeEveryCodeAndScaleMatchesReference) {
  // Every byte of codes with every scale byte, 0xFF (NaN) included.
  const int64_t n_blocks = 256 * 16;
  std::vector<uint8_t> q(size_t(n_blocks) * 16);
  std::vector<uint8_t> scales(static_cast<size_t>(n_blocks));
  for (int64_t b = 0; b < n_blocks; ++b) {
    scales[b] = uint8_t(b % 256);
    for (int i = 0; i < 16; ++i) q[b * 16 + i] = uint8_t((b / 256) * 16 + i);
  }
  for (CpuIsa isa : runnable_isas()) {
    for (FloatType type : kTypes) {
      const size_t bytes = size_t(n_blocks) * 32 * core::float_type_bytes(type);
      std::vector<uint8_t> want(bytes), got(bytes, 0xCD);
      core::reference::dequantize_mxfp4(q.data(), scales.data(), n_blocks, type, want.data());
      core::mxfp4_kernels(isa).dequantize(q.data(), scales.data(), n_blocks, type, got.data());
      for (int64_t i = 0; i < n_blocks * 32; ++i) {
        const float w = core::load_as_f32(want.data(), type, i), g = core::load_as_f32(got.data(), type, i);
        const bool same = std::isnan(w) ? std::isnan(g)
                                        : std::memcmp(&want[i * core::float_type_bytes(type)],
                                                      &got[i * core::float_type_bytes(type)],
                                                      core::float_type_bytes(type)) == 0;
        ASSERT_TRUE(same) << "isa=" << core::cpu_isa_name(isa) << " type=" << core::float_type_name(type)
                          << " value " << i << ": want " << w << " got " << g;
      }
    }
  }
}

TEST(Mxfp4Core, RoundTripOfGridValuesIsExact) {
  // Values on the E2M1 grid times a power of two come back unchanged through quantize -> dequantize.
  std::vector<float> v(32 * 64);
  const float grid[] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t b = int64_t(i / 32);
    v[i] = (i % 32 == 0 ? 6.0f : grid[i % 8]) * std::ldexp(1.0f, int(b) - 32) * ((i % 3) ? 1.f : -1.f);
  }
  for (CpuIsa isa : runnable_isas()) {
    const core::Mxfp4Kernels& k = core::mxfp4_kernels(isa);
    std::vector<uint8_t> q(64 * 16), s(64);
    k.quantize(v.data(), FloatType::f32, 64, ScaleMode::floor, q.data(), s.data());
    std::vector<float> back(v.size());
    k.dequantize(q.data(), s.data(), 64, FloatType::f32, back.data());
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(back[i], v[i]) << core::cpu_isa_name(isa) << " at " << i;
  }
}

TEST(CpuIsa, NamesParseAndSelection) {
  for (CpuIsa isa : core::compiled_cpu_isas()) {
    CpuIsa parsed;
    ASSERT_TRUE(core::parse_cpu_isa(core::cpu_isa_name(isa), &parsed));
    EXPECT_EQ(parsed, isa);
  }
  CpuIsa unused;
  EXPECT_FALSE(core::parse_cpu_isa("sse9", &unused));
  EXPECT_TRUE(core::cpu_isa_supported(CpuIsa::scalar));
  const CpuIsa before = core::selected_cpu_isa();
  core::set_cpu_isa(CpuIsa::scalar);
  EXPECT_EQ(core::selected_cpu_isa(), CpuIsa::scalar);
  core::set_cpu_isa(before);
  EXPECT_EQ(core::selected_cpu_isa(), before);
  if (!core::cpu_isa_supported(CpuIsa::avx512)) {
    EXPECT_THROW(core::set_cpu_isa(CpuIsa::avx512), std::invalid_argument);
  }
}

TEST(ScaleMode, NamesParse) {
  for (ScaleMode m : kModes) {
    ScaleMode parsed;
    ASSERT_TRUE(core::parse_scale_mode(core::scale_mode_name(m), &parsed));
    EXPECT_EQ(parsed, m);
  }
  ScaleMode unused;
  EXPECT_FALSE(core::parse_scale_mode("round", &unused));
}

TEST(FloatTypes, HalfConversionsMatchHardware) {
  // Every fp16 pattern converts to fp32 and back unchanged (NaNs stay NaN), and fp32 -> fp16 rounds to
  // nearest even, checked on the midpoints between neighbouring halves.
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = core::f16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(((core::f32_to_f16(f) & 0x7C00) == 0x7C00) && (core::f32_to_f16(f) & 0x3FF));
      continue;
    }
    ASSERT_EQ(core::f32_to_f16(f), h) << h;
    if ((h & 0x7FFF) < 0x7BFF) {
      const float next = core::f16_to_f32(uint16_t(h + 1));
      const float mid = f + (next - f) / 2;  // exact in fp32
      const uint16_t even = (h & 1) ? uint16_t(h + 1) : uint16_t(h);
      ASSERT_EQ(core::f32_to_f16(mid), even) << "midpoint above " << h;
      const float away = std::nextafter(mid, std::signbit(mid) ? -INFINITY : INFINITY);
      ASSERT_EQ(core::f32_to_f16(away), uint16_t(h + 1)) << h;
    }
  }
  EXPECT_EQ(core::f32_to_f16(65520.0f), 0x7C00);
  EXPECT_EQ(core::f32_to_f16(65519.0f), 0x7BFF);
}

}  // namespace
