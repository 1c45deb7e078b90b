#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(mxkernels, m) {
  m.def("fused_moe(Tensor hidden, Tensor w13, Tensor? w13_scales, Tensor w2, Tensor? w2_scales, Tensor topk_weights, "
        "Tensor topk_ids, *, Tensor? w13_bias=None, Tensor? w2_bias=None, str activation=\"silu\", "
        "float swiglu_alpha=1.702, float swiglu_limit=7.0, Tensor? expert_map=None) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  m.def("topk_softmax(Tensor router_logits, SymInt k, bool renormalize) -> (Tensor weights, Tensor ids)",
        {at::Tag::pt2_compliant_tag});
}
