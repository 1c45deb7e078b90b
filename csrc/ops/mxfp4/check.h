// The one check function per MXFP4 op, called by the CPU kernels and the Meta kernels alike, so both reject
// the same inputs with the same message. Symbolic sizes are checked with TORCH_SYM_CHECK.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>
#include <c10/util/string_view.h>

#include <optional>
#include <string_view>
#include <vector>

#include "core/mxfp4.h"

namespace mxkernels::ops {

struct QuantizeMxfp4Plan {
  core::ScaleMode mode;
  core::FloatType x_type;
  std::vector<c10::SymInt> q_sizes;      // [..., K / 2]
  std::vector<c10::SymInt> scale_sizes;  // [..., K / 32]
};

QuantizeMxfp4Plan check_quantize_mxfp4(const at::Tensor& x, c10::string_view scale_mode);
// The functional variant's checks plus those of the caller's outputs.
QuantizeMxfp4Plan check_quantize_mxfp4_out(const at::Tensor& x, c10::string_view scale_mode, const at::Tensor& q,
                                           const at::Tensor& scales);
// The functional variant's outputs (contiguous), for the real and the Meta kernel alike.
std::tuple<at::Tensor, at::Tensor> empty_quantize_mxfp4_outputs(const at::Tensor& x, const QuantizeMxfp4Plan& plan);

struct DequantizeMxfp4Plan {
  core::FloatType out_type;
  std::vector<c10::SymInt> out_sizes;  // [..., 2 * q.size(-1)]
};

DequantizeMxfp4Plan check_dequantize_mxfp4(const at::Tensor& q, const at::Tensor& scales, at::ScalarType dtype);
at::Tensor empty_dequantize_mxfp4_output(const at::Tensor& q, at::ScalarType dtype, const DequantizeMxfp4Plan& plan);

struct Mxfp4GemmPlan {
  std::vector<c10::SymInt> out_sizes;  // [..., N]
  at::ScalarType out_dtype;
  bool w_prepacked = false;    // prepack_mxfp4_weight's [N, K/32, 17] (the CPU kernels' layout)
  bool w_cuda_packed = false;  // prepack_mxfp4_weight_cuda's [N/16, L, 128] (the CUDA kernels')
};

// The weight of both GEMMs: w_q [N, K/2] (float4_e2m1fn_x2 or uint8) with w_scales [N, K/32] (float8_e8m0fnu or
// uint8), or w_q prepacked with w_scales None: uint8 [N, K/32, 17] from prepack_mxfp4_weight, or uint8
// [N/16, L, 128] from prepack_mxfp4_weight_cuda; bias [N]. Which device takes which layout is the kernels' check.
// W4A16: x float32 / bfloat16 / float16 [..., K]; the output takes x's dtype.
Mxfp4GemmPlan check_mxfp4_gemm_w4a16(const at::Tensor& x, const at::Tensor& w_q, const std::optional<at::Tensor>& w_scales,
                                     const std::optional<at::Tensor>& bias);
// W4A4: a_q [..., K/2] codes, a_scales [..., K/32]; the output [..., N] in out_dtype.
Mxfp4GemmPlan check_mxfp4_gemm(const at::Tensor& a_q, const at::Tensor& a_scales, const at::Tensor& w_q,
                               const std::optional<at::Tensor>& w_scales, const std::optional<at::Tensor>& bias,
                               at::ScalarType out_dtype);
// The prepacked blob's sizes, [N, K/32, 17] (uint8, contiguous).
std::vector<c10::SymInt> check_prepack_mxfp4_weight(const at::Tensor& w_q, const at::Tensor& w_scales);
// The CUDA kernels' layout, [N/16, L, 128] (uint8, contiguous; mxfp4_cuda_layout.h): N a multiple of 16, each tile of
// 16 columns 272 K/32 bytes padded to L = ceil(272 (K/32) / 128) lines of 128.
std::vector<c10::SymInt> check_prepack_mxfp4_weight_cuda(const at::Tensor& w_q, const at::Tensor& w_scales);
at::Tensor empty_mxfp4_gemm_output(const at::Tensor& x, const Mxfp4GemmPlan& plan);

}  // namespace mxkernels::ops
