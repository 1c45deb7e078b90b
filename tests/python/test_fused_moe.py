"""Fused MoE experts and top-k routing.

fused_moe is compared on every CPU level with a float64 reference (reference.fused_moe: dequantize, then loop over
experts and their tokens) within a bound derived from how the kernel rounds, propagated through the layer (u = 2^-24):
  GEMM1    e1 = 2 (H + 4) u (|x| |W13|ᵀ + |b13|)                      float32 sums per 32- to 128-value segment
  act      e_a = 1.1 e_g (|v| + e_u) + |f(g)| e_u + 8 u |a| (+ 2^-8 (|a| + ...) when rounded to bfloat16)
           with a = f(g) v, f(g) = g sigmoid(alpha g) (|f'| <= 1.1, clamps are 1-Lipschitz), v = u or clamp(u) + 1
  GEMM2    e_y = e_a |W2|ᵀ + 2 (I + 4) u ((|a| + e_a) |W2|ᵀ + |b2|)
  combine  e = sum_j |w_j| e_y + (k + 1) u sum_j |w_j| |y_j|, then one rounding into hidden's dtype.
"""
import functools
import math

import pytest
import torch

import mxkernels
from mxkernels import reference

from opchecks import assert_same_error_on_cpu_and_meta, opcheck

ops = torch.ops.mxkernels
U = 2.0 ** -24
OUT_REL = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}
SHAPES = [(128, 128, 4, 2), (256, 256, 8, 4), (256, 352, 8, 4), (2880, 2880, 32, 4)]  # (H, I, E, k)
TOKENS = [1, 2, 7, 32, 121]


def _scale_exponent(k):
    """E8M0 exponent offset that puts sum over k of x w (x ~ N(0, 1), |w| ~ 2.5 * 2^e) at a standard deviation
    near 5, so that swiglu_oai's limit of 7 clamps a good share of the gates."""
    return round(math.log2(5 / (2.5 * math.sqrt(k))))


