// One launcher per (activation, output) type pair, each compiled in its own file so that nvcc builds them in
// parallel.
#pragma once
#include "cuda/cuda_kernels.h"

namespace mxkernels::core::cuda {
cudaError_t w4a16_bf16_to_bf16(const W4A16Problem& p, cudaStream_t stream);
cudaError_t w4a16_bf16_to_f32(const W4A16Problem& p, cudaStream_t stream);
cudaError_t w4a16_f16_to_f16(const W4A16Problem& p, cudaStream_t stream);
}  // namespace mxkernels::core::cuda
