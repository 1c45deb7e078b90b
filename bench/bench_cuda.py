"""The CUDA kernels against their yardsticks, in one process, timed with CUDA events: a device-to-device copy (the
memory ceiling), quantize_mxfp4 / quantize_fp8 of a bf16 [16384, 7168] tensor (and torchao's to_mx where it is
installed), and mxfp4_gemm_w4a16 at N=5760, K=2880 (plain weights, and prepacked by prepack_mxfp4_weight_cuda)
against bf16 torch.matmul and against dequantize-then-matmul, and with fp16 activations against fp16 torch.matmul.
Weights rotate over enough copies to overflow the L2, so that each call reads them from memory.

    python bench/bench_cuda.py [--ms 1,7,16,128,1024] [--f16-ms 1,128,1024] [--repeats 7]
"""
import argparse
import statistics
import warnings

import torch

import mxkernels
from mxkernels import ops


def timed(fn, calls, repeats):
    """Median over `repeats` of the mean time of `calls` back-to-back calls fn(i), between two CUDA events."""
    for i in range(min(calls, 3)):
        fn(i)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(calls):
            fn(i)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / calls)
    return statistics.median(times)


def timed_graph(fn, calls, repeats):
    """As timed, but the calls are captured once in a CUDA graph and the graph is replayed: the GPU time without the
    host's per-call launch cost (how a serving engine runs decode steps)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(min(calls, 3)):
            fn(i)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(calls):
            fn(i)
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / calls)
    return statistics.median(times)


def copies_for(bytes_each, l2_bytes):
    return max(2, -(-3 * l2_bytes // bytes_each))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ms", default="1,7,16,128,1024")
    p.add_argument("--f16-ms", default="1,128,1024", help="M for the fp16 rows (empty: none)")
    p.add_argument("--n", type=int, default=5760)
    p.add_argument("--k", type=int, default=2880)
    p.add_argument("--rows", type=int, default=16384)
    p.add_argument("--cols", type=int, default=7168)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()

    props = torch.cuda.get_device_properties(0)
    l2 = props.L2_cache_size
    print(f"device: {props.name}, {props.multi_processor_count} SMs, L2 {l2 / 2**20:.0f} MiB, torch {torch.__version__}")
    g = torch.Generator(device="cuda").manual_seed(0)

    # ---- the memory ceiling: a device-to-device copy, bytes read + written ----
    src = torch.randn(256 * 2**20, device="cuda", generator=g)  # 1 GiB
    dst = torch.empty_like(src)
    t_copy = timed(lambda i: dst.copy_(src), 10, args.repeats)
    copy_rate = 2 * src.numel() * 4 / t_copy
    print(f"device-to-device copy: {copy_rate / 1e12:.2f} TB/s (read + written, 1 GiB)")
    del src, dst

    # ---- quantizers ----
    x = torch.randn(args.rows, args.cols, device="cuda", dtype=torch.bfloat16, generator=g)
    n = x.numel()
    q = torch.empty(args.rows, args.cols // 2, dtype=torch.uint8, device="cuda")
    s = torch.empty(args.rows, args.cols // 32, dtype=torch.uint8, device="cuda")
    mx_bytes = 2 * n + n // 2 + n // 32
    print(f"\nquantize bf16 [{args.rows}, {args.cols}] ({mx_bytes / 1e6:.0f} MB read + written)")
    print("times from CUDA-graph replays of 20 calls (eager: 20 plain calls, the host's launch cost included)")
    print(f"{'':44s}{'time':>10s}{'TB/s':>8s}{'of copy':>9s}{'eager':>10s}{'of copy':>9s}")
    rows = []
    for mode in ("rceil", "floor", "even"):
        fn = lambda i, mode=mode: torch.ops.mxkernels.quantize_mxfp4_out(x, q, s, mode)
        rows.append((f"mxkernels.quantize_mxfp4 out=, {mode}", timed_graph(fn, 20, args.repeats), mx_bytes,
                     timed(fn, 20, args.repeats)))
    fn = lambda i: ops.quantize_mxfp4(x, "rceil")
    rows.append(("mxkernels.quantize_mxfp4 (allocating), rceil", timed_graph(fn, 20, args.repeats), mx_bytes,
                 timed(fn, 20, args.repeats)))
    fp8_bytes = 2 * n + n + 4 * n // 128
    q8 = torch.empty(args.rows, args.cols, dtype=torch.uint8, device="cuda")
    s8 = torch.empty(args.rows, args.cols // 128, dtype=torch.float32, device="cuda")
    fn = lambda i: torch.ops.mxkernels.quantize_fp8_out(x, q8, s8, 128, 1e-10, False)
    rows.append(("mxkernels.quantize_fp8 out=, group 128", timed_graph(fn, 20, args.repeats), fp8_bytes,
                 timed(fn, 20, args.repeats)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.prototype.mx_formats.config import ScaleCalculationMode
            from torchao.prototype.mx_formats.mx_tensor import to_mx
        compiled = torch.compile(lambda t: to_mx(t, torch.float4_e2m1fn_x2, 32, ScaleCalculationMode.RCEIL),
                                 fullgraph=True)
        compiled(x)
        t_eager = timed(lambda i: compiled(x), 20, args.repeats)
        try:
            t_graph = timed_graph(lambda i: compiled(x), 20, args.repeats)
        except Exception:  # noqa: BLE001 - a compiled graph that cannot be captured is timed eagerly
            t_graph = t_eager
        rows.append(("torchao to_mx, torch.compile'd, rceil", t_graph, mx_bytes, t_eager))
    except Exception as e:  # noqa: BLE001 - the peer is optional
        print(f"(torchao to_mx skipped: {type(e).__name__}: {str(e).splitlines()[0][:100]})")
    for name, t, nbytes, t_eager in rows:
        print(f"{name:44s}{t * 1e6:8.1f}us{nbytes / t / 1e12:8.2f}{nbytes / t / copy_rate * 100:8.1f}%"
              f"{t_eager * 1e6:8.1f}us{nbytes / t_eager / copy_rate * 100:8.1f}%")
    del x, q, s, q8, s8

    # ---- W4A16 ----
    N, K = args.n, args.k
    w_bytes = N * K // 2 + N * K // 32
    copies = copies_for(w_bytes, l2)
    wq = [torch.randint(0, 256, (N, K // 2), dtype=torch.uint8, device="cuda", generator=g) for _ in range(copies)]
    ws = [torch.randint(118, 130, (N, K // 32), dtype=torch.uint8, device="cuda", generator=g) for _ in range(copies)]
    wp = [ops.prepack_mxfp4_weight_cuda(wq[i], ws[i]) for i in range(copies)] if N % 16 == 0 else None
    bf_copies = copies_for(N * K * 2, l2)
    wb = [ops.dequantize_mxfp4(wq[i % copies], ws[i % copies], torch.bfloat16) for i in range(bf_copies)]
    print(f"\nW4A16 N={N} K={K}: {w_bytes / 1e6:.2f} MB of MXFP4 weights ({copies} copies rotated), "
          f"bf16 weights {N * K * 2 / 1e6:.1f} MB ({bf_copies} copies)")
    print("times per call from CUDA-graph replays (eager: plain calls, the host's launch cost included); "
          "packed: on prepack_mxfp4_weight_cuda's blobs")
    print(f"{'M':>6s}{'w4a16':>10s}{'weight TB/s':>13s}{'of copy':>9s}{'eager':>10s}{'bf16 matmul':>13s}{'speedup':>9s}"
          f"{'deq+matmul':>12s}{'TFLOP/s':>9s}{'packed':>10s}{'of copy':>9s}{'speedup':>9s}  kernel")
    for m in [int(v) for v in args.ms.split(",")]:
        xs = torch.randn(m, K, device="cuda", dtype=torch.bfloat16, generator=g)
        ours = lambda i: ops.mxfp4_gemm_w4a16(xs, wq[i % copies], ws[i % copies])
        t_ours = timed_graph(ours, 4 * copies, args.repeats)
        t_eager = timed(ours, 4 * copies, args.repeats)
        t_bf16 = timed_graph(lambda i: torch.matmul(xs, wb[i % bf_copies].T), 4 * bf_copies, args.repeats)
        t_deq = timed_graph(lambda i: torch.matmul(xs, ops.dequantize_mxfp4(wq[i % copies], ws[i % copies],
                                                                             torch.bfloat16).T), 2 * copies, args.repeats)
        packed = ""
        if wp is not None:
            t_packed = timed_graph(lambda i: ops.mxfp4_gemm_w4a16(xs, wp[i % copies], None), 4 * copies, args.repeats)
            packed = f"{t_packed * 1e6:8.1f}us{w_bytes / t_packed / copy_rate * 100:8.1f}%{t_bf16 / t_packed:8.2f}x"
        name = mxkernels._C.cuda_w4a16_kernel_name(m, N, K) if hasattr(mxkernels._C, "cuda_w4a16_kernel_name") else ""
        print(f"{m:6d}{t_ours * 1e6:8.1f}us{w_bytes / t_ours / 1e12:13.2f}{w_bytes / t_ours / copy_rate * 100:8.1f}%"
              f"{t_eager * 1e6:8.1f}us{t_bf16 * 1e6:11.1f}us{t_bf16 / t_ours:8.2f}x{t_deq * 1e6:10.1f}us"
              f"{2 * m * N * K / t_ours / 1e12:9.1f}{packed}  {name}")

    # fp16 activations and outputs, against fp16 torch.matmul (the same weights).
    f16_ms = [int(v) for v in args.f16_ms.split(",") if v]
    if f16_ms:
        wh = [ops.dequantize_mxfp4(wq[i % copies], ws[i % copies], torch.float16) for i in range(bf_copies)]
        print(f"\nW4A16 fp16 activations and outputs, N={N} K={K}")
        print(f"{'M':>6s}{'w4a16':>10s}{'of copy':>9s}{'fp16 matmul':>13s}{'speedup':>9s}")
        for m in f16_ms:
            xh = torch.randn(m, K, device="cuda", dtype=torch.float16, generator=g)
            t_ours = timed_graph(lambda i: ops.mxfp4_gemm_w4a16(xh, wq[i % copies], ws[i % copies]), 4 * copies,
                                 args.repeats)
            t_f16 = timed_graph(lambda i: torch.matmul(xh, wh[i % bf_copies].T), 4 * bf_copies, args.repeats)
            print(f"{m:6d}{t_ours * 1e6:8.1f}us{w_bytes / t_ours / copy_rate * 100:8.1f}%{t_f16 * 1e6:11.1f}us"
                  f"{t_f16 / t_ours:8.2f}x")
        del wh

    # The matrix peak last: the chip draws so much power in it that it runs slower for a while after (the quantizer
    # rows measured 10-15% slower when this came first).
    del wq, ws, wb, wp
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16, generator=g)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16, generator=g)
    t_mm = timed(lambda i: a @ b, 10, args.repeats)
    print(f"\nbf16 matmul 8192^3: {2 * 8192**3 / t_mm / 1e12:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