@functools.lru_cache(maxsize=None)
def moe_weights(fmt, h, inter, experts, seed=0):
    """(w13, w13_scales, w2, w2_scales): every code and sign, scales spread over 4 binades around _scale_exponent."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, k in ((2 * inter, h), (h, inter)):
        e0 = _scale_exponent(k)
        if fmt == "mxfp4":
            q = torch.randint(0, 256, (experts, n, k // 2), generator=g, dtype=torch.uint8)
            s = (127 + e0 + torch.randint(-2, 2, (experts, n, k // 32), generator=g)).to(torch.uint8)
            out += [q, s]
        else:
            # E4M3 bytes with exponents around 2^0 (0x30..0x47: 0.5 to 3.75), both signs.
            mag = torch.randint(0x30, 0x48, (experts, n, k), generator=g, dtype=torch.uint8)
            sign = torch.randint(0, 2, (experts, n, k), generator=g, dtype=torch.uint8) << 7
            q = (mag | sign).view(torch.float8_e4m3fn)
            s = torch.exp2(e0 + torch.randint(-2, 2, (experts, -(-n // 128), -(-k // 128)), generator=g).float())
            s = s * (1 + torch.rand(s.shape, generator=g))
            out += [q, s]
    return tuple(out)


def routing(tokens, experts, k, seed, with_map):
    """topk_weights, topk_ids and expert_map (or None). With a map, the global experts are 1.5x the local ones and a
    random third of them are elsewhere (-1)."""
    g = torch.Generator().manual_seed(seed)
    expert_map = None
    global_experts = experts
    if with_map:
        global_experts = experts + experts // 2
        expert_map = torch.full((global_experts,), -1, dtype=torch.int32)
        expert_map[torch.randperm(global_experts, generator=g)[:experts]] = torch.randperm(experts, generator=g).int()
    logits = torch.randn(tokens, global_experts, generator=g)
    weights, ids = reference.topk_softmax(logits, k, renormalize=True)
    return weights.float(), ids, expert_map


def expected_and_bound(x, w13, s13, w2, s2, tw, ti, b13, b2, act, alpha, limit, expert_map, round_bf16):
    """(reference value, error bound) in float64, per the module docstring."""
    tokens, h = x.shape
    x64 = x.to(torch.float64)
    ids = ti.to(torch.int64)
    local = expert_map.to(torch.int64)[ids] if expert_map is not None else ids
    value = torch.zeros(tokens, h, dtype=torch.float64)
    err = torch.zeros(tokens, h, dtype=torch.float64)
    mag = torch.zeros(tokens, h, dtype=torch.float64)
    for e in sorted(set(local.reshape(-1).tolist()) - {-1}):
        t_idx, j_idx = (local == e).nonzero(as_tuple=True)
        wa = reference.moe_expert_weight_float64(w13, s13, e)
        xe = x64[t_idx]
        g = xe @ wa.T + (b13[e].double() if b13 is not None else 0)
        e1 = 2 * (h + 4) * U * (xe.abs() @ wa.abs().T + (b13[e].double().abs() if b13 is not None else 0))
        del wa
        inter = g.shape[1] // 2
        a = reference.moe_activation(g, act, alpha, limit)
        if act == "silu":
            gate, up, e_g, e_u = g[:, :inter], g[:, inter:], e1[:, :inter], e1[:, inter:]
            f, v = gate * torch.sigmoid(gate), up
        else:
            gate, up, e_g, e_u = g[:, 0::2].clamp(max=limit), g[:, 1::2].clamp(-limit, limit), e1[:, 0::2], e1[:, 1::2]
            f, v = gate * torch.sigmoid(alpha * gate), up + 1
        e_a = 1.1 * e_g * (v.abs() + e_u) + f.abs() * e_u + 8 * U * a.abs() + 1e-37
        if round_bf16:
            e_a = e_a + 2.0 ** -8 * (a.abs() + e_a)
        wb = reference.moe_expert_weight_float64(w2, s2, e)
        y = a @ wb.T + (b2[e].double() if b2 is not None else 0)
        m2 = (a.abs() + e_a) @ wb.abs().T + (b2[e].double().abs() if b2 is not None else 0)
        e_y = e_a @ wb.abs().T + 2 * (inter + 4) * U * m2
        wt = tw[t_idx, j_idx].double()[:, None]
        value.index_add_(0, t_idx, wt * y)
        err.index_add_(0, t_idx, wt.abs() * e_y)
        mag.index_add_(0, t_idx, wt.abs() * m2)
    k = ti.shape[1]
    bound = err + (k + 1) * U * mag
    bound = bound + OUT_REL[x.dtype] * (value.abs() + bound) + (2.0 ** -24 if x.dtype == torch.float16 else 0)
    return value, bound


def check_every_level(x, weights, tw, ti, b13, b2, act, expert_map, prepacked=None):
    w13, s13, w2, s2 = weights
    alpha, limit = 1.702, 7.0
    want, bound = expected_and_bound(x, w13, s13, w2, s2, tw, ti, b13, b2, act, alpha, limit, expert_map,
                                     x.dtype == torch.bfloat16)
    before = mxkernels.cpu_isa()
    try:
        for isa in mxkernels.supported_cpu_isas():
            mxkernels.set_cpu_isa(isa)
            outs = {"plain": mxkernels.fused_moe(x, w13, s13, w2, s2, tw, ti, w13_bias=b13, w2_bias=b2, activation=act,
                                                 swiglu_alpha=alpha, swiglu_limit=limit, expert_map=expert_map)}
            if prepacked is not None:
                outs["prepacked"] = mxkernels.fused_moe(x, *prepacked, tw, ti, w13_bias=b13, w2_bias=b2, activation=act,
                                                        expert_map=expert_map)
                if w13.dtype != torch.float8_e4m3fn:  # FP8's prepacked decode sums in another order (within the bound)
                    assert torch.equal(outs["prepacked"], outs["plain"]), f"{isa}: prepacked MXFP4 differs"
            for name, out in outs.items():
                assert out.dtype == x.dtype and out.shape == x.shape and out.is_contiguous()
                err = (out.double() - want).abs()
                bad = ~(err <= bound)
                assert not bad.any(), (f"{isa}, {name}: {int(bad.sum())} values off, worst error "
                                       f"{err[bad].max().item()} where the bound is {bound[bad].min().item()}")
    finally:
        mxkernels.set_cpu_isa(before)


def prepack(fmt, weights):
    w13, s13, w2, s2 = weights
    if fmt == "mxfp4":
        return (torch.stack([mxkernels.prepack_mxfp4_weight(w13[e], s13[e]) for e in range(w13.shape[0])]), None,
                torch.stack([mxkernels.prepack_mxfp4_weight(w2[e], s2[e]) for e in range(w2.shape[0])]), None)
    return (torch.stack([mxkernels.prepack_fp8_weight(w) for w in w13]), s13,
            torch.stack([mxkernels.prepack_fp8_weight(w) for w in w2]), s2)


def biases(h, inter, experts, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(experts, 2 * inter, generator=g).to(dtype), torch.randn(experts, h, generator=g).to(dtype))


@pytest.mark.parametrize("shape", SHAPES[:3])
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("fmt", ["mxfp4", "fp8"])
@pytest.mark.parametrize("act", ["silu", "swiglu_oai"])
@pytest.mark.parametrize("variant", ["bias", "map", "bias+map", "plain"])
def test_against_float64_every_level(shape, tokens, fmt, act, variant):
    h, inter, experts, k = shape
    seed = tokens * 7 + len(variant) + h
    x = torch.randn(tokens, h, generator=torch.Generator().manual_seed(seed)) * 2
    x = x.to((torch.bfloat16, torch.float32, torch.float16)[seed % 3])
    weights = moe_weights(fmt, h, inter, experts)
    tw, ti, expert_map = routing(tokens, experts, k, seed, "map" in variant)
    b13, b2 = biases(h, inter, experts, seed, torch.bfloat16) if "bias" in variant else (None, None)
    if seed % 2:
        ti = ti.long()
    check_every_level(x, weights, tw, ti, b13, b2, act, expert_map,
                      prepacked=prepack(fmt, weights) if tokens in (2, 7) else None)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("fmt", ["mxfp4", "fp8"])
def test_gpt_oss_size_against_float64_every_level(tokens, fmt):
    """H = I = 2880, 32 experts, top-4: gpt-oss-20b's layer, with its activation on odd T, silu on even, and biases,
    an expert_map and hidden dtypes spread over the cases."""
    h, inter, experts, k = SHAPES[3]
    act = "swiglu_oai" if tokens % 2 else "silu"
    x = (torch.randn(tokens, h, generator=torch.Generator().manual_seed(tokens)) * 2).to(
        torch.float32 if tokens == 7 else torch.bfloat16)
    weights = moe_weights(fmt, h, inter, experts)
    tw, ti, expert_map = routing(tokens, experts, k, tokens, with_map=tokens in (2, 32))
    b13, b2 = biases(h, inter, experts, tokens, torch.float32) if tokens != 2 else (None, None)
    check_every_level(x, weights, tw, ti, b13, b2, act, expert_map)


def test_reference_matches_the_bound_computation():
    h, inter, experts, k = SHAPES[1]
    for fmt in ("mxfp4", "fp8"):
        weights = moe_weights(fmt, h, inter, experts)
        tw, ti, expert_map = routing(9, experts, k, 3, True)
        x = torch.randn(9, h)
        b13, b2 = biases(h, inter, experts, 1, torch.float32)
        for act in ("silu", "swiglu_oai"):
            want = reference.fused_moe(x, *weights, tw, ti, b13, b2, act, 1.702, 7.0, expert_map)
            value, _ = expected_and_bound(x, *weights, tw, ti, b13, b2, act, 1.702, 7.0, expert_map, False)
            torch.testing.assert_close(want, value, rtol=0, atol=0)


def test_swiglu_limit_is_exercised():
    """The weights' scales put many gates past the limit, so the clamps are tested, not only the smooth part."""
    h, inter, experts, _ = SHAPES[1]
    w13, s13, _, _ = moe_weights("mxfp4", h, inter, experts)
    g = torch.randn(64, h).double() @ reference.moe_expert_weight_float64(w13, s13, 0).T
    share = (g.abs() > 7).double().mean().item()
    assert 0.05 < share < 0.8, share


