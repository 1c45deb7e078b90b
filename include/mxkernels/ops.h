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

}  // namespace mxkernels
