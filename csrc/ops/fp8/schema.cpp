#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(mxkernels, m) {
  m.def("quantize_fp8(Tensor x, SymInt group_size=128, float eps=1e-10, bool scale_ue8m0=False) -> (Tensor q, Tensor scales)",
        {at::Tag::pt2_compliant_tag});
  m.def("quantize_fp8_out(Tensor x, Tensor(a!) q, Tensor(b!) scales, SymInt group_size=128, float eps=1e-10, "
        "bool scale_ue8m0=False) -> ()",
        {at::Tag::pt2_compliant_tag});
  m.def("quantize_fp8_per_tensor(Tensor x, Tensor? scale=None, float eps=1e-10) -> (Tensor q, Tensor scale)",
        {at::Tag::pt2_compliant_tag});
  m.def("fp8_gemm(Tensor a, Tensor b, Tensor a_scale, Tensor b_scale, Tensor? bias=None, ScalarType? out_dtype=None) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  m.def("prepack_fp8_weight(Tensor b) -> Tensor", {at::Tag::pt2_compliant_tag});
  m.def("fp8_gemm_w8a16(Tensor x, Tensor b, Tensor b_scale, Tensor? bias=None) -> Tensor", {at::Tag::pt2_compliant_tag});
}
