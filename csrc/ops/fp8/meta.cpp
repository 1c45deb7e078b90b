// Meta kernels: the CPU kernels' check functions and output allocations, symbolic sizes throughout.
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

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, Meta, m) {
  m.impl("quantize_fp8", &quantize_fp8_meta);
  m.impl("quantize_fp8_out", &quantize_fp8_out_meta);
  m.impl("quantize_fp8_per_tensor", &quantize_fp8_per_tensor_meta);
}

}  // namespace mxkernels::ops
