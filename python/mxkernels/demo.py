"""mxkernels demo on built-in synthetic data: MXFP4-quantize a gpt-oss-sized bfloat16 weight in every scale mode,
report the error against the original and the speed, run the ops inside torch.compile, then run an FP8 linear
layer and an MXFP4 linear layer (every backend) against bf16.

    python -m mxkernels.demo [--rows 4096] [--cols 2880] [--threads 2]
"""
import argparse
import time

import torch

import mxkernels
from mxkernels._timing import median_seconds


def synthetic_weight(rows: int, cols: int) -> torch.Tensor:
    """A linear-layer-like weight: Gaussian rows with per-row gains and a sprinkle of 10x outliers."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(rows, cols, generator=g) * 0.02
    w *= torch.exp(torch.randn(rows, 1, generator=g) * 0.5)
    outliers = torch.rand(rows, cols, generator=g) < 1e-3
    w = torch.where(outliers, w * 10, w)
    return w.to(torch.bfloat16)


def quantize_section(w: torch.Tensor) -> None:
    ref = w.float()
    n = w.numel()
    moved = n * 2 + n // 2 + n // 32
    print(f"\n1. MXFP4 quantization of a bfloat16 weight {list(w.shape)} ({n * 2 / 2**20:.1f} MiB -> "
          f"{(n // 2 + n // 32) / 2**20:.1f} MiB)")
    print(f"   {'mode':6s} {'rel. RMS err':>12s} {'SQNR dB':>8s} {'max |err|':>10s} {'ms':>7s} {'Gvalues/s':>9s} {'GB/s':>6s}")
    for mode in mxkernels.SCALE_MODES:
        q, s = mxkernels.quantize_mxfp4(w, mode)
        back = mxkernels.dequantize_mxfp4(q, s, torch.float32)
        err = back - ref
        rel_rms = (err.pow(2).mean() / ref.pow(2).mean()).sqrt().item()
        sqnr = 10 * torch.log10(ref.pow(2).sum() / err.pow(2).sum()).item()
        # The reference implementation agrees bit for bit (the tests check this on far more data).
        rq, rs = mxkernels.reference.quantize_mxfp4(w[:64], mode)
        assert torch.equal(q[:64].view(torch.uint8), rq) and torch.equal(s[:64].view(torch.uint8), rs)
        sec = median_seconds(lambda: mxkernels.quantize_mxfp4(w, mode))
        print(f"   {mode:6s} {rel_rms:12.4f} {sqnr:8.2f} {err.abs().max().item():10.5f} {sec * 1e3:7.2f} "
              f"{n / sec / 1e9:9.2f} {moved / sec / 1e9:6.2f}")
    q, s = mxkernels.quantize_mxfp4(w)
    sec = median_seconds(lambda: mxkernels.dequantize_mxfp4(q, s, torch.bfloat16))
    print(f"   dequantize to bfloat16: {sec * 1e3:.2f} ms, {n / sec / 1e9:.2f} Gvalues/s")
    ref_sec = median_seconds(lambda: mxkernels.reference.quantize_mxfp4(w[:256]), repeats=3) * w.shape[0] / 256
    print(f"   pure-PyTorch reference (mxkernels.reference), extrapolated from 256 rows: {ref_sec * 1e3:.0f} ms")


def compile_section(cols: int) -> None:
    print("\n2. The ops under torch.compile(dynamic=True, fullgraph=True): quantize -> dequantize -> scale")

    def fake_quant(x):
        q, s = mxkernels.quantize_mxfp4(x, "rceil")
        return mxkernels.dequantize_mxfp4(q, s, torch.bfloat16) * 0.5

    compiled = torch.compile(fake_quant, dynamic=True, fullgraph=True)
    from torch._dynamo.utils import counters

    counters.clear()
    for rows in (3, 40, 257):
        x = synthetic_weight(rows, cols)
        t0 = time.perf_counter()
        y = compiled(x)
        first = time.perf_counter() - t0
        same = torch.equal(y, fake_quant(x))
        print(f"   rows={rows:4d}: output {list(y.shape)} {y.dtype}, equal to eager: {same}, first call {first:.2f} s")
    print(f"   graphs compiled for the three sizes: {counters['stats']['unique_graphs']}")


def fp8_section(threads: int) -> None:
    n, k = 5760, 2880
    print(f"\n3. FP8 (E4M3) linear layer, N={n} K={k}: per-token activations x per-channel weights, against bf16")
    g = torch.Generator().manual_seed(1)
    w = (torch.randn(n, k, generator=g) * 0.02).to(torch.bfloat16)
    w_q, w_scale = mxkernels.quantize_fp8(w, k)           # per-channel: one scale per output row
    w_scale = w_scale.reshape(n)
    w_packed = mxkernels.prepack_fp8_weight(w_q)           # once, at load time
    print(f"   {'M':>4} {'rel. RMS err vs bf16':>21} {'fp8 ms':>8} {'prepacked':>9} {'bf16 ms':>8} {'speed-up':>8}")
    for m in (1, 8, 32, 512):
        x = torch.randn(m, k, generator=g).to(torch.bfloat16)
        ref = torch.nn.functional.linear(x.float(), w.float())

        def fp8_layer(weight):
            x_q, x_scale = mxkernels.quantize_fp8(x, k)      # per token
            return mxkernels.fp8_gemm(x_q, weight, x_scale, w_scale, out_dtype=torch.bfloat16)

        y = fp8_layer(w_packed)
        err = ((y.float() - ref).pow(2).mean() / ref.pow(2).mean()).sqrt().item()
        t_fp8 = median_seconds(lambda: fp8_layer(w_q), repeats=5)
        t_packed = median_seconds(lambda: fp8_layer(w_packed), repeats=5)
        t_bf16 = median_seconds(lambda: torch.nn.functional.linear(x, w), repeats=5)
        print(f"   {m:4d} {err:21.4f} {t_fp8 * 1e3:8.3f} {t_packed * 1e3:9.3f} {t_bf16 * 1e3:8.3f} "
              f"{t_bf16 / t_packed:7.2f}x")
    print("   (speed-up: bf16 over prepacked fp8; one weight reused here, bench/bench_fp8_gemm.py rotates weights through memory)")


def mxfp4_linear_section() -> None:
    n, k = 5760, 2880
    print(f"\n4. MXFP4 linear layer (mxkernels.nn.MXFP4Linear), N={n} K={k}, from a synthetic bf16 nn.Linear, per backend")
    lin = torch.nn.Linear(k, n, bias=True, dtype=torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(synthetic_weight(n, k))
    layers = {
        "cpu_w4a16": mxkernels.nn.MXFP4Linear.from_float(lin),
        "cpu_w4a4": mxkernels.nn.MXFP4Linear.from_float(lin, quantize_activations=True),
        "reference": mxkernels.nn.MXFP4Linear.from_float(lin, backend="reference"),
    }
    print(f"   default backend: {layers['cpu_w4a16'].backend_name}; {layers['cpu_w4a16']}")
    print(f"   {'M':>4} {'backend':10s} {'rel. RMS err vs bf16':>21} {'ms':>8} {'bf16 ms':>8} {'speed-up':>8}")
    for m in (1, 32, 512):
        x = torch.randn(m, k, generator=torch.Generator().manual_seed(m)).to(torch.bfloat16)
        with torch.no_grad():
            ref = lin(x).float()
            bf16_sec = median_seconds(lambda: lin(x))
            for name, layer in layers.items():
                y = layer(x).float()
                rel = ((y - ref).pow(2).mean() / ref.pow(2).mean()).sqrt().item()
                sec = median_seconds(lambda: layer(x), repeats=3 if name == "reference" else 10)
                print(f"   {m:4d} {name:10s} {rel:21.4f} {sec * 1e3:8.3f} {bf16_sec * 1e3:8.3f} {bf16_sec / sec:7.2f}x")
    print("   (speed-up: bf16 ms over ms; one weight reused, so it sits in cache; bench/bench_mxfp4_gemm.py rotates weights "
          "through memory)")


def moe_section(threads: int) -> None:
    h = inter = 2880
    experts, top_k = 32, 4
    print(f"\n5. MoE layer of gpt-oss-20b's shape (mxkernels.nn.MXFP4MoE / FP8MoE): {experts} experts, top-{top_k}, "
          f"H=I={h}, swiglu_oai with biases, synthetic weights, bf16 tokens, {threads} threads")
    g = torch.Generator().manual_seed(0)
    mxfp4 = {
        "router.weight": (torch.randn(experts, h, generator=g) / h ** 0.5).to(torch.bfloat16),
        "router.bias": torch.zeros(experts, dtype=torch.bfloat16),
        "experts.gate_up_proj_blocks": torch.randint(0, 256, (experts, 2 * inter, h // 32, 16), generator=g,
                                                     dtype=torch.uint8),
        "experts.gate_up_proj_scales": torch.randint(118, 122, (experts, 2 * inter, h // 32), generator=g,
                                                     dtype=torch.uint8),
        "experts.gate_up_proj_bias": torch.randn(experts, 2 * inter, generator=g).to(torch.bfloat16),
        "experts.down_proj_blocks": torch.randint(0, 256, (experts, h, inter // 32, 16), generator=g, dtype=torch.uint8),
        "experts.down_proj_scales": torch.randint(118, 122, (experts, h, inter // 32), generator=g, dtype=torch.uint8),
        "experts.down_proj_bias": torch.randn(experts, h, generator=g).to(torch.bfloat16),
    }
    # FP8 experts of the same shape: E4M3 codes between 0.5 and 3.75 in magnitude, both signs, 128x128 block scales.
    fp8 = {k: v for k, v in mxfp4.items() if k.startswith("router.") or k.endswith("_bias")}
    for name, (n, k) in {"gate_up_proj": (2 * inter, h), "down_proj": (h, inter)}.items():
        codes = torch.randint(0x30, 0x48, (experts, n, k), generator=g, dtype=torch.uint8)
        codes |= torch.randint(0, 2, (experts, n, k), generator=g, dtype=torch.uint8) << 7
        fp8[f"experts.{name}"] = codes.view(torch.float8_e4m3fn)
        fp8[f"experts.{name}_scale"] = torch.full((experts, -(-n // 128), -(-k // 128)), 2.0 ** -6)
    layers = {"mxfp4": mxkernels.nn.MXFP4MoE.from_gpt_oss(mxfp4, top_k=top_k),
              "fp8": mxkernels.nn.FP8MoE.from_fp8(fp8, top_k=top_k)}

    def bf16_moe(layer, fmt, x):
        """The same layer as a bf16 model computes it: each selected expert's weights dequantized to bf16, F.linear."""
        weights, ids = layer.route(x)
        ex = layer.experts
        out = torch.zeros(x.shape, dtype=torch.float32)
        for e in ids.unique().tolist():
            if fmt == "mxfp4":
                deq = lambda p: mxkernels.dequantize_mxfp4(getattr(ex, f"{p}_blocks")[e].flatten(1),
                                                           getattr(ex, f"{p}_scales")[e], torch.bfloat16)
            else:
                deq = lambda p: (getattr(ex, p)[e].float() * getattr(ex, f"{p}_scale")[e].repeat_interleave(128, 0)[
                    :getattr(ex, p).shape[1]].repeat_interleave(128, 1)[:, :getattr(ex, p).shape[2]]).to(torch.bfloat16)
            t, j = (ids == e).nonzero(as_tuple=True)
            a = mxkernels.reference.moe_activation(
                torch.nn.functional.linear(x[t], deq("gate_up_proj"), ex.gate_up_proj_bias[e].to(torch.bfloat16)),
                "swiglu_oai", 1.702, 7.0)
            y = torch.nn.functional.linear(a, deq("down_proj"), ex.down_proj_bias[e].to(torch.bfloat16))
            out.index_add_(0, t, weights[t, j, None] * y.float())
        return out.to(torch.bfloat16)

    print(f"   {'format':6s} {'T':>4} {'rel. RMS err vs bf16':>21} {'ms':>8} {'tokens/s':>9} {'bf16 PyTorch ms':>15} "
          f"{'speed-up':>8}")
    for fmt, layer in layers.items():
        for tokens in (1, 16, 128):
            x = torch.randn(tokens, h, generator=torch.Generator().manual_seed(tokens)).to(torch.bfloat16)
            with torch.no_grad():
                y = layer(x).float()
                ref = bf16_moe(layer, fmt, x).float()
                rel = ((y - ref).pow(2).mean() / ref.pow(2).mean()).sqrt().item()
                sec = median_seconds(lambda: layer(x), repeats=5)
                ref_sec = median_seconds(lambda: bf16_moe(layer, fmt, x), repeats=1, warmup=0)
            print(f"   {fmt:6s} {tokens:4d} {rel:21.4f} {sec * 1e3:8.2f} {tokens / sec:9.1f} {ref_sec * 1e3:15.1f} "
                  f"{ref_sec / sec:7.1f}x")
    print("   (bf16 PyTorch: per selected expert, mxkernels.dequantize_mxfp4 or an FP8 cast to bf16, then F.linear; the "
          "error is its\n    bf16 arithmetic on the same quantized weights. bench/bench_moe.py routes each call to fresh "
          "experts, against pure PyTorch)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--cols", type=int, default=2880)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    info = mxkernels.build_info()
    print(f"mxkernels {info['version']} (built against torch {info['torch_version']}), torch {torch.__version__}, "
          f"{args.threads} threads, CPU level {mxkernels.cpu_isa()} of {mxkernels.supported_cpu_isas()}")
    quantize_section(synthetic_weight(args.rows, args.cols))
    compile_section(args.cols)
    fp8_section(args.threads)
    mxfp4_linear_section()
    moe_section(args.threads)


if __name__ == "__main__":
    main()
