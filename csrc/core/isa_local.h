// Pieces shared by the per-level kernel sources. Include it inside `namespace mxkernels::core::MXK_ISA_NS {
// namespace {` so that every level gets its own internal copy: inline functions and member functions with external
// linkage would be weak symbols that the linker could pick from another level's object (tests/CMakeLists.txt checks).
#pragma once

// Scratch space of n floats (plus 64 bytes of slack), freed on scope exit (a std::vector would bring weak symbols).
struct FloatBuffer {
  explicit FloatBuffer(size_t n) : data(static_cast<float*>(std::malloc(n * sizeof(float) + 64))) {
    if (data == nullptr) throw std::bad_alloc();
  }
  ~FloatBuffer() { std::free(data); }
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;
  float* data;
};

#if defined(__AVX2__)
// 16 bytes of E2M1 codes (32 values, element 2i in the low nibble) through a 16-entry byte table, indexed by code:
// 32 bytes in K order.
inline __m256i e2m1x32_lookup(const uint8_t* codes, __m128i table) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes));
  const __m128i nibble = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(x, nibble));
  const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(x, 4), nibble));
  return _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
}
#endif
