// The parts of a fused MoE layer around its GEMMs (which are the FP8 / MXFP4 GEMM kernels, one call per expert):
// routing the (token, slot) pairs to experts, the gated activations, the weighted sum back into tokens, and the
// router's top-k softmax. Plain C++ (the work is linear in T * k * (H + I), next to the GEMMs' T * k * H * I).
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "float_types.h"

namespace mxkernels::core {

enum class MoeActivation : uint8_t {
  silu,        // gate = rows [0, I), up = rows [I, 2I) of W13: silu(gate) * up
  swiglu_oai,  // gpt-oss: gate = even rows, up = odd rows; g = min(gate, limit), u = clamp(up, -limit, limit),
               // g * sigmoid(alpha * g) * (u + 1)
};

const char* moe_activation_name(MoeActivation a);
bool parse_moe_activation(std::string_view name, MoeActivation* out);

// Which rows the experts compute: the pairs p = t * k + j routed to a local expert, grouped by expert (ascending) and
// in pair order within an expert. Expert e's rows are [expert_offsets[e], expert_offsets[e + 1]).
struct MoeRouting {
  std::vector<int64_t> expert_offsets;  // [local experts + 1]
  std::vector<int64_t> row_pair;        // [rows]: the pair of each row
  std::vector<int64_t> pair_row;        // [tokens * k]: the row of each pair, -1 where its expert is not local
  int64_t rows() const { return int64_t(row_pair.size()); }
};

enum class MoeRouteError : uint8_t { none, id_out_of_range, map_value_out_of_range };

struct MoeRouteStatus {
  MoeRouteError error = MoeRouteError::none;
  int64_t index = 0;  // the pair (id_out_of_range) or the expert_map entry (map_value_out_of_range)
  int64_t value = 0;  // the offending id or map value
};

// ids [tokens * k] (int32 or int64) are global expert ids in [0, global_experts); expert_map [global_experts] (or
// null: the identity, global_experts == local_experts) maps them to local ids in [0, local_experts) or -1 (not here).
// Every id and every map entry is checked; on the first bad one the status says which and `out` is unspecified.
MoeRouteStatus moe_route(const void* ids, bool ids_int64, int64_t tokens, int64_t k, const int32_t* expert_map,
                         int64_t global_experts, int64_t local_experts, MoeRouting* out);

// gate_up [rows][2 * inter] (row stride ld_in) -> out [rows][inter] (row stride ld_out), float32 arithmetic. With
// round_bf16 each result is rounded to bfloat16 (kept in a float), the precision of a bfloat16 model's activations.
void moe_activation(const float* gate_up, int64_t ld_in, int64_t rows, int64_t inter, MoeActivation act, float alpha,
                    float limit, bool round_bf16, float* out, int64_t ld_out);

// out[t] = sum over j of weights[t * k + j] * y[pair_row[t * k + j]] (pairs without a row add nothing), for tokens
// [t_begin, t_end): float32 sums in slot order, then one rounding to out_type. y is [rows][h], out [tokens][h].
void moe_combine(const float* y, int64_t h, const float* weights, const int64_t* pair_row, int64_t k, int64_t t_begin,
                 int64_t t_end, FloatType out_type, void* out);

// For each of `tokens` rows of logits [tokens][experts]: the k largest logits (NaN counts as the largest; ties go to the
// lower index), in descending order, as ids, and their softmax probabilities over all experts as weights, or with
// renormalize exp(l_j - max) / sum over the selected of exp(l_i - max) (a softmax over the selected logits).
void topk_softmax(const float* logits, int64_t tokens, int64_t experts, int64_t k, bool renormalize, float* weights,
                  int32_t* ids);

}  // namespace mxkernels::core
