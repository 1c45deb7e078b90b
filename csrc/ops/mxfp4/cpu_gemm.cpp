// MXFP4 GEMMs on the CPU: the FP8 GEMM kernels with E2M1 codes (widened to E4M3, which holds every E2M1 value) and
// E8M0 scales, summed in float32 per 32-value block (docs/formats.md).
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <torch/library.h>

#include <algorithm>

#include "core/fp8_gemm.h"
#include "core/mxfp4_gemm.h"
#include "core/mxfp4.h"
#include "core/mxfp4_cuda_layout.h"
#include "ops/common/tensor_checks.h"
#include "ops/mxfp4/check.h"

namespace mxkernels::ops {
namespace {

constexpr int64_t kColumnBlock = core::kFp8PanelColumns;

// The weight's code bytes and scale bytes (plain or prepacked).
struct WeightBytes {
  const uint8_t* codes;
  int64_t ld_codes;
  const uint8_t* scales;
  int64_t ld_scales;
};

WeightBytes weight_bytes(const at::Tensor& w_q, const std::optional<at::Tensor>& w_scales, bool prepacked, int64_t k) {
  const auto* codes = static_cast<const uint8_t*>(w_q.const_data_ptr());
  if (prepacked) return {codes, 0, codes + core::mxfp4_prepacked_scale_offset(w_q.size(0), k), k / core::kMxfp4BlockSize};
  return {codes, w_q.stride(0), static_cast<const uint8_t*>(w_scales->const_data_ptr()), w_scales->stride(0)};
}

void refuse_cuda_layout(const char* op, const Mxfp4GemmPlan& plan) {
  TORCH_CHECK(!plan.w_cuda_packed, op,
              ": w_q is a prepack_mxfp4_weight_cuda blob [N/16, L, 128], the CUDA kernels' layout; on the CPU pass "
              "the plain w_q [N, K/2] with w_scales [N, K/32], or a prepack_mxfp4_weight blob");
}

at::Tensor mxfp4_gemm_w4a16_cpu(const at::Tensor& x, const at::Tensor& w_q, const std::optional<at::Tensor>& w_scales,
                                const std::optional<at::Tensor>& bias) {
  const Mxfp4GemmPlan plan = check_mxfp4_gemm_w4a16(x, w_q, w_scales, bias);
  refuse_cuda_layout("mxkernels.mxfp4_gemm_w4a16", plan);
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
  const WeightBytes w = weight_bytes(w_q, w_scales, plan.w_prepacked, k);
  p.b = w.codes; p.ldb = w.ld_codes; p.b_prepacked = plan.w_prepacked;
  p.b_codes = core::WeightCodes::e2m1;
  p.a_scale.scale = &one;
  p.b_scale.e8m0 = w.scales;
  p.b_scale.ld = w.ld_scales;
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

at::Tensor mxfp4_gemm_cpu(const at::Tensor& a_q, const at::Tensor& a_scales, const at::Tensor& w_q,
                          const std::optional<at::Tensor>& w_scales, const std::optional<at::Tensor>& bias,
                          at::ScalarType out_dtype) {
  const Mxfp4GemmPlan plan = check_mxfp4_gemm(a_q, a_scales, w_q, w_scales, bias, out_dtype);
  refuse_cuda_layout("mxkernels.mxfp4_gemm", plan);
  at::Tensor out = empty_mxfp4_gemm_output(a_q, plan);
  const int64_t k = a_q.size(-1) * 2, n = w_q.size(0);
  // Bytes as bytes, whatever the dtype (float4_e2m1fn_x2 and float8_e8m0fnu have no copy kernels of their own).
  const at::Tensor a_bytes = a_q.view(at::kByte).reshape({-1, k / 2}).contiguous();
  const at::Tensor sa_bytes = a_scales.view(at::kByte).reshape({-1, k / core::kMxfp4BlockSize}).contiguous();
  const int64_t m = a_bytes.size(0);
  if (m == 0 || n == 0) return out;
  const at::Tensor bias32 = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const WeightBytes w = weight_bytes(w_q, w_scales, plan.w_prepacked, k);

  core::Mxfp4GemmProblem p;
  p.m = m; p.n = n; p.k = k;
  p.a = a_bytes.const_data_ptr<uint8_t>(); p.lda = k / 2;
  p.a_scale = sa_bytes.const_data_ptr<uint8_t>(); p.lda_scale = k / core::kMxfp4BlockSize;
  p.b = w.codes; p.ldb = w.ld_codes; p.b_prepacked = plan.w_prepacked;
  p.b_scale = w.scales; p.ldb_scale = w.ld_scales;
  p.bias = bias32.defined() ? bias32.const_data_ptr<float>() : nullptr;
  p.c = out.mutable_data_ptr();
  p.c_type = core_float_type(plan.out_dtype);
  p.ldc = n;
  const core::Mxfp4GemmKernels& kernels = core::mxfp4_gemm_kernels();
  at::parallel_for(0, (n + kColumnBlock - 1) / kColumnBlock, 1, [&](int64_t begin, int64_t end) {
    kernels.gemm(p, begin * kColumnBlock, std::min(n, end * kColumnBlock));
  });
  return out;
}

at::Tensor prepack_mxfp4_weight_cpu(const at::Tensor& w_q, const at::Tensor& w_scales) {
  at::Tensor out = at::empty_symint(check_prepack_mxfp4_weight(w_q, w_scales), w_q.options().dtype(at::kByte));
  const int64_t n = w_q.size(0), k = w_q.size(1) * 2, blocks = k / core::kMxfp4BlockSize;
  const at::Tensor q = w_q.view(at::kByte).contiguous(), s = w_scales.view(at::kByte);
  auto* blob = out.mutable_data_ptr<uint8_t>();
  const auto* codes = q.const_data_ptr<uint8_t>();
  const int64_t groups = (n + core::kMxfp4GroupColumns - 1) / core::kMxfp4GroupColumns;
  at::parallel_for(0, groups, 64, [&](int64_t begin, int64_t end) {
    core::prepack_mxfp4_codes(codes, q.stride(0), n, k, begin, end, blob);
  });
  // The scales, [N][K/32] after the codes, contiguous whatever the input's strides.
  at::Tensor scale_view = at::from_blob(blob + core::mxfp4_prepacked_scale_offset(n, k), {n, blocks}, out.options());
  scale_view.copy_(s);
  return out;
}

// The CUDA kernels' layout, written here by the scalar packer (so that weights can be packed before they move to the
// GPU); prepack_mxfp4_weight_cuda's CUDA kernel writes the same bytes.
at::Tensor prepack_mxfp4_weight_cuda_cpu(const at::Tensor& w_q, const at::Tensor& w_scales) {
  at::Tensor out = at::empty_symint(check_prepack_mxfp4_weight_cuda(w_q, w_scales), w_q.options().dtype(at::kByte));
  const int64_t n = w_q.size(0), k = w_q.size(1) * 2;
  const at::Tensor q = w_q.view(at::kByte), s = w_scales.view(at::kByte);
  const at::Tensor qc = q.stride(1) == 1 ? q : q.contiguous(), sc = s.stride(1) == 1 ? s : s.contiguous();
  const auto* codes = qc.const_data_ptr<uint8_t>();
  const auto* scales = sc.const_data_ptr<uint8_t>();
  auto* dst = out.mutable_data_ptr<uint8_t>();
  const int64_t tiles = n / core::kMxfp4CudaTileColumns;
  at::parallel_for(0, tiles, 16, [&](int64_t begin, int64_t end) {
    core::pack_mxfp4_weight_cuda_layout(codes, qc.stride(0), scales, sc.stride(0), k,
                                        begin * core::kMxfp4CudaTileColumns, end * core::kMxfp4CudaTileColumns, dst);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, CPU, m) {
  m.impl("mxfp4_gemm_w4a16", &mxfp4_gemm_w4a16_cpu);
  m.impl("mxfp4_gemm", &mxfp4_gemm_cpu);
  m.impl("prepack_mxfp4_weight", &prepack_mxfp4_weight_cpu);
  m.impl("prepack_mxfp4_weight_cuda", &prepack_mxfp4_weight_cuda_cpu);
}

}  // namespace mxkernels::ops
