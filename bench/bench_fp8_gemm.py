"""FP8 GEMMs at N=5760, K=2880 (a gpt-oss-sized linear layer) for several M, in one process, on 2 threads:
mxkernels.fp8_gemm (W8A8) and fp8_gemm_w8a16 against torch._scaled_mm with the same scales (per tensor, and per
token x per channel) and bf16 torch.nn.functional.linear, plain and prepacked weights (prepack_fp8_weight), with ratios and the fractions of this machine's
measured fp32 FMA peak and memory read bandwidth (bench/machine.py). Weights rotate over enough copies to
exceed the last-level cache, so decode sizes read them from memory.

    python bench/bench_fp8_gemm.py [--threads 2] [--ms 1,8,32,512] [--build-dir build]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

import mxkernels
from mxkernels._timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402


class Rotating:
    """Calls fn(i) with i cycling over the weight copies, so consecutive calls touch different memory."""

    def __init__(self, fn, copies):
        self.fn, self.copies, self.i = fn, copies, 0

    def __call__(self):
        self.i = (self.i + 1) % self.copies
        return self.fn(self.i)


def scaled_mm_seconds(fn, repeats, skip=False):
    """torch._scaled_mm's time, or None where this torch does not support the scales (2.11: per-tensor only)."""
    if skip:
        return None
    try:
        fn()
    except RuntimeError:
        return None
    return median_seconds(fn, repeats=repeats, warmup=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=5760)
    p.add_argument("--k", type=int, default=2880)
    p.add_argument("--ms", default="1,8,32,512")
    p.add_argument("--build-dir", default="build")
    p.add_argument("--llc-mib", type=int, default=32, help="last-level cache size to exceed")
    p.add_argument("--no-peaks", action="store_true",
                   help="skip the peak and bandwidth programs (where google-benchmark was not built); ratios print nan")
    p.add_argument("--skip-scaled-mm", action="store_true", help="skip torch._scaled_mm (seconds per call on some CPUs)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, k = args.n, args.k
    nan = float("nan")
    peaks = (dict(read_gbs=nan, fp32_gflops=nan, bf16_gflops=None) if args.no_peaks
             else machine.measure(args.build_dir, args.threads))
    copies = max(2, -(-3 * args.llc_mib * 2**20 // (n * k)))  # fp8 weight copies making 3x the cache
    w = [(torch.randn(n, k) * 4).to(torch.float8_e4m3fn) for _ in range(copies)]
    w_packed = [mxkernels.prepack_fp8_weight(t) for t in w]
    w_bf16 = [torch.randn(n, k, dtype=torch.bfloat16) for _ in range(max(2, copies // 2))]
    blocks = k % 128 == 0  # 128x128 block scales need it (K = 2880 is 22.5 x 128)
    block_scale = torch.rand((n + 127) // 128, k // 128) / 16 + 0.01 if blocks else None
    chan_scale = torch.rand(n) / 16 + 0.01
    tensor_scale = torch.tensor(0.03)
    print(f"N={n} K={k}, {args.threads} threads, CPU level {mxkernels.cpu_isa()}, torch {torch.__version__}; "
          f"measured: read {peaks['read_gbs']:.1f} GB/s, fp32 FMA peak {peaks['fp32_gflops']:.0f} GFLOP/s, "
          f"bf16 dot peak {peaks['bf16_gflops'] or float('nan'):.0f} GFLOP/s; "
          f"{copies} weight copies")
    bf16 = peaks["bf16_gflops"] or float("nan")
    header = (f"{'M':>4} {'op':54s} {'ms':>9} {'GFLOP/s':>8} {'weight GB/s':>11} {'%fp32 pk':>8} {'%bf16 pk':>8} "
              f"{'%read bw':>8}")
    print(header)
    for m in [int(v) for v in args.ms.split(",")]:
        x = torch.randn(m, k)
        a = mxkernels.quantize_fp8_per_tensor(x)[0]
        a_tok, a_tok_scale = mxkernels.quantize_fp8(x, k)
        x_bf16 = x.to(torch.bfloat16)
        slow = 1 if m >= 512 else 3
        rows = []
        if blocks:
            a_grp, a_grp_scale = mxkernels.quantize_fp8(x, 128)
            rows.append(("mxkernels.fp8_gemm, per-group x 128x128 blocks",
                         median_seconds(Rotating(lambda i: mxkernels.fp8_gemm(a_grp, w[i], a_grp_scale, block_scale), copies))))
        rows += [
            ("mxkernels.fp8_gemm, per-tensor x per-tensor",
             median_seconds(Rotating(lambda i: mxkernels.fp8_gemm(a, w[i], tensor_scale, tensor_scale), copies))),
            ("torch._scaled_mm, per-tensor x per-tensor",
             scaled_mm_seconds(Rotating(lambda i: torch._scaled_mm(a, w[i].t(), scale_a=tensor_scale, scale_b=tensor_scale,
                                                                   out_dtype=torch.bfloat16), copies), slow, args.skip_scaled_mm)),
            ("mxkernels.fp8_gemm, per-token x per-channel",
             median_seconds(Rotating(lambda i: mxkernels.fp8_gemm(a_tok, w[i], a_tok_scale, chan_scale), copies))),
            ("torch._scaled_mm, per-token x per-channel",
             scaled_mm_seconds(Rotating(lambda i: torch._scaled_mm(a_tok, w[i].t(), scale_a=a_tok_scale,
                                                                   scale_b=chan_scale.reshape(1, n), out_dtype=torch.bfloat16),
                                        copies), slow, args.skip_scaled_mm)),
            ("mxkernels.fp8_gemm, per-token x per-channel, prepacked",
             median_seconds(Rotating(lambda i: mxkernels.fp8_gemm(a_tok, w_packed[i], a_tok_scale, chan_scale), copies))),
            ("mxkernels.fp8_gemm_w8a16 (bf16 x), per-channel",
             median_seconds(Rotating(lambda i: mxkernels.fp8_gemm_w8a16(x_bf16, w[i], chan_scale), copies))),
            ("mxkernels.fp8_gemm_w8a16 (bf16 x), prepacked",
             median_seconds(Rotating(lambda i: mxkernels.fp8_gemm_w8a16(x_bf16, w_packed[i], chan_scale), copies))),
            ("torch.nn.functional.linear, bf16",
             median_seconds(Rotating(lambda i: torch.nn.functional.linear(x_bf16, w_bf16[i % len(w_bf16)]), len(w_bf16)))),
        ]
        flops = 2 * m * n * k
        for name, sec in rows:
            if sec is None:
                print(f"{m:4d} {name:54s} {'skipped' if args.skip_scaled_mm else 'unsupported by this torch':>38s}")
                continue
            wbytes = n * k * (2 if "bf16" in name and "linear" in name else 1)
            print(f"{m:4d} {name:54s} {sec * 1e3:9.3f} {flops / sec / 1e9:8.1f} {wbytes / sec / 1e9:11.1f} "
                  f"{100 * flops / sec / 1e9 / peaks['fp32_gflops']:8.1f} {100 * flops / sec / 1e9 / bf16:8.1f} "
                  f"{100 * wbytes / sec / 1e9 / peaks['read_gbs']:8.1f}")
        t = dict(rows)
        ratio = lambda peer, ours: "n/a" if t[peer] is None else f"{t[peer] / t[ours]:.1f}x"
        print(f"     speed-up over torch._scaled_mm: per-tensor "
              f"{ratio('torch._scaled_mm, per-tensor x per-tensor', 'mxkernels.fp8_gemm, per-tensor x per-tensor')}, "
              f"per-token x per-channel "
              f"{ratio('torch._scaled_mm, per-token x per-channel', 'mxkernels.fp8_gemm, per-token x per-channel')}; "
              f"over bf16 linear (W8A8 per-token) "
              f"{ratio('torch.nn.functional.linear, bf16', 'mxkernels.fp8_gemm, per-token x per-channel')}; "
              f"prepacked over plain: W8A8 "
              f"{ratio('mxkernels.fp8_gemm, per-token x per-channel', 'mxkernels.fp8_gemm, per-token x per-channel, prepacked')}, "
              f"W8A16 {ratio('mxkernels.fp8_gemm_w8a16 (bf16 x), per-channel', 'mxkernels.fp8_gemm_w8a16 (bf16 x), prepacked')}")


if __name__ == "__main__":
    main()
