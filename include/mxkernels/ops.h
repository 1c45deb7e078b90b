// mxkernels C++ API: calls the ops through the PyTorch dispatcher, exactly as torch.ops.mxkernels.* does from
// Python, so every backend (CPU, Meta, later CUDA) and every check is the same.
//
//   find_package(mxkernels REQUIRED)        # with torch's cmake prefix on CMAKE_PREFIX_PATH
//   target_link_libraries(app PRIVATE mxkernels::ops)
//
// The numerics of each op are defined in docs/formats.md.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>
#include <string>
#include <tuple>

namespace mxkernels {
namespace detail {
// Defined in libmxkernels_ops.so; calling it keeps the library linked, so its op registrations run.
int ops_library_anchor();

template <typename Signature>
c10::TypedOperatorHandle<Signature> op(const char* name) {
  static_cast<void>(ops_library_anchor());
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").template typed<Signature>();
}
}  // namespace detail

// MXFP4 quantization of x (float32 / bfloat16 / float16, last dim a positive multiple of 32 with stride 1).
// Returns q (float4_e2m1fn_x2, [..., K/2], element 2i in the low nibble) and scales (float8_e8m0fnu,
// [..., K/32]). scale_mode: "floor", "ceil", "even" or "rceil".
inline std::tuple<at::Tensor, at::Tensor> quantize_mxfp4(const at::Tensor& x, const std::string& scale_mode = "rceil") {
  static const auto handle =
      detail::op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, c10::string_view)>("mxkernels::quantize_mxfp4");
  return handle.call(x, scale_mode);
}

// As quantize_mxfp4, into caller-owned contiguous q ([..., K/2], float4_e2m1fn_x2 or uint8) and scales
// ([..., K/32], float8_e8m0fnu or uint8).
inline void quantize_mxfp4_out(const at::Tensor& x, at::Tensor& q, at::Tensor& scales,
                               const std::string& scale_mode = "rceil") {
  static const auto handle = detail::op<void(const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::string_view)>(
      "mxkernels::quantize_mxfp4_out");
  handle.call(x, q, scales, scale_mode);
}

// Values of MXFP4 codes q ([..., K/2]) with scales ([..., K/32]) as dtype (float32 / bfloat16 / float16).
inline at::Tensor dequantize_mxfp4(const at::Tensor& q, const at::Tensor& scales, at::ScalarType dtype = at::kFloat) {
  static const auto handle = detail::op<at::Tensor(const at::Tensor&, const at::Tensor&, at::ScalarType)>(
      "mxkernels::dequantize_mxfp4");
  return handle.call(q, scales, dtype);
}

// W4A16: x (float32 / bfloat16 / float16 [..., K], K a multiple of 32) @ dequantize_mxfp4(w_q, w_scales)^T + bias,
// w_q [N, K/2] (float4_e2m1fn_x2 or uint8), w_scales [N, K/32] (float8_e8m0fnu or uint8); or w_q from
// prepack_mxfp4_weight with w_scales std::nullopt. Output in x's dtype.
inline at::Tensor mxfp4_gemm_w4a16(const at::Tensor& x, const at::Tensor& w_q, const std::optional<at::Tensor>& w_scales,
                                   const std::optional<at::Tensor>& bias = std::nullopt) {
  static const auto handle = detail::op<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                                   const std::optional<at::Tensor>&)>("mxkernels::mxfp4_gemm_w4a16");
  return handle.call(x, w_q, w_scales, bias);
}

// W4A4: both operands MXFP4 (a_q [..., K/2] codes, a_scales [..., K/32], e.g. from quantize_mxfp4); the weights as for
// mxfp4_gemm_w4a16. Exact integer block sums, each scaled and rounded once to float32, added in block order.
inline at::Tensor mxfp4_gemm(const at::Tensor& a_q, const at::Tensor& a_scales, const at::Tensor& w_q,
                             const std::optional<at::Tensor>& w_scales, const std::optional<at::Tensor>& bias = std::nullopt,
                             at::ScalarType out_dtype = at::kBFloat16) {
  static const auto handle =
      detail::op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            const std::optional<at::Tensor>&, at::ScalarType)>("mxkernels::mxfp4_gemm");
  return handle.call(a_q, a_scales, w_q, w_scales, bias, out_dtype);
}

// MXFP4 weights (w_q [N, K/2], w_scales [N, K/32]) as one uint8 blob [N, K/32, 17] in the layout the CPU kernels read
// fastest (docs/formats.md); pass it as w_q with w_scales std::nullopt.
inline at::Tensor prepack_mxfp4_weight(const at::Tensor& w_q, const at::Tensor& w_scales) {
  static const auto handle =
      detail::op<at::Tensor(const at::Tensor&, const at::Tensor&)>("mxkernels::prepack_mxfp4_weight");
  return handle.call(w_q, w_scales);
}

// The same weights as a uint8 blob [N/16, L, 128] in the layout the CUDA W4A16 kernels read fastest (N a multiple of
// 16, L = ceil(17 K / 256); docs/formats.md); pass it as w_q with w_scales std::nullopt to mxfp4_gemm_w4a16 on CUDA.
// Runs on CPU and CUDA tensors.
inline at::Tensor prepack_mxfp4_weight_cuda(const at::Tensor& w_q, const at::Tensor& w_scales) {
  static const auto handle =
      detail::op<at::Tensor(const at::Tensor&, const at::Tensor&)>("mxkernels::prepack_mxfp4_weight_cuda");
  return handle.call(w_q, w_scales);
}

