"""Typed wrappers of torch.ops.mxkernels.*; the numerics are defined in docs/formats.md."""
from typing import Optional, Tuple

import torch

SCALE_MODES = ("floor", "ceil", "even", "rceil")


def quantize_mxfp4(
    x: torch.Tensor,
    scale_mode: str = "rceil",
    *,
    out: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Quantizes ``x`` to MXFP4: one E8M0 scale per 32 consecutive values of the last dim, E2M1 elements.

    Args:
        x: float32, bfloat16 or float16, at least one dim; the last dim a positive multiple of 32 with
            stride 1; any strides on the leading dims.
        scale_mode: how the block scale follows from the block's largest magnitude: ``"floor"`` (OCP MX v1.0),
            ``"ceil"``, ``"even"`` or ``"rceil"`` (as torchao's ``ScaleCalculationMode``).
        out: optional ``(q, scales)`` to write into: contiguous, q ``[..., K/2]`` float4_e2m1fn_x2 or uint8,
            scales ``[..., K/32]`` float8_e8m0fnu or uint8.

    Returns:
        ``(q, scales)``: q ``torch.float4_e2m1fn_x2`` of shape ``[..., K/2]`` (element 2i in the low nibble of
        byte i), scales ``torch.float8_e8m0fnu`` of shape ``[..., K/32]``; both contiguous.
        A block holding NaN or an infinity gets scale 0xFF (NaN) and all-zero codes.
    """
    if out is None:
        return torch.ops.mxkernels.quantize_mxfp4(x, scale_mode)
    q, scales = out
    torch.ops.mxkernels.quantize_mxfp4_out(x, q, scales, scale_mode)
    return q, scales


def dequantize_mxfp4(q: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The values of MXFP4 data: ``e2m1(code) * 2**(scale - 127)``, computed in float32 and rounded once to
    ``dtype`` (float32, bfloat16 or float16). A 0xFF scale gives NaN for its whole block.

    Args:
        q: ``[..., K/2]`` float4_e2m1fn_x2 or uint8 (checkpoints store uint8).
        scales: ``[..., K/32]`` float8_e8m0fnu or uint8, same leading dims.
    """
    return torch.ops.mxkernels.dequantize_mxfp4(q, scales, dtype)


def quantize_fp8(
    x: torch.Tensor,
    group_size: int = 128,
    eps: float = 1e-10,
    scale_ue8m0: bool = False,
    *,
    out: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-token-group FP8 (E4M3) quantization: one float32 scale per ``group_size`` consecutive values of the
    last dim (``group_size = x.shape[-1]`` gives one scale per token).

    ``scale = max(amax, eps) / 448`` (rounded up to a power of two when ``scale_ue8m0``) and
    ``q = e4m3(clamp(x / scale, -448, 448))`` rounded to nearest even, the same on every torch version.

    Args:
        x: float32, bfloat16 or float16; last dim a positive multiple of ``group_size`` with stride 1.
        out: optional contiguous ``(q [..., K] float8_e4m3fn or uint8, scales float32 [..., K/group_size])``.

    Returns:
        ``(q, scales)``, both contiguous.
    """
    if out is None:
        return torch.ops.mxkernels.quantize_fp8(x, group_size, eps, scale_ue8m0)
    q, scales = out
    torch.ops.mxkernels.quantize_fp8_out(x, q, scales, group_size, eps, scale_ue8m0)
    return q, scales


def quantize_fp8_per_tensor(
    x: torch.Tensor, scale: Optional[torch.Tensor] = None, eps: float = 1e-10
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor FP8 (E4M3) quantization of ``x`` (any shape and layout): with ``scale`` (one float32 value,
    positive) it is static, otherwise ``scale = max(amax(x), eps) / 448``. Returns ``(q, scale [1])``."""
    return torch.ops.mxkernels.quantize_fp8_per_tensor(x, scale, eps)


def fp8_gemm(
    a: torch.Tensor,
    b: torch.Tensor,
    a_scale: torch.Tensor,
    b_scale: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    out_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """W8A8 FP8 GEMM: ``(a * a_scale) @ (b * b_scale).T + bias``, accumulated in float32.

    Args:
        a: float8_e4m3fn ``[..., K]`` (leading dims are kept in the output).
        b: float8_e4m3fn ``[N, K]`` (the nn.Linear layout), last dim contiguous, or the same weights from
            :func:`prepack_fp8_weight` (``[N, K/2, 2]``).
        a_scale: float32, per tensor (``[]`` or ``[1]``), per token (``[..., 1]``) or per group of 128 along K
            (``[..., K/128]``).
        b_scale: float32, per tensor, per channel (``[N]``) or 128x128 blocks (``[ceil(N/128), K/128]``).
        bias: optional ``[N]`` (float32 / bfloat16 / float16).
        out_dtype: bfloat16 (default), float16 or float32.

    Returns:
        ``[..., N]`` of ``out_dtype``, contiguous.
    """
    return torch.ops.mxkernels.fp8_gemm(a, b, a_scale, b_scale, bias, out_dtype)


def prepack_fp8_weight(b: torch.Tensor) -> torch.Tensor:
    """Rearranges FP8 weights ``b [N, K]`` (float8_e4m3fn, K even) into the order the CPU GEMM kernels read them:
    ``[N, K/2, 2]``, the same bytes, in panels of 32 columns (see docs/formats.md). Pass the result as ``b`` to
    :func:`fp8_gemm` / :func:`fp8_gemm_w8a16` (same scales and bias): it saves the per-call repacking, measured 1.1-1.3x
    faster at batch sizes of 8 to 32 (bench/RESULTS.md), and the results are the same as with the plain weights (bit for
    bit for more than 4 rows; for 1 to 4 rows the float32 sums run in another order). Treat the result as opaque."""
    return torch.ops.mxkernels.prepack_fp8_weight(b)


def fp8_gemm_w8a16(
    x: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor, bias: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """W8A16 GEMM: ``x @ (b * b_scale).T + bias`` with float32 / bfloat16 / float16 activations ``x [..., K]`` kept
    in their precision (converted to float32 exactly), FP8 weights ``b [N, K]`` (or prepacked); output in x's dtype. ``b_scale`` as
    in :func:`fp8_gemm`."""
    return torch.ops.mxkernels.fp8_gemm_w8a16(x, b, b_scale, bias)


def mxfp4_gemm_w4a16(
    x: torch.Tensor, w_q: torch.Tensor, w_scales: Optional[torch.Tensor], bias: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """W4A16 GEMM: ``x @ dequantize_mxfp4(w_q, w_scales).T + bias`` with MXFP4 weights decoded in registers (never
    a dequantized copy in memory) and activations kept in their precision (converted to float32 exactly).

    Args:
        x: float32, bfloat16 or float16 ``[..., K]``, K a positive multiple of 32 (leading dims kept).
        w_q: ``[N, K/2]`` float4_e2m1fn_x2 or uint8 (two E2M1 codes per byte, element 2i in the low nibble, as
            :func:`quantize_mxfp4` writes them), last dim contiguous; or the ``[N, K/32, 17]`` uint8 blob of
            :func:`prepack_mxfp4_weight` (CPU), or the ``[N/16, L, 128]`` one of
            :func:`prepack_mxfp4_weight_cuda` (CUDA).
        w_scales: ``[N, K/32]`` float8_e8m0fnu or uint8, last dim contiguous; None with a prepacked w_q.
        bias: optional ``[N]`` (float32 / bfloat16 / float16).

    Returns:
        ``[..., N]`` in x's dtype, contiguous. Products are summed in float32 per block of 32, each block sum
        multiplied by its scale and added to a float32 total (docs/formats.md).

    On CUDA (a build with ``MXKERNELS_CUDA=ON``) the tensor cores sum each block: bfloat16 / float16 x as it is,
    float32 x split into three bfloat16 parts; w_q is the plain ``[N, K/2]`` codes or, faster, the blob of
    :func:`prepack_mxfp4_weight_cuda` (the CPU's prepacked blob is refused there, and the CUDA blob on the CPU), and
    every tensor is on the same device.
    """
    return torch.ops.mxkernels.mxfp4_gemm_w4a16(x, w_q, w_scales, bias)


def mxfp4_gemm(
    a_q: torch.Tensor, a_scales: torch.Tensor, w_q: torch.Tensor, w_scales: Optional[torch.Tensor],
    bias: Optional[torch.Tensor] = None, out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """W4A4 GEMM: both operands MXFP4, e.g. ``a_q, a_scales = quantize_mxfp4(x)``.

    Each block of 32 products is an exact integer sum (twice an E2M1 value is an integer), computed with integer
    dot products (AVX-512 VNNI); the block's value ``sum * 2^(sa - 127) * 2^(sw - 127)`` is rounded once to float32
    and added to a float32 total in block order, so every CPU level gives the same bits (docs/formats.md).

    Args:
        a_q: ``[..., K/2]`` float4_e2m1fn_x2 or uint8 codes; a_scales: ``[..., K/32]`` float8_e8m0fnu or uint8.
        w_q, w_scales: as for :func:`mxfp4_gemm_w4a16` (plain, or prepacked with w_scales None).
        bias: optional ``[N]``; out_dtype: float32, bfloat16 (default) or float16.

    Returns:
        ``[..., N]`` in out_dtype, contiguous.
    """
    return torch.ops.mxkernels.mxfp4_gemm(a_q, a_scales, w_q, w_scales, bias, out_dtype)


def prepack_mxfp4_weight(w_q: torch.Tensor, w_scales: torch.Tensor) -> torch.Tensor:
    """MXFP4 weights in the layout the CPU GEMM kernels read fastest: one contiguous uint8 blob ``[N, K/32, 17]``
    holding the codes regrouped (4 columns side by side per pair of blocks, so a decode step reads one stream) and
    then the scales ``[N, K/32]`` (docs/formats.md). Pass it as ``w_q`` with ``w_scales=None`` to either GEMM.

    Args:
        w_q: ``[N, K/2]`` float4_e2m1fn_x2 or uint8; w_scales: ``[N, K/32]`` float8_e8m0fnu or uint8.
    """
    return torch.ops.mxkernels.prepack_mxfp4_weight(w_q, w_scales)


def prepack_mxfp4_weight_cuda(w_q: torch.Tensor, w_scales: torch.Tensor) -> torch.Tensor:
    """MXFP4 weights in the layout the CUDA W4A16 decode kernels read fastest: one contiguous uint8 blob
    ``[N/16, L, 128]`` (N a multiple of 16, L = ceil(17 K / 256)). Per tile of 16 columns the codes go pair of blocks
    by pair of blocks (16 rows of 32 bytes), then the scales likewise, so that a warp's 16 columns and 128 K values
    are 1 KB of codes in a row; zeros then pad each tile's 272 K/32 bytes to L whole 128-byte lines, so that every
    tile starts a line (docs/formats.md). The bytes are those of the codes and scales plus under 128 a tile (0.4% at
    K=2880, none where K is a multiple of 256). Pass it as ``w_q`` with
    ``w_scales=None`` to :func:`mxfp4_gemm_w4a16` on CUDA; the results are bitwise those of the plain weights.
    Runs on CPU tensors too (pack once, then move the blob to the GPU).

    On an H100 (bench/RESULTS.md) it makes M = 1 and 2 12-13% faster than plain weights and M = 8 and 16 5-7%;
    M = 128 and 1024 run 1-4% slower on it. It is a second copy of the weights if the plain ones are kept (as
    ``MXFP4Linear``'s opt-in ``cuda_w4a16_packed`` backend keeps them).

    Args:
        w_q: ``[N, K/2]`` float4_e2m1fn_x2 or uint8; w_scales: ``[N, K/32]`` float8_e8m0fnu or uint8.
    """
    return torch.ops.mxkernels.prepack_mxfp4_weight_cuda(w_q, w_scales)


def fused_moe(
    hidden: torch.Tensor,
    w13: torch.Tensor,
    w13_scales: Optional[torch.Tensor],
    w2: torch.Tensor,
    w2_scales: Optional[torch.Tensor],
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    *,
    w13_bias: Optional[torch.Tensor] = None,
    w2_bias: Optional[torch.Tensor] = None,
    activation: str = "silu",
    swiglu_alpha: float = 1.702,
    swiglu_limit: float = 7.0,
    expert_map: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Fused MoE experts: ``out[t] = sum_j topk_weights[t, j] * expert_{topk_ids[t, j]}(hidden[t])`` with
    ``expert(x) = W2 · act(W13 · x + w13_bias) + w2_bias``, the weights decoded in registers.

    Args:
        hidden: float32, bfloat16 or float16 ``[T, H]``, H a multiple of 32.
        w13, w13_scales, w2, w2_scales: the experts' weights; their dtype picks the format.
            MXFP4: w13 ``[E, 2I, H/2]`` (float4_e2m1fn_x2 or uint8) with w13_scales ``[E, 2I, H/32]`` (float8_e8m0fnu
            or uint8), w2 ``[E, H, I/2]`` with w2_scales ``[E, H, I/32]``; or each weight stacked from
            :func:`prepack_mxfp4_weight` (uint8 ``[E, N, K/32, 17]``) with its scales None.
            FP8: w13 ``[E, 2I, H]``, w2 ``[E, H, I]`` float8_e4m3fn with float32 128x128 block scales
            ``[E, ceil(2I/128), ceil(H/128)]`` and ``[E, ceil(H/128), ceil(I/128)]``; the weights may be stacked from
            :func:`prepack_fp8_weight` (``[E, N, K/2, 2]``). I is a multiple of 32.
        topk_weights: float32 ``[T, k]``; topk_ids: int32 or int64 ``[T, k]``, global expert ids.
        w13_bias, w2_bias: optional ``[E, 2I]`` and ``[E, H]``.
        activation: ``"silu"`` (gate = rows [0, I) of W13, up = rows [I, 2I): ``silu(gate) * up``) or
            ``"swiglu_oai"`` (gpt-oss: gate = even rows, up = odd rows; ``g = min(gate, limit)``,
            ``u = clamp(up, -limit, limit)``, ``g * sigmoid(alpha * g) * (u + 1)``).
        swiglu_alpha, swiglu_limit: the constants of ``swiglu_oai``.
        expert_map: optional int32 ``[E_global]``: global expert id to local one, -1 where the expert is on another
            process (those slots add nothing). Without it the ids are local, in ``[0, E)``.

    Returns:
        ``[T, H]`` in hidden's dtype. Sums are float32 (per 32-value block for MXFP4, per block of up to 128 for FP8);
        with bfloat16 hidden the activations between the GEMMs are rounded to bfloat16, as the model computes them.
        An expert id outside ``[0, E_global)`` or an expert_map entry outside ``[-1, E)`` is an error.
    """
    return torch.ops.mxkernels.fused_moe(
        hidden, w13, w13_scales, w2, w2_scales, topk_weights, topk_ids, w13_bias=w13_bias, w2_bias=w2_bias,
        activation=activation, swiglu_alpha=swiglu_alpha, swiglu_limit=swiglu_limit, expert_map=expert_map)


def topk_softmax(router_logits: torch.Tensor, k: int, renormalize: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """MoE routing: the k largest of ``router_logits [T, E]`` (float32 / bfloat16 / float16) per token.

    Returns ``(weights float32 [T, k], ids int32 [T, k])``: ids in descending logit order (ties to the lower index,
    NaN first), weights the softmax over all E logits at those ids, or with ``renormalize`` the softmax over the k
    selected logits (gpt-oss routing). Computed in float32.
    """
    return torch.ops.mxkernels.topk_softmax(router_logits, k, renormalize)
