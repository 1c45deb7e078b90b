#include <stdexcept>
#include <string>

#include "kernel_tables.h"

namespace mxkernels::core {
namespace {

// The table of one family (a member pointer picks it) for one level.
template <typename Table>
const Table& table_for(CpuIsa isa, const Table& scalar, const Table& avx2, const Table& avx512, const Table& avx512_bf16,
                       const Table& amx, const char* family) {
  switch (isa) {
    case CpuIsa::scalar: return scalar;
#if defined(__x86_64__) || defined(_M_X64)
    case CpuIsa::avx2: return avx2;
    case CpuIsa::avx512: return avx512;
    case CpuIsa::avx512_bf16: return avx512_bf16;
    case CpuIsa::amx: return amx;
#endif
    default: break;
  }
  throw std::invalid_argument(std::string("no ") + family + " kernels compiled for CPU level " + cpu_isa_name(isa));
}

}  // namespace

const Mxfp4Kernels& mxfp4_kernels(CpuIsa isa) {
  return table_for(isa, isa_scalar::kMxfp4Kernels, isa_avx2::kMxfp4Kernels, isa_avx512::kMxfp4Kernels,
                   isa_avx512_bf16::kMxfp4Kernels, isa_amx::kMxfp4Kernels, "MXFP4");
}
const Mxfp4Kernels& mxfp4_kernels() { return mxfp4_kernels(selected_cpu_isa()); }

const Fp8Kernels& fp8_kernels(CpuIsa isa) {
  return table_for(isa, isa_scalar::kFp8Kernels, isa_avx2::kFp8Kernels, isa_avx512::kFp8Kernels,
                   isa_avx512_bf16::kFp8Kernels, isa_amx::kFp8Kernels, "FP8");
}
const Fp8Kernels& fp8_kernels() { return fp8_kernels(selected_cpu_isa()); }

const Fp8GemmKernels& fp8_gemm_kernels(CpuIsa isa) {
  return table_for(isa, isa_scalar::kFp8GemmKernels, isa_avx2::kFp8GemmKernels, isa_avx512::kFp8GemmKernels,
                   isa_avx512_bf16::kFp8GemmKernels, isa_amx::kFp8GemmKernels, "FP8 GEMM");
}
const Fp8GemmKernels& fp8_gemm_kernels() { return fp8_gemm_kernels(selected_cpu_isa()); }

const Mxfp4GemmKernels& mxfp4_gemm_kernels(CpuIsa isa) {
  return table_for(isa, isa_scalar::kMxfp4GemmKernels, isa_avx2::kMxfp4GemmKernels, isa_avx512::kMxfp4GemmKernels,
                   isa_avx512_bf16::kMxfp4GemmKernels, isa_amx::kMxfp4GemmKernels, "MXFP4 GEMM");
}
const Mxfp4GemmKernels& mxfp4_gemm_kernels() { return mxfp4_gemm_kernels(selected_cpu_isa()); }

}  // namespace mxkernels::core