// Per-group FP8 (E4M3) quantization of x (float32 / bfloat16 / float16, last dim a positive multiple of
// group_size with stride 1; group_size = K gives per-token scales). Returns q (float8_e4m3fn, x's shape) and
// scales (float32, [..., K / group_size]); scale = max(amax, eps) / 448, a power of two above it with scale_ue8m0.
inline std::tuple<at::Tensor, at::Tensor> quantize_fp8(const at::Tensor& x, int64_t group_size = 128, double eps = 1e-10,
                                                       bool scale_ue8m0 = false) {
  static const auto handle = detail::op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, c10::SymInt, double, bool)>(
      "mxkernels::quantize_fp8");
  return handle.call(x, c10::SymInt(group_size), eps, scale_ue8m0);
}

// W8A8: (a * a_scale) @ (b * b_scale)^T + bias in float32. a float8_e4m3fn [..., K]; b float8_e4m3fn [N, K] or
// prepack_fp8_weight(b); a_scale per tensor / per token [..., 1] / per group [..., K/128]; b_scale per tensor /
// per channel [N] / 128x128 blocks. Output [..., N] in out_dtype (bfloat16 when not given).
inline at::Tensor fp8_gemm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& a_scale, const at::Tensor& b_scale,
                           const std::optional<at::Tensor>& bias = std::nullopt,
                           std::optional<at::ScalarType> out_dtype = std::nullopt) {
  static const auto handle =
      detail::op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            const std::optional<at::Tensor>&, std::optional<at::ScalarType>)>("mxkernels::fp8_gemm");
  return handle.call(a, b, a_scale, b_scale, bias, out_dtype);
}

// W8A16: x (float32 / bfloat16 / float16 [..., K]) @ (b * b_scale)^T + bias, output in x's dtype.
inline at::Tensor fp8_gemm_w8a16(const at::Tensor& x, const at::Tensor& b, const at::Tensor& b_scale,
                                 const std::optional<at::Tensor>& bias = std::nullopt) {
  static const auto handle =
      detail::op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&)>(
          "mxkernels::fp8_gemm_w8a16");
  return handle.call(x, b, b_scale, bias);
}

// FP8 weights b [N, K] (K even) in the CPU kernels' order, [N, K/2, 2]; both GEMMs accept them as b.
inline at::Tensor prepack_fp8_weight(const at::Tensor& b) {
  static const auto handle = detail::op<at::Tensor(const at::Tensor&)>("mxkernels::prepack_fp8_weight");
  return handle.call(b);
}

// Options of fused_moe beyond its tensors.
struct FusedMoeOptions {
  std::optional<at::Tensor> w13_bias;    // [E, 2I]
  std::optional<at::Tensor> w2_bias;     // [E, H]
  std::string activation = "silu";       // or "swiglu_oai" (gpt-oss: gate / up rows interleaved, clamped)
  double swiglu_alpha = 1.702;
  double swiglu_limit = 7.0;
  std::optional<at::Tensor> expert_map;  // int32 [E_global]: global expert id -> local id, -1 where not local
};

// Fused MoE experts: out[t] = sum_j topk_weights[t, j] * expert_{topk_ids[t, j]}(hidden[t]), expert(x) =
// W2 act(W13 x + b13) + b2. hidden [T, H]; MXFP4 weights w13 [E, 2I, H/2] with w13_scales [E, 2I, H/32], w2 [E, H, I/2]
// with w2_scales [E, H, I/32] (or each prepacked, stacked [E, N, K/32, 17], scales std::nullopt); or FP8 w13 [E, 2I, H],
// w2 [E, H, I] with float32 128x128 block scales. topk_weights float32 [T, k], topk_ids int32 / int64 [T, k].
inline at::Tensor fused_moe(const at::Tensor& hidden, const at::Tensor& w13, const std::optional<at::Tensor>& w13_scales,
                            const at::Tensor& w2, const std::optional<at::Tensor>& w2_scales,
                            const at::Tensor& topk_weights, const at::Tensor& topk_ids,
                            const FusedMoeOptions& options = {}) {
  using Opt = const std::optional<at::Tensor>&;
  static const auto handle =
      detail::op<at::Tensor(const at::Tensor&, const at::Tensor&, Opt, const at::Tensor&, Opt, const at::Tensor&,
                            const at::Tensor&, Opt, Opt, c10::string_view, double, double, Opt)>("mxkernels::fused_moe");
  return handle.call(hidden, w13, w13_scales, w2, w2_scales, topk_weights, topk_ids, options.w13_bias, options.w2_bias,
                     options.activation, options.swiglu_alpha, options.swiglu_limit, options.expert_map);
}

// MoE routing: (weights float32 [T, k], ids int32 [T, k]) of the k largest router_logits [T, E] per token; weights are
// the softmax over all E, or with renormalize over the k selected (gpt-oss).
inline std::tuple<at::Tensor, at::Tensor> topk_softmax(const at::Tensor& router_logits, int64_t k, bool renormalize) {
  static const auto handle = detail::op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, c10::SymInt, bool)>(
      "mxkernels::topk_softmax");
  return handle.call(router_logits, c10::SymInt(k), renormalize);
}

}  // namespace mxkernels
