// Quantizes a bfloat16 weight to MXFP4 and back, from a plain libtorch program.
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
  std::cout << "ok\n";
  return 0;
}
