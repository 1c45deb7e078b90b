"""FP8 GEMMs (W8A8 and W8A16) against a float64 reference on the dequantized operands, within the error bound of
float32 accumulation: |out - ref| <= 2 (K + 4) 2^-24 sum_k |a b sa sb| + one rounding into the output dtype."""
import pytest
import torch

import mxkernels
from mxkernels import reference

from opchecks import assert_same_error_on_cpu_and_meta, opcheck

ops = torch.ops.mxkernels
N, K = 200, 256  # N not a multiple of the panel width and past one 128-block; K two groups of 128

OUT_REL = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


def fp8(shape, seed, scale=4.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale).to(torch.float8_e4m3fn)


def scales(kind, lead, n_or_k, seed, weight=False):
    g = torch.Generator().manual_seed(seed)
    u = lambda *s: torch.rand(s, generator=g) * 1.5 + 0.25
    if kind == "tensor":
        return u(1) if seed % 2 else u(1).reshape(())
    if weight:
        return u(N) / 32 if kind == "row" else u((N + 127) // 128, K // 128) / 32
    return u(*lead, 1) if kind == "row" else u(*lead, K // 128)


def check_close(out, a, b, a_scale, b_scale, bias):
    want = reference.fp8_gemm(a, b, a_scale, b_scale, bias)
    mag = reference.fp8_gemm(a.to(torch.float32).abs(), b.to(torch.float32).abs(), a_scale, b_scale,
                             None if bias is None else bias.abs())
    tol = 2 * (K + 4) * 2.0 ** -24 * mag + OUT_REL[out.dtype] * want.abs() + (2.0 ** -25 if out.dtype == torch.float16 else 0)
    err = (out.to(torch.float64) - want).abs()
    assert out.shape == want.shape
    assert (err <= tol).all(), f"max error {err.max().item()} vs tolerance {tol[err > tol].min().item()}"


@pytest.mark.parametrize("lead", [(1,), (3,), (64,), (257,), (2, 5)])
@pytest.mark.parametrize("a_kind", ["tensor", "row", "group"])
@pytest.mark.parametrize("b_kind", ["tensor", "row", "block"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("prepacked", [False, True])
def test_w8a8_against_float64(lead, a_kind, b_kind, with_bias, prepacked):
    seed = hash((lead, a_kind, b_kind, with_bias)) % 1000
    a, b = fp8((*lead, K), seed), fp8((N, K), seed + 1)
    a_scale, b_scale = scales(a_kind, lead, K, seed + 2), scales(b_kind, lead, K, seed + 3, weight=True)
    bias = torch.randn(N, generator=torch.Generator().manual_seed(seed)) if with_bias else None
    out = mxkernels.fp8_gemm(a, mxkernels.prepack_fp8_weight(b) if prepacked else b, a_scale, b_scale, bias)
    assert out.dtype == torch.bfloat16 and out.shape == (*lead, N) and out.is_contiguous()
    check_close(out, a, b, a_scale, b_scale, bias)


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m", [1, 3, 64])
@pytest.mark.parametrize("prepacked", [False, True])
def test_w8a8_out_dtypes_every_cpu_level(isa, out_dtype, m, prepacked):
    a, b = fp8((m, K), 1), fp8((N, K), 2)
    a_scale, b_scale = scales("group", (m,), K, 3), scales("block", (m,), K, 4, weight=True)
    bias = torch.randn(N).to(torch.bfloat16)
    out = mxkernels.fp8_gemm(a, mxkernels.prepack_fp8_weight(b) if prepacked else b, a_scale, b_scale, bias, out_dtype)
    assert out.dtype == out_dtype
    check_close(out, a, b, a_scale, b_scale, bias)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("lead", [(1,), (3,), (64,), (257,), (2, 5)])
@pytest.mark.parametrize("b_kind", ["tensor", "row", "block"])
@pytest.mark.parametrize("prepacked", [False, True])
def test_w8a16_against_float64(dtype, lead, b_kind, prepacked):
    x = torch.randn(*lead, K, generator=torch.Generator().manual_seed(len(lead))).to(dtype)
    b, b_scale = fp8((N, K), 7), scales(b_kind, lead, K, 8, weight=True)
    bias = torch.randn(N)
    out = mxkernels.fp8_gemm_w8a16(x, mxkernels.prepack_fp8_weight(b) if prepacked else b, b_scale, bias)
    assert out.dtype == dtype and out.shape == (*lead, N)
    check_close(out, x, b, torch.ones(1), b_scale, bias)


@pytest.mark.parametrize("m", [1, 9, 40])
def test_k_not_a_multiple_of_the_vector_or_tile_width(isa, m):
    k = 100  # padded to pairs, 16-wide panels and 32-wide tiles inside the kernels
    a, b = fp8((m, k), 41), fp8((N, k), 42)
    sa, sb, bias = torch.rand(m, 1) + 0.5, torch.rand(N) / 16 + 0.01, torch.randn(N)
    out = mxkernels.fp8_gemm(a, b, sa, sb, bias, torch.float32)
    want = reference.fp8_gemm(a, b, sa, sb, bias)
    mag = reference.fp8_gemm(a.to(torch.float32).abs(), b.to(torch.float32).abs(), sa, sb, bias.abs())
    assert out.shape == (m, N)
    assert ((out.double() - want).abs() <= 2 * (k + 4) * 2.0 ** -24 * mag + 2.0 ** -24 * want.abs()).all()


@pytest.mark.parametrize("n", [1, 31, 32, 200])
def test_prepack_layout_against_reference(n):
    b = fp8((n, K), 51)
    packed = mxkernels.prepack_fp8_weight(b)
    assert packed.shape == (n, K // 2, 2) and packed.dtype == torch.float8_e4m3fn and packed.is_contiguous()
    assert torch.equal(packed.view(torch.uint8), reference.prepack_fp8_weight(b).view(torch.uint8))
    # A non-contiguous b (a view with row stride > K) packs the same values.
    wide = fp8((n, K + 64), 51)[:, :K]
    assert torch.equal(mxkernels.prepack_fp8_weight(wide).view(torch.uint8),
                       reference.prepack_fp8_weight(wide.contiguous()).view(torch.uint8))


@pytest.mark.parametrize("m", [1, 4, 5, 64])
def test_prepacked_equals_plain_every_cpu_level(isa, m):
    # More than 4 rows: the same panels reach the same microkernel, so the results are bitwise equal. Up to 4 rows
    # the decode path sums (column, K parity) lanes instead of K runs: equal within the accumulation bound.
    a, b = fp8((m, K), 61), fp8((N, K), 62)
    sa, sb, bias = torch.rand(m, 1) + 0.5, torch.rand(N) / 16 + 0.01, torch.randn(N)
    plain = mxkernels.fp8_gemm(a, b, sa, sb, bias, torch.float32)
    packed = mxkernels.fp8_gemm(a, mxkernels.prepack_fp8_weight(b), sa, sb, bias, torch.float32)
    if m > 4:
        assert torch.equal(plain, packed)
    else:
        check_close(packed, a, b, sa, sb, bias)
        torch.testing.assert_close(plain, packed, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m", [1, 5])
def test_prepacked_nan_weights_make_their_column_nan(isa, m):
    b = torch.ones(64, K).to(torch.float8_e4m3fn)
    b[3, 10] = float("nan")
    b[40, 7] = float("nan")  # in the second (full) panel
    out = mxkernels.fp8_gemm(torch.ones(m, K).to(torch.float8_e4m3fn), mxkernels.prepack_fp8_weight(b),
                             torch.ones(1), torch.ones(1), out_dtype=torch.float32)
    nan_columns = out.isnan().all(0).nonzero().flatten().tolist()
    assert nan_columns == [3, 40] and not out[:, [0, 1, 2, 39, 41]].isnan().any()


def test_agrees_with_scaled_mm_per_tensor():
    a, b = fp8((64, K), 11), fp8((N, K), 12)
    sa, sb = torch.tensor(0.75), torch.tensor(0.03)
    ours = mxkernels.fp8_gemm(a, b, sa, sb, out_dtype=torch.float32)
    theirs = torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=torch.float32)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)


def test_agrees_with_scaled_mm_rowwise():
    a, b = fp8((64, K), 11), fp8((N, K), 12)
    sa, sb = torch.rand(64, 1) + 0.5, torch.rand(1, N) / 16 + 0.01
    try:
        theirs = torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=torch.float32)
    except RuntimeError as e:  # torch 2.11's CPU _scaled_mm takes per-tensor scales only
        pytest.skip(f"torch {torch.__version__} _scaled_mm has no row-wise scales on the CPU: {str(e).splitlines()[0][:120]}")
    ours = mxkernels.fp8_gemm(a, b, sa, sb.reshape(N), out_dtype=torch.float32)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)


def test_non_contiguous_activations_and_threads():
    a = fp8((K, 40), 13).t()  # [40, K] with stride (1, 40)
    b, bs = fp8((N, K), 14), scales("block", (40,), K, 15, weight=True)
    out = mxkernels.fp8_gemm(a, b, torch.tensor(0.5), bs)
    assert torch.equal(out, mxkernels.fp8_gemm(a.contiguous(), b, torch.tensor(0.5), bs))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = mxkernels.fp8_gemm(a, b, torch.tensor(0.5), bs)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, out)


def test_empty_rows():
    out = mxkernels.fp8_gemm(fp8((0, K), 1), fp8((N, K), 2), torch.ones(0, 1), torch.ones(N))
    assert out.shape == (0, N)


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("m", [3, 20])
def test_opcheck(contiguous, m):
    a = fp8((m, K), 21) if contiguous else fp8((K, m), 21).t()
    b = fp8((N, K), 22)
    opcheck(ops.fp8_gemm.default, (a, b, scales("group", (m,), K, 23), scales("block", (m,), K, 24, True),
                                                 torch.randn(N), torch.float32))
    opcheck(ops.fp8_gemm.default, (a, b, torch.ones(m, 1), torch.ones(N), None, None))
    x = torch.randn(m, K, dtype=torch.bfloat16) if contiguous else torch.randn(K, m, dtype=torch.bfloat16).t()
    opcheck(ops.fp8_gemm_w8a16.default, (x, b, scales("row", (m,), K, 25, True), None))
    packed = mxkernels.prepack_fp8_weight(b)
    opcheck(ops.fp8_gemm.default, (a, packed, torch.ones(m, 1), torch.ones(N), None, None))
    opcheck(ops.fp8_gemm_w8a16.default, (x, packed, scales("row", (m,), K, 25, True), torch.randn(N)))


@pytest.mark.parametrize("contiguous", [True, False])
def test_opcheck_prepack(contiguous):
    b = fp8((N, K), 26) if contiguous else fp8((N, K + 32), 26)[:, 16:K + 16]
    opcheck(ops.prepack_fp8_weight.default, (b,))


def test_torch_compile_dynamic_no_recompile():
    torch._dynamo.reset()
    from torch._dynamo.utils import counters
    b, bs = fp8((N, K), 31), scales("block", (1,), K, 32, weight=True)

    packed = mxkernels.prepack_fp8_weight(b)

    def layer(x):
        q, s = mxkernels.quantize_fp8(x, 128)
        return (mxkernels.fp8_gemm(q, b, s, bs, out_dtype=torch.float32) + mxkernels.fp8_gemm_w8a16(x, b, bs).float()
                + mxkernels.fp8_gemm_w8a16(x, packed, bs).float())

    compiled = torch.compile(layer, dynamic=True, fullgraph=True)
    counters.clear()
    # Not starting at M = 1: dynamo specializes a size of 1 on first sight, for any op.
    for m in (3, 64, 257):
        x = torch.randn(m, K, dtype=torch.bfloat16)
        assert torch.equal(compiled(x), layer(x))
    assert counters["stats"]["unique_graphs"] == 1


def _e(shape, dtype=torch.float32, d="cpu"):
    return torch.empty(shape, dtype=dtype, device=d)


F8 = torch.float8_e4m3fn
ERRORS = [
    (lambda d: ops.fp8_gemm(_e((4, K), torch.bfloat16, d), _e((N, K), F8, d), _e(1, d=d), _e(1, d=d), None, None),
     "mxkernels.fp8_gemm: a must be float8_e4m3fn, got BFloat16"),
    (lambda d: ops.fp8_gemm(_e((4, K), F8, d), _e((N, K), torch.int8, d), _e(1, d=d), _e(1, d=d), None, None),
     "mxkernels.fp8_gemm: b must be float8_e4m3fn, got Char"),
    (lambda d: ops.fp8_gemm(_e((4, K), F8, d), _e((N, 128), F8, d), _e(1, d=d), _e(1, d=d), None, None),
     "mxkernels.fp8_gemm: b must have K = 256 columns like the activations, got shape [200, 128]"),
    (lambda d: ops.fp8_gemm(_e((4, K), F8, d), _e((N, K), F8, d), _e((4, 3), d=d), _e(1, d=d), None, None),
     "mxkernels.fp8_gemm: a_scale of shape [4, 3] fits no granularity"),
    (lambda d: ops.fp8_gemm(_e((4, K), F8, d), _e((N, K), F8, d), _e(1, d=d), _e(7, d=d), None, None),
     "mxkernels.fp8_gemm: b_scale of shape [7] fits no granularity"),
    (lambda d: ops.fp8_gemm(_e((4, 192), F8, d), _e((N, 192), F8, d), _e(1, d=d), _e((2, 1), d=d), None, None),
     "mxkernels.fp8_gemm: 128x128 block scales need K to be a multiple of 128, got K = 192"),
    (lambda d: ops.fp8_gemm(_e((4, 192), F8, d), _e((N, 192), F8, d), _e((4, 2), d=d), _e(1, d=d), None, None),
     "mxkernels.fp8_gemm: per-group activation scales need K to be a multiple of 128, got K = 192"),
    (lambda d: ops.fp8_gemm(_e((4, K), F8, d), _e((N, K), F8, d), _e(1, d=d), _e(1, d=d), _e(N - 1, d=d), None),
     "mxkernels.fp8_gemm: bias must have N = 200 elements, got shape [199]"),
    (lambda d: ops.fp8_gemm(_e((4, K), F8, d), _e((N, K), F8, d), _e(1, torch.half, d), _e(1, d=d), None, None),
     "mxkernels.fp8_gemm: a_scale must be float32, got Half"),
    (lambda d: ops.fp8_gemm(_e((4, K), F8, d), _e((N, K), F8, d), _e(1, d=d), _e(1, d=d), None, torch.int32),
     "mxkernels.fp8_gemm: out_dtype must be Float, BFloat16 or Half, got Int"),
    (lambda d: ops.fp8_gemm_w8a16(_e((4, K), torch.float64, d), _e((N, K), F8, d), _e(1, d=d), None),
     "mxkernels.fp8_gemm_w8a16: x must be Float, BFloat16 or Half, got Double"),
    (lambda d: ops.fp8_gemm_w8a16(_e((4, K), d=d), _e((N, K), F8, d), _e((3, 2), d=d), None),
     "mxkernels.fp8_gemm_w8a16: b_scale of shape [3, 2] fits no granularity"),
    (lambda d: ops.fp8_gemm(_e((4, K), F8, d), _e((N, K // 4, 2), F8, d), _e(1, d=d), _e(1, d=d), None, None),
     "mxkernels.fp8_gemm: prepacked b of shape [200, 64, 2] holds K = 128, but the activations have K = 256"),
    (lambda d: ops.fp8_gemm_w8a16(_e((4, K), d=d), _e((N, K // 4, 4), F8, d), _e(1, d=d), None),
     "mxkernels.fp8_gemm_w8a16: a 3-D b must be prepacked [N, K/2, 2], got shape [200, 64, 4]"),
    (lambda d: ops.fp8_gemm_w8a16(_e((4, K), d=d), _e((K // 2, N, 2), F8, d).transpose(0, 1), _e(1, d=d), None),
     "mxkernels.fp8_gemm_w8a16: prepacked b must be contiguous, got strides [2, 400, 1]"),
    (lambda d: ops.fp8_gemm_w8a16(_e((4, K), d=d), _e((2, N, K, 1), F8, d), _e(1, d=d), None),
     "mxkernels.fp8_gemm_w8a16: b must be 2-D [N, K] (the nn.Linear layout) or 3-D [N, K/2, 2]"),
    (lambda d: ops.prepack_fp8_weight(_e((N, 255), F8, d)),
     "mxkernels.prepack_fp8_weight: K = b.size(1) must be positive and even, got 255"),
    (lambda d: ops.prepack_fp8_weight(_e((N, K), torch.uint8, d)),
     "mxkernels.prepack_fp8_weight: b must be float8_e4m3fn, got Byte"),
    (lambda d: ops.prepack_fp8_weight(_e((3, N, K), F8, d)),
     "mxkernels.prepack_fp8_weight: b must be 2-D [N, K] (the nn.Linear layout), got shape [3, 200, 256]"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_identical_on_cpu_and_meta(case):
    assert_same_error_on_cpu_and_meta(*ERRORS[case])
