"""Quantizing a bfloat16 [16384, 7168] tensor to MXFP4, in one process and on the same input:
mxkernels.quantize_mxfp4 (functional and out=), torchao's to_mx (eager and torch.compile'd), torch.clone and
Tensor.copy_ (the memory-traffic yardsticks). Prints times, bytes moved per second (read + written) and ratios.

    python bench/bench_quantize_mxfp4.py [--threads 2] [--rows 16384] [--cols 7168] [--repeats 7]
"""
import argparse
import statistics
import warnings

import torch

import mxkernels
from mxkernels._timing import median_seconds as timed


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=16384)
    p.add_argument("--cols", type=int, default=7168)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--mode", default="rceil", choices=mxkernels.SCALE_MODES)
    p.add_argument("--skip-torchao", action="store_true")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.rows, args.cols, dtype=torch.bfloat16)
    n = x.numel()
    in_bytes = n * 2
    q_bytes, s_bytes = n // 2, n // 32
    quant_bytes = in_bytes + q_bytes + s_bytes
    copy_bytes = 2 * in_bytes

    q = torch.empty(args.rows, args.cols // 2, dtype=torch.uint8)
    s = torch.empty(args.rows, args.cols // 32, dtype=torch.uint8)
    y = torch.empty_like(x)

    rows = []  # (name, seconds, bytes moved)
    # Interleave the allocating variants so that page-fault noise hits both alike.
    t_clone, t_quant = [], []
    for _ in range(args.repeats):
        t_clone.append(timed(lambda: x.clone(), 1, warmup=0 if t_clone else 2))
        t_quant.append(timed(lambda: mxkernels.quantize_mxfp4(x, args.mode), 1, warmup=0 if t_quant else 2))
    rows.append(("torch.clone", statistics.median(t_clone), copy_bytes))
    rows.append(("mxkernels.quantize_mxfp4", statistics.median(t_quant), quant_bytes))
    rows.append(("Tensor.copy_ (no allocation)", timed(lambda: y.copy_(x), args.repeats), copy_bytes))
    rows.append(("mxkernels.quantize_mxfp4(out=)", timed(lambda: mxkernels.quantize_mxfp4(x, args.mode, out=(q, s)),
                                                         args.repeats), quant_bytes))
    if not args.skip_torchao:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.prototype.mx_formats.config import ScaleCalculationMode
            from torchao.prototype.mx_formats.mx_tensor import to_mx
        mode = ScaleCalculationMode(args.mode)
        eager = lambda: to_mx(x, torch.float4_e2m1fn_x2, 32, mode)
        rows.append(("torchao to_mx (eager)", timed(eager, 3, warmup=1), quant_bytes))
        compiled_fn = torch.compile(lambda t: to_mx(t, torch.float4_e2m1fn_x2, 32, mode), fullgraph=True)
        try:
            rows.append(("torchao to_mx (torch.compile)", timed(lambda: compiled_fn(x), args.repeats, warmup=2),
                         quant_bytes))
        except Exception as e:  # torch 2.11's CPU inductor cannot generate code for float8_e8m0fnu
            print(f"torchao to_mx (torch.compile) failed: {str(e).splitlines()[-1][:160]}")

    by_name = {r[0]: r for r in rows}
    ours = by_name["mxkernels.quantize_mxfp4"]
    clone = by_name["torch.clone"]
    print(f"bf16 [{args.rows}, {args.cols}], mode {args.mode}, {args.threads} threads, "
          f"CPU level {mxkernels.cpu_isa()}, torch {torch.__version__}")
    print(f"{'':34s} {'ms':>9s} {'GB/s moved':>11s} {'ratio':>8s}")
    for name, sec, nbytes in rows:
        print(f"{name:34s} {sec * 1e3:9.2f} {nbytes / sec / 1e9:11.2f} {sec / ours[1]:7.2f}x")
    print("(ratio: that row's time over mxkernels.quantize_mxfp4's)")
    rate = lambda r: r[2] / r[1]
    print(f"mxkernels bytes/s over clone's: {rate(ours) / rate(clone):.2f} (target >= 0.70)")
    out_row, copy_row = by_name["mxkernels.quantize_mxfp4(out=)"], by_name["Tensor.copy_ (no allocation)"]
    print(f"out= variant bytes/s over copy_'s: {rate(out_row) / rate(copy_row):.2f}")
    if "torchao to_mx (eager)" in by_name:
        print(f"speed-up over torchao eager: {by_name['torchao to_mx (eager)'][1] / ours[1]:.1f}x (target >= 20x)")
    if "torchao to_mx (torch.compile)" in by_name:
        print(f"speed-up over torchao compiled: {by_name['torchao to_mx (torch.compile)'][1] / ours[1]:.1f}x")


if __name__ == "__main__":
    main()
