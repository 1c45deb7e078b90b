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

}  // namespace mxkernels::ops
