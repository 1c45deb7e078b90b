#include <ATen/Parallel.h>
#include <torch/library.h>

#include "core/mxfp4.h"
#include "ops/common/tensor_checks.h"
#include "ops/mxfp4/check.h"

namespace mxkernels::ops {
namespace {

// Work is split in runs of blocks; a run never crosses a row, so each kernel call sees contiguous memory.
// 2048 blocks (64K values) per task keeps the scheduling cost far below the kernel's.
constexpr int64_t kBlocksPerTask = 2048;

void quantize_into(const at::Tensor& x, const QuantizeMxfp4Plan& plan, uint8_t* q, uint8_t* scales) {
  const RowOffsets rows(x);
  const int64_t blocks_per_row = x.size(-1) / core::kMxfp4BlockSize;
  const int64_t elem = x.element_size();
  const auto* base = static_cast<const char*>(x.const_data_ptr());
  const core::Mxfp4Kernels& kernels = core::mxfp4_kernels();
  at::parallel_for(0, rows.rows() * blocks_per_row, kBlocksPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end;) {
      const int64_t row = blk / blocks_per_row;
      const int64_t first = blk % blocks_per_row;
      const int64_t n = std::min(blocks_per_row - first, end - blk);
      const char* src = base + (rows.offset(row) + first * core::kMxfp4BlockSize) * elem;
      kernels.quantize(src, plan.x_type, n, plan.mode, q + blk * core::kMxfp4BlockBytes, scales + blk);
      blk += n;
    }
  });
}

std::tuple<at::Tensor, at::Tensor> quantize_mxfp4_cpu(const at::Tensor& x, c10::string_view scale_mode) {
  const QuantizeMxfp4Plan plan = check_quantize_mxfp4(x, scale_mode);
  auto [q, scales] = empty_quantize_mxfp4_outputs(x, plan);
  quantize_into(x, plan, static_cast<uint8_t*>(q.mutable_data_ptr()), static_cast<uint8_t*>(scales.mutable_data_ptr()));
  return {q, scales};
}

void quantize_mxfp4_out_cpu(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scales,
                            c10::string_view scale_mode) {
  const QuantizeMxfp4Plan plan =
      check_quantize_mxfp4_out(x, scale_mode, q, scales);
  quantize_into(x, plan, static_cast<uint8_t*>(q.mutable_data_ptr()), static_cast<uint8_t*>(scales.mutable_data_ptr()));
}

at::Tensor dequantize_mxfp4_cpu(const at::Tensor& q, const at::Tensor& scales, at::ScalarType dtype) {
  const DequantizeMxfp4Plan plan = check_dequantize_mxfp4(q, scales, dtype);
  at::Tensor out = empty_dequantize_mxfp4_output(q, dtype, plan);
  const RowOffsets q_rows(q), scale_rows(scales);
  const int64_t blocks_per_row = scales.size(-1);
  const auto* q_base = static_cast<const uint8_t*>(q.const_data_ptr());
  const auto* s_base = static_cast<const uint8_t*>(scales.const_data_ptr());
  auto* out_base = static_cast<char*>(out.mutable_data_ptr());
  const int64_t out_elem = out.element_size();
  const core::Mxfp4Kernels& kernels = core::mxfp4_kernels();
  at::parallel_for(0, q_rows.rows() * blocks_per_row, kBlocksPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end;) {
      const int64_t row = blk / blocks_per_row;
      const int64_t first = blk % blocks_per_row;
      const int64_t n = std::min(blocks_per_row - first, end - blk);
      kernels.dequantize(q_base + q_rows.offset(row) + first * core::kMxfp4BlockBytes,
                         s_base + scale_rows.offset(row) + first, n, plan.out_type,
                         out_base + blk * core::kMxfp4BlockSize * out_elem);
      blk += n;
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, CPU, m) {
  m.impl("quantize_mxfp4", &quantize_mxfp4_cpu);
  m.impl("quantize_mxfp4_out", &quantize_mxfp4_out_cpu);
  m.impl("dequantize_mxfp4", &dequantize_mxfp4_cpu);
}

}  // namespace mxkernels::ops