def test_results_independent_of_threads():
    h, inter, experts, k = SHAPES[2]
    for fmt in ("mxfp4", "fp8"):
        weights = moe_weights(fmt, h, inter, experts)
        x = torch.randn(33, h, dtype=torch.bfloat16)
        tw, ti, _ = routing(33, experts, k, 5, False)
        before = torch.get_num_threads()
        outs = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            outs.append(mxkernels.fused_moe(x, *weights, tw, ti, activation="swiglu_oai"))
        torch.set_num_threads(before)
        assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_non_contiguous_inputs_and_empty_tokens():
    h, inter, experts, k = SHAPES[0]
    weights = moe_weights("mxfp4", h, inter, experts)
    x = torch.randn(h, 5).t()
    tw, ti, _ = routing(5, experts, k, 1, False)
    want = mxkernels.fused_moe(x.contiguous(), *weights, tw, ti)
    strided_w = tuple(torch.cat([w, w], dim=2)[:, :, :w.shape[2]] for w in weights)  # row stride 2x, rows intact
    assert not strided_w[0].is_contiguous()
    assert torch.equal(mxkernels.fused_moe(x, *strided_w, tw.t().contiguous().t(), ti.t().contiguous().t()), want)
    out = mxkernels.fused_moe(torch.empty(0, h), *weights, torch.empty(0, k), torch.empty(0, k, dtype=torch.int32))
    assert out.shape == (0, h)
    # Every slot routed elsewhere: zeros.
    none_here = torch.full((experts,), -1, dtype=torch.int32)
    assert torch.equal(mxkernels.fused_moe(x, *weights, tw, ti, expert_map=none_here), torch.zeros(5, h))


