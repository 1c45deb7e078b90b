// Meta kernels: the CPU kernels' check functions and output allocations, on symbolic sizes.
#include <torch/library.h>

#include "ops/moe/check.h"

namespace mxkernels::ops {
namespace {

at::Tensor fused_moe_meta(const at::Tensor& hidden, const at::Tensor& w13, const std::optional<at::Tensor>& w13_scales,
                          const at::Tensor& w2, const std::optional<at::Tensor>& w2_scales, const at::Tensor& topk_weights,
                          const at::Tensor& topk_ids, const std::optional<at::Tensor>& w13_bias,
                          const std::optional<at::Tensor>& w2_bias, c10::string_view activation, double swiglu_alpha,
                          double swiglu_limit, const std::optional<at::Tensor>& expert_map) {
  return empty_fused_moe_output(hidden, check_fused_moe(hidden, w13, w13_scales, w2, w2_scales, topk_weights, topk_ids,
                                                        w13_bias, w2_bias, activation, swiglu_alpha, swiglu_limit,
                                                        expert_map));
}

std::tuple<at::Tensor, at::Tensor> topk_softmax_meta(const at::Tensor& router_logits, c10::SymInt k, bool renormalize) {
  return empty_topk_softmax_outputs(router_logits, check_topk_softmax(router_logits, k));
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, Meta, m) {
  m.impl("fused_moe", &fused_moe_meta);
  m.impl("topk_softmax", &topk_softmax_meta);
}

}  // namespace mxkernels::ops
