// Fused MoE experts on the CPU. The (token, slot) pairs are grouped by expert; each expert with rows runs its two
// GEMMs through the FP8 / MXFP4 GEMM kernels (one call per expert and column range, the calls of all experts spread
// over the threads by their cost), the gated activation in between; then each token sums its slots' outputs.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>

#include "core/fp8_gemm.h"
#include "core/moe.h"
#include "core/mxfp4.h"
#include "ops/common/tensor_checks.h"
#include "ops/moe/check.h"

namespace mxkernels::ops {
namespace {

constexpr int64_t kColumnBlock = core::kFp8PanelColumns;  // a panel boundary of both prepacked layouts

// One expert-stacked weight [E, N, ...] over K, as the GEMM kernels read it.
class ExpertWeight {
 public:
  ExpertWeight(MoeWeightFormat format, const at::Tensor& w, const std::optional<at::Tensor>& scales, bool prepacked,
               int64_t n, int64_t k)
      : format_(format), prepacked_(prepacked), n_(n), k_(k) {
    codes_ = static_cast<const uint8_t*>(w.const_data_ptr());
    expert_stride_ = w.stride(0);
    ld_ = prepacked ? 0 : w.stride(1);
    if (format == MoeWeightFormat::mxfp4) {
      if (!prepacked) {
        e8m0_ = static_cast<const uint8_t*>(scales->const_data_ptr());
        scale_expert_stride_ = scales->stride(0);
        scale_ld_ = scales->stride(1);
      }
    } else {
      scales32_ = scales->contiguous();
      scale_ld_ = (k + 127) / 128;
      scale_expert_stride_ = (n + 127) / 128 * scale_ld_;
      // Segments of float32 sums: the largest of 128, 64, 32 that divides K, so that none straddles a scale block.
      k_segment_ = k % 128 == 0 ? 128 : (k % 64 == 0 ? 64 : 32);
    }
  }

  void fill(core::Fp8GemmProblem& p, int64_t expert) const {
    p.n = n_;
    p.k = k_;
    p.b = codes_ + expert * expert_stride_;
    p.ldb = ld_;
    p.b_prepacked = prepacked_;
    p.b_scale = core::Fp8ScaleIndex{};
    p.b_scale.k_stride = 1;
    if (format_ == MoeWeightFormat::mxfp4) {
      p.b_codes = core::WeightCodes::e2m1;
      if (prepacked_) {
        p.b_scale.e8m0 = p.b + core::mxfp4_prepacked_scale_offset(n_, k_);
        p.b_scale.ld = k_ / core::kMxfp4BlockSize;
      } else {
        p.b_scale.e8m0 = e8m0_ + expert * scale_expert_stride_;
        p.b_scale.ld = scale_ld_;
      }
      p.k_segment = core::kMxfp4BlockSize;
    } else {
      p.b_codes = core::WeightCodes::e4m3;
      p.b_scale.scale = scales32_.const_data_ptr<float>() + expert * scale_expert_stride_;
      p.b_scale.ld = scale_ld_;
      p.b_scale.block = 128;
      p.b_scale.k_div = 128 / k_segment_;
      p.k_segment = k_segment_;
    }
  }

