#include <stdexcept>

#include "mxfp4.h"
#include "mxfp4_kernels_isa.h"

namespace mxkernels::core {

const Mxfp4Kernels& mxfp4_kernels(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::scalar: return isa_scalar::kMxfp4Kernels;
#if defined(__x86_64__) || defined(_M_X64)
    case CpuIsa::avx2: return isa_avx2::kMxfp4Kernels;
    case CpuIsa::avx512: return isa_avx512::kMxfp4Kernels;
#endif
    default: break;
  }
  throw std::invalid_argument(std::string("no MXFP4 kernels compiled for CPU level ") + cpu_isa_name(isa));
}

const Mxfp4Kernels& mxfp4_kernels() { return mxfp4_kernels(selected_cpu_isa()); }

}  // namespace mxkernels::core
