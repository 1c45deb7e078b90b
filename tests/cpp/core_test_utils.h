// Helpers shared by the core kernel tests.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu_isa.h"
#include "float_types.h"

namespace mxkernels::testing {

// The CPU levels this binary carries and this machine runs.
inline std::vector<core::CpuIsa> runnable_isas() {
  std::vector<core::CpuIsa> out;
  for (core::CpuIsa isa : core::compiled_cpu_isas())
    if (core::cpu_isa_supported(isa)) out.push_back(isa);
  return out;
}

// The fp32 values stored as `type` (bf16 / fp16 round them to nearest even).
inline std::vector<uint8_t> encode(const std::vector<float>& v, core::FloatType type) {
  std::vector<uint8_t> out(v.size() * core::float_type_bytes(type));
  for (size_t i = 0; i < v.size(); ++i) core::store_from_f32(out.data(), type, int64_t(i), v[i]);
  return out;
}

}  // namespace mxkernels::testing
