// Helpers shared by the google-benchmark programs.
#pragma once
#include <benchmark/benchmark.h>

#include "cpu_isa.h"

namespace mxkernels::bench {

// Marks the benchmark skipped when this machine cannot run the CPU level; true then.
inline bool skip_unsupported(benchmark::State& state, core::CpuIsa isa) {
  if (core::cpu_isa_supported(isa)) return false;
  state.SkipWithError("CPU level not supported here");
  return true;
}

}  // namespace mxkernels::bench
