// Inputs for the MXFP4 kernel tests: random blocks over many binades and the edge-case blocks of
// docs/formats.md. Each block is 32 fp32 values; callers convert to bf16 / fp16 where needed.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace mxkernels::testing {

inline float next_up(float v) { return std::nextafter(v, std::numeric_limits<float>::infinity()); }
inline float next_down(float v) { return std::nextafter(v, -std::numeric_limits<float>::infinity()); }

// Random values: a random sign, a mantissa in [1, 2) and a per-block exponent spread over
// [-min_exp, max_exp], with a few zeros and tiny values mixed in; block-local spreads of up to 2^12.
inline std::vector<float> random_blocks(int64_t n_blocks, uint32_t seed, int min_exp = -140, int max_exp = 127) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> block_exp(min_exp, max_exp - 1);
  std::uniform_int_distribution<int> spread(0, 12);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> coin(0, 63);
  std::vector<float> v(size_t(n_blocks) * 32);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int e = block_exp(rng);
    for (int i = 0; i < 32; ++i) {
      float x = std::ldexp(mant(rng), e - spread(rng));
      const int c = coin(rng);
      if (c == 0) x = 0.0f;
      if (c == 1) x = std::ldexp(mant(rng), -149 + spread(rng));  // fp32 subnormal
      if (c & 2) x = -x;
      v[size_t(b) * 32 + i] = x;
    }
  }
  return v;
}

// Edge-case blocks. The block maximum pins the scale (6 * 2^k, 4 * 2^k, 7 * 2^k, and the floats around
// them); the other slots hold the E2M1 rounding ties and their neighbours at that scale, zeros of both signs,
// subnormals, the largest finite float, NaN and infinities.
inline std::vector<float> edge_blocks() {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  const float grid[] = {0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  std::vector<float> out;
  auto push_block = [&](std::vector<float> b) {
    b.resize(32, 0.0f);
    out.insert(out.end(), b.begin(), b.end());
  };
  for (int k : {-149, -140, -130, -128, -127, -126, -125, -120, -64, -10, -4, -3, -1, 0, 1, 2, 3, 4, 5, 8, 20, 64,
                100, 120, 124, 125, 126, 127}) {
    for (float top : {4.0f, 6.0f, 7.0f, 5.0f, 3.0f}) {
      const float m = std::ldexp(top, k);
      if (!std::isfinite(m) || m == 0.0f) continue;
      for (float mx : {m, next_up(m), next_down(m)}) {
        for (int sign : {1, -1}) {
          std::vector<float> b = {sign * mx};
          for (float t : ties) {
            const float s = std::ldexp(t, k);  // floor and rceil both take scale 2^k here
            b.push_back(s);
            b.push_back(-next_up(s));
            b.push_back(next_down(s));
          }
          for (float g : grid) b.push_back(std::ldexp(g, k));
          b.push_back(-0.0f);
          b.push_back(0.0f);
          push_block(b);
        }
      }
    }
  }
  // Blocks at the bottom and top of the range.
  push_block({0.0f});
  push_block({-0.0f, -0.0f, 0.0f});
  push_block({std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min()});
  push_block({std::numeric_limits<float>::min(), next_down(std::numeric_limits<float>::min()), 1e-40f, -3e-39f});
  push_block({std::ldexp(1.0f, -127) * 6.0f, std::ldexp(1.0f, -127) * 3.0f, std::ldexp(1.0f, -128)});
  push_block({std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 1.0f, 1e30f});
  push_block({next_down(std::numeric_limits<float>::max()), std::ldexp(1.75f, 127), std::ldexp(1.5f, 127)});
  for (float mant : {1.0f, 1.25f, 1.5f, 1.74f, 1.75f, 1.76f, 1.99f}) {
    for (int e : {-126, -20, 0, 1, 2, 3, 30, 126}) push_block({std::ldexp(mant, e), std::ldexp(mant, e - 3)});
  }
  // Non-finite values, alone and mixed with ordinary ones.
  push_block({nan});
  push_block({1.0f, 2.0f, nan, -3.0f});
  push_block({inf, 1.0f});
  push_block({-inf, 0.5f, 6.0f});
  push_block({inf, -inf, nan});
  push_block({-nan, std::numeric_limits<float>::max()});
  return out;
}

}  // namespace mxkernels::testing
