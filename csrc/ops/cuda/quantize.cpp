// The CUDA registrations of the quantizers and the MXFP4 dequantizer: the same check functions and output
// allocations as the CPU and Meta kernels, then the kernels of csrc/core/cuda on the tensors' device and its current
// stream.
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "core/cuda/cuda_kernels.h"
#include "ops/common/tensor_checks.h"
#include "ops/cuda/cuda_common.h"
#include "ops/fp8/check.h"
#include "ops/mxfp4/check.h"

namespace mxkernels::ops {
namespace {

using cuda_ops::aligned_rows;
using cuda_ops::check_launch;
using cuda_ops::is_aligned;

void quantize_mxfp4_into(const char* op, const at::Tensor& x, const QuantizeMxfp4Plan& plan, const at::Tensor& q,
                         const at::Tensor& scales) {
  const int64_t k = x.size(-1);
  if (x.numel() == 0) return;
  const at::Tensor rows = aligned_rows(x, k, 16);
  // The kernels store 8 or 16 code bytes at once; an output that does not start on a 16-byte boundary gets a staging
  // copy.
  const bool direct = is_aligned(q, 16);
  at::Tensor q_bytes = direct ? q.view(at::kByte) : at::empty(q.sizes(), q.options().dtype(at::kByte));
  check_launch(core::cuda::quantize_mxfp4(rows.const_data_ptr(), plan.x_type, rows.size(0), k, rows.stride(0), plan.mode,
                                          static_cast<uint8_t*>(q_bytes.mutable_data_ptr()),
                                          static_cast<uint8_t*>(scales.mutable_data_ptr()),
                                          c10::cuda::getCurrentCUDAStream()),
               op);
  if (!direct) q.view(at::kByte).copy_(q_bytes);
}

std::tuple<at::Tensor, at::Tensor> quantize_mxfp4_cuda(const at::Tensor& x, c10::string_view scale_mode) {
  const QuantizeMxfp4Plan plan = check_quantize_mxfp4(x, scale_mode);
  const c10::cuda::CUDAGuard guard(x.device());
  auto [q, scales] = empty_quantize_mxfp4_outputs(x, plan);
  quantize_mxfp4_into("mxkernels.quantize_mxfp4", x, plan, q, scales);
  return {q, scales};
}

void quantize_mxfp4_out_cuda(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scales,
                             c10::string_view scale_mode) {
  const QuantizeMxfp4Plan plan = check_quantize_mxfp4_out(x, scale_mode, q, scales);
  const c10::cuda::CUDAGuard guard(x.device());
  quantize_mxfp4_into("mxkernels.quantize_mxfp4_out", x, plan, q, scales);
}

at::Tensor dequantize_mxfp4_cuda(const at::Tensor& q, const at::Tensor& scales, at::ScalarType dtype) {
  const DequantizeMxfp4Plan plan = check_dequantize_mxfp4(q, scales, dtype);
  const c10::cuda::CUDAGuard guard(q.device());
  at::Tensor out = empty_dequantize_mxfp4_output(q, dtype, plan);
  if (out.numel() == 0) return out;
  const int64_t packed = q.size(-1);
  const at::Tensor q_rows = aligned_rows(q.view(at::kByte), packed, 4);
  const at::Tensor s_rows = aligned_rows(scales.view(at::kByte), packed / 16, 1);
  check_launch(core::cuda::dequantize_mxfp4(q_rows.const_data_ptr<uint8_t>(), q_rows.stride(0),
                                            s_rows.const_data_ptr<uint8_t>(), s_rows.stride(0), q_rows.size(0),
                                            packed * 2, plan.out_type, out.mutable_data_ptr(),
                                            c10::cuda::getCurrentCUDAStream()),
               "mxkernels.dequantize_mxfp4");
  return out;
}

void quantize_fp8_into(const char* op, const at::Tensor& x, const QuantizeFp8Plan& plan, int64_t group_size,
                       bool ue8m0, const at::Tensor& q, const at::Tensor& scales) {
  const int64_t k = x.size(-1);
  if (x.numel() == 0) return;
  const at::Tensor rows = aligned_rows(x, k, x.element_size());
  check_launch(core::cuda::quantize_fp8_groups(rows.const_data_ptr(), plan.x_type, rows.size(0), k, rows.stride(0),
                                               group_size, plan.eps, ue8m0, static_cast<uint8_t*>(q.mutable_data_ptr()),
                                               scales.mutable_data_ptr<float>(), c10::cuda::getCurrentCUDAStream()),
               op);
}

std::tuple<at::Tensor, at::Tensor> quantize_fp8_cuda(const at::Tensor& x, c10::SymInt group_size, double eps,
                                                     bool scale_ue8m0) {
  const QuantizeFp8Plan plan = check_quantize_fp8(x, group_size, eps);
  const c10::cuda::CUDAGuard guard(x.device());
  auto [q, scales] = empty_quantize_fp8_outputs(x, plan);
  quantize_fp8_into("mxkernels.quantize_fp8", x, plan, concrete_int(group_size, "group_size"), scale_ue8m0, q, scales);
  return {q, scales};
}

void quantize_fp8_out_cuda(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scales, c10::SymInt group_size,
                           double eps, bool scale_ue8m0) {
  const QuantizeFp8Plan plan = check_quantize_fp8_out(x, q, scales, group_size, eps);
  const c10::cuda::CUDAGuard guard(x.device());
  quantize_fp8_into("mxkernels.quantize_fp8_out", x, plan, concrete_int(group_size, "group_size"), scale_ue8m0, q,
                    scales);
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, CUDA, m) {
  m.impl("quantize_mxfp4", &quantize_mxfp4_cuda);
  m.impl("quantize_mxfp4_out", &quantize_mxfp4_out_cuda);
  m.impl("dequantize_mxfp4", &dequantize_mxfp4_cuda);
  m.impl("quantize_fp8", &quantize_fp8_cuda);
  m.impl("quantize_fp8_out", &quantize_fp8_out_cuda);
}

}  // namespace mxkernels::ops
