// Helpers of the CUDA registrations: launch errors as TORCH_CHECK errors, and 2-D row views whose alignment the
// kernels' vector loads need.
#pragma once
#include <ATen/core/Tensor.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace mxkernels::ops::cuda_ops {

// TORCH_CHECK(err == cudaSuccess) naming the op.
void check_launch(cudaError_t err, const char* op);

// t (last dim contiguous) as [rows, last] rows: a view where the leading dims allow it and the rows start on
// `align`-byte boundaries, else a contiguous copy.
at::Tensor aligned_rows(const at::Tensor& t, int64_t last, int64_t align);

// Whether a contiguous output's data pointer is on an `align`-byte boundary (the kernels store 4 or 16 bytes at once).
bool is_aligned(const at::Tensor& t, int64_t align);

}  // namespace mxkernels::ops::cuda_ops
