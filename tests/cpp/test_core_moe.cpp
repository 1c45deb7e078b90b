// The MoE pieces around the GEMMs: routing, activations, the weighted combine and top-k softmax, against plain
// double-precision formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "moe.h"

namespace mxkernels::core {
namespace {

TEST(MoeRoute, GroupsPairsByLocalExpertInPairOrder) {
  // 3 tokens, k = 2, global ids through a map onto 2 local experts; global 1 and 3 are elsewhere.
  const std::vector<int32_t> ids = {2, 0, 1, 2, 0, 3};
  const std::vector<int32_t> map = {1, -1, 0, -1};
  MoeRouting r;
  const MoeRouteStatus s = moe_route(ids.data(), false, 3, 2, map.data(), 4, 2, &r);
  ASSERT_EQ(s.error, MoeRouteError::none);
  EXPECT_EQ(r.expert_offsets, (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(r.row_pair, (std::vector<int64_t>{0, 3, 1, 4}));  // local 0 = global 2: pairs 0, 3; local 1: pairs 1, 4
  EXPECT_EQ(r.pair_row, (std::vector<int64_t>{0, 2, -1, 1, 3, -1}));
}

TEST(MoeRoute, ReportsTheFirstBadIdOrMapEntry) {
  MoeRouting r;
  const std::vector<int64_t> ids = {0, 1, 7, -1};
  MoeRouteStatus s = moe_route(ids.data(), true, 2, 2, nullptr, 4, 4, &r);
  EXPECT_EQ(s.error, MoeRouteError::id_out_of_range);
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.value, 7);
  const std::vector<int32_t> ok_ids = {0, 1, 2, 3};
  const std::vector<int32_t> map = {0, 1, -2, 0};
  s = moe_route(ok_ids.data(), false, 2, 2, map.data(), 4, 2, &r);
  EXPECT_EQ(s.error, MoeRouteError::map_value_out_of_range);
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.value, -2);
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

TEST(MoeActivation, SiluAndSwigluOaiWithClampsAndNan) {
  const int64_t inter = 6;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> gu = {-9.0f, -1.0f, 0.0f, 0.5f, 7.5f, nan, 1.0f, -8.0f, 2.0f, 9.0f, -0.25f, 3.0f};
  std::vector<float> out(inter);
  moe_activation(gu.data(), 2 * inter, 1, inter, MoeActivation::silu, 1.702f, 7.0f, false, out.data(), inter);
  for (int64_t c = 0; c < inter; ++c) {
    const double g = gu[c], u = gu[inter + c];
    if (std::isnan(g)) {
      EXPECT_TRUE(std::isnan(out[c]));
      continue;
    }
    EXPECT_NEAR(out[c], g * sigmoid(g) * u, 1e-6 * (1 + std::fabs(g * u)));
  }
  moe_activation(gu.data(), 2 * inter, 1, inter, MoeActivation::swiglu_oai, 1.702f, 7.0f, false, out.data(), inter);
  for (int64_t c = 0; c < inter; ++c) {
    if (std::isnan(gu[2 * c]) || std::isnan(gu[2 * c + 1])) {  // NaN passes the clamps
      EXPECT_TRUE(std::isnan(out[c]));
      continue;
    }
    const double g = std::min<double>(gu[2 * c], 7.0), u = std::max(-7.0, std::min<double>(gu[2 * c + 1], 7.0));
    EXPECT_NEAR(out[c], g * sigmoid(1.702 * g) * (u + 1), 1e-6 * (1 + std::fabs(g * u)));
  }
  // Rounded to bfloat16: the float's low 16 bits are zero.
  moe_activation(gu.data(), 2 * inter, 1, inter, MoeActivation::swiglu_oai, 1.702f, 7.0f, true, out.data(), inter);
  for (float v : out) EXPECT_EQ(f32_bits(v) & 0xFFFFu, 0u);
}

TEST(MoeCombine, WeightedSumInSlotOrderSkippingAbsentPairs) {
  const std::vector<float> y = {1, 2, 10, 20, 100, 200};  // 3 rows of h = 2
  const std::vector<float> w = {0.5f, 0.25f, 2.0f, 4.0f};
  const std::vector<int64_t> pair_row = {2, 0, -1, 1};
  std::vector<float> out(4, -1.0f);
  moe_combine(y.data(), 2, w.data(), pair_row.data(), 2, 0, 2, FloatType::f32, out.data());
  EXPECT_EQ(out, (std::vector<float>{50.25f, 100.5f, 40.0f, 80.0f}));
}

TEST(TopkSoftmax, DescendingTiesToLowerIndexNanFirst) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 0.0f, 2.0f, nan, 1.0f, nan};
  std::vector<float> w(4);
  std::vector<int32_t> ids(4);
  topk_softmax(logits.data(), 2, 4, 2, false, w.data(), ids.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2, 1, 3}));
  const double sum = std::exp(-2.0) + 2.0 + std::exp(-3.0);
  EXPECT_NEAR(w[0], 1.0 / sum, 1e-6);
  EXPECT_NEAR(w[1], 1.0 / sum, 1e-6);
  EXPECT_TRUE(std::isnan(w[2]) && std::isnan(w[3]));
  topk_softmax(logits.data(), 1, 4, 3, true, w.data(), ids.data());
  EXPECT_EQ(ids[2], 0);
  const double sel = 2.0 + std::exp(-2.0);
  EXPECT_NEAR(w[0], 1.0 / sel, 1e-6);
  EXPECT_NEAR(w[2], std::exp(-2.0) / sel, 1e-6);
}

}  // namespace
}  // namespace mxkernels::core
