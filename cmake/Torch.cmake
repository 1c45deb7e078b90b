# libtorch from the active Python's torch: its CMake package, its version and its C++ ABI flag.
include_guard(GLOBAL)

if(NOT Python_EXECUTABLE)
  find_package(Python REQUIRED COMPONENTS Interpreter)
endif()

execute_process(
  COMMAND ${Python_EXECUTABLE} -c
    "import torch, torch.utils; print(torch.utils.cmake_prefix_path); print(torch.__version__); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
  OUTPUT_VARIABLE _mxk_torch_info
  RESULT_VARIABLE _mxk_torch_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _mxk_torch_rc EQUAL 0)
  message(FATAL_ERROR "mxkernels: '${Python_EXECUTABLE}' cannot import torch; install it first "
                      "(pip install torch==2.13.0)")
endif()
string(REPLACE "\n" ";" _mxk_torch_info "${_mxk_torch_info}")
list(GET _mxk_torch_info 0 MXKERNELS_TORCH_CMAKE_PREFIX)
list(GET _mxk_torch_info 1 MXKERNELS_TORCH_VERSION)
list(GET _mxk_torch_info 2 MXKERNELS_TORCH_CXX11_ABI)
list(APPEND CMAKE_PREFIX_PATH "${MXKERNELS_TORCH_CMAKE_PREFIX}")

find_package(Torch REQUIRED)
message(STATUS "mxkernels: torch ${MXKERNELS_TORCH_VERSION}, _GLIBCXX_USE_CXX11_ABI=${MXKERNELS_TORCH_CXX11_ABI}")

# Torch's exported targets already carry the ABI define; state it for our torch-free targets too so that
# every object in the ops library agrees on std::string's layout.
add_compile_definitions(_GLIBCXX_USE_CXX11_ABI=${MXKERNELS_TORCH_CXX11_ABI})
