"""Runs each CUDA W4A16 kernel a few times at N=5760, K=2880 (M = 1, 16, 128, 1024) and quantize_mxfp4 once, for
ncu to profile (tests/gpu/run.sh --profile)."""
import torch

from mxkernels import ops

g = torch.Generator(device="cuda").manual_seed(0)
n, k = 5760, 2880
wq = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device="cuda", generator=g)
ws = torch.randint(118, 130, (n, k // 32), dtype=torch.uint8, device="cuda", generator=g)
for m in (1, 16, 128, 1024):
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=g)
    for _ in range(2):
        ops.mxfp4_gemm_w4a16(x, wq, ws)
x = torch.randn(16384, 7168, device="cuda", dtype=torch.bfloat16, generator=g)
ops.quantize_mxfp4(x)
torch.cuda.synchronize()
