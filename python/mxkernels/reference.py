"""Pure-PyTorch reference of the MXFP4 numerics (docs/formats.md), written for reading, not speed.

It is a third derivation of the rules, beside the C++ reference and the SIMD kernels: scales from
``torch.frexp`` and element codes as the nearest point of the E2M1 grid, both in float64, where the C++ code
uses ``ilogb`` and fp32 bit tricks. The tests hold all three, torchao's ``to_mx`` and ml_dtypes to the same
bits.
"""
from typing import Tuple

import torch

BLOCK = 32
E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # magnitudes of codes 0..7; bit 3 is the sign
E8M0_NAN = 0xFF
SCALE_MODES = ("floor", "ceil", "even", "rceil")


def _floor_log2(a: torch.Tensor) -> torch.Tensor:
    """floor(log2(a)) for a > 0, exactly (frexp gives a = m * 2^e with m in [0.5, 1))."""
    _, e = torch.frexp(a)
    return e.to(torch.int64) - 1


def _is_power_of_two(a: torch.Tensor) -> torch.Tensor:
    m, _ = torch.frexp(a)
    return m == 0.5


def scale_exponents(amax: torch.Tensor, scale_mode: str) -> torch.Tensor:
    """The unbiased E8M0 exponent for each block's largest magnitude (float32, finite, >= 0)."""
    tiny = torch.finfo(torch.float32).tiny  # the smallest normal float32, 2^-126
    a = amax.to(torch.float64)
    safe = torch.where(a > 0, a, torch.ones_like(a))
    # torchao reads the float32 exponent field, which is -127 for zero and every subnormal.
    field = torch.where(a >= tiny, _floor_log2(safe), torch.full_like(a, -127, dtype=torch.int64))
    if scale_mode == "floor":
        e = field - 2
    elif scale_mode == "ceil":
        e = field + (~_is_power_of_two(safe) & (a > 0)).to(torch.int64) - 2
    elif scale_mode == "even":
        # amax rounded to a power of two, upwards from 1.75 * 2^e on.
        mant = torch.where(a >= tiny, safe / torch.exp2(field.to(torch.float64)), a / tiny)
        carry = torch.where(a >= tiny, mant >= 1.75, mant >= 0.75)  # subnormals carry into 2^-126
        e = torch.where((a < tiny) & carry, torch.full_like(field, -126), field + (carry & (a >= tiny)).long()) - 2
    elif scale_mode == "rceil":
        # ceil(log2(amax / 6)) with the quotient rounded to float32 first (cuBLAS's definition).
        descale = (amax.to(torch.float32) / 6.0).to(torch.float64)
        d = torch.where(descale > 0, descale, torch.ones_like(descale))
        e = _floor_log2(d) + (~_is_power_of_two(d)).to(torch.int64)
        e = torch.where(descale > 0, e, torch.full_like(e, -127))
    else:
        raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
    return e.clamp(-127, 127)


def e2m1_magnitude_codes(v: torch.Tensor) -> torch.Tensor:
    """Codes 0..7 of the nearest E2M1 magnitude to v >= 0 (float64), ties to the even code, saturating at 6."""
    grid = torch.tensor(E2M1_GRID, dtype=torch.float64)
    dist = (v.clamp(max=6.0).unsqueeze(-1) - grid).abs()
    best = dist.min(-1, keepdim=True).values
    # Among the nearest grid points (two at a tie) take the even code; only one of two neighbours is even.
    candidates = dist == best
    even = candidates & (torch.arange(8) % 2 == 0)
    return torch.where(even.any(-1), even.int().argmax(-1), candidates.int().argmax(-1)).to(torch.uint8)


