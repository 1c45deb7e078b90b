# Per-level compilation of the CPU kernels: each source in MXKERNELS_ISA_SOURCES is compiled once per level
# into an object library with that level's flags and namespace. No flag tunes for the build machine: the binary must run on
# any x86-64, and the level is picked at run time (csrc/core/cpu_isa.cpp).
include_guard(GLOBAL)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(MXKERNELS_X86 ON)
  set(MXKERNELS_CPU_ISAS scalar avx2 avx512 avx512_bf16 amx)
else()
  set(MXKERNELS_X86 OFF)
  set(MXKERNELS_CPU_ISAS scalar)
endif()

set(MXKERNELS_ISA_FLAGS_scalar "")
set(MXKERNELS_ISA_FLAGS_avx2 -mavx2 -mfma -mf16c -mbmi2)
set(MXKERNELS_ISA_FLAGS_avx512 -mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw -mavx512dq -mavx512vl
    -mavx512vnni)
set(MXKERNELS_ISA_FLAGS_avx512_bf16 ${MXKERNELS_ISA_FLAGS_avx512} -mavx512bf16)
set(MXKERNELS_ISA_FLAGS_amx ${MXKERNELS_ISA_FLAGS_avx512_bf16} -mamx-tile -mamx-bf16)

# mxkernels_add_isa_objects(<prefix> <sources...>): defines object libraries <prefix>_<isa> and sets
# <prefix>_OBJECT_LIBS in the caller's scope.
function(mxkernels_add_isa_objects prefix)
  set(libs "")
  foreach(isa IN LISTS MXKERNELS_CPU_ISAS)
    set(target ${prefix}_${isa})
    add_library(${target} OBJECT ${ARGN})
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    # GCC 12 flags the deliberately undefined lanes inside its own AVX-512 reduction intrinsics.
    target_compile_options(${target} PRIVATE ${MXKERNELS_ISA_FLAGS_${isa}} -Wno-maybe-uninitialized -Wno-uninitialized)
    target_compile_definitions(${target} PRIVATE MXK_ISA_NS=isa_${isa})
    target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/csrc/core)
    list(APPEND libs ${target})
  endforeach()
  set(${prefix}_OBJECT_LIBS ${libs} PARENT_SCOPE)
endfunction()
