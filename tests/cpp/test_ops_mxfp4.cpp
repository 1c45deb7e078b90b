// The ops through the dispatcher (<mxkernels/ops.h>), on CPU and Meta tensors, errors included.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "core/mxfp4.h"
#include "mxfp4_cases.h"
#include "mxkernels/ops.h"

namespace core = mxkernels::core;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "<no error>";
}

at::Tensor random_input(std::vector<int64_t> shape, at::ScalarType dtype, uint32_t seed) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<float> v = mxkernels::testing::random_blocks(n / 32, seed, -30, 30);
  return at::from_blob(v.data(), shape, at::kFloat).to(dtype).clone();
}

TEST(Mxfp4Ops, QuantizeMatchesCoreReferenceOnCpu) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const char* mode : {"floor", "ceil", "even", "rceil"}) {
      at::Tensor x = random_input({3, 5, 128}, dtype, 7);
      auto [q, scales] = mxkernels::quantize_mxfp4(x, mode);
      EXPECT_EQ(q.scalar_type(), at::kFloat4_e2m1fn_x2);
      EXPECT_EQ(scales.scalar_type(), at::kFloat8_e8m0fnu);
      EXPECT_EQ(q.sizes(), at::IntArrayRef({3, 5, 64}));
      EXPECT_EQ(scales.sizes(), at::IntArrayRef({3, 5, 4}));
      std::vector<uint8_t> want_q(15 * 64), want_s(15 * 4);
      core::ScaleMode m;
      ASSERT_TRUE(core::parse_scale_mode(mode, &m));
      core::FloatType t = dtype == at::kFloat ? core::FloatType::f32
                          : dtype == at::kBFloat16 ? core::FloatType::bf16 : core::FloatType::f16;
      core::reference::quantize_mxfp4(x.const_data_ptr(), t, 60, m, want_q.data(), want_s.data());
      EXPECT_EQ(0, std::memcmp(want_q.data(), q.const_data_ptr(), want_q.size())) << mode;
      EXPECT_EQ(0, std::memcmp(want_s.data(), scales.const_data_ptr(), want_s.size())) << mode;
    }
  }
}

TEST(Mxfp4Ops, NonContiguousLeadingDimsAndOutVariant) {
  at::Tensor base = random_input({6, 4, 96}, at::kBFloat16, 11);
  at::Tensor x = base.transpose(0, 1);  // [4, 6, 96], leading dims not contiguous
  ASSERT_FALSE(x.is_contiguous());
  auto [q, s] = mxkernels::quantize_mxfp4(x, "even");
  auto [q2, s2] = mxkernels::quantize_mxfp4(x.contiguous(), "even");
  EXPECT_TRUE(at::equal(q.view(at::kByte), q2.view(at::kByte)));
  EXPECT_TRUE(at::equal(s.view(at::kByte), s2.view(at::kByte)));
  at::Tensor q3 = at::empty({4, 6, 48}, at::kByte), s3 = at::empty({4, 6, 3}, at::kByte);
  mxkernels::quantize_mxfp4_out(x, q3, s3, "even");
  EXPECT_TRUE(at::equal(q3, q2.view(at::kByte)));
  EXPECT_TRUE(at::equal(s3, s2.view(at::kByte)));
}

TEST(Mxfp4Ops, DequantizeRoundTrip) {
  at::Tensor x = random_input({2, 64}, at::kFloat, 3);
  auto [q, s] = mxkernels::quantize_mxfp4(x, "rceil");
  at::Tensor y = mxkernels::dequantize_mxfp4(q, s, at::kBFloat16);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  EXPECT_EQ(y.sizes(), x.sizes());
  // Each value moves by at most half a step of the coarsest E2M1 spacing (2 units of the scale).
  at::Tensor scale = at::pow(2.0, s.view(at::kByte).to(at::kFloat) - 127).repeat_interleave(32, -1);
  EXPECT_TRUE(((y.to(at::kFloat) - x).abs() <= scale * 1.0 + 1e-30).all().item<bool>());
  // uint8 views are accepted as checkpoints store them.
  EXPECT_TRUE(at::equal(mxkernels::dequantize_mxfp4(q.view(at::kByte), s.view(at::kByte), at::kBFloat16), y));
}

TEST(Mxfp4Ops, MetaShapesDtypesAndStrides) {
  at::Tensor x = at::empty({7, 3, 256}, at::TensorOptions().device(at::kMeta).dtype(at::kHalf));
  auto [q, s] = mxkernels::quantize_mxfp4(x);
  EXPECT_TRUE(q.is_meta());
  EXPECT_EQ(q.sizes(), at::IntArrayRef({7, 3, 128}));
  EXPECT_EQ(q.strides(), at::IntArrayRef({384, 128, 1}));
  EXPECT_EQ(s.sizes(), at::IntArrayRef({7, 3, 8}));
  at::Tensor y = mxkernels::dequantize_mxfp4(q, s, at::kHalf);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_EQ(y.scalar_type(), at::kHalf);
}