def test_nan_and_inf_propagate():
    h, inter, experts, k = SHAPES[0]
    w13, s13, w2, s2 = moe_weights("mxfp4", h, inter, experts)
    x = torch.randn(3, h)
    x[1, 5] = float("nan")
    tw, ti, _ = routing(3, experts, k, 2, False)
    out = mxkernels.fused_moe(x, w13, s13, w2, s2, tw, ti)
    assert torch.isnan(out[1]).any() and not torch.isnan(out[0]).any() and not torch.isnan(out[2]).any()


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("fmt", ["mxfp4", "fp8"])
def test_opcheck(contiguous, fmt):
    h, inter, experts, k = SHAPES[0]
    w13, s13, w2, s2 = moe_weights(fmt, h, inter, experts)
    x = torch.randn(6, h) if contiguous else torch.randn(h, 6).t()
    tw, ti, _ = routing(6, experts, k, 4, False)
    b13, b2 = biases(h, inter, experts, 2, torch.float32)
    opcheck(ops.fused_moe.default, (x, w13, s13, w2, s2, tw, ti))
    tw, ti, expert_map = routing(6, experts, k, 4, True)
    for act in ("silu", "swiglu_oai"):
        w13_any = w13.view(torch.float4_e2m1fn_x2) if fmt == "mxfp4" and act == "silu" else w13
        opcheck(ops.fused_moe.default, (x.to(torch.bfloat16), w13_any, s13, w2, s2, tw, ti),
                {"w13_bias": b13, "w2_bias": b2, "activation": act, "expert_map": expert_map})
    packed = prepack(fmt, (w13, s13, w2, s2))
    opcheck(ops.fused_moe.default, (x, *packed, tw, ti.long()), {"expert_map": expert_map})
    logits = torch.randn(6, 9) if contiguous else torch.randn(9, 6).t()
    opcheck(ops.topk_softmax.default, (logits, 3, True))
    opcheck(ops.topk_softmax.default, (logits.to(torch.bfloat16), 2, False))


