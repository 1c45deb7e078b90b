// The per-level kernel tables; each is defined in its own translation unit (a kernel source compiled with
// that level's flags, see cmake/CpuIsa.cmake).
#pragma once
#include "fp8.h"
#include "fp8_gemm.h"
#include "mxfp4.h"
#include "mxfp4_gemm.h"

#define MXK_DECLARE_KERNEL_TABLES(ns)          \
  namespace ns {                               \
  extern const Mxfp4Kernels kMxfp4Kernels;     \
  extern const Fp8Kernels kFp8Kernels;         \
  extern const Fp8GemmKernels kFp8GemmKernels; \
  extern const Mxfp4GemmKernels kMxfp4GemmKernels; \
  }

namespace mxkernels::core {
MXK_DECLARE_KERNEL_TABLES(isa_scalar)
MXK_DECLARE_KERNEL_TABLES(isa_avx2)
MXK_DECLARE_KERNEL_TABLES(isa_avx512)
MXK_DECLARE_KERNEL_TABLES(isa_avx512_bf16)
MXK_DECLARE_KERNEL_TABLES(isa_amx)
}  // namespace mxkernels::core
