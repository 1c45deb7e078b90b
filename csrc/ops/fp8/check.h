// The check functions of the FP8 ops, called by the CPU kernels and the Meta kernels alike.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>

#include <optional>
#include <vector>

#include "core/fp8.h"

namespace mxkernels::ops {

struct QuantizeFp8Plan {
  core::FloatType x_type;
  float eps;
  std::vector<c10::SymInt> q_sizes;      // x's shape
  std::vector<c10::SymInt> scale_sizes;  // [..., K / group_size]
};

QuantizeFp8Plan check_quantize_fp8(const at::Tensor& x, const c10::SymInt& group_size, double eps);
QuantizeFp8Plan check_quantize_fp8_out(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scales,
                                       const c10::SymInt& group_size, double eps);
std::tuple<at::Tensor, at::Tensor> empty_quantize_fp8_outputs(const at::Tensor& x, const QuantizeFp8Plan& plan);

struct QuantizeFp8PerTensorPlan {
  core::FloatType x_type;
  float eps;
};

QuantizeFp8PerTensorPlan check_quantize_fp8_per_tensor(const at::Tensor& x, const std::optional<at::Tensor>& scale,
                                                       double eps);
// q (x's shape, contiguous) and the scale ([1] float32).
std::tuple<at::Tensor, at::Tensor> empty_quantize_fp8_per_tensor_outputs(const at::Tensor& x);

// How a scale tensor maps onto rows (activations) or columns (weights) and K.
enum class Fp8ScaleKind { tensor, row, group128 };

struct Fp8GemmPlan {
  bool b_prepacked = false;  // b is prepack_fp8_weight's [N, K/2, 2]
  Fp8ScaleKind a_scale_kind = Fp8ScaleKind::tensor;  // per tensor / per token / per group of 128 along K
  Fp8ScaleKind b_scale_kind = Fp8ScaleKind::tensor;  // per tensor / per channel / 128 x 128 blocks
  at::ScalarType out_dtype = at::kBFloat16;
  std::vector<c10::SymInt> out_sizes;  // [..., N]
};

// W8A8: a float8_e4m3fn [..., K], b float8_e4m3fn [N, K].
Fp8GemmPlan check_fp8_gemm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& a_scale,
                           const at::Tensor& b_scale, const std::optional<at::Tensor>& bias,
                           std::optional<at::ScalarType> out_dtype);
// W8A16: x float32 / bfloat16 / float16 [..., K], b float8_e4m3fn [N, K]; the output takes x's dtype.
Fp8GemmPlan check_fp8_gemm_w8a16(const at::Tensor& x, const at::Tensor& b, const at::Tensor& b_scale,
                                 const std::optional<at::Tensor>& bias);
// b float8_e4m3fn [N, K], K even; returns the prepacked shape [N, K/2, 2].
std::vector<c10::SymInt> check_prepack_fp8_weight(const at::Tensor& b);
at::Tensor empty_fp8_gemm_output(const at::Tensor& a, const Fp8GemmPlan& plan);

}  // namespace mxkernels::ops
