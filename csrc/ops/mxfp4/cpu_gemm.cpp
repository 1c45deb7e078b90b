// MXFP4 GEMMs on the CPU: the FP8 GEMM kernels with E2M1 codes (widened to E4M3, which holds every E2M1 value) and
// E8M0 scales, summed in float32 per 32-value block (docs/formats.md).
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>

#include "core/fp8_gemm.h"
#include "core/mxfp4.h"
#include "ops/common/tensor_checks.h"
#include "ops/mxfp4/check.h"

namespace mxkernels::ops {
namespace {

constexpr int64_t kColumnBlock = core::kFp8PanelColumns;

at::Tensor mxfp4_gemm_w4a16_cpu(const at::Tensor& x, const at::Tensor& w_q, const at::Tensor& w_scales,
                                const std::optional<at::Tensor>& bias) {
  const Mxfp4GemmPlan plan = check_mxfp4_gemm_w4a16(x, w_q, w_scales, bias);
  at::Tensor out = empty_mxfp4_gemm_output(x, plan);
  const int64_t k = x.size(-1), n = w_q.size(0);
  // bfloat16, float16 -> float32 is exact; the kernels read float32 activations.
  const at::Tensor x32 = x.reshape({-1, k}).to(at::kFloat).contiguous();
  const int64_t m = x32.size(0);
  if (m == 0 || n == 0) return out;
  const at::Tensor bias32 = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const float one = 1.0f;

  core::Fp8GemmProblem p;
  p.m = m; p.n = n; p.k = k;
  p.a = x32.const_data_ptr<float>(); p.lda = k;
  p.b = static_cast<const uint8_t*>(w_q.const_data_ptr()); p.ldb = w_q.stride(0);
  p.b_codes = core::WeightCodes::e2m1;
  p.a_scale.scale = &one;
  p.b_scale.e8m0 = static_cast<const uint8_t*>(w_scales.const_data_ptr());
  p.b_scale.ld = w_scales.stride(0);
  p.b_scale.k_stride = 1;
  p.k_segment = core::kMxfp4BlockSize;
  p.a_bf16_exact = x.scalar_type() == at::kBFloat16;
  p.bias = bias32.defined() ? bias32.const_data_ptr<float>() : nullptr;
  p.c = out.mutable_data_ptr();
  p.c_type = core_float_type(plan.out_dtype);
  p.ldc = n;
  const core::Fp8GemmKernels& kernels = core::fp8_gemm_kernels();
  at::parallel_for(0, (n + kColumnBlock - 1) / kColumnBlock, 1, [&](int64_t begin, int64_t end) {
    kernels.gemm(p, begin * kColumnBlock, std::min(n, end * kColumnBlock));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, CPU, m) {
  m.impl("mxfp4_gemm_w4a16", &mxfp4_gemm_w4a16_cpu);
}

}  // namespace mxkernels::ops
