"""Fused MoE experts at gpt-oss-20b's shapes (32 experts, top-4, H = I = 2880, swiglu_oai with biases, bf16 hidden) for
several token counts T, in one process on 2 threads: mxkernels.fused_moe on prepacked weights (what MXFP4MoE / FP8MoE
run) and on the checkpoint's plain tensors, against a plain PyTorch MoE (per selected expert: dequantize its weights,
then F.linear, the activation, F.linear, weighted index_add), with the fraction of this machine's measured read
bandwidth (the selected experts' weight bytes per call) and of its bf16 dot-product peak (bench/machine.py).
Each call routes to a fresh random set of experts, so decode sizes read their weights from memory.

    python bench/bench_moe.py [--threads 2] [--tokens 1,8,32,128,512] [--formats mxfp4,fp8] [--no-peaks]
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import mxkernels
from mxkernels import reference
from mxkernels._timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402

E, TOP_K, H, I = 32, 4, 2880, 2880


def experts(fmt, g):
    """Random checkpoint tensors (w13, s13, w2, s2) of all E experts, plain layout."""
    out = []
    for n, k in ((2 * I, H), (H, I)):
        if fmt == "mxfp4":
            out += [torch.randint(0, 256, (E, n, k // 2), generator=g, dtype=torch.uint8),
                    torch.randint(119, 124, (E, n, k // 32), generator=g, dtype=torch.uint8)]
        else:
            mag = torch.randint(0x30, 0x48, (E, n, k), generator=g, dtype=torch.uint8)
            out += [(mag | (torch.randint(0, 2, (E, n, k), generator=g, dtype=torch.uint8) << 7)).view(torch.float8_e4m3fn),
                    torch.rand(E, -(-n // 128), -(-k // 128), generator=g) * 2.0 ** -6]
    return out


def prepacked(fmt, w13, s13, w2, s2):
    if fmt == "mxfp4":
        return (torch.stack([mxkernels.prepack_mxfp4_weight(w13[e], s13[e]) for e in range(E)]), None,
                torch.stack([mxkernels.prepack_mxfp4_weight(w2[e], s2[e]) for e in range(E)]), None)
    return (torch.stack([mxkernels.prepack_fp8_weight(w) for w in w13]), s13,
            torch.stack([mxkernels.prepack_fp8_weight(w) for w in w2]), s2)


def dequantize(fmt, w, s, e):
    if fmt == "mxfp4":
        return reference.dequantize_mxfp4(w[e], s[e], torch.bfloat16)
    n, k = w.shape[1:]
    return w[e].to(torch.bfloat16) * s[e].repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)[:, :k].to(torch.bfloat16)


def plain_pytorch_moe(fmt, x, w13, s13, w2, s2, b13, b2, weights, ids):
    """A MoE layer in plain PyTorch (bf16, as a model runs it): dequantize each selected expert, then two linears."""
    out = torch.zeros(x.shape, dtype=torch.float32)
    for e in ids.unique().tolist():
        t, j = (ids == e).nonzero(as_tuple=True)
        h = F.linear(x[t], dequantize(fmt, w13, s13, e), b13[e])
        a = reference.moe_activation(h, "swiglu_oai", 1.702, 7.0)
        y = F.linear(a, dequantize(fmt, w2, s2, e), b2[e])
        out.index_add_(0, t, weights[t, j, None] * y.float())
    return out.to(x.dtype)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", default="1,8,32,128,512")
    p.add_argument("--formats", default="mxfp4,fp8")
    p.add_argument("--build-dir", default="build")
    p.add_argument("--no-peaks", action="store_true", help="skip the peak and bandwidth programs; ratios print nan")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    nan = float("nan")
    peaks = (dict(read_gbs=nan, bf16_gflops=nan, fp32_gflops=nan) if args.no_peaks
             else machine.measure(args.build_dir, args.threads))
    bf16_peak = peaks["bf16_gflops"] or peaks["fp32_gflops"] or nan
    print(f"gpt-oss-20b MoE: E={E} top-{TOP_K} H={H} I={I}, swiglu_oai + biases, bf16 hidden; {args.threads} threads, "
          f"CPU level {mxkernels.cpu_isa()}, torch {torch.__version__}; measured read {peaks['read_gbs']:.1f} GB/s, "
          f"{'bf16 dot' if peaks['bf16_gflops'] else 'fp32 FMA'} peak {bf16_peak:.0f} GFLOP/s")
    print(f"{'fmt':>5} {'T':>4} {'variant':34s} {'ms':>9} {'tokens/s':>9} {'experts':>7} {'weight GB/s':>11} "
          f"{'%read bw':>8} {'GFLOP/s':>8} {'%peak':>6} {'vs plain':>8}")
    g = torch.Generator().manual_seed(0)
    b13 = torch.randn(E, 2 * I, generator=g).to(torch.bfloat16)
    b2 = torch.randn(E, H, generator=g).to(torch.bfloat16)
    for fmt in args.formats.split(","):
        plain = experts(fmt, g)
        packed = prepacked(fmt, *plain)
        expert_bytes = (2 * I * H + H * I) * ((0.5 + 1 / 32) if fmt == "mxfp4" else 1.0)
        for tokens in [int(t) for t in args.tokens.split(",")]:
            x = torch.randn(tokens, H, generator=g).to(torch.bfloat16)
            routes = [mxkernels.topk_softmax(torch.randn(tokens, E, generator=g), TOP_K, True) for _ in range(16)]
            state = {"i": 0}

            def rotating(fn):
                def call():
                    state["i"] = (state["i"] + 1) % len(routes)
                    return fn(*routes[state["i"]])
                return call

            selected = sum(r[1].unique().numel() for r in routes) / len(routes)
            flops = 2 * tokens * TOP_K * (2 * I * H + H * I)
            run = lambda weights4: rotating(lambda w, i: mxkernels.fused_moe(
                x, *weights4, w, i, w13_bias=b13, w2_bias=b2, activation="swiglu_oai"))
            repeats = 15 if tokens <= 32 else 5
            rows = [("fused_moe, prepacked (MXFP4MoE/FP8MoE)", median_seconds(run(packed), repeats)),
                    ("fused_moe, plain checkpoint tensors", median_seconds(run(plain), repeats))]
            plain_s = median_seconds(rotating(lambda w, i: plain_pytorch_moe(fmt, x, *plain, b13, b2, w, i)),
                                     repeats=3, warmup=1)
            rows.append(("plain PyTorch (dequantize + F.linear)", plain_s))
            for name, sec in rows:
                gbs = selected * expert_bytes / sec / 1e9
                rate = flops / sec / 1e9
                print(f"{fmt:>5} {tokens:4d} {name:34s} {sec * 1e3:9.3f} {tokens / sec:9.1f} {selected:7.1f} "
                      f"{gbs:11.1f} {100 * gbs / peaks['read_gbs']:8.1f} {rate:8.1f} {100 * rate / bf16_peak:6.1f} "
                      f"{plain_s / sec:7.1f}x")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
