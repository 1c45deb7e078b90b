// Meta kernels: the CPU kernels' check functions and output allocations, symbolic sizes throughout.
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "ops/fp8/check.h"

namespace mxkernels::ops {
namespace {

std::tuple<at::Tensor, at::Tensor> quantize_fp8_meta(const at::Tensor& x, c10::SymInt group_size, double eps, bool) {
  return empty_quantize_fp8_outputs(x, check_quantize_fp8(x, group_size, eps));
}

void quantize_fp8_out_meta(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scales, c10::SymInt group_size,
                           double eps, bool) {
  check_quantize_fp8_out(x, q, scales, group_size, eps);
}

std::tuple<at::Tensor, at::Tensor> quantize_fp8_per_tensor_meta(const at::Tensor& x,
                                                                const std::optional<at::Tensor>& scale, double eps) {
  check_quantize_fp8_per_tensor(x, scale, eps);
  return empty_quantize_fp8_per_tensor_outputs(x);
}

at::Tensor fp8_gemm_meta(const at::Tensor& a, const at::Tensor& b, const at::Tensor& a_scale, const at::Tensor& b_scale,
                         const std::optional<at::Tensor>& bias, std::optional<at::ScalarType> out_dtype) {
  return empty_fp8_gemm_output(a, check_fp8_gemm(a, b, a_scale, b_scale, bias, out_dtype));
}

at::Tensor fp8_gemm_w8a16_meta(const at::Tensor& x, const at::Tensor& b, const at::Tensor& b_scale,
                               const std::optional<at::Tensor>& bias) {
  return empty_fp8_gemm_output(x, check_fp8_gemm_w8a16(x, b, b_scale, bias));
}

at::Tensor prepack_fp8_weight_meta(const at::Tensor& b) {
  return at::empty_symint(check_prepack_fp8_weight(b), b.options());
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, Meta, m) {
  m.impl("prepack_fp8_weight", &prepack_fp8_weight_meta);
  m.impl("fp8_gemm", &fp8_gemm_meta);
  m.impl("fp8_gemm_w8a16", &fp8_gemm_w8a16_meta);
  m.impl("quantize_fp8", &quantize_fp8_meta);
  m.impl("quantize_fp8_out", &quantize_fp8_out_meta);
  m.impl("quantize_fp8_per_tensor", &quantize_fp8_per_tensor_meta);
}

}  // namespace mxkernels::ops
