// Loading float32 / bfloat16 / float16 values as float32 vectors, for the per-level kernel sources. Include it
// inside `namespace mxkernels::core::MXK_ISA_NS { namespace {` so that every level gets its own internal copy
// (a shared inline function could be merged across levels by the linker).
#pragma once

#if defined(__AVX512F__)
template <FloatType T>
inline __m512 load16(const void* x, int64_t i) {
  if constexpr (T == FloatType::f32) {
    return _mm512_loadu_ps(static_cast<const float*>(x) + i);
  } else if constexpr (T == FloatType::bf16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(x) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(x) + i)));
  }
}
#endif

#if defined(__AVX2__)
template <FloatType T>
inline __m256 load8(const void* x, int64_t i) {
  if constexpr (T == FloatType::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(x) + i);
  } else if constexpr (T == FloatType::bf16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + i)));
  }
}
#endif
