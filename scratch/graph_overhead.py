import sys, statistics, torch
sys.path.insert(0, "bench")
from bench_cuda import timed_graph, copies_for
from mxkernels import ops
g = torch.Generator(device="cuda"); g.manual_seed(0)
N, K = 5760, 2880
l2 = torch.cuda.get_device_properties(0).L2_cache_size
copies = copies_for(N * K // 2 + N * K // 32, l2)
wq = [torch.randint(0, 256, (N, K // 2), dtype=torch.uint8, device="cuda", generator=g) for _ in range(copies)]
ws = [torch.randint(118, 130, (N, K // 32), dtype=torch.uint8, device="cuda", generator=g) for _ in range(copies)]
wq1 = torch.randint(0, 256, (copies, N, K // 2), dtype=torch.uint8, device="cuda", generator=g)
ws1 = torch.randint(118, 130, (copies, N, K // 32), dtype=torch.uint8, device="cuda", generator=g)
xs = torch.randn(1, K, device="cuda", dtype=torch.bfloat16, generator=g)
for calls in (4 * copies, 16 * copies):
    t = timed_graph(lambda i: ops.mxfp4_gemm_w4a16(xs, wq[i % copies], ws[i % copies]), calls, 7)
    t1 = timed_graph(lambda i: ops.mxfp4_gemm_w4a16(xs, wq1[i % copies], ws1[i % copies]), calls, 7)
    t2 = timed_graph(lambda i: torch.ops.mxkernels.mxfp4_gemm_w4a16(xs, wq[i % copies], ws[i % copies], None), calls, 7)
    print(f"calls {calls}: separate tensors {t*1e6:.2f} us, one stacked tensor {t1*1e6:.2f} us, torch.ops directly {t2*1e6:.2f} us")
