#include "ops/mxfp4/check.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <climits>

#include "core/mxfp4_cuda_layout.h"
#include "ops/common/tensor_checks.h"

namespace mxkernels::ops {
namespace {

constexpr std::initializer_list<at::ScalarType> kFloatDtypes = {at::kFloat, at::kBFloat16, at::kHalf};

void check_codes_dtype(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(dtype_in(t.scalar_type(), {at::kFloat4_e2m1fn_x2, at::kByte}), op, ": ", name,
              " must be float4_e2m1fn_x2 or uint8 (two E2M1 codes per byte), got ", t.scalar_type());
}

void check_scales_dtype(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(dtype_in(t.scalar_type(), {at::kFloat8_e8m0fnu, at::kByte}), op, ": ", name,
              " must be float8_e8m0fnu or uint8 (E8M0 scales), got ", t.scalar_type());
}

void check_last_dim_contiguous(const char* op, const char* name, const at::Tensor& t) {
  TORCH_SYM_CHECK(t.sym_stride(-1).sym_eq(1), op, ": ", name, ".stride(-1) must be 1, got ", sym_str(t.sym_stride(-1)));
}

QuantizeMxfp4Plan check_quantize_input(const char* op, const at::Tensor& x, c10::string_view scale_mode) {
  QuantizeMxfp4Plan plan{};
  const std::string_view mode_name(scale_mode.data(), scale_mode.size());
  TORCH_CHECK(core::parse_scale_mode(mode_name, &plan.mode), op,
              ": scale_mode must be one of 'floor', 'ceil', 'even', 'rceil', got '", mode_name, "'");
  TORCH_CHECK(dtype_in(x.scalar_type(), kFloatDtypes), op, ": x must be ", dtype_list(kFloatDtypes), ", got ",
              x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, got a 0-d tensor");
  const c10::SymInt k = x.sym_size(-1);
  TORCH_SYM_CHECK(k.sym_gt(0) & (k % core::kMxfp4BlockSize).sym_eq(0), op,
                  ": x.size(-1) must be a positive multiple of 32, got ", sym_str(k));
  check_last_dim_contiguous(op, "x", x);
  plan.x_type = core_float_type(x.scalar_type());
  c10::SymIntArrayRef sizes = x.sym_sizes();
  plan.q_sizes.assign(sizes.begin(), sizes.end());
  plan.scale_sizes.assign(sizes.begin(), sizes.end());
  plan.q_sizes.back() = k / 2;
  plan.scale_sizes.back() = k / core::kMxfp4BlockSize;
  return plan;
}

}  // namespace

QuantizeMxfp4Plan check_quantize_mxfp4(const at::Tensor& x, c10::string_view scale_mode) {
  return check_quantize_input("mxkernels.quantize_mxfp4", x, scale_mode);
}

QuantizeMxfp4Plan check_quantize_mxfp4_out(const at::Tensor& x, c10::string_view scale_mode, const at::Tensor& q,
                                           const at::Tensor& scales) {
  constexpr const char* op = "mxkernels.quantize_mxfp4_out";
  QuantizeMxfp4Plan plan = check_quantize_input(op, x, scale_mode);
  check_same_device(op, {{"x", &x}, {"q", &q}, {"scales", &scales}});
  check_codes_dtype(op, "q", q);
  check_scales_dtype(op, "scales", scales);
  check_sizes_equal(op, "q", q, plan.q_sizes);
  check_sizes_equal(op, "scales", scales, plan.scale_sizes);
  TORCH_CHECK(q.is_contiguous(), op, ": q must be contiguous, got strides ", sizes_string(q.sym_strides()));
  TORCH_CHECK(scales.is_contiguous(), op, ": scales must be contiguous, got strides ", sizes_string(scales.sym_strides()));
  return plan;
}

std::tuple<at::Tensor, at::Tensor> empty_quantize_mxfp4_outputs(const at::Tensor& x, const QuantizeMxfp4Plan& plan) {
  at::Tensor q = at::empty_symint(plan.q_sizes, x.options().dtype(at::kFloat4_e2m1fn_x2));
  at::Tensor scales = at::empty_symint(plan.scale_sizes, x.options().dtype(at::kFloat8_e8m0fnu));
  return {q, scales};
}

DequantizeMxfp4Plan check_dequantize_mxfp4(const at::Tensor& q, const at::Tensor& scales, at::ScalarType dtype) {
  constexpr const char* op = "mxkernels.dequantize_mxfp4";
  check_same_device(op, {{"q", &q}, {"scales", &scales}});
  check_codes_dtype(op, "q", q);
  check_scales_dtype(op, "scales", scales);
  TORCH_CHECK(dtype_in(dtype, kFloatDtypes), op, ": dtype must be ", dtype_list(kFloatDtypes), ", got ", dtype);
  TORCH_CHECK(q.dim() >= 1, op, ": q must have at least one dimension, got a 0-d tensor");
  TORCH_CHECK(scales.dim() == q.dim(), op, ": scales must have as many dims as q (", q.dim(), "), got shape ",
              sizes_string(scales.sym_sizes()), " for q of shape ", sizes_string(q.sym_sizes()));
  const c10::SymInt packed = q.sym_size(-1);
  TORCH_SYM_CHECK(packed.sym_gt(0) & (packed % core::kMxfp4BlockBytes).sym_eq(0), op,
                  ": q.size(-1) must be a positive multiple of 16 (32 codes per scale), got ", sym_str(packed));
  for (int64_t d = 0; d + 1 < q.dim(); ++d) {
    TORCH_SYM_CHECK(scales.sym_size(d).sym_eq(q.sym_size(d)), op, ": scales of shape ",
                    sizes_string(scales.sym_sizes()), " do not match q of shape ", sizes_string(q.sym_sizes()),
                    " (want [..., q.size(-1) / 16] with the same leading dims)");
  }
  TORCH_SYM_CHECK(scales.sym_size(-1).sym_eq(packed / core::kMxfp4BlockBytes), op, ": scales of shape ",
                  sizes_string(scales.sym_sizes()), " do not match q of shape ", sizes_string(q.sym_sizes()),
                  " (want [..., q.size(-1) / 16] with the same leading dims)");
  check_last_dim_contiguous(op, "q", q);
  check_last_dim_contiguous(op, "scales", scales);
  DequantizeMxfp4Plan plan{};
  plan.out_type = core_float_type(dtype);
  c10::SymIntArrayRef sizes = q.sym_sizes();
  plan.out_sizes.assign(sizes.begin(), sizes.end());
  plan.out_sizes.back() = packed * 2;
  return plan;
}

namespace {

// The lines of 128 bytes of a tile of the CUDA layout, L = ceil(272 (K/32) / 128) (mxfp4_cuda_tile_lines).
c10::SymInt cuda_layout_tile_lines(const c10::SymInt& k) {
  return (k / core::kMxfp4BlockSize * core::kMxfp4CudaTileBlockBytes + (core::kMxfp4CudaLineBytes - 1)) /
         core::kMxfp4CudaLineBytes;
}

// The CUDA layout's kernels index a tile's bytes (272 per block of 32, padded to 128-byte lines) in 32 bits.
void check_cuda_layout_k(const char* op, const c10::SymInt& k) {
  constexpr int64_t max_k = INT32_MAX / core::kMxfp4CudaTileBlockBytes / 8 * 8 * core::kMxfp4BlockSize;
  static_assert(max_k / core::kMxfp4BlockSize * core::kMxfp4CudaTileBlockBytes <= INT32_MAX,
                "8 blocks are a whole number of lines");
  TORCH_SYM_CHECK(k.sym_le(max_k), op, ": K = ", sym_str(k),
                  " is too large for the prepack_mxfp4_weight_cuda layout (at most ", max_k, ")");
}

// The weight of either GEMM: plain w_q [N, K/2] with w_scales [N, K/32], or a prepacked blob with w_scales None
// (scales inside): [N, K/32, 17] from prepack_mxfp4_weight (the CPU kernels' layout) or [N/16, L, 128] from
// prepack_mxfp4_weight_cuda (the CUDA kernels'). Returns N and sets the plan's layout flags.
c10::SymInt check_mxfp4_weight(const char* op, const c10::SymInt& k, const at::Tensor& w_q,
                               const std::optional<at::Tensor>& w_scales, Mxfp4GemmPlan* plan) {
  TORCH_CHECK(w_q.dim() == 2 || w_q.dim() == 3, op,
              ": w_q must be 2-D [N, K/2] (codes) or 3-D [N, K/32, 17] (from prepack_mxfp4_weight) or "
              "[N/16, L, 128] (from prepack_mxfp4_weight_cuda), got shape ",
              sizes_string(w_q.sym_sizes()));
  if (w_q.dim() == 3) {
    TORCH_CHECK(w_q.scalar_type() == at::kByte, op, ": a prepacked w_q must be uint8, got ", w_q.scalar_type());
    const bool cuda_layout = w_q.sym_size(2).sym_eq(core::kMxfp4CudaLineBytes).guard_bool(__FILE__, __LINE__);
    TORCH_SYM_CHECK(w_q.sym_size(2).sym_eq(17) | w_q.sym_size(2).sym_eq(core::kMxfp4CudaLineBytes), op,
                    ": a 3-D w_q must be prepacked [N, K/32, 17] or [N/16, L, 128], got shape ",
                    sizes_string(w_q.sym_sizes()));
    if (cuda_layout) {
      TORCH_SYM_CHECK(w_q.sym_size(1).sym_eq(cuda_layout_tile_lines(k)), op, ": prepacked w_q of shape ",
                      sizes_string(w_q.sym_sizes()), " does not hold K = ", sym_str(k),
                      " (the activations'): prepack_mxfp4_weight_cuda gives [N/16, ", sym_str(cuda_layout_tile_lines(k)),
                      ", 128] for it");
    } else {
      TORCH_SYM_CHECK(w_q.sym_size(1).sym_eq(k / core::kMxfp4BlockSize), op, ": prepacked w_q of shape ",
                      sizes_string(w_q.sym_sizes()), " holds K = ", sym_str(w_q.sym_size(1) * core::kMxfp4BlockSize),
                      ", but the activations have K = ", sym_str(k));
    }
    TORCH_SYM_CHECK(w_q.sym_is_contiguous(), op, ": prepacked w_q must be contiguous, got strides ",
                    sizes_string(w_q.sym_strides()));
    TORCH_CHECK(!w_scales.has_value(), op,
                ": w_scales must be None with a prepacked w_q (its scales are inside), got a tensor of shape ",
                sizes_string(w_scales->sym_sizes()));
    if (cuda_layout) check_cuda_layout_k(op, k);
    plan->w_prepacked = !cuda_layout;
    plan->w_cuda_packed = cuda_layout;
    return cuda_layout ? w_q.sym_size(0) * core::kMxfp4CudaTileColumns : w_q.sym_size(0);
  }
  const c10::SymInt n = w_q.sym_size(0);
  check_codes_dtype(op, "w_q", w_q);
  TORCH_SYM_CHECK(w_q.sym_size(1).sym_eq(k / 2), op, ": w_q must be [N, K/2] = [", sym_str(n), ", ", sym_str(k / 2),
                  "] for K = ", sym_str(k), ", got shape ", sizes_string(w_q.sym_sizes()));
  TORCH_CHECK(w_scales.has_value(), op, ": w_scales [N, K/32] is required with a plain w_q (None only with a prepacked one)");
  check_scales_dtype(op, "w_scales", *w_scales);
  check_sizes_equal(op, "w_scales", *w_scales, {n, k / core::kMxfp4BlockSize});
  check_last_dim_contiguous(op, "w_q", w_q);
  check_last_dim_contiguous(op, "w_scales", *w_scales);
  return n;
}

void check_bias(const char* op, const std::optional<at::Tensor>& bias, const c10::SymInt& n) {
  if (!bias.has_value()) return;
  TORCH_CHECK(dtype_in(bias->scalar_type(), kFloatDtypes), op, ": bias must be ", dtype_list(kFloatDtypes), ", got ",
              bias->scalar_type());
  check_sizes_equal(op, "bias", *bias, {n});
}

void check_devices(const char* op, std::initializer_list<std::pair<const char*, const at::Tensor*>> tensors,
                   const std::optional<at::Tensor>& w_scales, const std::optional<at::Tensor>& bias) {
  check_same_device(op, tensors);
  const auto& first = *tensors.begin();
  if (w_scales.has_value()) check_same_device(op, {first, {"w_scales", &*w_scales}});
  if (bias.has_value()) check_same_device(op, {first, {"bias", &*bias}});
}

c10::SymInt check_k(const char* op, const char* what, const c10::SymInt& k) {
  TORCH_SYM_CHECK(k.sym_gt(0) & (k % core::kMxfp4BlockSize).sym_eq(0), op, ": ", what,
                  " (K) must be a positive multiple of 32, got ", sym_str(k));
  return k;
}

}  // namespace

Mxfp4GemmPlan check_mxfp4_gemm_w4a16(const at::Tensor& x, const at::Tensor& w_q, const std::optional<at::Tensor>& w_scales,
                                     const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "mxkernels.mxfp4_gemm_w4a16";
  check_devices(op, {{"x", &x}, {"w_q", &w_q}}, w_scales, bias);
  TORCH_CHECK(dtype_in(x.scalar_type(), kFloatDtypes), op, ": x must be ", dtype_list(kFloatDtypes), ", got ",
              x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, got a 0-d tensor");
  const c10::SymInt k = check_k(op, "x.size(-1)", x.sym_size(-1));
  Mxfp4GemmPlan plan{};
  const c10::SymInt n = check_mxfp4_weight(op, k, w_q, w_scales, &plan);
  check_bias(op, bias, n);
  c10::SymIntArrayRef sizes = x.sym_sizes();
  plan.out_sizes.assign(sizes.begin(), sizes.end());
  plan.out_sizes.back() = n;
  plan.out_dtype = x.scalar_type();
  return plan;
}

Mxfp4GemmPlan check_mxfp4_gemm(const at::Tensor& a_q, const at::Tensor& a_scales, const at::Tensor& w_q,
                               const std::optional<at::Tensor>& w_scales, const std::optional<at::Tensor>& bias,
                               at::ScalarType out_dtype) {
  constexpr const char* op = "mxkernels.mxfp4_gemm";
  check_devices(op, {{"a_q", &a_q}, {"a_scales", &a_scales}, {"w_q", &w_q}}, w_scales, bias);
  check_codes_dtype(op, "a_q", a_q);
  check_scales_dtype(op, "a_scales", a_scales);
  TORCH_CHECK(a_q.dim() >= 1, op, ": a_q must have at least one dimension [..., K/2], got a 0-d tensor");
  const c10::SymInt k = check_k(op, "2 * a_q.size(-1)", a_q.sym_size(-1) * 2);
  std::vector<c10::SymInt> scale_sizes(a_q.sym_sizes().begin(), a_q.sym_sizes().end());
  scale_sizes.back() = k / core::kMxfp4BlockSize;
  check_sizes_equal(op, "a_scales", a_scales, scale_sizes);
  TORCH_CHECK(dtype_in(out_dtype, kFloatDtypes), op, ": out_dtype must be ", dtype_list(kFloatDtypes), ", got ", out_dtype);
  Mxfp4GemmPlan plan{};
  const c10::SymInt n = check_mxfp4_weight(op, k, w_q, w_scales, &plan);
  check_bias(op, bias, n);
  plan.out_sizes = std::move(scale_sizes);
  plan.out_sizes.back() = n;
  plan.out_dtype = out_dtype;
  return plan;
}

namespace {
c10::SymInt check_prepack_input(const char* op, const at::Tensor& w_q, const at::Tensor& w_scales) {
  check_same_device(op, {{"w_q", &w_q}, {"w_scales", &w_scales}});
  check_codes_dtype(op, "w_q", w_q);
  check_scales_dtype(op, "w_scales", w_scales);
  TORCH_CHECK(w_q.dim() == 2, op, ": w_q must be 2-D [N, K/2], got shape ", sizes_string(w_q.sym_sizes()));
  const c10::SymInt k = check_k(op, "2 * w_q.size(1)", w_q.sym_size(1) * 2);
  check_sizes_equal(op, "w_scales", w_scales, {w_q.sym_size(0), k / core::kMxfp4BlockSize});
  return k;
}
}  // namespace

std::vector<c10::SymInt> check_prepack_mxfp4_weight(const at::Tensor& w_q, const at::Tensor& w_scales) {
  const c10::SymInt k = check_prepack_input("mxkernels.prepack_mxfp4_weight", w_q, w_scales);
  return {w_q.sym_size(0), k / core::kMxfp4BlockSize, c10::SymInt(17)};
}

std::vector<c10::SymInt> check_prepack_mxfp4_weight_cuda(const at::Tensor& w_q, const at::Tensor& w_scales) {
  constexpr const char* op = "mxkernels.prepack_mxfp4_weight_cuda";
  const c10::SymInt k = check_prepack_input(op, w_q, w_scales);
  const c10::SymInt n = w_q.sym_size(0);
  TORCH_SYM_CHECK((n % core::kMxfp4CudaTileColumns).sym_eq(0), op,
                  ": N = w_q.size(0) must be a multiple of 16 (the layout's tiles of 16 columns), got ", sym_str(n));
  check_cuda_layout_k(op, k);
  return {n / core::kMxfp4CudaTileColumns, cuda_layout_tile_lines(k), c10::SymInt(core::kMxfp4CudaLineBytes)};
}

at::Tensor empty_mxfp4_gemm_output(const at::Tensor& x, const Mxfp4GemmPlan& plan) {
  return at::empty_symint(plan.out_sizes, x.options().dtype(plan.out_dtype));
}

at::Tensor empty_dequantize_mxfp4_output(const at::Tensor& q, at::ScalarType dtype, const DequantizeMxfp4Plan& plan) {
  return at::empty_symint(plan.out_sizes, q.options().dtype(dtype));
}

}  // namespace mxkernels::ops
