#include "ops/cuda/cuda_common.h"

#include <c10/util/Exception.h>

namespace mxkernels::ops::cuda_ops {

void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

bool is_aligned(const at::Tensor& t, int64_t align) {
  return reinterpret_cast<uintptr_t>(t.const_data_ptr()) % uintptr_t(align) == 0;
}

at::Tensor aligned_rows(const at::Tensor& t, int64_t last, int64_t align) {
  at::Tensor rows = t.reshape({-1, last});
  const bool ok = rows.stride(1) == 1 && is_aligned(rows, align) &&
                  (rows.size(0) <= 1 || (rows.stride(0) * rows.element_size()) % align == 0);
  return ok ? rows : rows.clone(at::MemoryFormat::Contiguous);
}

}  // namespace mxkernels::ops::cuda_ops
