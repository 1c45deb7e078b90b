#include "cuda/w4a16_internal.h"
#include "cuda/w4a16_launch.cuh"

namespace mxkernels::core::cuda {
cudaError_t w4a16_bf16_to_bf16(const W4A16Problem& p, cudaStream_t stream) { return launch_w4a16_typed<__nv_bfloat16, __nv_bfloat16>(p, stream); }
}  // namespace mxkernels::core::cuda
