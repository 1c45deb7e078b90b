// Quantizes a bfloat16 weight to MXFP4 and back, and runs it as an FP8 layer, from a plain libtorch program.
#include <torch/torch.h>

#include <iostream>

#include "mxkernels/ops.h"

int main() {
  torch::manual_seed(0);
  const torch::Tensor w = torch::randn({256, 2880}, torch::kBFloat16);
  auto [q, scales] = mxkernels::quantize_mxfp4(w, "rceil");
  const torch::Tensor back = mxkernels::dequantize_mxfp4(q, scales, torch::kBFloat16);

  const torch::Tensor err = (back.to(torch::kFloat) - w.to(torch::kFloat));
  const double rel_rms = (err.pow(2).mean() / w.to(torch::kFloat).pow(2).mean()).sqrt().item<double>();
  std::cout << "w " << w.sizes() << " bf16 -> q " << q.sizes() << " " << q.dtype() << ", scales " << scales.sizes()
            << " " << scales.dtype() << "\n";
  std::cout << "relative RMS error of the round trip: " << rel_rms << "\n";
  // E2M1 with a shared power-of-two scale keeps Gaussian data within roughly 10-20% RMS error; anything
  // far outside that means the library is broken.
  if (!(rel_rms > 0.01 && rel_rms < 0.25) || back.sizes() != w.sizes()) {
    std::cerr << "round trip out of the expected range\n";
    return 1;
  }
  // The MXFP4 weights as a W4A16 layer, against the float32 product with the original weights.
  const torch::Tensor x4 = torch::randn({3, 2880}, torch::kBFloat16);
  const torch::Tensor y4 = mxkernels::mxfp4_gemm_w4a16(x4, q, scales);
  const torch::Tensor y4_ref = torch::matmul(x4.to(torch::kFloat), w.to(torch::kFloat).t());
  const double y4_rel_rms = ((y4.to(torch::kFloat) - y4_ref).pow(2).mean() / y4_ref.pow(2).mean()).sqrt().item<double>();
  std::cout << "mxfp4 W4A16 " << y4.sizes() << ", relative RMS error against float32: " << y4_rel_rms << "\n";
  if (!(y4_rel_rms > 0.01 && y4_rel_rms < 0.25) || y4.sizes() != torch::IntArrayRef({3, 256})) {
    std::cerr << "mxfp4 GEMM out of the expected range\n";
    return 1;
  }
  // The same layer with prepacked weights (the same bits) and as W4A4 with the activations quantized too.
  const torch::Tensor packed = mxkernels::prepack_mxfp4_weight(q, scales);
  if (!torch::equal(mxkernels::mxfp4_gemm_w4a16(x4, packed, std::nullopt), y4)) {
    std::cerr << "prepacked MXFP4 weights gave other results\n";
    return 1;
  }
  auto [xq, xs] = mxkernels::quantize_mxfp4(x4);
  const torch::Tensor y44 = mxkernels::mxfp4_gemm(xq, xs, packed, std::nullopt);
  const double y44_rel_rms = ((y44.to(torch::kFloat) - y4_ref).pow(2).mean() / y4_ref.pow(2).mean()).sqrt().item<double>();
  std::cout << "mxfp4 W4A4 " << y44.sizes() << ", relative RMS error against float32: " << y44_rel_rms << "\n";
  if (!(y44_rel_rms > 0.01 && y44_rel_rms < 0.35)) {
    std::cerr << "mxfp4 W4A4 GEMM out of the expected range\n";
    return 1;
  }

  // FP8 W8A16 with per-channel scales and prepacked weights, against the float32 product.
  const torch::Tensor x = torch::randn({8, 2880}, torch::kBFloat16);
  auto [w8, w8_scale] = mxkernels::quantize_fp8(w, /*group_size=*/2880);  // per channel: [256, 1]
  const torch::Tensor y = mxkernels::fp8_gemm_w8a16(x, mxkernels::prepack_fp8_weight(w8), w8_scale.reshape({-1}));
  const torch::Tensor y_ref = torch::matmul(x.to(torch::kFloat), w.to(torch::kFloat).t());
  const double y_rel_rms = ((y.to(torch::kFloat) - y_ref).pow(2).mean() / y_ref.pow(2).mean()).sqrt().item<double>();
  std::cout << "fp8 W8A16 " << y.sizes() << " " << y.dtype() << ", relative RMS error against float32: " << y_rel_rms << "\n";
  // E4M3 keeps 3 mantissa bits: a few percent of RMS error; more means the library is broken.
  if (!(y_rel_rms > 1e-3 && y_rel_rms < 0.08) || y.sizes() != torch::IntArrayRef({8, 256})) {
    std::cerr << "fp8 GEMM out of the expected range\n";
    return 1;
  }

  // A small gpt-oss-style MoE layer (8 experts, top-2, swiglu_oai with biases) against the same layer in libtorch ops
  // on the dequantized weights: only float32 rounding may differ.
  const int64_t experts = 8, hidden = 256, inter = 128, tokens = 5;
  auto [w13, s13] = mxkernels::quantize_mxfp4(torch::randn({experts, 2 * inter, hidden}) * 0.1);
  auto [w2, s2] = mxkernels::quantize_mxfp4(torch::randn({experts, hidden, inter}) * 0.1);
  const torch::Tensor b13 = torch::randn({experts, 2 * inter}), b2 = torch::randn({experts, hidden});
  const torch::Tensor xm = torch::randn({tokens, hidden});
  auto [topk_w, topk_ids] = mxkernels::topk_softmax(torch::randn({tokens, experts}), 2, /*renormalize=*/true);
  mxkernels::FusedMoeOptions options;
  options.w13_bias = b13;
  options.w2_bias = b2;
  options.activation = "swiglu_oai";
  const torch::Tensor moe = mxkernels::fused_moe(xm, w13, s13, w2, s2, topk_w, topk_ids, options);
  torch::Tensor moe_ref = torch::zeros({tokens, hidden});
  const torch::Tensor d13 = mxkernels::dequantize_mxfp4(w13, s13), d2 = mxkernels::dequantize_mxfp4(w2, s2);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < 2; ++j) {
      const int64_t e = topk_ids[t][j].item<int64_t>();
      const torch::Tensor h = torch::matmul(d13[e], xm[t]) + b13[e];
      const torch::Tensor gate = h.slice(0, 0, 2 * inter, 2).clamp_max(7.0), up = h.slice(0, 1, 2 * inter, 2).clamp(-7.0, 7.0);
      const torch::Tensor act = gate * torch::sigmoid(1.702 * gate) * (up + 1);
      moe_ref[t] += topk_w[t][j] * (torch::matmul(d2[e], act) + b2[e]);
    }
  }
  const double moe_rel = ((moe - moe_ref).abs().max() / moe_ref.abs().max()).item<double>();
  std::cout << "mxfp4 MoE " << moe.sizes() << ", largest difference from libtorch on the dequantized weights, relative: "
            << moe_rel << "\n";
  if (!(moe_rel < 1e-4)) {
    std::cerr << "fused MoE differs from the libtorch computation\n";
    return 1;
  }
  std::cout << "ok\n";
  return 0;
}