 private:
  MoeWeightFormat format_;
  bool prepacked_;
  int64_t n_, k_;
  const uint8_t* codes_ = nullptr;
  int64_t expert_stride_ = 0, ld_ = 0;
  const uint8_t* e8m0_ = nullptr;
  at::Tensor scales32_;
  int64_t scale_expert_stride_ = 0, scale_ld_ = 0, k_segment_ = 128;
};

// C[rows of expert e] = A[rows of e] · W[e]ᵀ + bias[e] for every expert, as float32. The column blocks of all experts
// are split over the threads by cost (a block's weight bytes count as a few rows of arithmetic); each thread runs its
// consecutive blocks of one expert as one kernel call. Each column's sums never depend on the split.
void expert_gemms(const core::MoeRouting& routing, const ExpertWeight& w, int64_t n, int64_t k, const float* a,
                  bool a_bf16_exact, const float* bias, float* c) {
  const int64_t experts = int64_t(routing.expert_offsets.size()) - 1;
  const int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
  constexpr int64_t kWeightCostRows = 4;
  std::vector<int64_t> active, cost_before;  // experts with rows; the cost of all blocks before each one's
  int64_t total = 0;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t rows = routing.expert_offsets[size_t(e) + 1] - routing.expert_offsets[size_t(e)];
    if (rows == 0) continue;
    active.push_back(e);
    cost_before.push_back(total);
    total += blocks * (rows + kWeightCostRows);
  }
  if (active.empty()) return;
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), int64_t(active.size()) * blocks));
  core::Fp8GemmProblem base;
  base.a_bf16_exact = a_bf16_exact;
  static const float kOne = 1.0f;
  base.a_scale.scale = &kOne;
  base.lda = k;
  base.c_type = core::FloatType::f32;
  base.ldc = n;
  const core::Fp8GemmKernels& kernels = core::fp8_gemm_kernels();
  at::parallel_for(0, threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t thread = first; thread < last; ++thread) {
      // This thread's share of the cost is [lo, hi); a block belongs to the thread whose share holds its midpoint.
      const int64_t lo = total * thread / threads, hi = total * (thread + 1) / threads;
      for (size_t i = 0; i < active.size(); ++i) {
        const int64_t e = active[i], row0 = routing.expert_offsets[size_t(e)];
        const int64_t rows = routing.expert_offsets[size_t(e) + 1] - row0, per_block = rows + kWeightCostRows;
        // Blocks b with lo <= cost_before + b * per_block + per_block / 2 < hi.
        auto first_block_at = [&](int64_t bound) {
          const int64_t num = bound - cost_before[i] - per_block / 2;
          return std::clamp<int64_t>(num <= 0 ? 0 : (num + per_block - 1) / per_block, 0, blocks);
        };
        const int64_t b0 = first_block_at(lo), b1 = first_block_at(hi);
        if (b0 >= b1) continue;
        core::Fp8GemmProblem p = base;
        w.fill(p, e);
        p.m = rows;
        p.a = a + row0 * k;
        p.bias = bias != nullptr ? bias + e * n : nullptr;
        p.c = c + row0 * n;
        kernels.gemm(p, b0 * kColumnBlock, std::min(n, b1 * kColumnBlock));
      }
    }
  });
}

