// Meta kernels: the same check functions as the CPU kernels, symbolic sizes throughout, and the same output
// allocation (hence the same strides).
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "ops/mxfp4/check.h"

namespace mxkernels::ops {
namespace {

std::tuple<at::Tensor, at::Tensor> quantize_mxfp4_meta(const at::Tensor& x, c10::string_view scale_mode) {
  const QuantizeMxfp4Plan plan = check_quantize_mxfp4(x, scale_mode);
  return empty_quantize_mxfp4_outputs(x, plan);
}

void quantize_mxfp4_out_meta(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scales,
                             c10::string_view scale_mode) {
  check_quantize_mxfp4_out(x, scale_mode, q, scales);
}

at::Tensor dequantize_mxfp4_meta(const at::Tensor& q, const at::Tensor& scales, at::ScalarType dtype) {
  const DequantizeMxfp4Plan plan = check_dequantize_mxfp4(q, scales, dtype);
  return empty_dequantize_mxfp4_output(q, dtype, plan);
}

}  // namespace

namespace {
at::Tensor mxfp4_gemm_w4a16_meta(const at::Tensor& x, const at::Tensor& w_q, const std::optional<at::Tensor>& w_scales,
                                 const std::optional<at::Tensor>& bias) {
  return empty_mxfp4_gemm_output(x, check_mxfp4_gemm_w4a16(x, w_q, w_scales, bias));
}
at::Tensor mxfp4_gemm_meta(const at::Tensor& a_q, const at::Tensor& a_scales, const at::Tensor& w_q,
                           const std::optional<at::Tensor>& w_scales, const std::optional<at::Tensor>& bias,
                           at::ScalarType out_dtype) {
  return empty_mxfp4_gemm_output(a_q, check_mxfp4_gemm(a_q, a_scales, w_q, w_scales, bias, out_dtype));
}
at::Tensor prepack_mxfp4_weight_meta(const at::Tensor& w_q, const at::Tensor& w_scales) {
  return at::empty_symint(check_prepack_mxfp4_weight(w_q, w_scales), w_q.options().dtype(at::kByte));
}
at::Tensor prepack_mxfp4_weight_cuda_meta(const at::Tensor& w_q, const at::Tensor& w_scales) {
  return at::empty_symint(check_prepack_mxfp4_weight_cuda(w_q, w_scales), w_q.options().dtype(at::kByte));
}
}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, Meta, m) {
  m.impl("mxfp4_gemm_w4a16", &mxfp4_gemm_w4a16_meta);
  m.impl("mxfp4_gemm", &mxfp4_gemm_meta);
  m.impl("prepack_mxfp4_weight", &prepack_mxfp4_weight_meta);
  m.impl("prepack_mxfp4_weight_cuda", &prepack_mxfp4_weight_cuda_meta);
  m.impl("quantize_mxfp4", &quantize_mxfp4_meta);
  m.impl("quantize_mxfp4_out", &quantize_mxfp4_out_meta);
  m.impl("dequantize_mxfp4", &dequantize_mxfp4_meta);
}

}  // namespace mxkernels::ops
