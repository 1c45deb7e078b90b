#include "cpu_isa.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define MXK_X86 1
#endif
#if defined(__linux__) && defined(MXK_X86)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace mxkernels::core {
namespace {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512vnni = false;
  bool avx512bf16 = false, amx_tile = false, amx_bf16 = false, amx_int8 = false;
  bool os_ymm = false, os_zmm = false, os_amx = false;
};

#ifdef MXK_X86
uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}
#endif

CpuFeatures read_cpu_features() {
  CpuFeatures f;
#ifdef MXK_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  if (osxsave) {
    const uint64_t xcr0 = read_xcr0();
    f.os_ymm = (xcr0 & 0x6) == 0x6;               // SSE and AVX state
    f.os_zmm = f.os_ymm && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM_Hi256, Hi16_ZMM
    f.os_amx = (xcr0 & 0x60000) == 0x60000;       // XTILECFG, XTILEDATA
  }
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    f.bmi2 = b & (1u << 8);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512vnni = c & (1u << 11);
    f.amx_bf16 = d & (1u << 22);
    f.amx_tile = d & (1u << 24);
    f.amx_int8 = d & (1u << 25);
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512bf16 = a1 & (1u << 5);
  }
#endif
  return f;
}

// Linux hands out the AMX tile state only to processes that ask for it (arch_prctl ARCH_REQ_XCOMP_PERM, feature
// 18 = XTILEDATA); asked once.
bool amx_permitted() {
#if defined(__linux__) && defined(MXK_X86)
  static const bool ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  return ok;
#else
  return false;
#endif
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = read_cpu_features();
  return f;
}

bool hardware_runs(CpuIsa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case CpuIsa::scalar: return true;
    case CpuIsa::avx2: return f.os_ymm && f.avx2 && f.fma && f.f16c && f.bmi2;
    case CpuIsa::avx512:
      return hardware_runs(CpuIsa::avx2) && f.os_zmm && f.avx512f && f.avx512bw && f.avx512dq &&
             f.avx512vl && f.avx512vnni;
    case CpuIsa::avx512_bf16: return hardware_runs(CpuIsa::avx512) && f.avx512bf16;
    case CpuIsa::amx:
      return hardware_runs(CpuIsa::avx512_bf16) && f.amx_tile && f.amx_bf16 && f.os_amx && amx_permitted();
  }
  return false;
}

std::atomic<int> g_selected{-1};

CpuIsa initial_selection() {
  const char* env = std::getenv("MXKERNELS_CPU_ISA");
  if (env == nullptr || *env == '\0') return detected_cpu_isa();
  CpuIsa isa;
  if (!parse_cpu_isa(env, &isa)) {
    throw std::invalid_argument(std::string("MXKERNELS_CPU_ISA must be one of scalar, avx2, avx512, avx512_bf16, amx; got '") +
                                env + "'");
  }
  if (!cpu_isa_supported(isa)) {
    throw std::invalid_argument(std::string("MXKERNELS_CPU_ISA=") + env + " is not supported on this machine " +
                                "(best level here: " + cpu_isa_name(detected_cpu_isa()) + ")");
  }
  return isa;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::scalar: return "scalar";
    case CpuIsa::avx2: return "avx2";
    case CpuIsa::avx512: return "avx512";
    case CpuIsa::avx512_bf16: return "avx512_bf16";
    case CpuIsa::amx: return "amx";
  }
  return "?";
}

bool parse_cpu_isa(std::string_view name, CpuIsa* out) {
  for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512, CpuIsa::avx512_bf16, CpuIsa::amx}) {
    if (name == cpu_isa_name(isa)) {
      *out = isa;
      return true;
    }
  }
  return false;
}

std::vector<CpuIsa> compiled_cpu_isas() {
#ifdef MXK_X86
  return {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512, CpuIsa::avx512_bf16, CpuIsa::amx};
#else
  return {CpuIsa::scalar};
#endif
}

bool cpu_isa_supported(CpuIsa isa) {
  for (CpuIsa c : compiled_cpu_isas())
    if (c == isa) return hardware_runs(isa);
  return false;
}

CpuIsa detected_cpu_isa() {
  CpuIsa best = CpuIsa::scalar;
  for (CpuIsa c : compiled_cpu_isas())
    if (hardware_runs(c) && c > best) best = c;
  return best;
}

CpuIsa selected_cpu_isa() {
  int v = g_selected.load(std::memory_order_acquire);
  if (v >= 0) return static_cast<CpuIsa>(v);
  const int chosen = static_cast<int>(initial_selection());
  int expected = -1;
  // A concurrent set_cpu_isa() wins over the default.
  g_selected.compare_exchange_strong(expected, chosen, std::memory_order_acq_rel);
  return static_cast<CpuIsa>(g_selected.load(std::memory_order_acquire));
}

void set_cpu_isa(CpuIsa isa) {
  if (!cpu_isa_supported(isa)) {
    throw std::invalid_argument(std::string("CPU instruction set '") + cpu_isa_name(isa) +
                                "' is not supported on this machine (best level here: " +
                                cpu_isa_name(detected_cpu_isa()) + ")");
  }
  g_selected.store(static_cast<int>(isa), std::memory_order_release);
}

std::string cpu_features_string() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.bmi2, "bmi2");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512dq, "avx512dq");
  add(f.avx512vl, "avx512vl");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512bf16, "avx512bf16");
  add(f.amx_tile && f.os_amx, "amx_tile");
  add(f.amx_bf16 && f.os_amx, "amx_bf16");
  add(f.amx_int8 && f.os_amx, "amx_int8");
  return s;
}

}  // namespace mxkernels::core
