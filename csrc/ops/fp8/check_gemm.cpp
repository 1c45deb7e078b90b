#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include "ops/common/tensor_checks.h"
#include "ops/fp8/check.h"

namespace mxkernels::ops {
namespace {

constexpr int64_t kGroup = 128;
constexpr std::initializer_list<at::ScalarType> kFloatDtypes = {at::kFloat, at::kBFloat16, at::kHalf};

bool guard_eq(const c10::SymInt& a, int64_t b) { return a.sym_eq(b).guard_bool(__FILE__, __LINE__); }

void check_k_groups(const char* op, const char* what, const c10::SymInt& k) {
  TORCH_SYM_CHECK((k % kGroup).sym_eq(0), op, ": ", what, " need K to be a multiple of 128, got K = ", sym_str(k));
}

// Plain [N, K] (last dim contiguous) or prepacked [N, K/2, 2] (contiguous); returns whether it is prepacked.
bool check_weight_layout(const char* op, const at::Tensor& b, const c10::SymInt& k) {
  TORCH_CHECK(b.scalar_type() == at::kFloat8_e4m3fn, op, ": b must be float8_e4m3fn, got ", b.scalar_type());
  TORCH_CHECK(b.dim() == 2 || b.dim() == 3, op,
              ": b must be 2-D [N, K] (the nn.Linear layout) or 3-D [N, K/2, 2] (from prepack_fp8_weight), got shape ",
              sizes_string(b.sym_sizes()));
  if (b.dim() == 2) {
    TORCH_SYM_CHECK(b.sym_size(1).sym_eq(k), op, ": b must have K = ", sym_str(k),
                    " columns like the activations, got shape ", sizes_string(b.sym_sizes()));
    TORCH_SYM_CHECK(b.sym_stride(1).sym_eq(1), op, ": b.stride(-1) must be 1, got ", sym_str(b.sym_stride(1)));
    return false;
  }
  TORCH_SYM_CHECK(b.sym_size(2).sym_eq(2), op, ": a 3-D b must be prepacked [N, K/2, 2], got shape ",
                  sizes_string(b.sym_sizes()));
  TORCH_SYM_CHECK((b.sym_size(1) * 2).sym_eq(k), op, ": prepacked b of shape ", sizes_string(b.sym_sizes()),
                  " holds K = ", sym_str(b.sym_size(1) * 2), ", but the activations have K = ", sym_str(k));
  TORCH_SYM_CHECK(b.sym_is_contiguous(), op, ": prepacked b must be contiguous, got strides ",
                  sizes_string(b.sym_strides()));
  return true;
}

// The weight's scale and the bias (after check_weight_layout); returns the weight scale's kind.
Fp8ScaleKind check_weight(const char* op, const at::Tensor& b, const at::Tensor& b_scale,
                          const std::optional<at::Tensor>& bias, const c10::SymInt& k) {
  const c10::SymInt n = b.sym_size(0);
  TORCH_CHECK(b_scale.scalar_type() == at::kFloat, op, ": b_scale must be float32, got ", b_scale.scalar_type());
  Fp8ScaleKind kind;
  const std::string want = "[] or [1] (per tensor), [N] = [" + sym_str(n) + "] (per channel) or [ceil(N/128), K/128] (blocks)";
  if (b_scale.dim() == 0) {
    kind = Fp8ScaleKind::tensor;
  } else if (b_scale.dim() == 1) {
    if (guard_eq(b_scale.sym_size(0), 1)) {
      kind = Fp8ScaleKind::tensor;
    } else {
      TORCH_SYM_CHECK(b_scale.sym_size(0).sym_eq(n), op, ": b_scale of shape ", sizes_string(b_scale.sym_sizes()),
                      " fits no granularity: want ", want);
      kind = Fp8ScaleKind::row;
    }
  } else if (b_scale.dim() == 2) {
    check_k_groups(op, "128x128 block scales", k);
    TORCH_SYM_CHECK(b_scale.sym_size(0).sym_eq((n + kGroup - 1) / kGroup) & b_scale.sym_size(1).sym_eq(k / kGroup), op,
                    ": b_scale of shape ", sizes_string(b_scale.sym_sizes()), " fits no granularity: want ", want);
    kind = Fp8ScaleKind::group128;
  } else {
    TORCH_CHECK(false, op, ": b_scale of shape ", sizes_string(b_scale.sym_sizes()), " fits no granularity: want ", want);
  }
  if (bias.has_value()) {
    TORCH_CHECK(dtype_in(bias->scalar_type(), kFloatDtypes), op, ": bias must be ", dtype_list(kFloatDtypes), ", got ",
                bias->scalar_type());
    TORCH_CHECK(bias->dim() == 1, op, ": bias must be 1-D [N] = [", sym_str(n), "], got shape ",
                sizes_string(bias->sym_sizes()));
    TORCH_SYM_CHECK(bias->sym_size(0).sym_eq(n), op, ": bias must have N = ", sym_str(n), " elements, got shape ",
                    sizes_string(bias->sym_sizes()));
  }
  return kind;
}

void check_activations(const char* op, const char* name, const at::Tensor& a) {
  TORCH_CHECK(a.dim() >= 1, op, ": ", name, " must have at least one dimension, got a 0-d tensor");
  TORCH_SYM_CHECK(a.sym_size(-1).sym_gt(0), op, ": ", name, ".size(-1) (K) must be positive, got ", sym_str(a.sym_size(-1)));
}

std::vector<c10::SymInt> output_sizes(const at::Tensor& a, const at::Tensor& b) {
  c10::SymIntArrayRef s = a.sym_sizes();
  std::vector<c10::SymInt> out(s.begin(), s.end());
  out.back() = b.sym_size(0);
  return out;
}

}  // namespace

Fp8GemmPlan check_fp8_gemm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& a_scale,
                           const at::Tensor& b_scale, const std::optional<at::Tensor>& bias,
                           std::optional<at::ScalarType> out_dtype) {
  constexpr const char* op = "mxkernels.fp8_gemm";
  Fp8GemmPlan plan;
  check_same_device(op, {{"a", &a}, {"b", &b}, {"a_scale", &a_scale}, {"b_scale", &b_scale}});
  if (bias.has_value()) check_same_device(op, {{"a", &a}, {"bias", &*bias}});
  TORCH_CHECK(a.scalar_type() == at::kFloat8_e4m3fn, op, ": a must be float8_e4m3fn, got ", a.scalar_type());
  check_activations(op, "a", a);
  const c10::SymInt k = a.sym_size(-1);
  plan.b_prepacked = check_weight_layout(op, b, k);
  plan.b_scale_kind = check_weight(op, b, b_scale, bias, k);
  TORCH_CHECK(a_scale.scalar_type() == at::kFloat, op, ": a_scale must be float32, got ", a_scale.scalar_type());
  const std::string want = "[] or [1] (per tensor), [..., 1] (per token) or [..., K/128] (per group), with a's leading dims";
  if (a_scale.dim() == 0 || (a_scale.dim() == 1 && a.dim() > 1)) {
    TORCH_SYM_CHECK(a_scale.sym_numel().sym_eq(1), op, ": a_scale of shape ", sizes_string(a_scale.sym_sizes()),
                    " fits no granularity: want ", want);
    plan.a_scale_kind = Fp8ScaleKind::tensor;
  } else {
    TORCH_CHECK(a_scale.dim() == a.dim(), op, ": a_scale of shape ", sizes_string(a_scale.sym_sizes()),
                " fits no granularity: want ", want);
    for (int64_t d = 0; d + 1 < a.dim(); ++d) {
      TORCH_SYM_CHECK(a_scale.sym_size(d).sym_eq(a.sym_size(d)), op, ": a_scale of shape ",
                      sizes_string(a_scale.sym_sizes()), " does not match a of shape ", sizes_string(a.sym_sizes()),
                      ": want ", want);
    }
    if (guard_eq(a_scale.sym_size(-1), 1)) {
      plan.a_scale_kind = Fp8ScaleKind::row;
    } else {
      check_k_groups(op, "per-group activation scales", k);
      TORCH_SYM_CHECK(a_scale.sym_size(-1).sym_eq(k / kGroup), op, ": a_scale of shape ",
                      sizes_string(a_scale.sym_sizes()), " fits no granularity: want ", want);
      plan.a_scale_kind = Fp8ScaleKind::group128;
    }
  }
  plan.out_dtype = out_dtype.value_or(at::kBFloat16);
  TORCH_CHECK(dtype_in(plan.out_dtype, kFloatDtypes), op, ": out_dtype must be ", dtype_list(kFloatDtypes), ", got ",
              plan.out_dtype);
  plan.out_sizes = output_sizes(a, b);
  return plan;
}