TEST(Mxfp4Ops, EmptyLeadingDims) {
  at::Tensor x = at::empty({0, 64}, at::kFloat);
  auto [q, s] = mxkernels::quantize_mxfp4(x);
  EXPECT_EQ(q.sizes(), at::IntArrayRef({0, 32}));
  EXPECT_EQ(mxkernels::dequantize_mxfp4(q, s).sizes(), at::IntArrayRef({0, 64}));
}

// Every rejected input gets the same message from the CPU kernel and the Meta kernel.
TEST(Mxfp4Ops, ErrorsAreClearAndIdenticalOnCpuAndMeta) {
  struct Case {
    std::function<void(at::Device)> call;
    std::string expect;
  };
  auto opts = [](at::Device d, at::ScalarType t) { return at::TensorOptions().device(d).dtype(t); };
  const std::vector<Case> cases = {
      {[&](at::Device d) { mxkernels::quantize_mxfp4(at::empty({4, 64}, opts(d, at::kInt))); },
       "mxkernels.quantize_mxfp4: x must be Float, BFloat16 or Half, got Int"},
      {[&](at::Device d) { mxkernels::quantize_mxfp4(at::empty({4, 48}, opts(d, at::kFloat))); },
       "mxkernels.quantize_mxfp4: x.size(-1) must be a positive multiple of 32, got 48"},
      {[&](at::Device d) { mxkernels::quantize_mxfp4(at::empty({64, 4}, opts(d, at::kFloat)).t()); },
       "mxkernels.quantize_mxfp4: x.stride(-1) must be 1, got 4"},
      {[&](at::Device d) { mxkernels::quantize_mxfp4(at::empty({4, 0}, opts(d, at::kFloat))); },
       "x.size(-1) must be a positive multiple of 32, got 0"},
      {[&](at::Device d) { mxkernels::quantize_mxfp4(at::empty({4, 64}, opts(d, at::kFloat)), "round"); },
       "scale_mode must be one of 'floor', 'ceil', 'even', 'rceil', got 'round'"},
      {[&](at::Device d) { mxkernels::quantize_mxfp4(at::empty({}, opts(d, at::kFloat))); },
       "x must have at least one dimension"},
      {[&](at::Device d) {
         at::Tensor q = at::empty({4, 31}, opts(d, at::kByte)), s = at::empty({4, 2}, opts(d, at::kByte));
         mxkernels::quantize_mxfp4_out(at::empty({4, 64}, opts(d, at::kFloat)), q, s);
       },
       "mxkernels.quantize_mxfp4_out: q must have shape [4, 32], got [4, 31]"},
      {[&](at::Device d) {
         at::Tensor q = at::empty({4, 32}, opts(d, at::kFloat)), s = at::empty({4, 2}, opts(d, at::kByte));
         mxkernels::quantize_mxfp4_out(at::empty({4, 64}, opts(d, at::kFloat)), q, s);
       },
       "q must be float4_e2m1fn_x2 or uint8"},
      {[&](at::Device d) {
         mxkernels::dequantize_mxfp4(at::empty({4, 32}, opts(d, at::kByte)), at::empty({4, 3}, opts(d, at::kByte)));
       },
       "mxkernels.dequantize_mxfp4: scales of shape [4, 3] do not match q of shape [4, 32]"},
      {[&](at::Device d) {
         mxkernels::dequantize_mxfp4(at::empty({4, 32}, opts(d, at::kByte)), at::empty({5, 2}, opts(d, at::kByte)));
       },
       "scales of shape [5, 2] do not match q of shape [4, 32]"},
      {[&](at::Device d) {
         mxkernels::dequantize_mxfp4(at::empty({4, 32}, opts(d, at::kHalf)), at::empty({4, 2}, opts(d, at::kByte)));
       },
       "q must be float4_e2m1fn_x2 or uint8 (two E2M1 codes per byte), got Half"},
      {[&](at::Device d) {
         mxkernels::dequantize_mxfp4(at::empty({4, 32}, opts(d, at::kByte)), at::empty({4, 2}, opts(d, at::kByte)),
                                     at::kDouble);
       },
       "dtype must be Float, BFloat16 or Half, got Double"},
      {[&](at::Device d) {
         mxkernels::dequantize_mxfp4(at::empty({32, 4}, opts(d, at::kByte)).t(), at::empty({4, 2}, opts(d, at::kByte)));
       },
       "q.stride(-1) must be 1, got 4"},
  };
  for (const Case& c : cases) {
    const std::string cpu = error_of([&] { c.call(at::kCPU); });
    const std::string meta = error_of([&] { c.call(at::kMeta); });
    EXPECT_NE(cpu.find(c.expect), std::string::npos) << "got: " << cpu;
    EXPECT_EQ(cpu, meta);
  }
}

}  // namespace
