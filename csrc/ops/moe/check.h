// The check functions of the MoE ops, called by the CPU kernels and the Meta kernels alike, so both reject the same
// inputs with the same message. Values only a real kernel sees (expert ids, expert_map entries) are checked there.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>
#include <c10/util/string_view.h>

#include <optional>
#include <vector>

#include "core/moe.h"

namespace mxkernels::ops {

enum class MoeWeightFormat { mxfp4, fp8 };

struct FusedMoePlan {
  MoeWeightFormat format = MoeWeightFormat::mxfp4;
  bool w13_prepacked = false, w2_prepacked = false;
  core::MoeActivation activation = core::MoeActivation::silu;
  std::vector<c10::SymInt> out_sizes;  // [T, H]
};

// hidden [T, H] float32 / bfloat16 / float16. The weight dtype picks the format:
// MXFP4: w13 [E, 2I, H/2] codes (float4_e2m1fn_x2 or uint8) with w13_scales [E, 2I, H/32] (float8_e8m0fnu or uint8),
//   w2 [E, H, I/2] with w2_scales [E, H, I/32]; or prepacked (uint8 [E, N, K/32, 17], scales None).
// FP8: w13 [E, 2I, H] float8_e4m3fn with float32 128x128 block scales [E, ceil(2I/128), ceil(H/128)], w2 [E, H, I]
//   with [E, ceil(H/128), ceil(I/128)]; or prepacked [E, N, K/2, 2] (the scales stay separate).
// H and I are multiples of 32. topk_weights [T, k] float32, topk_ids [T, k] int32 / int64, biases [E, 2I] / [E, H],
// expert_map [E_global] int32.
FusedMoePlan check_fused_moe(const at::Tensor& hidden, const at::Tensor& w13, const std::optional<at::Tensor>& w13_scales,
                             const at::Tensor& w2, const std::optional<at::Tensor>& w2_scales,
                             const at::Tensor& topk_weights, const at::Tensor& topk_ids,
                             const std::optional<at::Tensor>& w13_bias, const std::optional<at::Tensor>& w2_bias,
                             c10::string_view activation, double swiglu_alpha, double swiglu_limit,
                             const std::optional<at::Tensor>& expert_map);
at::Tensor empty_fused_moe_output(const at::Tensor& hidden, const FusedMoePlan& plan);

// router_logits [T, E] float32 / bfloat16 / float16, 1 <= k <= E; returns the outputs' sizes [T, k].
std::vector<c10::SymInt> check_topk_softmax(const at::Tensor& router_logits, const c10::SymInt& k);
// weights float32 [T, k], ids int32 [T, k].
std::tuple<at::Tensor, at::Tensor> empty_topk_softmax_outputs(const at::Tensor& router_logits,
                                                              const std::vector<c10::SymInt>& sizes);

}  // namespace mxkernels::ops
