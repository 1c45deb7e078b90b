// The per-level kernel tables; each is defined in its own translation unit (mxfp4_kernels.cpp compiled with
// that level's flags).
#pragma once
#include "mxfp4.h"

namespace mxkernels::core {
namespace isa_scalar { extern const Mxfp4Kernels kMxfp4Kernels; }
namespace isa_avx2 { extern const Mxfp4Kernels kMxfp4Kernels; }
namespace isa_avx512 { extern const Mxfp4Kernels kMxfp4Kernels; }
}  // namespace mxkernels::core
