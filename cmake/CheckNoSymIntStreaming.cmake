# cmake -DLIBRARY=libmxkernels_ops.so -DNM=nm -P CheckNoSymIntStreaming.cmake
# Fails when the library calls c10's operator<<(std::ostream&, const c10::SymInt&): with torch 2.11's CUDA
# build it segfaults (seen on the device machine), so error messages format SymInts with sym_str().
execute_process(COMMAND ${NM} -D --undefined-only ${LIBRARY} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${LIBRARY}")
endif()
if(out MATCHES "_ZN3c10lsERSoRKNS_6SymIntE")
  message(FATAL_ERROR "${LIBRARY} streams a c10::SymInt (operator<<); format it with sym_str() / sizes_string()")
endif()
message(STATUS "no SymInt is streamed")
