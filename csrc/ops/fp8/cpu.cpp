#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

#include "core/fp8.h"
#include "ops/common/tensor_checks.h"
#include "ops/fp8/check.h"

namespace mxkernels::ops {
namespace {

// Values per task: enough that scheduling costs far less than the kernel.
constexpr int64_t kValuesPerTask = 1 << 16;

void quantize_groups_into(const at::Tensor& x, const QuantizeFp8Plan& plan, int64_t group_size, bool ue8m0, uint8_t* q,
                          float* scales) {
  const RowOffsets rows(x);
  const int64_t groups_per_row = x.size(-1) / group_size;
  const int64_t elem = x.element_size();
  const auto* base = static_cast<const char*>(x.const_data_ptr());
  const core::Fp8Kernels& kernels = core::fp8_kernels();
  const int64_t grain = std::max<int64_t>(1, kValuesPerTask / group_size);
  at::parallel_for(0, rows.rows() * groups_per_row, grain, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end;) {
      const int64_t row = g / groups_per_row;
      const int64_t first = g % groups_per_row;
      const int64_t n = std::min(groups_per_row - first, end - g);
      kernels.quantize_groups(base + (rows.offset(row) + first * group_size) * elem, plan.x_type, n, group_size,
                              plan.eps, ue8m0, q + g * group_size, scales + g);
      g += n;
    }
  });
}

std::tuple<at::Tensor, at::Tensor> quantize_fp8_cpu(const at::Tensor& x, c10::SymInt group_size, double eps,
                                                    bool scale_ue8m0) {
  const QuantizeFp8Plan plan = check_quantize_fp8(x, group_size, eps);
  auto [q, scales] = empty_quantize_fp8_outputs(x, plan);
  quantize_groups_into(x, plan, concrete_int(group_size, "group_size"), scale_ue8m0, static_cast<uint8_t*>(q.mutable_data_ptr()),
                       scales.mutable_data_ptr<float>());
  return {q, scales};
}

void quantize_fp8_out_cpu(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scales, c10::SymInt group_size,
                          double eps, bool scale_ue8m0) {
  const QuantizeFp8Plan plan = check_quantize_fp8_out(x, q, scales, group_size, eps);
  quantize_groups_into(x, plan, concrete_int(group_size, "group_size"), scale_ue8m0, static_cast<uint8_t*>(q.mutable_data_ptr()),
                       scales.mutable_data_ptr<float>());
}

std::tuple<at::Tensor, at::Tensor> quantize_fp8_per_tensor_cpu(const at::Tensor& x, const std::optional<at::Tensor>& scale,
                                                               double eps) {
  const QuantizeFp8PerTensorPlan plan = check_quantize_fp8_per_tensor(x, scale, eps);
  auto [q, scale_out] = empty_quantize_fp8_per_tensor_outputs(x);
  // Any layout: a non-contiguous x is copied once.
  const at::Tensor xc = x.contiguous();
  const int64_t n = xc.numel();
  const auto* base = static_cast<const char*>(xc.const_data_ptr());
  const int64_t elem = xc.element_size();
  const core::Fp8Kernels& kernels = core::fp8_kernels();
  float s;
  if (scale.has_value()) {
    s = scale->item<float>();
    TORCH_CHECK(std::isfinite(s) && s > 0, "mxkernels.quantize_fp8_per_tensor: scale must be positive and finite, got ", s);
  } else {
    const uint32_t amax = at::parallel_reduce(
        0, n, kValuesPerTask, uint32_t(0),
        [&](int64_t begin, int64_t end, uint32_t acc) {
          return std::max(acc, kernels.abs_max_bits(base + begin * elem, plan.x_type, end - begin));
        },
        [](uint32_t a, uint32_t b) { return std::max(a, b); });
    s = core::fp8_scale(core::f32_from_bits(amax), plan.eps, false);
  }
  scale_out.fill_(s);
  auto* qp = static_cast<uint8_t*>(q.mutable_data_ptr());
  at::parallel_for(0, n, kValuesPerTask, [&](int64_t begin, int64_t end) {
    kernels.quantize_scaled(base + begin * elem, plan.x_type, end - begin, s, qp + begin);
  });
  return {q, scale_out};
}

}  // namespace

TORCH_LIBRARY_IMPL(mxkernels, CPU, m) {
  m.impl("quantize_fp8", &quantize_fp8_cpu);
  m.impl("quantize_fp8_out", &quantize_fp8_out_cpu);
  m.impl("quantize_fp8_per_tensor", &quantize_fp8_per_tensor_cpu);
}

}  // namespace mxkernels::ops
