// mxkernels._C: what is not an op (build facts and the CPU level). Ops never go through here: they are
// registered with the dispatcher by libmxkernels_ops.so, which torch.compile can see.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "cpu_isa.h"
#ifdef MXKERNELS_WITH_CUDA
#include "cuda/cuda_kernels.h"
#endif

namespace py = pybind11;
namespace core = mxkernels::core;

namespace {

core::CpuIsa parse_isa_or_throw(const std::string& name) {
  core::CpuIsa isa;
  if (!core::parse_cpu_isa(name, &isa))
    throw std::invalid_argument("CPU level must be one of scalar, avx2, avx512, avx512_bf16, amx; got '" + name + "'");
  return isa;
}

std::vector<std::string> names(const std::vector<core::CpuIsa>& isas) {
  std::vector<std::string> out;
  for (core::CpuIsa isa : isas) out.emplace_back(core::cpu_isa_name(isa));
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "mxkernels build information and CPU instruction-set selection";
  m.def("build_info", [] {
    py::dict d;
    d["version"] = MXKERNELS_VERSION;
    d["torch_version"] = MXKERNELS_TORCH_VERSION;
    d["compiler"] = __VERSION__;
    d["cpu_isas_compiled"] = names(core::compiled_cpu_isas());
    d["cuda"] = false;
    return d;
  });
  m.def("compiled_cpu_isas", [] { return names(core::compiled_cpu_isas()); },
        "CPU levels this build carries kernels for");
  m.def("supported_cpu_isas", [] {
    std::vector<core::CpuIsa> ok;
    for (core::CpuIsa isa : core::compiled_cpu_isas())
      if (core::cpu_isa_supported(isa)) ok.push_back(isa);
    return names(ok);
  }, "CPU levels this machine can run");
  m.def("detected_cpu_isa", [] { return std::string(core::cpu_isa_name(core::detected_cpu_isa())); },
        "the best level this machine can run");
  m.def("cpu_isa", [] { return std::string(core::cpu_isa_name(core::selected_cpu_isa())); },
        "the level the kernels run at now");
  m.def("set_cpu_isa", [](const std::string& name) { core::set_cpu_isa(parse_isa_or_throw(name)); },
        py::arg("name"), "run the kernels at this level from now on (tests, benchmarks)");
  m.def("cpu_features", [] { return core::cpu_features_string(); }, "CPU features seen by CPUID");
#ifdef MXKERNELS_WITH_CUDA
  m.def("cuda_w4a16_kernel_name",
        [](int64_t m_, int64_t n, int64_t k) { return std::string(core::cuda::mxfp4_gemm_w4a16_kernel_name(m_, n, k)); },
        "Which CUDA W4A16 kernel and tile runs this shape on the current device");
#endif
}
