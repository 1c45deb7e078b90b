"""The MXFP4 GEMMs. W4A16 against a float64 reference on the dequantized weights, within the error bound of float32
accumulation per block: |out - ref| <= 2 (K + 4) 2^-24 sum_k |x w| + one rounding into x's dtype. W4A4 bitwise
against the exact block sums (reference.mxfp4_gemm). Plain and prepacked weights give the same bits."""
import pytest
import torch

import mxkernels
from mxkernels import reference

from opchecks import assert_same_error_on_cpu_and_meta, opcheck

ops = torch.ops.mxkernels
OUT_REL = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


def weights(n, k, seed, typed=True):
    """Random codes (every code, both signs) and scales around 2^0, as quantize_mxfp4 writes them."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 256, (n, k // 2), generator=g, dtype=torch.uint8)
    s = torch.randint(120, 131, (n, k // 32), generator=g, dtype=torch.uint8)
    if typed:
        return q.view(torch.float4_e2m1fn_x2), s.view(torch.float8_e8m0fnu)
    return q, s


def check_close(out, x, w_q, w_s, bias):
    want = reference.mxfp4_gemm_w4a16(x, w_q, w_s, bias)
    w_abs = reference.dequantize_mxfp4_float64(w_q, w_s).abs()
    mag = x.to(torch.float64).abs() @ w_abs.T + (0 if bias is None else bias.to(torch.float64).abs())
    k = x.shape[-1]
    tol = 2 * (k + 4) * 2.0 ** -24 * mag + OUT_REL[out.dtype] * want.abs() + (2.0 ** -25 if out.dtype == torch.float16 else 0)
    err = (out.to(torch.float64) - want).abs()
    assert out.shape == want.shape and out.dtype == x.dtype
    assert (err <= tol).all(), f"max error {err.max().item()} where the tolerance is {tol[err > tol].min().item()}"


@pytest.mark.parametrize("k", [32, 64, 2880, 4096])
@pytest.mark.parametrize("n", [1, 31, 32, 5760])
@pytest.mark.parametrize("m", [1, 3, 64, 257])
def test_w4a16_against_float64(k, n, m):
    if m * n * k > 2 ** 28:
        pytest.skip("float64 reference too slow for a unit test at this size; smaller M covers the shape")
    dtype = (torch.bfloat16, torch.float32, torch.float16)[(k + n + m) % 3]
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(k + n + m)).to(dtype)
    w_q, w_s = weights(n, k, k * n + m)
    bias = torch.randn(n) if (n + m) % 2 else None
    out = mxkernels.mxfp4_gemm_w4a16(x, w_q, w_s, bias)
    assert out.is_contiguous()
    check_close(out, x, w_q, w_s, bias)
    assert torch.equal(mxkernels.mxfp4_gemm_w4a16(x, mxkernels.prepack_mxfp4_weight(w_q, w_s), None, bias), out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 3, 5, 64])
def test_w4a16_every_cpu_level(isa, dtype, m):
    x = torch.randn(m, 288).to(dtype)
    w_q, w_s = weights(70, 288, m)  # N: two full panels and a narrow one
    bias = torch.randn(70).to(torch.bfloat16)
    out = mxkernels.mxfp4_gemm_w4a16(x, w_q, w_s, bias)
    check_close(out, x, w_q, w_s, bias)
    assert torch.equal(mxkernels.mxfp4_gemm_w4a16(x, mxkernels.prepack_mxfp4_weight(w_q, w_s), None, bias), out)


def test_w4a16_3d_uint8_and_quantized_weights():
    w = torch.randn(96, 256, dtype=torch.bfloat16)
    w_q, w_s = mxkernels.quantize_mxfp4(w)
    x = torch.randn(2, 5, 256, dtype=torch.bfloat16)
    out = mxkernels.mxfp4_gemm_w4a16(x, w_q, w_s)
    assert out.shape == (2, 5, 96)
    check_close(out, x, w_q, w_s, None)
    assert torch.equal(out, mxkernels.mxfp4_gemm_w4a16(x, w_q.view(torch.uint8), w_s.view(torch.uint8)))
    # Against the dequantized weights in bf16 arithmetic: the same layer.
    dense = torch.nn.functional.linear(x.float(), mxkernels.dequantize_mxfp4(w_q, w_s))
    torch.testing.assert_close(out.float(), dense, rtol=2e-2, atol=2e-2)


def test_extreme_and_nan_scales():
    w_q, w_s = weights(4, 64, 9, typed=False)
    w_s[0, 0], w_s[1, 1], w_s[2, 0] = 0, 254, 255  # 2^-127, 2^127, NaN
    x = torch.full((3, 64), 2.0 ** -10)
    out = mxkernels.mxfp4_gemm_w4a16(x, w_q, w_s)
    assert out[:, 2].isnan().all() and not out[:, [0, 1, 3]].isnan().any()
    keep = [0, 1, 3]
    check_close(out[:, keep], x, w_q[keep], w_s[keep], None)


def test_non_contiguous_inputs_and_threads():
    x = torch.randn(64, 40, dtype=torch.bfloat16).t()  # [40, 64], strides (1, 40)
    w_q, w_s = weights(50, 64, 3, typed=False)
    wide_q = torch.zeros(50, 64, dtype=torch.uint8)
    wide_q[:, :32] = w_q
    out = mxkernels.mxfp4_gemm_w4a16(x, wide_q[:, :32], w_s)
    assert torch.equal(out, mxkernels.mxfp4_gemm_w4a16(x.contiguous(), w_q, w_s))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(mxkernels.mxfp4_gemm_w4a16(x, w_q, w_s), out)
    finally:
        torch.set_num_threads(before)


def test_empty_rows():
    w_q, w_s = weights(8, 64, 1)
    assert mxkernels.mxfp4_gemm_w4a16(torch.empty(0, 64), w_q, w_s).shape == (0, 8)


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("m", [3, 20])
def test_opcheck(contiguous, m):
    x = torch.randn(m, 128) if contiguous else torch.randn(128, m).t()
    for typed in (True, False):
        w_q, w_s = weights(40, 128, m, typed)
        opcheck(ops.mxfp4_gemm_w4a16.default, (x, w_q, w_s, torch.randn(40)))
        opcheck(ops.mxfp4_gemm_w4a16.default, (x.to(torch.bfloat16), w_q, w_s, None))


def test_torch_compile_dynamic_no_recompile():
    torch._dynamo.reset()
    from torch._dynamo.utils import counters
    w_q, w_s = weights(64, 128, 5)

    def layer(x):
        return torch.relu(mxkernels.mxfp4_gemm_w4a16(x, w_q, w_s))

    compiled = torch.compile(layer, dynamic=True, fullgraph=True)
    counters.clear()
    for m in (3, 64, 257):  # not M = 1: dynamo specializes a size of 1 on first sight, for any op
        x = torch.randn(m, 128, dtype=torch.bfloat16)
        assert torch.equal(compiled(x), layer(x))
    assert counters["stats"]["unique_graphs"] == 1


def _e(shape, dtype=torch.float32, d="cpu"):
    return torch.empty(shape, dtype=dtype, device=d)


U8, F4, E8 = torch.uint8, torch.float4_e2m1fn_x2, torch.float8_e8m0fnu
ERRORS = [
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 100), d=d), _e((8, 50), U8, d), _e((8, 3), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: x.size(-1) (K) must be a positive multiple of 32, got 100"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), torch.float64, d), _e((8, 32), U8, d), _e((8, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: x must be Float, BFloat16 or Half, got Double"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 32), torch.int8, d), _e((8, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: w_q must be float4_e2m1fn_x2 or uint8 (two E2M1 codes per byte), got Char"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 32), F4, d), _e((8, 2), d=d), None),
     "mxkernels.mxfp4_gemm_w4a16: w_scales must be float8_e8m0fnu or uint8 (E8M0 scales), got Float"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 16), U8, d), _e((8, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: w_q must be [N, K/2] = [8, 32] for K = 64, got shape [8, 16]"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 32), U8, d), _e((8, 4), E8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: w_scales must have shape [8, 2], got [8, 4]"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 32), U8, d), _e((7, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: w_scales must have shape [8, 2], got [7, 2]"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((2, 8, 32), U8, d), _e((8, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: a 3-D w_q must be prepacked [N, K/32, 17] or [N/16, L, 128], got shape [2, 8, 32]"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((1, 8, 2, 32), U8, d), _e((8, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: w_q must be 2-D [N, K/2] (codes) or 3-D [N, K/32, 17] (from prepack_mxfp4_weight) "
     "or [N/16, L, 128] (from prepack_mxfp4_weight_cuda), got shape [1, 8, 2, 32]"),
    # Prepacked weights.
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 4, 17), U8, d), None, None),
     "mxkernels.mxfp4_gemm_w4a16: prepacked w_q of shape [8, 4, 17] holds K = 128, but the activations have K = 64"),
    (lambda d: ops.mxfp4_gemm(_e((4, 32), U8, d), _e((4, 2), U8, d), _e((8, 4, 17), U8, d), None),
     "mxkernels.mxfp4_gemm: prepacked w_q of shape [8, 4, 17] holds K = 128, but the activations have K = 64"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 2, 17), U8, d), _e((8, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: w_scales must be None with a prepacked w_q (its scales are inside), got a tensor of "
     "shape [8, 2]"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 2, 17), F4, d), None, None),
     "mxkernels.mxfp4_gemm_w4a16: a prepacked w_q must be uint8, got Float4_e2m1fn_x2"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((17, 2, 8), U8, d).permute(2, 1, 0), None, None),
     "mxkernels.mxfp4_gemm_w4a16: prepacked w_q must be contiguous, got strides [1, 8, 16]"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 32), U8, d), None, None),
     "mxkernels.mxfp4_gemm_w4a16: w_scales [N, K/32] is required with a plain w_q (None only with a prepacked one)"),
    (lambda d: ops.prepack_mxfp4_weight(_e((8, 24), U8, d), _e((8, 1), U8, d)),
     "mxkernels.prepack_mxfp4_weight: 2 * w_q.size(1) (K) must be a positive multiple of 32, got 48"),
    (lambda d: ops.prepack_mxfp4_weight(_e((8, 32), U8, d), _e((8, 3), U8, d)),
     "mxkernels.prepack_mxfp4_weight: w_scales must have shape [8, 2], got [8, 3]"),
    (lambda d: ops.prepack_mxfp4_weight(_e((8, 32), torch.int8, d), _e((8, 2), U8, d)),
     "mxkernels.prepack_mxfp4_weight: w_q must be float4_e2m1fn_x2 or uint8 (two E2M1 codes per byte), got Char"),
    (lambda d: ops.prepack_mxfp4_weight(_e((2, 8, 32), U8, d), _e((8, 2), U8, d)),
     "mxkernels.prepack_mxfp4_weight: w_q must be 2-D [N, K/2], got shape [2, 8, 32]"),
    # The CUDA kernels' layout (refused by the CPU kernels, not by the shapes: see test_cuda_layout_refused_on_cpu).
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((2, 2, 272), U8, d), None, None),  # its shape until 2026-11
     "mxkernels.mxfp4_gemm_w4a16: a 3-D w_q must be prepacked [N, K/32, 17] or [N/16, L, 128], got shape [2, 2, 272]"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((2, 9, 128), U8, d), None, None),
     "mxkernels.mxfp4_gemm_w4a16: prepacked w_q of shape [2, 9, 128] does not hold K = 64 (the activations'): "
     "prepack_mxfp4_weight_cuda gives [N/16, 5, 128] for it"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((2, 5, 128), U8, d), _e((32, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: w_scales must be None with a prepacked w_q (its scales are inside), got a tensor of "
     "shape [32, 2]"),
    (lambda d: ops.prepack_mxfp4_weight_cuda(_e((40, 32), U8, d), _e((40, 2), U8, d)),
     "mxkernels.prepack_mxfp4_weight_cuda: N = w_q.size(0) must be a multiple of 16 (the layout's tiles of 16 columns), "
     "got 40"),
    (lambda d: ops.prepack_mxfp4_weight_cuda(_e((16, 24), U8, d), _e((16, 1), U8, d)),
     "mxkernels.prepack_mxfp4_weight_cuda: 2 * w_q.size(1) (K) must be a positive multiple of 32, got 48"),
    (lambda d: ops.prepack_mxfp4_weight_cuda(_e((16, 32), U8, d), _e((16, 2), d=d)),
     "mxkernels.prepack_mxfp4_weight_cuda: w_scales must be float8_e8m0fnu or uint8 (E8M0 scales), got Float"),
    (lambda d: ops.prepack_mxfp4_weight_cuda(_e((16, 32), U8, d), _e((16, 3), U8, d)),
     "mxkernels.prepack_mxfp4_weight_cuda: w_scales must have shape [16, 2], got [16, 3]"),
    # W4A4.
    (lambda d: ops.mxfp4_gemm(_e((4, 50), U8, d), _e((4, 3), U8, d), _e((8, 50), U8, d), _e((8, 3), U8, d)),
     "mxkernels.mxfp4_gemm: 2 * a_q.size(-1) (K) must be a positive multiple of 32, got 100"),
    (lambda d: ops.mxfp4_gemm(_e((4, 32), d=d), _e((4, 2), U8, d), _e((8, 32), U8, d), _e((8, 2), U8, d)),
     "mxkernels.mxfp4_gemm: a_q must be float4_e2m1fn_x2 or uint8 (two E2M1 codes per byte), got Float"),
    (lambda d: ops.mxfp4_gemm(_e((4, 32), U8, d), _e((4, 2), torch.int8, d), _e((8, 32), U8, d), _e((8, 2), U8, d)),
     "mxkernels.mxfp4_gemm: a_scales must be float8_e8m0fnu or uint8 (E8M0 scales), got Char"),
    (lambda d: ops.mxfp4_gemm(_e((2, 4, 32), U8, d), _e((2, 4, 3), U8, d), _e((8, 32), U8, d), _e((8, 2), U8, d)),
     "mxkernels.mxfp4_gemm: a_scales must have shape [2, 4, 2], got [2, 4, 3]"),
    (lambda d: ops.mxfp4_gemm(_e((4, 32), U8, d), _e((4, 2), U8, d), _e((8, 16), U8, d), _e((8, 2), U8, d)),
     "mxkernels.mxfp4_gemm: w_q must be [N, K/2] = [8, 32] for K = 64, got shape [8, 16]"),
    (lambda d: ops.mxfp4_gemm(_e((4, 32), U8, d), _e((4, 2), U8, d), _e((8, 32), U8, d), _e((8, 1), U8, d)),
     "mxkernels.mxfp4_gemm: w_scales must have shape [8, 2], got [8, 1]"),
    (lambda d: ops.mxfp4_gemm(_e((4, 32), U8, d), _e((4, 2), U8, d), _e((8, 32), U8, d), _e((8, 2), U8, d), _e(9, d=d)),
     "mxkernels.mxfp4_gemm: bias must have shape [8], got [9]"),
    (lambda d: ops.mxfp4_gemm(_e((4, 32), U8, d), _e((4, 2), U8, d), _e((8, 32), U8, d), _e((8, 2), U8, d), None,
                              torch.int32),
     "mxkernels.mxfp4_gemm: out_dtype must be Float, BFloat16 or Half, got Int"),
    (lambda d: ops.mxfp4_gemm(_e((), U8, d), _e((), U8, d), _e((8, 32), U8, d), _e((8, 2), U8, d)),
     "mxkernels.mxfp4_gemm: a_q must have at least one dimension [..., K/2], got a 0-d tensor"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 32), U8, d), _e((8, 2), U8, d), _e(7, d=d)),
     "mxkernels.mxfp4_gemm_w4a16: bias must have shape [8], got [7]"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((8, 32), U8, d), _e((8, 2), U8, d), _e(8, torch.int32, d)),
     "mxkernels.mxfp4_gemm_w4a16: bias must be Float, BFloat16 or Half, got Int"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((4, 64), d=d), _e((32, 8), U8, d).t(), _e((8, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: w_q.stride(-1) must be 1, got 8"),
    (lambda d: ops.mxfp4_gemm_w4a16(_e((), d=d), _e((8, 32), U8, d), _e((8, 2), U8, d), None),
     "mxkernels.mxfp4_gemm_w4a16: x must have at least one dimension, got a 0-d tensor"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_identical_on_cpu_and_meta(case):
    assert_same_error_on_cpu_and_meta(*ERRORS[case])


# --- W4A4 -----------------------------------------------------------------------------------------------------


def activations(shape, k, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 256, (*shape, k // 2), generator=g, dtype=torch.uint8)
    s = torch.randint(118, 134, (*shape, k // 32), generator=g, dtype=torch.uint8)
    return q, s


@pytest.mark.parametrize("k", [32, 64, 2880, 4096])
@pytest.mark.parametrize("n", [1, 31, 32, 5760])
@pytest.mark.parametrize("m", [1, 3, 64, 257])
def test_w4a4_bitwise_exact_block_sums(k, n, m):
    if m * n * k > 2 ** 27:
        pytest.skip("float64 reference too slow for a unit test at this size; smaller M covers the shape")
    out_dtype = (torch.bfloat16, torch.float32, torch.float16)[(k + n + m) % 3]
    a_q, a_s = activations((m,), k, k + n + m)
    w_q, w_s = weights(n, k, k * n + m)
    bias = torch.randn(n) if (n + m) % 2 else None
    want = reference.mxfp4_gemm(a_q, a_s, w_q, w_s, bias, out_dtype)
    out = mxkernels.mxfp4_gemm(a_q.view(torch.float4_e2m1fn_x2), a_s.view(torch.float8_e8m0fnu), w_q, w_s, bias, out_dtype)
    assert out.dtype == out_dtype and out.shape == (m, n) and out.is_contiguous()
    assert torch.equal(out, want)
    assert torch.equal(mxkernels.mxfp4_gemm(a_q, a_s, mxkernels.prepack_mxfp4_weight(w_q, w_s), None, bias, out_dtype), out)


@pytest.mark.parametrize("m", [1, 3, 5, 64])
def test_w4a4_every_cpu_level(isa, m):
    a_q, a_s = activations((m,), 288, m)
    w_q, w_s = weights(70, 288, m)
    bias = torch.randn(70)
    want = reference.mxfp4_gemm(a_q, a_s, w_q, w_s, bias, torch.float32)
    assert torch.equal(mxkernels.mxfp4_gemm(a_q, a_s, w_q, w_s, bias, torch.float32), want)
    assert torch.equal(mxkernels.mxfp4_gemm(a_q, a_s, mxkernels.prepack_mxfp4_weight(w_q, w_s), None, bias, torch.float32),
                       want)


def test_w4a4_3d_edges_and_quantized_inputs():
    a_q, a_s = activations((2, 5), 128, 1)
    w_q, w_s = weights(40, 128, 2, typed=False)
    a_s[0, 0, 0], a_s[1, 1, 2], w_s[3, 0], w_s[4, 1], w_s[5, 3] = 0, 255, 254, 0, 255  # 2^-127, NaN, 2^127
    out = mxkernels.mxfp4_gemm(a_q, a_s, w_q, w_s, None, torch.float32)
    assert out.shape == (2, 5, 40)
    assert torch.equal(out.isnan(), reference.mxfp4_gemm(a_q, a_s, w_q, w_s, None, torch.float32).isnan())
    assert out[1, 1].isnan().all() and out[:, :, 5].isnan().all()
    want = reference.mxfp4_gemm(a_q, a_s, w_q, w_s, None, torch.float32)
    assert torch.equal(out.nan_to_num(), want.nan_to_num())
    # From quantize_mxfp4 on both sides: close to the dense product of the dequantized operands.
    x, w = torch.randn(7, 256), torch.randn(24, 256)
    xq, wq = mxkernels.quantize_mxfp4(x), mxkernels.quantize_mxfp4(w)
    dense = mxkernels.dequantize_mxfp4(*xq) @ mxkernels.dequantize_mxfp4(*wq).T
    torch.testing.assert_close(mxkernels.mxfp4_gemm(*xq, *wq, None, torch.float32), dense, rtol=1e-5, atol=1e-4)


def test_w4a4_non_contiguous_empty_and_threads():
    a_q, a_s = activations((40,), 128, 3)
    w_q, w_s = weights(50, 128, 4, typed=False)
    a_t = a_q.t().contiguous().t()  # same values, strides (1, 40)
    out = mxkernels.mxfp4_gemm(a_t, a_s, w_q, w_s)
    assert torch.equal(out, mxkernels.mxfp4_gemm(a_q, a_s, w_q, w_s))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(mxkernels.mxfp4_gemm(a_q, a_s, w_q, w_s), out)
    finally:
        torch.set_num_threads(before)
    assert mxkernels.mxfp4_gemm(a_q[:0], a_s[:0], w_q, w_s).shape == (0, 50)


@pytest.mark.parametrize("n", [1, 31, 32, 200])
@pytest.mark.parametrize("k", [32, 64, 96, 2880])
def test_prepack_layout(n, k):
    w_q, w_s = weights(n, k, n + k)
    packed = mxkernels.prepack_mxfp4_weight(w_q, w_s)
    assert packed.dtype == torch.uint8 and packed.shape == (n, k // 32, 17) and packed.is_contiguous()
    assert torch.equal(packed, reference.prepack_mxfp4_weight(w_q, w_s))
    strided_q = torch.zeros(n, k, dtype=torch.uint8)[:, ::2]
    strided_q.copy_(w_q.view(torch.uint8))
    assert torch.equal(mxkernels.prepack_mxfp4_weight(strided_q, w_s.view(torch.uint8)), packed)


@pytest.mark.parametrize("contiguous", [True, False])
def test_opcheck_w4a4_prepack(contiguous):
    a_q, a_s = activations((20,), 128, 7)
    if not contiguous:
        a_q = a_q.t().contiguous().t()
    w_q, w_s = weights(40, 128, 8)
    packed = mxkernels.prepack_mxfp4_weight(w_q, w_s)
    opcheck(ops.mxfp4_gemm.default, (a_q, a_s, w_q, w_s, torch.randn(40), torch.float32))
    opcheck(ops.mxfp4_gemm.default, (a_q.view(F4), a_s.view(E8), packed, None, None, torch.bfloat16))
    opcheck(ops.prepack_mxfp4_weight.default, (w_q, w_s))
    opcheck(ops.prepack_mxfp4_weight_cuda.default, weights(48, 96, 8))  # tiles of 816 bytes padded to 896
    opcheck(ops.prepack_mxfp4_weight.default, (w_q.view(U8).t().contiguous().t(), w_s))
    x = torch.randn(20, 128) if contiguous else torch.randn(128, 20).t()
    opcheck(ops.mxfp4_gemm_w4a16.default, (x, packed, None, torch.randn(40)))


def test_torch_compile_w4a4_and_prepacked_no_recompile():
    torch._dynamo.reset()
    from torch._dynamo.utils import counters
    w_q, w_s = weights(64, 128, 5)
    packed = mxkernels.prepack_mxfp4_weight(w_q, w_s)

    def layer(x):
        xq, xs = mxkernels.quantize_mxfp4(x)
        return mxkernels.mxfp4_gemm(xq, xs, w_q, w_s) + mxkernels.mxfp4_gemm_w4a16(x, packed, None)

    compiled = torch.compile(layer, dynamic=True, fullgraph=True)
    counters.clear()
    for m in (3, 64, 257):
        x = torch.randn(m, 128, dtype=torch.bfloat16)
        assert torch.equal(compiled(x), layer(x))
    assert counters["stats"]["unique_graphs"] == 1


# --- The CUDA kernels' layout (prepack_mxfp4_weight_cuda), on the CPU ------------------------------------------


@pytest.mark.parametrize("n", [16, 48, 5760])
@pytest.mark.parametrize("k", [32, 64, 96, 128, 160, 2880])  # spans: a partial one alone, whole ones, both
def test_prepack_cuda_layout(n, k):
    w_q, w_s = weights(n, k, 3 * n + k)
    packed = mxkernels.prepack_mxfp4_weight_cuda(w_q, w_s)
    lines = -(-17 * k // 256)  # each tile's 272 K/32 bytes in whole lines of 128
    assert packed.dtype == torch.uint8 and packed.shape == (n // 16, lines, 128) and packed.is_contiguous()
    assert torch.equal(packed, reference.prepack_mxfp4_weight_cuda(w_q, w_s))
    # The codes and the scales, then zeros to the end of the tile's last line.
    tiles = packed.reshape(n // 16, -1)
    assert not tiles[:, k // 32 * 272:].any() and tiles.shape[1] - k // 32 * 272 < 128
    strided_q = torch.zeros(n, k, dtype=torch.uint8)[:, ::2]
    strided_q.copy_(w_q.view(torch.uint8))
    strided_s = torch.zeros(n, k // 16, dtype=torch.uint8)[:, ::2]
    strided_s.copy_(w_s.view(torch.uint8))
    assert torch.equal(mxkernels.prepack_mxfp4_weight_cuda(strided_q, strided_s), packed)


@pytest.mark.parametrize("k", [224, 256])  # 7 blocks (an odd last one alone) and 8
def test_prepack_cuda_layout_addresses(k):
    # The layout as docs/formats.md writes it, byte by byte: in the tile of column c (272 K/32 bytes, in whole lines
    # of 128: 1920 bytes at K=224, 2176 at 256), block b's codes in pair b // 2 (512 bytes each), row c % 16 of w
    # blocks (2, or 1 for an odd last block); the scales after all the codes, 32 bytes a pair.
    n = 32
    w_q, w_s = weights(n, k, 9, typed=False)
    packed = mxkernels.prepack_mxfp4_weight_cuda(w_q, w_s).reshape(-1)
    nb = k // 32
    for c in (0, 5, 15, 16, 31):
        for b in range(nb):
            tile, w = c // 16 * {224: 1920, 256: 2176}[k], (2 if b // 2 * 2 + 1 < nb else 1)
            code = tile + b // 2 * 512 + (c % 16) * w * 16 + (b % 2) * 16
            assert torch.equal(packed[code:code + 16], w_q[c, 16 * b:16 * b + 16])
            assert packed[tile + nb * 256 + b // 2 * 32 + (c % 16) * w + b % 2] == w_s[c, b]


def test_cuda_layout_refused_on_cpu():
    w_q, w_s = weights(32, 64, 4)
    packed = mxkernels.prepack_mxfp4_weight_cuda(w_q, w_s)
    for call in (lambda: mxkernels.mxfp4_gemm_w4a16(torch.randn(2, 64), packed, None),
                 lambda: mxkernels.mxfp4_gemm(*mxkernels.quantize_mxfp4(torch.randn(2, 64)), packed, None)):
        with pytest.raises(RuntimeError, match="w_q is a prepack_mxfp4_weight_cuda blob .*, the CUDA kernels' layout"):
            call()
    # The shapes are valid: the Meta kernel gives N = 16 * packed.size(0).
    out = ops.mxfp4_gemm_w4a16(torch.empty(3, 5, 64, device="meta"), packed.to("meta"), None)
    assert out.shape == (3, 5, 32)


def test_cuda_layout_k_limit():
    # The layout's kernels index a tile's bytes in 32 bits: K/32 * 272, in whole lines of 128, at most 2^31 - 1 (K a
    # whole number of 8 blocks below that), checked for a hand-made blob too (meta tensors: the real kernels call the
    # same check).
    def blob(k):
        return torch.empty(1, -(-17 * k // 256), 128, dtype=U8, device="meta")
    k = (2**31 - 1) // 272 // 8 * 8 * 32 + 32
    with pytest.raises(RuntimeError, match=f"K = {k} is too large for the prepack_mxfp4_weight_cuda layout"):
        ops.mxfp4_gemm_w4a16(torch.empty(1, k, dtype=torch.bfloat16, device="meta"), blob(k), None)
    ops.mxfp4_gemm_w4a16(torch.empty(1, k - 32, dtype=torch.bfloat16, device="meta"), blob(k - 32), None)


@pytest.mark.parametrize("contiguous", [True, False])
def test_opcheck_prepack_cuda(contiguous):
    w_q, w_s = weights(48, 224, 10)
    if not contiguous:
        w_q = w_q.view(U8).t().contiguous().t()
        w_s = w_s.view(U8).t().contiguous().t()
    opcheck(ops.prepack_mxfp4_weight_cuda.default, (w_q, w_s))


def test_torch_compile_prepack_cuda_no_recompile():
    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    def f(w_q, w_s):
        return mxkernels.prepack_mxfp4_weight_cuda(w_q, w_s)

    compiled = torch.compile(f, dynamic=True, fullgraph=True)
    counters.clear()
    for n, k in ((32, 128), (48, 224), (80, 2880)):
        w_q, w_s = weights(n, k, n + k, typed=False)
        assert torch.equal(compiled(w_q, w_s), f(w_q, w_s))
    assert counters["stats"]["unique_graphs"] == 1