Fp8GemmPlan check_fp8_gemm_w8a16(const at::Tensor& x, const at::Tensor& b, const at::Tensor& b_scale,
                                 const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "mxkernels.fp8_gemm_w8a16";
  Fp8GemmPlan plan;
  check_same_device(op, {{"x", &x}, {"b", &b}, {"b_scale", &b_scale}});
  if (bias.has_value()) check_same_device(op, {{"x", &x}, {"bias", &*bias}});
  TORCH_CHECK(dtype_in(x.scalar_type(), kFloatDtypes), op, ": x must be ", dtype_list(kFloatDtypes), ", got ",
              x.scalar_type());
  check_activations(op, "x", x);
  plan.b_prepacked = check_weight_layout(op, b, x.sym_size(-1));
  plan.b_scale_kind = check_weight(op, b, b_scale, bias, x.sym_size(-1));
  plan.out_dtype = x.scalar_type();
  plan.out_sizes = output_sizes(x, b);
  return plan;
}

std::vector<c10::SymInt> check_prepack_fp8_weight(const at::Tensor& b) {
  constexpr const char* op = "mxkernels.prepack_fp8_weight";
  TORCH_CHECK(b.scalar_type() == at::kFloat8_e4m3fn, op, ": b must be float8_e4m3fn, got ", b.scalar_type());
  TORCH_CHECK(b.dim() == 2, op, ": b must be 2-D [N, K] (the nn.Linear layout), got shape ", sizes_string(b.sym_sizes()));
  const c10::SymInt k = b.sym_size(1);
  TORCH_SYM_CHECK(k.sym_gt(0) & (k % 2).sym_eq(0), op, ": K = b.size(1) must be positive and even, got ", sym_str(k));
  return {b.sym_size(0), k / 2, c10::SymInt(2)};
}

at::Tensor empty_fp8_gemm_output(const at::Tensor& a, const Fp8GemmPlan& plan) {
  return at::empty_symint(plan.out_sizes, a.options().dtype(plan.out_dtype));
}

}  // namespace mxkernels::ops