def test_torch_compile_dynamic_no_recompile():
    torch._dynamo.reset()
    from torch._dynamo.utils import counters
    h, inter, experts, k = SHAPES[0]
    w13, s13, w2, s2 = moe_weights("mxfp4", h, inter, experts)
    router = torch.randn(experts, h)

    def layer(x):
        weights, ids = mxkernels.topk_softmax(x.float() @ router.T, k, True)
        return mxkernels.fused_moe(x, w13, s13, w2, s2, weights, ids, activation="swiglu_oai") + x

    compiled = torch.compile(layer, dynamic=True, fullgraph=True)
    counters.clear()
    for tokens in (3, 17, 64):
        x = torch.randn(tokens, h, dtype=torch.bfloat16)
        assert torch.equal(compiled(x), layer(x))
    assert counters["stats"]["unique_graphs"] == 1


# --- top-k softmax ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("renormalize", [True, False])
def test_topk_softmax_against_float64(dtype, renormalize):
    logits = (torch.randn(300, 32) * 3).to(dtype)
    weights, ids = mxkernels.topk_softmax(logits, 4, renormalize)
    want_w, want_ids = reference.topk_softmax(logits, 4, renormalize)
    assert weights.dtype == torch.float32 and ids.dtype == torch.int32 and weights.shape == (300, 4)
    assert torch.equal(ids, want_ids)
    if dtype == torch.float32:  # no ties (16-bit logits have them; torch.topk does not promise their order)
        assert torch.equal(ids, torch.topk(logits, 4).indices.int())
    torch.testing.assert_close(weights.double(), want_w, rtol=2e-6, atol=1e-9)


def test_topk_softmax_ties_nan_and_gpt_oss_routing():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0], [float("nan"), 1.0, 2.0, float("nan"), 0.0],
                           [float("-inf"), 0.0, float("inf"), 0.0, -1.0]])
    weights, ids = mxkernels.topk_softmax(logits, 3, True)
    want_w, want_ids = reference.topk_softmax(logits, 3, True)
    assert ids.tolist() == [[1, 2, 4], [0, 3, 2], [2, 1, 3]] == want_ids.tolist()
    torch.testing.assert_close(weights[0].double(), want_w[0])
    assert torch.isnan(weights[1]).all() and torch.isnan(weights[2]).any()
    # gpt-oss routes with a softmax over the top-k logits; renormalize gives the same weights.
    x = torch.randn(50, 32)
    top = torch.topk(x, 4)
    w, i = mxkernels.topk_softmax(x, 4, True)
    assert torch.equal(i, top.indices.int())
    torch.testing.assert_close(w, torch.softmax(top.values, dim=-1), rtol=1e-6, atol=1e-7)


# --- errors ---------------------------------------------------------------------------------------------------------


def _e(shape, dtype=torch.float32, d="cpu"):
    return torch.empty(shape, dtype=dtype, device=d)


U8, F4, E8, F8, I32 = torch.uint8, torch.float4_e2m1fn_x2, torch.float8_e8m0fnu, torch.float8_e4m3fn, torch.int32


def _moe(d, hidden=(3, 64), w13=((2, 64, 32), U8), s13=((2, 64, 2), U8), w2=((2, 64, 16), U8), s2=((2, 64, 1), U8),
         tw=((3, 2), torch.float32), ti=((3, 2), I32), **kw):
    """A valid MXFP4 call (T 3, H 64, I 32, E 2, k 2) with one part replaced."""
    mk = lambda spec: None if spec is None else _e(spec[0], spec[1], d)
    kw = {name: (_e(v[0], v[1], d) if isinstance(v, tuple) else v) for name, v in kw.items()}
    hid = _e(hidden, d=d) if isinstance(hidden, tuple) else hidden(d)
    return ops.fused_moe(hid, mk(w13), mk(s13), mk(w2), mk(s2), mk(tw), mk(ti), **kw)


