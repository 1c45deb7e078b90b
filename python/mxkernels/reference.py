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
