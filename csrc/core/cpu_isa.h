// Run-time choice of the CPU instruction set. Every kernel source is compiled once per level in its own
// translation unit; the level is picked once, from CPUID and the OS's saved-state mask, unless the
// MXKERNELS_CPU_ISA environment variable or set_cpu_isa() says otherwise.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mxkernels::core {

// Ordered: a higher level can run everything a lower one can.
enum class CpuIsa : int {
  scalar = 0,  // baseline x86-64 (or any other architecture)
  avx2 = 1,    // AVX2 + FMA + F16C
  avx512 = 2,  // AVX-512 F/BW/DQ/VL + VNNI (+ AVX2, FMA, F16C)
  avx512_bf16 = 3,  // avx512 + AVX-512 BF16 (vdpbf16ps)
  amx = 4,          // avx512_bf16 + AMX tiles with BF16 (the OS must grant the tile state)
};

const char* cpu_isa_name(CpuIsa isa);
// Accepts the names above; false for anything else.
bool parse_cpu_isa(std::string_view name, CpuIsa* out);

// The levels this binary carries kernels for.
std::vector<CpuIsa> compiled_cpu_isas();
// True when this CPU and OS can run the level and this binary carries it.
bool cpu_isa_supported(CpuIsa isa);
// The best supported level.
CpuIsa detected_cpu_isa();

// The level kernels run at. On first use it reads MXKERNELS_CPU_ISA (throws std::invalid_argument
// for an unknown or unsupported name), otherwise takes detected_cpu_isa().
CpuIsa selected_cpu_isa();
// Overrides the selection for the whole process (tests, benchmarks). Throws std::invalid_argument
// when the level is not supported here.
void set_cpu_isa(CpuIsa isa);

// "avx2 fma f16c avx512f ..." as seen by CPUID, for build and bug reports.
std::string cpu_features_string();

}  // namespace mxkernels::core
