#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <torch/library.h>

#include <algorithm>

#include "core/fp8_gemm.h"
#include "ops/common/tensor_checks.h"
#include "ops/fp8/check.h"

namespace mxkernels::ops {
namespace {

// Columns are split in blocks of this many: the prepacked panel width (and the packed kernel's on AVX-512).
constexpr int64_t kColumnBlock = core::kFp8PanelColumns;

core::Fp8ScaleIndex scale_index(Fp8ScaleKind kind, const at::Tensor& contiguous_scale, int64_t k_groups, int64_t block) {
  core::Fp8ScaleIndex s;
  s.scale = contiguous_scale.const_data_ptr<float>();
  switch (kind) {
    case Fp8ScaleKind::tensor: break;
    case Fp8ScaleKind::row: s.ld = 1; break;
    case Fp8ScaleKind::group128: s.ld = k_groups; s.k_stride = 1; s.block = block; break;
  }
  return s;
}

// a32: the activations as float32 [M, K]; a_scale: null for W8A16 (scale 1).
at::Tensor run_gemm(const at::Tensor& a_orig, const at::Tensor& a32, const at::Tensor& b, const at::Tensor* a_scale,
                    const at::Tensor& b_scale, const std::optional<at::Tensor>& bias, const Fp8GemmPlan& plan) {
  at::Tensor out = empty_fp8_gemm_output(a_orig, plan);
  const int64_t m = a32.size(0), k = a32.size(1), n = b.size(0);
  if (m == 0 || n == 0) return out;
  const int64_t k_groups = k / 128;
  const bool blocked = plan.a_scale_kind == Fp8ScaleKind::group128 || plan.b_scale_kind == Fp8ScaleKind::group128;
  const at::Tensor one = at::ones({1}, a32.options());
  const at::Tensor as = a_scale ? a_scale->contiguous() : one;
  const at::Tensor bs = b_scale.contiguous();
  const at::Tensor bias32 = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();

  core::Fp8GemmProblem p;
  p.m = m; p.n = n; p.k = k;
  p.a = a32.const_data_ptr<float>(); p.lda = a32.stride(0);
  p.b = static_cast<const uint8_t*>(b.const_data_ptr()); p.ldb = plan.b_prepacked ? 0 : b.stride(0);
  p.b_prepacked = plan.b_prepacked;
  p.a_scale = scale_index(a_scale ? plan.a_scale_kind : Fp8ScaleKind::tensor, as, k_groups, 1);
  p.b_scale = scale_index(plan.b_scale_kind, bs, k_groups, 128);
  p.k_segment = blocked ? 128 : k;
  p.a_bf16_exact = a_orig.scalar_type() == at::kFloat8_e4m3fn || a_orig.scalar_type() == at::kBFloat16;
  p.bias = bias32.defined() ? bias32.const_data_ptr<float>() : nullptr;
  p.c = out.mutable_data_ptr();
  p.c_type = core_float_type(plan.out_dtype);
  p.ldc = n;
  const core::Fp8GemmKernels& kernels = core::fp8_gemm_kernels();
  const int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    kernels.gemm(p, begin * kColumnBlock, std::min(n, end * kColumnBlock));
  });
  return out;
}

at::Tensor fp8_gemm_cpu(const at::Tensor& a, const at::Tensor& b, const at::Tensor& a_scale, const at::Tensor& b_scale,
                        const std::optional<at::Tensor>& bias, std::optional<at::ScalarType> out_dtype) {
  const Fp8GemmPlan plan = check_fp8_gemm(a, b, a_scale, b_scale, bias, out_dtype);
  // float8 -> float32 is exact; the kernels read float32 activations.
  const at::Tensor a32 = a.reshape({-1, a.size(-1)}).to(at::kFloat).contiguous();
  return run_gemm(a, a32, b, &a_scale, b_scale, bias, plan);
}

at::Tensor fp8_gemm_w8a16_cpu(const at::Tensor& x, const at::Tensor& b, const at::Tensor& b_scale,
                              const std::optional<at::Tensor>& bias) {
  const Fp8GemmPlan plan = check_fp8_gemm_w8a16(x, b, b_scale, bias);
  const at::Tensor x32 = x.reshape({-1, x.size(-1)}).to(at::kFloat).contiguous();
  return run_gemm(x, x32, b, nullptr, b_scale, bias, plan);
}

at::Tensor prepack_fp8_weight_cpu(const at::Tensor& b) {
  at::Tensor out = at::empty_symint(check_prepack_fp8_weight(b), b.options());
  const int64_t n = b.size(0), k = b.size(1);
  const at::Tensor rows = b.stride(1) == 1 ? b : b.contiguous();
  const auto* src = static_cast<const uint8_t*>(rows.const_data_ptr());
  auto* dst = static_cast<uint8_t*>(out.mutable_data_ptr());
  at::parallel_for(0, (n + kColumnBlock - 1) / kColumnBlock, 1, [&](int64_t begin, int64_t end) {
    core::prepack_fp8_weight(src, rows.stride(0), n, k, begin, end, dst);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, CPU, m) {
  m.impl("prepack_fp8_weight", &prepack_fp8_weight_cpu);
  m.impl("fp8_gemm", &fp8_gemm_cpu);
  m.impl("fp8_gemm_w8a16", &fp8_gemm_w8a16_cpu);
}

}  // namespace mxkernels::ops
