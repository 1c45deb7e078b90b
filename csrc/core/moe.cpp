#include "moe.h"

#include <algorithm>
#include <cmath>

namespace mxkernels::core {

const char* moe_activation_name(MoeActivation a) { return a == MoeActivation::silu ? "silu" : "swiglu_oai"; }

bool parse_moe_activation(std::string_view name, MoeActivation* out) {
  if (name == "silu") { *out = MoeActivation::silu; return true; }
  if (name == "swiglu_oai") { *out = MoeActivation::swiglu_oai; return true; }
  return false;
}

MoeRouteStatus moe_route(const void* ids, bool ids_int64, int64_t tokens, int64_t k, const int32_t* expert_map,
                         int64_t global_experts, int64_t local_experts, MoeRouting* out) {
  if (expert_map != nullptr) {
    for (int64_t g = 0; g < global_experts; ++g) {
      if (expert_map[g] < -1 || expert_map[g] >= local_experts) {
        return {MoeRouteError::map_value_out_of_range, g, expert_map[g]};
      }
    }
  }
  const int64_t pairs = tokens * k;
  out->pair_row.assign(size_t(pairs), -1);
  std::vector<int64_t> count(size_t(local_experts) + 1, 0);
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t id = ids_int64 ? static_cast<const int64_t*>(ids)[p] : static_cast<const int32_t*>(ids)[p];
    if (id < 0 || id >= global_experts) return {MoeRouteError::id_out_of_range, p, id};
    const int64_t local = expert_map != nullptr ? expert_map[id] : id;
    out->pair_row[size_t(p)] = local;  // the local expert for now, the row below
    if (local >= 0) ++count[size_t(local) + 1];
  }
  out->expert_offsets.assign(size_t(local_experts) + 1, 0);
  for (int64_t e = 0; e < local_experts; ++e) out->expert_offsets[size_t(e) + 1] = out->expert_offsets[size_t(e)] + count[size_t(e) + 1];
  std::vector<int64_t> next(out->expert_offsets.begin(), out->expert_offsets.end() - 1);
  out->row_pair.assign(size_t(out->expert_offsets.back()), 0);
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t local = out->pair_row[size_t(p)];
    if (local < 0) continue;
    const int64_t row = next[size_t(local)]++;
    out->row_pair[size_t(row)] = p;
    out->pair_row[size_t(p)] = row;
  }
  return {};
}

namespace {

float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// min / clamp that keep NaN (a comparison with NaN is false, so the value passes through).
float min_keep_nan(float v, float hi) { return v > hi ? hi : v; }
float clamp_keep_nan(float v, float lo, float hi) { return v > hi ? hi : (v < lo ? lo : v); }

float round_to_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

}  // namespace

void moe_activation(const float* gate_up, int64_t ld_in, int64_t rows, int64_t inter, MoeActivation act, float alpha,
                    float limit, bool round_bf16, float* out, int64_t ld_out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = gate_up + r * ld_in;
    float* o = out + r * ld_out;
    if (act == MoeActivation::silu) {
      for (int64_t c = 0; c < inter; ++c) {
        const float g = in[c], u = in[inter + c];
        o[c] = g * sigmoid(g) * u;
      }
    } else {
      for (int64_t c = 0; c < inter; ++c) {
        const float g = min_keep_nan(in[2 * c], limit), u = clamp_keep_nan(in[2 * c + 1], -limit, limit);
        o[c] = g * sigmoid(alpha * g) * (u + 1.0f);
      }
    }
    if (round_bf16) {
      for (int64_t c = 0; c < inter; ++c) o[c] = round_to_bf16(o[c]);
    }
  }
}

void moe_combine(const float* y, int64_t h, const float* weights, const int64_t* pair_row, int64_t k, int64_t t_begin,
                 int64_t t_end, FloatType out_type, void* out) {
  std::vector<float> acc(size_t(h), 0.0f);
  for (int64_t t = t_begin; t < t_end; ++t) {
    for (int64_t c = 0; c < h; ++c) acc[size_t(c)] = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t row = pair_row[t * k + j];
      if (row < 0) continue;
      const float w = weights[t * k + j];
      const float* yr = y + row * h;
      for (int64_t c = 0; c < h; ++c) acc[size_t(c)] += w * yr[c];
    }
    for (int64_t c = 0; c < h; ++c) store_from_f32(out, out_type, t * h + c, acc[size_t(c)]);
  }
}

void topk_softmax(const float* logits, int64_t tokens, int64_t experts, int64_t k, bool renormalize, float* weights,
                  int32_t* ids) {
  std::vector<float> e(static_cast<size_t>(experts));
  std::vector<bool> taken(static_cast<size_t>(experts));
  // NaN first, then larger values; among equals the lower index (the caller scans upwards).
  auto better = [](float a, float b) { return std::isnan(a) ? !std::isnan(b) : (!std::isnan(b) && a > b); };
  for (int64_t t = 0; t < tokens; ++t) {
    const float* l = logits + t * experts;
    float mx = l[0];
    for (int64_t i = 1; i < experts; ++i) {
      if (better(l[i], mx)) mx = l[i];
    }
    float sum = 0.0f;
    for (int64_t i = 0; i < experts; ++i) {
      e[size_t(i)] = std::exp(l[i] - mx);
      sum += e[size_t(i)];
    }
    std::fill(taken.begin(), taken.end(), false);
    float selected = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      int64_t best = -1;
      for (int64_t i = 0; i < experts; ++i) {
        if (!taken[size_t(i)] && (best < 0 || better(l[i], l[best]))) best = i;
      }
      taken[size_t(best)] = true;
      ids[t * k + j] = int32_t(best);
      weights[t * k + j] = e[size_t(best)];
      selected += e[size_t(best)];
    }
    const float denom = renormalize ? selected : sum;
    for (int64_t j = 0; j < k; ++j) weights[t * k + j] /= denom;
  }
}

}  // namespace mxkernels::core
