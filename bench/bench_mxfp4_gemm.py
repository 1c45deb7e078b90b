"""MXFP4 GEMMs at N=5760, K=2880 (a gpt-oss-sized linear layer) for several M, in one process, on 2 threads:
mxkernels.mxfp4_gemm_w4a16 (plain and prepacked weights) and mxfp4_gemm (W4A4) against bf16
torch.nn.functional.linear and the pure-PyTorch path (dequantize, then linear), with ratios and the fractions of this
machine's measured read bandwidth and peaks (bench/machine.py).
Weights rotate over enough copies to exceed the last-level cache, so decode sizes read them from memory.

    python bench/bench_mxfp4_gemm.py [--threads 2] [--ms 1,8,32,128,512] [--build-dir build] [--no-peaks]
"""
import argparse
import sys
from pathlib import Path

import torch

import mxkernels
from mxkernels._timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
from bench_fp8_gemm import Rotating  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=5760)
    p.add_argument("--k", type=int, default=2880)
    p.add_argument("--ms", default="1,8,32,128,512")
    p.add_argument("--build-dir", default="build")
    p.add_argument("--llc-mib", type=int, default=32, help="last-level cache size to exceed")
    p.add_argument("--no-peaks", action="store_true", help="skip the peak and bandwidth programs; ratios print nan")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, k = args.n, args.k
    nan = float("nan")
    peaks = (dict(read_gbs=nan, fp32_gflops=nan, bf16_gflops=None, int8_gops=None) if args.no_peaks
             else machine.measure(args.build_dir, args.threads))
    wbytes = n * k // 2 + n * k // 32  # codes and scales
    copies = max(2, -(-3 * args.llc_mib * 2**20 // wbytes))
    w = [mxkernels.quantize_mxfp4(torch.randn(n, k, dtype=torch.bfloat16)) for _ in range(copies)]
    w_bf16 = [torch.randn(n, k, dtype=torch.bfloat16) for _ in range(max(2, copies // 4))]
    bf16_peak = peaks["bf16_gflops"] or nan
    print(f"N={n} K={k}, {args.threads} threads, CPU level {mxkernels.cpu_isa()}, torch {torch.__version__}; "
          f"measured: read {peaks['read_gbs']:.1f} GB/s, fp32 FMA peak {peaks['fp32_gflops']:.0f} GFLOP/s, "
          f"bf16 dot peak {bf16_peak:.0f} GFLOP/s; {copies} weight copies of {wbytes / 2**20:.1f} MiB")
    int8_peak = peaks["int8_gops"] or nan
    print(f"{'M':>4} {'op':46s} {'ms':>9} {'GFLOP/s':>8} {'weight GB/s':>11} {'%fp32 pk':>8} {'%bf16 pk':>8} "
          f"{'%int8 pk':>8} {'%read bw':>8}")
    packed = [mxkernels.prepack_mxfp4_weight(*wi) for wi in w]
    for m in [int(v) for v in args.ms.split(",")]:
        x = torch.randn(m, k, dtype=torch.bfloat16)
        xq, xs = mxkernels.quantize_mxfp4(x)
        rows = [
            ("W4A16 mxfp4_gemm_w4a16 (bf16 x)",
             median_seconds(Rotating(lambda i: mxkernels.mxfp4_gemm_w4a16(x, *w[i]), copies)), wbytes),
            ("W4A16, prepacked weights",
             median_seconds(Rotating(lambda i: mxkernels.mxfp4_gemm_w4a16(x, packed[i], None), copies)), wbytes),
            ("W4A4 mxfp4_gemm, prepacked (x quantized)",
             median_seconds(Rotating(lambda i: mxkernels.mxfp4_gemm(xq, xs, packed[i], None), copies)), wbytes),
            ("W4A4 incl. quantize_mxfp4(x) (cpu_w4a4)",
             median_seconds(Rotating(lambda i: mxkernels.mxfp4_gemm(*mxkernels.quantize_mxfp4(x), packed[i], None),
                                     copies)), wbytes),
            ("torch.nn.functional.linear, bf16 weights",
             median_seconds(Rotating(lambda i: torch.nn.functional.linear(x, w_bf16[i]), len(w_bf16))), n * k * 2),
            ("pure PyTorch: dequantize_mxfp4 + linear",
             median_seconds(Rotating(lambda i: torch.nn.functional.linear(
                 x, mxkernels.reference.dequantize_mxfp4(*w[i], torch.bfloat16)), copies), repeats=3), wbytes),
        ]
        flops = 2 * m * n * k
        for name, sec, nbytes in rows:
            rate = flops / sec / 1e9
            print(f"{m:4d} {name:46s} {sec * 1e3:9.3f} {rate:8.1f} {nbytes / sec / 1e9:11.1f} "
                  f"{100 * rate / peaks['fp32_gflops']:8.1f} {100 * rate / bf16_peak:8.1f} {100 * rate / int8_peak:8.1f} "
                  f"{100 * nbytes / sec / 1e9 / peaks['read_gbs']:8.1f}")
        t = {name: sec for name, sec, _ in rows}
        bf16_linear, pure = t["torch.nn.functional.linear, bf16 weights"], t["pure PyTorch: dequantize_mxfp4 + linear"]
        for name in ("W4A16 mxfp4_gemm_w4a16 (bf16 x)", "W4A16, prepacked weights", "W4A4 mxfp4_gemm, prepacked (x quantized)"):
            print(f"     {name}: {bf16_linear / t[name]:.2f}x bf16 linear, {pure / t[name]:.1f}x the pure-PyTorch path")


if __name__ == "__main__":
    main()