def quantize_mxfp4(x: torch.Tensor, scale_mode: str = "rceil") -> Tuple[torch.Tensor, torch.Tensor]:
    """The reference of ``mxkernels.quantize_mxfp4``; returns ``(q, scales)`` as uint8 tensors."""
    if x.shape[-1] % BLOCK != 0 or x.shape[-1] == 0:
        raise ValueError(f"x.size(-1) must be a positive multiple of 32, got {x.shape[-1]}")
    xf = x.to(torch.float32).reshape(*x.shape[:-1], x.shape[-1] // BLOCK, BLOCK)
    special = ~torch.isfinite(xf).all(-1)
    amax = torch.where(special, 0.0, xf.abs().amax(-1))
    e = scale_exponents(amax, scale_mode)
    if scale_mode == "rceil":
        # Multiply by the reciprocal; exponent -127 multiplies by 1 (torchao, TransformerEngine).
        multiplier = torch.where(e == -127, 1.0, torch.exp2(-e.to(torch.float64)))
    else:
        # Divide by the scale, clamped below to 2^-126 (torchao).
        multiplier = torch.exp2(-e.clamp(min=-126).to(torch.float64))
    # The product is rounded to float32 before the E2M1 rounding, as every implementation does.
    scaled = (xf.abs().to(torch.float64) * multiplier.unsqueeze(-1)).to(torch.float32).to(torch.float64)
    codes = e2m1_magnitude_codes(scaled) | (torch.signbit(xf).to(torch.uint8) << 3)
    codes = torch.where(special.unsqueeze(-1), 0, codes).to(torch.uint8)
    scales = torch.where(special, E8M0_NAN, e + 127).to(torch.uint8)
    return pack_codes(codes.reshape(x.shape)), scales


def pack_codes(codes: torch.Tensor) -> torch.Tensor:
    """[..., K] codes 0..15 to [..., K/2] bytes, element 2i in the low nibble."""
    c = codes.to(torch.uint8)
    return c[..., 0::2] | (c[..., 1::2] << 4)


def unpack_codes(q: torch.Tensor) -> torch.Tensor:
    """[..., K/2] bytes to [..., K] codes."""
    b = q.view(torch.uint8)
    return torch.stack([b & 0xF, b >> 4], dim=-1).reshape(*b.shape[:-1], b.shape[-1] * 2)


def e2m1_values(codes: torch.Tensor) -> torch.Tensor:
    """float32 values of codes 0..15."""
    table = torch.tensor(E2M1_GRID + tuple(-v for v in E2M1_GRID), dtype=torch.float32)
    return table[codes.long()]


def dequantize_mxfp4(q: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The reference of ``mxkernels.dequantize_mxfp4``: ``e2m1(code) * 2^(scale - 127)`` in float32 (exact
    up to overflow), rounded once to ``dtype``; scale 0xFF gives NaN."""
    codes = unpack_codes(q)
    s = scales.view(torch.uint8).to(torch.float64)
    scale = torch.where(s == E8M0_NAN, float("nan"), torch.exp2(s - 127.0))
    vals = e2m1_values(codes).to(torch.float64).reshape(*codes.shape[:-1], -1, BLOCK) * scale.unsqueeze(-1)
    return vals.to(torch.float32).reshape(codes.shape).to(dtype)


# --- FP8 E4M3 -------------------------------------------------------------------------------------------
FP8_MAX = 448.0


def round_up_pow2(s: torch.Tensor) -> torch.Tensor:
    """The smallest power of two >= s, exactly (frexp, not a rounded log2); NaN and Inf stay."""
    m, e = torch.frexp(s)
    up = torch.where(m == 0.5, s, torch.ldexp(torch.ones_like(s), e))
    return torch.where(torch.isfinite(s) & (s > 0), up, s)


def fp8_scale(amax: torch.Tensor, eps: float, scale_ue8m0: bool) -> torch.Tensor:
    """max(amax, eps) / 448 in float32, NaN-propagating; rounded up to a power of two when scale_ue8m0."""
    scale = amax.to(torch.float32).clamp(min=eps) / FP8_MAX
    return round_up_pow2(scale) if scale_ue8m0 else scale


def fp8_cast(v: torch.Tensor) -> torch.Tensor:
    """Explicit clamp to ±448, then torch's round-to-nearest-even cast: the same on every torch version."""
    return v.clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)


def quantize_fp8(x: torch.Tensor, group_size: int = 128, eps: float = 1e-10,
                 scale_ue8m0: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """The reference of ``mxkernels.quantize_fp8``: ``(q float8_e4m3fn [..., K], scales float32 [..., K/group])``."""
    k = x.shape[-1]
    xf = x.to(torch.float32).reshape(*x.shape[:-1], k // group_size, group_size)
    scale = fp8_scale(xf.abs().amax(-1, keepdim=True), eps, scale_ue8m0)
    q = fp8_cast(xf / scale)
    return q.reshape(x.shape), scale.squeeze(-1)


def quantize_fp8_per_tensor(x: torch.Tensor, scale=None, eps: float = 1e-10) -> Tuple[torch.Tensor, torch.Tensor]:
    """The reference of ``mxkernels.quantize_fp8_per_tensor``; ``scale`` (one float32) makes it static."""
    xf = x.to(torch.float32)
    s = fp8_scale(xf.abs().amax(), eps, False) if scale is None else scale.to(torch.float32).reshape(())
    return fp8_cast(xf / s), s.reshape(1)


def _expand_activation_scale(a_scale: torch.Tensor, a_shape) -> torch.Tensor:
    if a_scale.numel() == 1 and (a_scale.dim() == 0 or len(a_shape) > 1 or a_scale.dim() == 1):
        return a_scale.to(torch.float64).reshape(())
    if a_scale.shape[-1] == 1:
        return a_scale.to(torch.float64)
    return a_scale.to(torch.float64).repeat_interleave(128, -1)


def _expand_weight_scale(b_scale: torch.Tensor, n: int, k: int) -> torch.Tensor:
    s = b_scale.to(torch.float64)
    if s.numel() == 1:
        return s.reshape(())
    if s.dim() == 1:
        return s[:, None]
    return s.repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)[:, :k]


def fp8_gemm(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
             bias=None) -> torch.Tensor:
    """float64 reference of ``mxkernels.fp8_gemm`` / ``fp8_gemm_w8a16`` (pass ``a_scale = torch.ones(1)`` for W8A16):
    dequantize both operands exactly, multiply in float64. Returns float64 ``[..., N]``."""
    n, k = b.shape
    a64 = a.to(torch.float64) * _expand_activation_scale(a_scale, a.shape)
    b64 = b.to(torch.float64) * _expand_weight_scale(b_scale, n, k)
    out = a64 @ b64.T
    return out + bias.to(torch.float64) if bias is not None else out


def prepack_fp8_weight(b: torch.Tensor) -> torch.Tensor:
    """The reference of ``mxkernels.prepack_fp8_weight``: panels of 32 columns (the last one narrower), each
    ``[K/2, columns, 2]``, one after another, returned as ``[N, K/2, 2]``."""
    n, k = b.shape
    panels = [b[j0:j0 + 32].reshape(-1, k // 2, 2).transpose(0, 1).reshape(-1) for j0 in range(0, n, 32)]
    flat = torch.cat(panels) if panels else b.reshape(-1)
    return flat.reshape(n, k // 2, 2)


# --- MXFP4 GEMMs ----------------------------------------------------------------------------------------

def dequantize_mxfp4_float64(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """MXFP4 codes and E8M0 scales as exact float64 values (no float32 overflow); scale 0xFF gives NaN."""
    codes = unpack_codes(q)
    s = scales.view(torch.uint8).to(torch.float64)
    scale = torch.where(s == E8M0_NAN, float("nan"), torch.exp2(s - 127.0))
    vals = e2m1_values(codes).to(torch.float64).reshape(*codes.shape[:-1], -1, BLOCK) * scale.unsqueeze(-1)
    return vals.reshape(codes.shape)


def mxfp4_gemm_w4a16(x: torch.Tensor, w_q: torch.Tensor, w_scales: torch.Tensor, bias=None) -> torch.Tensor:
    """``x @ dequantize(w_q, w_scales).T + bias`` in float64 (the reference of ``mxkernels.mxfp4_gemm_w4a16``,
    before its float32 sums and the rounding into x's dtype)."""
    out = x.to(torch.float64) @ dequantize_mxfp4_float64(w_q, w_scales).T
    return out if bias is None else out + bias.to(torch.float64)


def mxfp4_gemm(a_q: torch.Tensor, a_scales: torch.Tensor, w_q: torch.Tensor, w_scales: torch.Tensor, bias=None,
               out_dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The reference of ``mxkernels.mxfp4_gemm``, to the bit: each block's exact product sum times both scales
    (float64, exact), rounded to float32, added to a float32 total in block order; then the bias, then out_dtype."""
    k = a_q.shape[-1] * 2
    a = dequantize_mxfp4_float64(a_q, a_scales).reshape(-1, k // BLOCK, BLOCK)
    w = dequantize_mxfp4_float64(w_q, w_scales).reshape(-1, k // BLOCK, BLOCK)
    blocks = torch.einsum("mbk,nbk->mnb", a, w).to(torch.float32)  # exact in float64, then one rounding
    total = torch.zeros(blocks.shape[:2], dtype=torch.float32)
    for b in range(blocks.shape[2]):
        total = total + blocks[:, :, b]
    if bias is not None:
        total = total + bias.to(torch.float32)
    return total.to(out_dtype).reshape(*a_q.shape[:-1], -1)


def prepack_mxfp4_weight(w_q: torch.Tensor, w_scales: torch.Tensor) -> torch.Tensor:
    """The reference of ``mxkernels.prepack_mxfp4_weight``: per group of 4 columns (the last one narrower), the
    codes as ``[K/64, columns, 32]`` (block pairs), then ``[columns, 16]`` for an odd last block; then all scales."""
    q = w_q.view(torch.uint8)
    n, half_k = q.shape
    blocks = half_k // 16
    pairs = blocks // 2
    parts = []
    for j0 in range(0, n, 4):
        g = q[j0:j0 + 4]
        parts.append(g[:, :pairs * 32].reshape(g.shape[0], pairs, 32).transpose(0, 1).reshape(-1))
        if blocks % 2:
            parts.append(g[:, pairs * 32:].reshape(-1))
    parts.append(w_scales.view(torch.uint8).reshape(-1))
    return torch.cat(parts).reshape(n, blocks, 17)


def prepack_mxfp4_weight_cuda(w_q: torch.Tensor, w_scales: torch.Tensor) -> torch.Tensor:
    """The reference of ``mxkernels.prepack_mxfp4_weight_cuda``: per tile of 16 columns, the codes pair of blocks by
    pair (w = 2 blocks, 1 for an odd last one) as 16 rows of 16 w bytes, then the scales likewise as 16 rows of w
    bytes, then zeros up to a whole number of 128-byte lines."""
    q = w_q.view(torch.uint8)
    s = w_scales.view(torch.uint8)
    n, half_k = q.shape
    blocks, tiles = half_k // 16, n // 16
    q = q.reshape(tiles, 16, blocks, 16)
    s = s.reshape(tiles, 16, blocks)
    codes, scales = [], []
    for b0 in range(0, blocks, 2):
        w = min(2, blocks - b0)
        codes.append(q[:, :, b0:b0 + w].reshape(tiles, 16 * w * 16))
        scales.append(s[:, :, b0:b0 + w].reshape(tiles, 16 * w))
    lines = -(-blocks * 272 // 128)
    padding = torch.zeros(tiles, lines * 128 - blocks * 272, dtype=torch.uint8, device=q.device)
    return torch.cat(codes + scales + [padding], 1).reshape(tiles, lines, 128)


# --- Fused MoE ------------------------------------------------------------------------------------------

def dequantize_fp8_blocks_float64(w: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """float8_e4m3fn ``[N, K]`` times its float32 128x128 block scales ``[ceil(N/128), ceil(K/128)]``, in float64."""
    n, k = w.shape
    return w.to(torch.float64) * _expand_weight_scale(scales, n, k)


def quantize_fp8_blocks(w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[..., N, K]`` to float8_e4m3fn with one float32 scale per 128x128 block (``amax / 448``, 1 for an all-zero
    block), the layout of block-scaled FP8 checkpoints: returns ``(q [..., N, K], scales [..., ceil(N/128),
    ceil(K/128)])``. Values are divided by their block's scale and cast with saturation."""
    *lead, n, k = w.shape
    nb, kb = -(-n // 128), -(-k // 128)
    padded = torch.zeros(*lead, nb * 128, kb * 128, dtype=torch.float32)
    padded[..., :n, :k] = w.to(torch.float32)
    blocks = padded.reshape(*lead, nb, 128, kb, 128)
    amax = blocks.abs().amax(dim=(-3, -1))
    scales = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    q = fp8_cast(blocks / scales[..., :, None, :, None]).reshape(*lead, nb * 128, kb * 128)[..., :n, :k]
    return q.contiguous(), scales


def topk_softmax(router_logits: torch.Tensor, k: int, renormalize: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """The reference of ``mxkernels.topk_softmax`` in float64: ids of the k largest logits (descending; ties to the
    lower index, NaN first) as int32, weights = softmax over all experts at those ids, or over the selected ones with
    renormalize. Returns ``(weights float64 [T, k], ids int32 [T, k])``."""
    logits = router_logits.to(torch.float64)
    nan = torch.isnan(logits)
    # Two stable sorts: by value (descending, equal values in index order), then NaN in front.
    order = torch.sort(logits.masked_fill(nan, float("-inf")), dim=-1, descending=True, stable=True).indices
    order = order.gather(-1, torch.sort(nan.gather(-1, order).to(torch.int8), dim=-1, descending=True,
                                        stable=True).indices)
    ids = order[:, :k]
    probs = torch.softmax(logits, dim=-1)
    weights = probs.gather(-1, ids)
    if renormalize:
        weights = torch.softmax(logits.gather(-1, ids), dim=-1)
    return weights, ids.to(torch.int32)


def moe_expert_weight_float64(w: torch.Tensor, scales: torch.Tensor, expert: int) -> torch.Tensor:
    """Expert ``expert`` of a stacked MXFP4 (codes + E8M0) or FP8 (float8_e4m3fn + 128x128 float32 blocks) weight, as
    float64 ``[N, K]``."""
    if w.dtype == torch.float8_e4m3fn:
        return dequantize_fp8_blocks_float64(w[expert], scales[expert])
    return dequantize_mxfp4_float64(w[expert], scales[expert])


def moe_activation(gate_up: torch.Tensor, activation: str, alpha: float, limit: float) -> torch.Tensor:
    """``[..., 2I] -> [..., I]``: ``silu`` (gate = first I, up = last I) or ``swiglu_oai`` (gpt-oss: gate = even
    columns, up = odd ones, clamped at ``limit``)."""
    if activation == "silu":
        gate, up = gate_up.chunk(2, dim=-1)
        return gate * torch.sigmoid(gate) * up
    if activation == "swiglu_oai":
        gate, up = gate_up[..., 0::2].clamp(max=limit), gate_up[..., 1::2].clamp(-limit, limit)
        return gate * torch.sigmoid(alpha * gate) * (up + 1)
    raise ValueError(f"activation must be 'silu' or 'swiglu_oai', got {activation!r}")


def fused_moe(hidden: torch.Tensor, w13: torch.Tensor, w13_scales: torch.Tensor, w2: torch.Tensor,
              w2_scales: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor, w13_bias=None, w2_bias=None,
              activation: str = "silu", swiglu_alpha: float = 1.702, swiglu_limit: float = 7.0,
              expert_map=None) -> torch.Tensor:
    """float64 reference of ``mxkernels.fused_moe`` (plain weights): for every token t and slot j whose expert is on
    this process, ``topk_weights[t, j] * (W2 · act(W13 · hidden[t] + b13) + b2)`` with the exact dequantized weights,
    summed over j. Returns float64 ``[T, H]``."""
    tokens, h = hidden.shape
    x = hidden.to(torch.float64)
    ids = topk_ids.to(torch.int64)
    local = expert_map.to(torch.int64)[ids] if expert_map is not None else ids
    out = torch.zeros(tokens, h, dtype=torch.float64)
    for e in sorted(set(local.reshape(-1).tolist()) - {-1}):
        t_idx, j_idx = (local == e).nonzero(as_tuple=True)
        g = x[t_idx] @ moe_expert_weight_float64(w13, w13_scales, e).T
        if w13_bias is not None:
            g = g + w13_bias[e].to(torch.float64)
        y = moe_activation(g, activation, swiglu_alpha, swiglu_limit) @ moe_expert_weight_float64(w2, w2_scales, e).T
        if w2_bias is not None:
            y = y + w2_bias[e].to(torch.float64)
        out.index_add_(0, t_idx, topk_weights[t_idx, j_idx].to(torch.float64)[:, None] * y)
    return out