def _fp8(d, w13=(2, 64, 64), s13=(2, 1, 1), w2=(2, 64, 32), s2=(2, 1, 1), **kw):
    f32 = lambda shape: None if shape is None else (shape, torch.float32)
    return _moe(d, w13=(w13, F8), s13=f32(s13), w2=(w2, F8), s2=f32(s2), **kw)


M = "mxkernels.fused_moe: "
ERRORS = [
    (lambda d: _moe(d, hidden=(3, 48)), M + "H = hidden.size(1) must be a positive multiple of 32, got 48"),
    (lambda d: _moe(d, hidden=(3, 64, 1)), M + "hidden must be 2-D [T, H], got shape [3, 64, 1]"),
    (lambda d: _moe(d, hidden=lambda d: _e((3, 64), torch.float64, d)), M + "hidden must be Float, BFloat16 or Half, got Double"),
    (lambda d: _moe(d, w13=((2, 64, 32), torch.int8)),
     M + "w13 must be float4_e2m1fn_x2 or uint8 (MXFP4 codes or a prepacked blob) or float8_e4m3fn (FP8), got Char"),
    (lambda d: _moe(d, w13=((2, 48, 32), U8)), M + "w13.size(1) = 2I must be a positive multiple of 64 (I a multiple of 32), got 48"),
    (lambda d: _moe(d, w13=((2, 64, 16), U8)), M + "w13 must have shape [2, 64, 32], got [2, 64, 16]"),
    (lambda d: _moe(d, w2=((3, 64, 16), U8)), M + "w2 must have shape [2, 64, 16], got [3, 64, 16]"),
    (lambda d: _moe(d, w2=((2, 32, 16), U8)), M + "w2 must have shape [2, 64, 16], got [2, 32, 16]"),
    (lambda d: _moe(d, w2=((2, 64, 16), F8)), M + "w2 must be MXFP4 like w13 (float4_e2m1fn_x2 or uint8), got Float8_e4m3fn"),
    (lambda d: _moe(d, s13=((2, 64, 3), U8)), M + "w13_scales must have shape [2, 64, 2], got [2, 64, 3]"),
    (lambda d: _moe(d, s2=((2, 64, 1), torch.float32)), M + "w2_scales must be float8_e8m0fnu or uint8 (E8M0 scales), got Float"),
    (lambda d: _moe(d, s13=None), M + "w13_scales [E, N, K/32] is required with a plain w13 (None only with a prepacked one)"),
    (lambda d: _moe(d, w13=((2, 64, 2, 17), U8)),
     M + "w13_scales must be None with a prepacked w13 (its scales are inside), got a tensor of shape [2, 64, 2]"),
    (lambda d: _moe(d, w13=((2, 64, 2, 16), U8), s13=None), M + "w13 must have shape [2, 64, 2, 17], got [2, 64, 2, 16]"),
    (lambda d: _moe(d, tw=((3, 2), torch.bfloat16)), M + "topk_weights must be float32, got BFloat16"),
    (lambda d: _moe(d, tw=((4, 2), torch.float32)), M + "topk_weights must have shape [3, 2], got [4, 2]"),
    (lambda d: _moe(d, ti=((3, 3), I32)), M + "topk_ids must have shape [3, 2], got [3, 3]"),
    (lambda d: _moe(d, ti=((3, 2), torch.float32)), M + "topk_ids must be int32 or int64, got Float"),
    (lambda d: _moe(d, tw=((3, 0), torch.float32), ti=((3, 0), I32)), M + "topk_weights.size(1) (k) must be positive, got 0"),
    (lambda d: _moe(d, activation="gelu"), M + "activation must be 'silu' or 'swiglu_oai', got 'gelu'"),
    (lambda d: _moe(d, swiglu_limit=float("nan")),
     M + "swiglu_alpha must be finite and swiglu_limit finite and >= 0, got 1.702 and nan"),
    (lambda d: _moe(d, w13_bias=((2, 32), torch.float32)), M + "w13_bias must have shape [2, 64], got [2, 32]"),
    (lambda d: _moe(d, w2_bias=((64,), torch.float32)), M + "w2_bias must have shape [2, 64], got [64]"),
    (lambda d: _moe(d, w2_bias=((2, 64), torch.int32)), M + "w2_bias must be Float, BFloat16 or Half, got Int"),
    (lambda d: _moe(d, expert_map=((4,), torch.int64)), M + "expert_map must be int32, got Long"),
    (lambda d: _moe(d, expert_map=((2, 2), I32)), M + "expert_map must be 1-D [E_global], got shape [2, 2]"),
    (lambda d: _fp8(d, s13=(2, 1, 2)), M + "w13_scales must have shape [2, 1, 1], got [2, 1, 2]"),
    (lambda d: _fp8(d, w2=(2, 64, 16)), M + "w2 must have shape [2, 64, 32], got [2, 64, 16]"),
    (lambda d: _fp8(d, s2=None), M + "w2_scales (float32 128x128 block scales [E, ceil(N/128), ceil(K/128)]) is required "
     "with FP8 weights"),
    (lambda d: _fp8(d, w13=(2, 64, 16, 2)), M + "w13 must have shape [2, 64, 32, 2], got [2, 64, 16, 2]"),
    (lambda d: _fp8(d, w2_bias=((2, 64), F8)), M + "w2_bias must be Float, BFloat16 or Half, got Float8_e4m3fn"),
    (lambda d: _fp8(d, s13=(2, 1, 1, 1)), M + "w13_scales must have shape [2, 1, 1], got [2, 1, 1, 1]"),
    (lambda d: ops.topk_softmax(_e((3, 4), d=d), 5, True), "mxkernels.topk_softmax: k must be in [1, E] = [1, 4], got 5"),
    (lambda d: ops.topk_softmax(_e((3, 4), d=d), 0, True), "mxkernels.topk_softmax: k must be in [1, E] = [1, 4], got 0"),
    (lambda d: ops.topk_softmax(_e((3, 4), torch.float64, d), 2, True),
     "mxkernels.topk_softmax: router_logits must be Float, BFloat16 or Half, got Double"),
    (lambda d: ops.topk_softmax(_e((2, 3, 4), d=d), 2, True), "mxkernels.topk_softmax: router_logits must be 2-D [T, E], got shape [2, 3, 4]"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_identical_on_cpu_and_meta(case):
    assert_same_error_on_cpu_and_meta(*ERRORS[case])


def test_expert_ids_and_map_values_out_of_range():
    h, inter, experts, k = SHAPES[0]
    weights = moe_weights("mxfp4", h, inter, experts)
    x = torch.randn(3, h)
    tw, ti, _ = routing(3, experts, k, 1, False)
    for bad, dtype in ((experts, torch.int32), (-1, torch.int64), (2 ** 40, torch.int64)):
        ids = ti.to(dtype).clone()
        ids[2, 1] = bad
        with pytest.raises(RuntimeError, match=rf"topk_ids\[2, 1\] = {bad} is out of range: expert ids must be in "
                                               rf"\[0, {experts}\) \(the experts in w13\)"):
            mxkernels.fused_moe(x, *weights, tw, ids)
    expert_map = torch.tensor([0, -1, 1, 2, 3, -1], dtype=torch.int32)
    ids = ti.clone()
    ids[0, 0] = 6
    with pytest.raises(RuntimeError, match=r"topk_ids\[0, 0\] = 6 is out of range: expert ids must be in \[0, 6\) "
                                           r"\(the size of expert_map\)"):
        mxkernels.fused_moe(x, *weights, tw, ids, expert_map=expert_map)
    for value in (experts, -2):
        bad_map = expert_map.clone()
        bad_map[4] = value
        with pytest.raises(RuntimeError, match=rf"expert_map\[4\] = {value} is out of range: entries must be -1 \(not on "
                                               rf"this process\) or a local expert in \[0, {experts}\)"):
            mxkernels.fused_moe(x, *weights, tw, ti, expert_map=bad_map)
