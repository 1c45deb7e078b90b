// mxfp4_gemm_w4a16 on CUDA: the check function of the CPU and Meta kernels, then the tensor-core kernels of
// csrc/core/cuda. bfloat16 and float16 activations are the MMA operands as they are; float32 activations are split
// into three bfloat16 parts (hi + mid + lo carry the 24-bit significand, up to one float32 rounding) whose GEMMs are
// added in float32, so they keep float32 accuracy. Also prepack_mxfp4_weight_cuda, the kernels' own weight layout.
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/sub.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "core/cuda/cuda_kernels.h"
#include "core/mxfp4_cuda_layout.h"
#include "ops/common/tensor_checks.h"
#include "ops/cuda/cuda_common.h"
#include "ops/mxfp4/check.h"

namespace mxkernels::ops {
namespace {

constexpr const char* kOp = "mxkernels.mxfp4_gemm_w4a16";

// w: plain codes [N, K/2] with s [N, K/32], or the packed layout (s undefined).
void run_w4a16(const at::Tensor& x_rows, const at::Tensor& w, const at::Tensor& s, const at::Tensor& bias32,
               const at::Tensor& out_rows) {
  core::cuda::W4A16Problem p;
  p.m = x_rows.size(0);
  p.n = out_rows.size(1);
  p.k = x_rows.size(1);
  p.x = x_rows.const_data_ptr();
  p.ldx = x_rows.stride(0);
  p.x_type = core_float_type(x_rows.scalar_type());
  p.w = w.const_data_ptr<uint8_t>();
  p.w_packed = !s.defined();
  if (!p.w_packed) {
    p.ldw = w.stride(0);
    p.w_scales = s.const_data_ptr<uint8_t>();
    p.ldw_scales = s.stride(0);
  }
  p.bias = bias32.defined() ? bias32.const_data_ptr<float>() : nullptr;
  p.out = out_rows.mutable_data_ptr();
  p.ldo = out_rows.stride(0);
  p.out_type = core_float_type(out_rows.scalar_type());
  cuda_ops::check_launch(core::cuda::mxfp4_gemm_w4a16(p, c10::cuda::getCurrentCUDAStream()), kOp);
}

at::Tensor mxfp4_gemm_w4a16_cuda(const at::Tensor& x, const at::Tensor& w_q, const std::optional<at::Tensor>& w_scales,
                                 const std::optional<at::Tensor>& bias) {
  const Mxfp4GemmPlan plan = check_mxfp4_gemm_w4a16(x, w_q, w_scales, bias);
  TORCH_CHECK(!plan.w_prepacked, kOp,
              ": w_q is a prepack_mxfp4_weight blob, a CPU layout; on CUDA pass the plain w_q [N, K/2] with w_scales "
              "[N, K/32], or a prepack_mxfp4_weight_cuda blob [N/16, L, 128]");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = empty_mxfp4_gemm_output(x, plan);
  const int64_t k = x.size(-1), n = out.size(-1);
  if (out.numel() == 0) return out;
  at::Tensor w, s;
  if (plan.w_cuda_packed) {
    // Contiguous (checked); a view that starts off a 16-byte boundary is copied.
    w = reinterpret_cast<uintptr_t>(w_q.const_data_ptr()) % 16 == 0 ? w_q : w_q.clone();
  } else {
    w = cuda_ops::aligned_rows(w_q.view(at::kByte), k / 2, 16);
    s = w_scales->view(at::kByte);
  }
  const at::Tensor bias32 = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const at::Tensor out_rows = out.view({-1, n});
  if (x.scalar_type() != at::kFloat) {
    run_w4a16(cuda_ops::aligned_rows(x, k, 16), w, s, bias32, out_rows);
    return out;
  }
  const at::Tensor x32 = x.reshape({-1, k});
  const at::Tensor hi = x32.to(at::kBFloat16);
  // An infinite x leaves no residual (inf - inf would be NaN); hi carries it.
  const at::Tensor r1 = at::sub(x32, hi.to(at::kFloat)).nan_to_num_(0.0, 0.0, 0.0);
  const at::Tensor mid = r1.to(at::kBFloat16);
  const at::Tensor lo = at::sub(r1, mid.to(at::kFloat)).to(at::kBFloat16);
  run_w4a16(hi, w, s, bias32, out_rows);
  at::Tensor part = at::empty_like(out_rows);
  run_w4a16(mid, w, s, at::Tensor(), part);
  out_rows.add_(part);
  run_w4a16(lo, w, s, at::Tensor(), part);
  out_rows.add_(part);
  return out;
}

// The layout of core/mxfp4_cuda_layout.h from tensor operations on the device (the CPU kernel is the scalar packer):
// per tile of 16 columns, the codes pair of blocks by pair (16 rows of 32 bytes), then the scales likewise (16 rows of
// 2 bytes); an odd last block alone (rows of 16 bytes, and of 1); zeros up to a whole number of 128-byte lines.
at::Tensor prepack_mxfp4_weight_cuda_cuda(const at::Tensor& w_q, const at::Tensor& w_scales) {
  check_prepack_mxfp4_weight_cuda(w_q, w_scales);
  const c10::cuda::CUDAGuard guard(w_q.device());
  const int64_t n = w_q.size(0), nb = w_q.size(1) / 16, tiles = n / 16, pairs = nb / 2;
  const at::Tensor q = w_q.view(at::kByte).reshape({tiles, 16, nb, 16});
  const at::Tensor s = w_scales.view(at::kByte).reshape({tiles, 16, nb});
  std::vector<at::Tensor> parts;
  if (pairs > 0) {
    parts.push_back(q.narrow(2, 0, 2 * pairs).reshape({tiles, 16, pairs, 32}).permute({0, 2, 1, 3}).reshape({tiles, -1}));
  }
  if (nb % 2) parts.push_back(q.select(2, nb - 1).reshape({tiles, 256}));
  if (pairs > 0) {
    parts.push_back(s.narrow(2, 0, 2 * pairs).reshape({tiles, 16, pairs, 2}).permute({0, 2, 1, 3}).reshape({tiles, -1}));
  }
  if (nb % 2) parts.push_back(s.select(2, nb - 1).reshape({tiles, 16}));
  const int64_t lines = core::mxfp4_cuda_tile_lines(nb);
  const int64_t pad = lines * core::kMxfp4CudaLineBytes - nb * core::kMxfp4CudaTileBlockBytes;
  if (pad > 0) parts.push_back(at::zeros({tiles, pad}, w_q.options().dtype(at::kByte)));
  return at::cat(parts, 1).view({tiles, lines, core::kMxfp4CudaLineBytes});
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, CUDA, m) {
  m.impl("mxfp4_gemm_w4a16", &mxfp4_gemm_w4a16_cuda);
  m.impl("prepack_mxfp4_weight_cuda", &prepack_mxfp4_weight_cuda_cuda);
}

}  // namespace mxkernels::ops
