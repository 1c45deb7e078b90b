#include "ops/moe/check.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <string>

#include "ops/common/tensor_checks.h"

namespace mxkernels::ops {
namespace {

constexpr const char* kOp = "mxkernels.fused_moe";
constexpr std::initializer_list<at::ScalarType> kFloatDtypes = {at::kFloat, at::kBFloat16, at::kHalf};

c10::SymInt ceil_div(const c10::SymInt& a, int64_t b) { return (a + (b - 1)) / b; }

// A multiple of 32 along K, which both formats need: MXFP4's block, and FP8's float32 sums over 32-, 64- or 128-value
// segments inside each 128-wide scale block (docs/formats.md).
void check_dim_32(const char* what, const c10::SymInt& v) {
  TORCH_SYM_CHECK(v.sym_gt(0) & (v % 32).sym_eq(0), kOp, ": ", what, " must be a positive multiple of 32, got ",
                  sym_str(v));
}

MoeWeightFormat format_of(const at::Tensor& w13) {
  const at::ScalarType t = w13.scalar_type();
  if (t == at::kFloat8_e4m3fn) return MoeWeightFormat::fp8;
  TORCH_CHECK(dtype_in(t, {at::kFloat4_e2m1fn_x2, at::kByte}), kOp,
              ": w13 must be float4_e2m1fn_x2 or uint8 (MXFP4 codes or a prepacked blob) or float8_e4m3fn (FP8), got ", t);
  return MoeWeightFormat::mxfp4;
}

// One expert-stacked weight, [E, N, ...] holding E matrices of N rows over K; returns whether it is prepacked.
bool check_weight(MoeWeightFormat format, const char* name, const char* scales_name, const at::Tensor& w,
                  const std::optional<at::Tensor>& scales, const c10::SymInt& e, const c10::SymInt& n,
                  const c10::SymInt& k) {
  if (format == MoeWeightFormat::mxfp4) {
    TORCH_CHECK(dtype_in(w.scalar_type(), {at::kFloat4_e2m1fn_x2, at::kByte}), kOp, ": ", name,
                " must be MXFP4 like w13 (float4_e2m1fn_x2 or uint8), got ", w.scalar_type());
    TORCH_CHECK(w.dim() == 3 || w.dim() == 4, kOp, ": ", name, " must be 3-D [E, N, K/2] (codes) or 4-D [E, N, K/32, 17] ",
                "(prepacked), got shape ", sizes_string(w.sym_sizes()));
    if (w.dim() == 4) {
      TORCH_CHECK(w.scalar_type() == at::kByte, kOp, ": a prepacked ", name, " must be uint8, got ", w.scalar_type());
      check_sizes_equal(kOp, name, w, {e, n, k / 32, c10::SymInt(17)});
      TORCH_SYM_CHECK(w.sym_is_contiguous(), kOp, ": prepacked ", name, " must be contiguous, got strides ",
                      sizes_string(w.sym_strides()));
      TORCH_CHECK(!scales.has_value(), kOp, ": ", scales_name, " must be None with a prepacked ", name,
                  " (its scales are inside), got a tensor of shape ", sizes_string(scales->sym_sizes()));
      return true;
    }
    check_sizes_equal(kOp, name, w, {e, n, k / 2});
    TORCH_CHECK(scales.has_value(), kOp, ": ", scales_name, " [E, N, K/32] is required with a plain ", name,
                " (None only with a prepacked one)");
    TORCH_CHECK(dtype_in(scales->scalar_type(), {at::kFloat8_e8m0fnu, at::kByte}), kOp, ": ", scales_name,
                " must be float8_e8m0fnu or uint8 (E8M0 scales), got ", scales->scalar_type());
    check_sizes_equal(kOp, scales_name, *scales, {e, n, k / 32});
    TORCH_SYM_CHECK(w.sym_stride(2).sym_eq(1), kOp, ": ", name, ".stride(-1) must be 1, got ", sym_str(w.sym_stride(2)));
    TORCH_SYM_CHECK(scales->sym_stride(2).sym_eq(1), kOp, ": ", scales_name, ".stride(-1) must be 1, got ",
                    sym_str(scales->sym_stride(2)));
    return false;
  }
  TORCH_CHECK(w.scalar_type() == at::kFloat8_e4m3fn, kOp, ": ", name, " must be float8_e4m3fn like w13, got ",
              w.scalar_type());
  TORCH_CHECK(w.dim() == 3 || w.dim() == 4, kOp, ": ", name, " must be 3-D [E, N, K] or 4-D [E, N, K/2, 2] (prepacked), ",
              "got shape ", sizes_string(w.sym_sizes()));
  const bool prepacked = w.dim() == 4;
  if (prepacked) {
    check_sizes_equal(kOp, name, w, {e, n, k / 2, c10::SymInt(2)});
    TORCH_SYM_CHECK(w.sym_is_contiguous(), kOp, ": prepacked ", name, " must be contiguous, got strides ",
                    sizes_string(w.sym_strides()));
  } else {
    check_sizes_equal(kOp, name, w, {e, n, k});
    TORCH_SYM_CHECK(w.sym_stride(2).sym_eq(1), kOp, ": ", name, ".stride(-1) must be 1, got ", sym_str(w.sym_stride(2)));
  }
  TORCH_CHECK(scales.has_value(), kOp, ": ", scales_name, " (float32 128x128 block scales [E, ceil(N/128), ceil(K/128)]) ",
              "is required with FP8 weights");
  TORCH_CHECK(scales->scalar_type() == at::kFloat, kOp, ": ", scales_name, " must be float32, got ", scales->scalar_type());
  check_sizes_equal(kOp, scales_name, *scales, {e, ceil_div(n, 128), ceil_div(k, 128)});
  return prepacked;
}

void check_bias(const char* name, const std::optional<at::Tensor>& bias, const c10::SymInt& e, const c10::SymInt& n) {
  if (!bias.has_value()) return;
  TORCH_CHECK(dtype_in(bias->scalar_type(), kFloatDtypes), kOp, ": ", name, " must be ", dtype_list(kFloatDtypes),
              ", got ", bias->scalar_type());
  check_sizes_equal(kOp, name, *bias, {e, n});
}

}  // namespace

FusedMoePlan check_fused_moe(const at::Tensor& hidden, const at::Tensor& w13, const std::optional<at::Tensor>& w13_scales,
                             const at::Tensor& w2, const std::optional<at::Tensor>& w2_scales,
                             const at::Tensor& topk_weights, const at::Tensor& topk_ids,
                             const std::optional<at::Tensor>& w13_bias, const std::optional<at::Tensor>& w2_bias,
                             c10::string_view activation, double swiglu_alpha, double swiglu_limit,
                             const std::optional<at::Tensor>& expert_map) {
  check_same_device(kOp, {{"hidden", &hidden}, {"w13", &w13}, {"w2", &w2}, {"topk_weights", &topk_weights},
                          {"topk_ids", &topk_ids}});
  for (const auto& [name, t] : {std::pair<const char*, const std::optional<at::Tensor>*>{"w13_scales", &w13_scales},
                                {"w2_scales", &w2_scales}, {"w13_bias", &w13_bias}, {"w2_bias", &w2_bias},
                                {"expert_map", &expert_map}}) {
    if (t->has_value()) check_same_device(kOp, {{"hidden", &hidden}, {name, &**t}});
  }
  FusedMoePlan plan;
  const std::string_view act_name(activation.data(), activation.size());
  TORCH_CHECK(core::parse_moe_activation(act_name, &plan.activation), kOp,
              ": activation must be 'silu' or 'swiglu_oai', got '", act_name, "'");
  TORCH_CHECK(std::isfinite(swiglu_alpha) && std::isfinite(swiglu_limit) && swiglu_limit >= 0, kOp,
              ": swiglu_alpha must be finite and swiglu_limit finite and >= 0, got ", swiglu_alpha, " and ", swiglu_limit);

  TORCH_CHECK(dtype_in(hidden.scalar_type(), kFloatDtypes), kOp, ": hidden must be ", dtype_list(kFloatDtypes), ", got ",
              hidden.scalar_type());
  TORCH_CHECK(hidden.dim() == 2, kOp, ": hidden must be 2-D [T, H], got shape ", sizes_string(hidden.sym_sizes()));
  const c10::SymInt t = hidden.sym_size(0), h = hidden.sym_size(1);
  check_dim_32("H = hidden.size(1)", h);

  plan.format = format_of(w13);
  TORCH_CHECK(w13.dim() >= 2, kOp, ": w13 must be [E, 2I, ...], got shape ", sizes_string(w13.sym_sizes()));
  const c10::SymInt e = w13.sym_size(0), two_i = w13.sym_size(1);
  TORCH_SYM_CHECK(e.sym_gt(0), kOp, ": w13 must hold at least one expert, got shape ", sizes_string(w13.sym_sizes()));
  TORCH_SYM_CHECK((two_i % 64).sym_eq(0) & two_i.sym_gt(0), kOp, ": w13.size(1) = 2I must be a positive multiple of 64 ",
                  "(I a multiple of 32), got ", sym_str(two_i));
  const c10::SymInt inter = two_i / 2;
  plan.w13_prepacked = check_weight(plan.format, "w13", "w13_scales", w13, w13_scales, e, two_i, h);
  plan.w2_prepacked = check_weight(plan.format, "w2", "w2_scales", w2, w2_scales, e, h, inter);
  check_bias("w13_bias", w13_bias, e, two_i);
  check_bias("w2_bias", w2_bias, e, h);

  TORCH_CHECK(topk_weights.scalar_type() == at::kFloat, kOp, ": topk_weights must be float32, got ",
              topk_weights.scalar_type());
  TORCH_CHECK(topk_weights.dim() == 2, kOp, ": topk_weights must be 2-D [T, k], got shape ",
              sizes_string(topk_weights.sym_sizes()));
  const c10::SymInt k = topk_weights.sym_size(1);
  TORCH_SYM_CHECK(k.sym_gt(0), kOp, ": topk_weights.size(1) (k) must be positive, got ", sym_str(k));
  check_sizes_equal(kOp, "topk_weights", topk_weights, {t, k});
  TORCH_CHECK(dtype_in(topk_ids.scalar_type(), {at::kInt, at::kLong}), kOp, ": topk_ids must be int32 or int64, got ",
              topk_ids.scalar_type());
  check_sizes_equal(kOp, "topk_ids", topk_ids, {t, k});
  if (expert_map.has_value()) {
    TORCH_CHECK(expert_map->scalar_type() == at::kInt, kOp, ": expert_map must be int32, got ", expert_map->scalar_type());
    TORCH_CHECK(expert_map->dim() == 1, kOp, ": expert_map must be 1-D [E_global], got shape ",
                sizes_string(expert_map->sym_sizes()));
    TORCH_SYM_CHECK(expert_map->sym_size(0).sym_gt(0), kOp, ": expert_map must not be empty");
  }
  plan.out_sizes = {t, h};
  return plan;
}

at::Tensor empty_fused_moe_output(const at::Tensor& hidden, const FusedMoePlan& plan) {
  return at::empty_symint(plan.out_sizes, hidden.options());
}

std::vector<c10::SymInt> check_topk_softmax(const at::Tensor& router_logits, const c10::SymInt& k) {
  constexpr const char* op = "mxkernels.topk_softmax";
  TORCH_CHECK(dtype_in(router_logits.scalar_type(), kFloatDtypes), op, ": router_logits must be ",
              dtype_list(kFloatDtypes), ", got ", router_logits.scalar_type());
  TORCH_CHECK(router_logits.dim() == 2, op, ": router_logits must be 2-D [T, E], got shape ",
              sizes_string(router_logits.sym_sizes()));
  const c10::SymInt e = router_logits.sym_size(1);
  TORCH_SYM_CHECK(k.sym_ge(1) & k.sym_le(e), op, ": k must be in [1, E] = [1, ", sym_str(e), "], got ", sym_str(k));
  return {router_logits.sym_size(0), k};
}

std::tuple<at::Tensor, at::Tensor> empty_topk_softmax_outputs(const at::Tensor& router_logits,
                                                              const std::vector<c10::SymInt>& sizes) {
  return {at::empty_symint(sizes, router_logits.options().dtype(at::kFloat)),
          at::empty_symint(sizes, router_logits.options().dtype(at::kInt))};
}

}  // namespace mxkernels::ops
