#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(mxkernels, m) {
  m.def("quantize_mxfp4(Tensor x, str scale_mode=\"rceil\") -> (Tensor q, Tensor scales)",
        {at::Tag::pt2_compliant_tag});
  m.def("quantize_mxfp4_out(Tensor x, Tensor(a!) q, Tensor(b!) scales, str scale_mode=\"rceil\") -> ()",
        {at::Tag::pt2_compliant_tag});
  m.def("mxfp4_gemm_w4a16(Tensor x, Tensor w_q, Tensor? w_scales, Tensor? bias=None) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  m.def("mxfp4_gemm(Tensor a_q, Tensor a_scales, Tensor w_q, Tensor? w_scales, Tensor? bias=None, "
        "ScalarType out_dtype=bfloat16) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  m.def("prepack_mxfp4_weight(Tensor w_q, Tensor w_scales) -> Tensor", {at::Tag::pt2_compliant_tag});
  m.def("prepack_mxfp4_weight_cuda(Tensor w_q, Tensor w_scales) -> Tensor", {at::Tag::pt2_compliant_tag});
  m.def("dequantize_mxfp4(Tensor q, Tensor scales, ScalarType dtype=float32) -> Tensor",
        {at::Tag::pt2_compliant_tag});
}
