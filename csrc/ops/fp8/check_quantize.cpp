#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "ops/common/tensor_checks.h"
#include "ops/fp8/check.h"

namespace mxkernels::ops {
namespace {

constexpr std::initializer_list<at::ScalarType> kFloatDtypes = {at::kFloat, at::kBFloat16, at::kHalf};

float check_eps(const char* op, double eps) {
  TORCH_CHECK(std::isfinite(eps) && eps > 0 && float(eps) > 0, op, ": eps must be a positive float32, got ", eps);
  return float(eps);
}

QuantizeFp8Plan check_quantize_input(const char* op, const at::Tensor& x, const c10::SymInt& group_size, double eps) {
  QuantizeFp8Plan plan{};
  plan.eps = check_eps(op, eps);
  TORCH_CHECK(dtype_in(x.scalar_type(), kFloatDtypes), op, ": x must be ", dtype_list(kFloatDtypes), ", got ",
              x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, got a 0-d tensor");
  TORCH_SYM_CHECK(group_size.sym_gt(0), op, ": group_size must be positive, got ", sym_str(group_size));
  const c10::SymInt k = x.sym_size(-1);
  TORCH_SYM_CHECK(k.sym_gt(0) & (k % group_size).sym_eq(0), op, ": x.size(-1) must be a positive multiple of group_size (",
                  sym_str(group_size), "), got ", sym_str(k));
  TORCH_SYM_CHECK(x.sym_stride(-1).sym_eq(1), op, ": x.stride(-1) must be 1, got ", sym_str(x.sym_stride(-1)));
  plan.x_type = core_float_type(x.scalar_type());
  c10::SymIntArrayRef sizes = x.sym_sizes();
  plan.q_sizes.assign(sizes.begin(), sizes.end());
  plan.scale_sizes.assign(sizes.begin(), sizes.end());
  plan.scale_sizes.back() = k / group_size;
  return plan;
}

void check_out(const char* op, const char* name, const at::Tensor& t, std::initializer_list<at::ScalarType> dtypes,
               const std::vector<c10::SymInt>& want) {
  TORCH_CHECK(dtype_in(t.scalar_type(), dtypes), op, ": ", name, " must be ", dtype_list(dtypes), ", got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == int64_t(want.size()), op, ": ", name, " must have shape ", sizes_string(want), ", got ",
              sizes_string(t.sym_sizes()));
  for (size_t d = 0; d < want.size(); ++d) {
    TORCH_SYM_CHECK(t.sym_size(int64_t(d)).sym_eq(want[d]), op, ": ", name, " must have shape ", sizes_string(want),
                    ", got ", sizes_string(t.sym_sizes()));
  }
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous, got strides ", sizes_string(t.sym_strides()));
}

}  // namespace

QuantizeFp8Plan check_quantize_fp8(const at::Tensor& x, const c10::SymInt& group_size, double eps) {
  return check_quantize_input("mxkernels.quantize_fp8", x, group_size, eps);
}

QuantizeFp8Plan check_quantize_fp8_out(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scales,
                                       const c10::SymInt& group_size, double eps) {
  constexpr const char* op = "mxkernels.quantize_fp8_out";
  QuantizeFp8Plan plan = check_quantize_input(op, x, group_size, eps);
  check_same_device(op, {{"x", &x}, {"q", &q}, {"scales", &scales}});
  check_out(op, "q", q, {at::kFloat8_e4m3fn, at::kByte}, plan.q_sizes);  // uint8: raw E4M3 storage
  check_out(op, "scales", scales, {at::kFloat}, plan.scale_sizes);
  return plan;
}

std::tuple<at::Tensor, at::Tensor> empty_quantize_fp8_outputs(const at::Tensor& x, const QuantizeFp8Plan& plan) {
  return {at::empty_symint(plan.q_sizes, x.options().dtype(at::kFloat8_e4m3fn)),
          at::empty_symint(plan.scale_sizes, x.options().dtype(at::kFloat))};
}

QuantizeFp8PerTensorPlan check_quantize_fp8_per_tensor(const at::Tensor& x, const std::optional<at::Tensor>& scale,
                                                       double eps) {
  constexpr const char* op = "mxkernels.quantize_fp8_per_tensor";
  QuantizeFp8PerTensorPlan plan{};
  plan.eps = check_eps(op, eps);
  TORCH_CHECK(dtype_in(x.scalar_type(), kFloatDtypes), op, ": x must be ", dtype_list(kFloatDtypes), ", got ",
              x.scalar_type());
  plan.x_type = core_float_type(x.scalar_type());
  if (scale.has_value()) {
    check_same_device(op, {{"x", &x}, {"scale", &*scale}});
    TORCH_CHECK(scale->scalar_type() == at::kFloat, op, ": scale must be float32, got ", scale->scalar_type());
    TORCH_SYM_CHECK(scale->sym_numel().sym_eq(1), op, ": scale must hold one element, got shape ",
                    sizes_string(scale->sym_sizes()));
  }
  return plan;
}

std::tuple<at::Tensor, at::Tensor> empty_quantize_fp8_per_tensor_outputs(const at::Tensor& x) {
  return {at::empty_symint(x.sym_sizes(), x.options().dtype(at::kFloat8_e4m3fn)),
          at::empty({1}, x.options().dtype(at::kFloat))};
}

}  // namespace mxkernels::ops