at::Tensor fused_moe_cpu(const at::Tensor& hidden, const at::Tensor& w13, const std::optional<at::Tensor>& w13_scales,
                         const at::Tensor& w2, const std::optional<at::Tensor>& w2_scales, const at::Tensor& topk_weights,
                         const at::Tensor& topk_ids, const std::optional<at::Tensor>& w13_bias,
                         const std::optional<at::Tensor>& w2_bias, c10::string_view activation, double swiglu_alpha,
                         double swiglu_limit, const std::optional<at::Tensor>& expert_map) {
  const FusedMoePlan plan = check_fused_moe(hidden, w13, w13_scales, w2, w2_scales, topk_weights, topk_ids, w13_bias,
                                            w2_bias, activation, swiglu_alpha, swiglu_limit, expert_map);
  at::Tensor out = empty_fused_moe_output(hidden, plan);
  const int64_t tokens = hidden.size(0), h = hidden.size(1), e = w13.size(0), inter = w13.size(1) / 2;
  const int64_t k = topk_ids.size(1);
  const at::Tensor ids = topk_ids.contiguous();
  const at::Tensor map = expert_map.has_value() ? expert_map->contiguous() : at::Tensor();
  const int64_t global_experts = map.defined() ? map.size(0) : e;
  core::MoeRouting routing;
  const core::MoeRouteStatus status =
      core::moe_route(ids.const_data_ptr(), ids.scalar_type() == at::kLong, tokens, k,
                      map.defined() ? map.const_data_ptr<int32_t>() : nullptr, global_experts, e, &routing);
  if (status.error == core::MoeRouteError::id_out_of_range) {
    TORCH_CHECK(false, "mxkernels.fused_moe: topk_ids[", status.index / k, ", ", status.index % k, "] = ", status.value,
                " is out of range: expert ids must be in [0, ", global_experts, ")",
                map.defined() ? " (the size of expert_map)" : " (the experts in w13)");
  }
  TORCH_CHECK(status.error == core::MoeRouteError::none, "mxkernels.fused_moe: expert_map[", status.index, "] = ",
              status.value, " is out of range: entries must be -1 (not on this process) or a local expert in [0, ", e,
              ")");
  if (tokens == 0) return out;
  const int64_t rows = routing.rows();
  if (rows == 0) return out.zero_();

  const bool bf16 = hidden.scalar_type() == at::kBFloat16;
  const at::Tensor x32 = hidden.to(at::kFloat).contiguous();
  const at::TensorOptions f32 = hidden.options().dtype(at::kFloat);
  at::Tensor a1 = at::empty({rows, h}, f32), g1 = at::empty({rows, 2 * inter}, f32), a2 = at::empty({rows, inter}, f32);
  at::Tensor y = at::empty({rows, h}, f32);
  const float* x = x32.const_data_ptr<float>();
  float* a1p = a1.mutable_data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::copy_n(x + routing.row_pair[size_t(r)] / k * h, h, a1p + r * h);
  });
  const at::Tensor b13 = w13_bias.has_value() ? w13_bias->to(at::kFloat).contiguous() : at::Tensor();
  const at::Tensor b2 = w2_bias.has_value() ? w2_bias->to(at::kFloat).contiguous() : at::Tensor();

  const ExpertWeight w13_view(plan.format, w13, w13_scales, plan.w13_prepacked, 2 * inter, h);
  expert_gemms(routing, w13_view, 2 * inter, h, a1p, bf16, b13.defined() ? b13.const_data_ptr<float>() : nullptr,
               g1.mutable_data_ptr<float>());
  // A bfloat16 model's activations are bfloat16: rounding to it keeps the second GEMM on the bf16 dot-product paths.
  const float* g1p = g1.const_data_ptr<float>();
  float* a2p = a2.mutable_data_ptr<float>();
  at::parallel_for(0, rows, 4, [&](int64_t r0, int64_t r1) {
    core::moe_activation(g1p + r0 * 2 * inter, 2 * inter, r1 - r0, inter, plan.activation, float(swiglu_alpha),
                         float(swiglu_limit), bf16, a2p + r0 * inter, inter);
  });
  const ExpertWeight w2_view(plan.format, w2, w2_scales, plan.w2_prepacked, h, inter);
  expert_gemms(routing, w2_view, h, inter, a2p, bf16, b2.defined() ? b2.const_data_ptr<float>() : nullptr,
               y.mutable_data_ptr<float>());

  const at::Tensor weights = topk_weights.contiguous();
  const float* yp = y.const_data_ptr<float>();
  const float* wp = weights.const_data_ptr<float>();
  void* outp = out.mutable_data_ptr();
  const core::FloatType out_type = core_float_type(hidden.scalar_type());
  at::parallel_for(0, tokens, 1, [&](int64_t t0, int64_t t1) {
    core::moe_combine(yp, h, wp, routing.pair_row.data(), k, t0, t1, out_type, outp);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> topk_softmax_cpu(const at::Tensor& router_logits, c10::SymInt k_sym, bool renormalize) {
  const std::vector<c10::SymInt> sizes = check_topk_softmax(router_logits, k_sym);
  auto [weights, ids] = empty_topk_softmax_outputs(router_logits, sizes);
  const int64_t tokens = router_logits.size(0), experts = router_logits.size(1);
  const int64_t k = concrete_int(k_sym, "k");
  const at::Tensor logits = router_logits.to(at::kFloat).contiguous();
  const float* l = logits.const_data_ptr<float>();
  float* w = weights.mutable_data_ptr<float>();
  int32_t* id = ids.mutable_data_ptr<int32_t>();
  at::parallel_for(0, tokens, 16, [&](int64_t t0, int64_t t1) {
    core::topk_softmax(l + t0 * experts, t1 - t0, experts, k, renormalize, w + t0 * k, id + t0 * k);
  });
  return {weights, ids};
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, CPU, m) {
  m.impl("fused_moe", &fused_moe_cpu);
  m.impl("topk_softmax", &topk_softmax_cpu);
}

}  // namespace mxkernels::ops
