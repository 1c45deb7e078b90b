"""The CUDA kernels: quantizers and dequantizer bit for bit against the CPU kernels, W4A16 against float64, opcheck,
torch.compile, errors. Skipped where there is no CUDA device or the build has no CUDA kernels (tests/gpu/run.sh
runs them on the device machine)."""
import pytest
import torch

import mxkernels
from mxkernels import nn, ops, reference

from opchecks import opcheck

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and mxkernels.has_cuda_kernels()),
    reason="needs a CUDA device and a build with MXKERNELS_CUDA=ON against a CUDA torch")

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MODES = ("floor", "ceil", "even", "rceil")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def wide_values(shape, dtype, seed):
    """Normal values times powers of two over the dtype's range, made on the CPU (the same on every machine)."""
    g = gen(seed)
    lo, hi = {torch.float32: (-140, 120), torch.bfloat16: (-135, 120), torch.float16: (-26, 13)}[dtype]
    x = torch.randn(shape, generator=g) * torch.exp2(torch.randint(lo, hi, shape, generator=g).float())
    return x.to(dtype)


def edge_values(dtype):
    """Zeros, E2M1 ties and saturation at several scales, subnormals, NaN, Inf; 32-value blocks mixing them."""
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, 7.0, 0.5, 1.0, 1.5, 3.0, 4.0, 0.0, -0.0])
    blocks = [torch.cat([ties, -ties]) * s for s in (1.0, 2.0 ** -10, 2.0 ** 10, 0.75, 1.75, 2.0 ** -126)]
    tiny = torch.finfo(dtype).tiny
    blocks.append(torch.full((32,), tiny) * torch.arange(32) / 8)  # subnormals
    blocks.append(torch.zeros(32))
    specials = torch.randn(32, generator=gen(1))
    for i, v in enumerate((float("nan"), float("inf"), float("-inf"))):
        b = specials.clone()
        b[7 * i + 3] = v
        blocks.append(b)
    big = torch.full((32,), torch.finfo(dtype).max)
    big[::2] *= -1
    blocks.append(big)
    return torch.stack(blocks).to(dtype)


def bits(t):
    return t.contiguous().view(torch.uint8) if t.element_size() == 1 else t.contiguous().view(torch.int16 if t.element_size() == 2 else torch.int32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_quantize_mxfp4_bit_exact_with_cpu(dtype):
    # 1600 x 2112 = 3.4 million fresh values per dtype, 10.1 million over the three, each quantized in every mode.
    x_cpu = wide_values((1600, 2112), dtype, 7)
    edges = edge_values(dtype)
    x_gpu, e_gpu = x_cpu.cuda(), edges.cuda()
    for mode in MODES:
        for xc, xg in ((x_cpu, x_gpu), (edges, e_gpu)):
            qc, sc = ops.quantize_mxfp4(xc, mode)
            qg, sg = ops.quantize_mxfp4(xg, mode)
            assert qg.dtype == qc.dtype and sg.dtype == sc.dtype and qg.shape == qc.shape and sg.shape == sc.shape
            assert torch.equal(bits(qg.cpu()), bits(qc)), (dtype, mode)
            assert torch.equal(bits(sg.cpu()), bits(sc)), (dtype, mode)


@pytest.mark.parametrize("dtype", DTYPES)
def test_quantize_mxfp4_strided_and_out(dtype):
    base = wide_values((6, 40, 256), dtype, 3)
    x_cpu = base[:, ::3, 64:192]  # leading strides, rows not adjacent
    x_gpu = base.cuda()[:, ::3, 64:192]
    qc, sc = ops.quantize_mxfp4(x_cpu, "even")
    qg, sg = ops.quantize_mxfp4(x_gpu, "even")
    assert torch.equal(bits(qg.cpu()), bits(qc)) and torch.equal(bits(sg.cpu()), bits(sc))
    # _out into uint8 buffers, one of them starting off a 4-byte boundary.
    storage = torch.zeros(qc.numel() + 1, dtype=torch.uint8, device="cuda")
    q_out = storage[1:].view(qc.shape)
    s_out = torch.zeros(sc.shape, dtype=torch.uint8, device="cuda")
    torch.ops.mxkernels.quantize_mxfp4_out(x_gpu, q_out, s_out, "even")
    assert torch.equal(q_out.cpu(), bits(qc)) and torch.equal(s_out.cpu(), bits(sc))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_mxfp4_exact(dtype):
    g = gen(11)
    q = torch.randint(0, 256, (512, 1024), dtype=torch.uint8, generator=g)
    s = torch.randint(0, 256, (512, 64), dtype=torch.uint8, generator=g)
    s[0] = torch.arange(64, dtype=torch.uint8)  # the extreme scales, NaN (255) included
    s[1] = torch.arange(192, 256, dtype=torch.uint8)
    want = ops.dequantize_mxfp4(q, s, dtype)
    got = ops.dequantize_mxfp4(q.cuda(), s.cuda(), dtype)
    assert torch.equal(bits(got.cpu()), bits(want))
    # Strided codes and scales, and the float4 / e8m0 dtypes.
    qs, ss = q.cuda()[::2, :256], s.cuda()[::2, :16]
    got = ops.dequantize_mxfp4(qs.view(torch.float4_e2m1fn_x2), ss.view(torch.float8_e8m0fnu), dtype)
    assert torch.equal(bits(got.cpu()), bits(ops.dequantize_mxfp4(q[::2, :256], s[::2, :16], dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("group_size", [128, 32, 7168])
def test_quantize_fp8_bit_exact_with_cpu(dtype, group_size):
    x = wide_values((512, 7168), dtype, 5)
    x[3, 10] = float("nan")
    x[4, 200] = float("inf")
    x[5, 300] = float("-inf")
    x[6, :] = 0
    x[7, 130] = -float("nan")
    for ue8m0 in (False, True):
        qc, sc = ops.quantize_fp8(x, group_size, scale_ue8m0=ue8m0)
        qg, sg = ops.quantize_fp8(x.cuda(), group_size, scale_ue8m0=ue8m0)
        assert torch.equal(bits(qg.cpu()), bits(qc)), (dtype, group_size, ue8m0)
        assert torch.equal(bits(sg.cpu()), bits(sc)), (dtype, group_size, ue8m0)
    q_out = torch.empty(x.shape, dtype=torch.uint8, device="cuda")
    s_out = torch.empty(sc.shape, dtype=torch.float32, device="cuda")
    torch.ops.mxkernels.quantize_fp8_out(x.cuda()[:, :], q_out, s_out, group_size, 1e-10, True)
    assert torch.equal(q_out.cpu(), bits(qc)) and torch.equal(bits(s_out.cpu()), bits(sc))


# ---- W4A16 ---------------------------------------------------------------------------------------------------

def random_weight(n, k, seed, scale_range=(118, 130)):
    g = gen(seed)
    q = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, generator=g)
    s = torch.randint(*scale_range, (n, k // 32), dtype=torch.uint8, generator=g)
    return q, s


def float64_reference(x, q, s, bias):
    w = ops.dequantize_mxfp4(q.cpu(), s.cpu(), torch.float32).double().cuda()
    x64 = x.double().reshape(-1, x.shape[-1])
    ref = x64 @ w.T
    mag = x64.abs() @ w.abs().T
    if bias is not None:
        ref = ref + bias.double()
        mag = mag + bias.double().abs()
    return ref, mag


def check_w4a16(out, x, q, s, bias):
    """Within the bound of the kernels' float32 sums (up to max(128, K) products chained in the tensor cores: spans of
    128 in the mma.sync kernels, a block's whole share of K in the wgmma kernel; then at most K/32 span, block or
    partial totals; 2^-22 each for the tensor cores' truncating adds) plus the rounding of the output to its dtype."""
    k = x.shape[-1]
    ref, mag = float64_reference(x, q, s, bias)
    got = out.double().reshape(ref.shape)
    out_eps = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}[out.dtype]
    tiny = {torch.float32: 1e-38, torch.bfloat16: 1e-38, torch.float16: 2.0 ** -24}[out.dtype]
    bound = (max(128, k) + k // 32 + 2) * 2.0 ** -22 * mag + out_eps * ref.abs() + tiny
    err = (got - ref).abs()
    finite = torch.isfinite(ref)
    assert torch.all(err[finite] <= bound[finite]), f"max excess {(err - bound)[finite].max().item()}"
    return (err / ref.abs().clamp_min(1e-30))[finite].median().item()


@pytest.mark.parametrize("m", [1, 7, 16, 128, 1024])
@pytest.mark.parametrize("n", [5760, 2880])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_w4a16_against_float64(m, n, dtype):
    k = 2880
    q, s = random_weight(n, k, m + n)
    x = torch.randn(m, k, generator=gen(m), dtype=torch.float32).to(dtype).cuda()
    bias = torch.randn(n, generator=gen(n)).cuda()
    qg, sg = q.cuda(), s.cuda()
    out = ops.mxfp4_gemm_w4a16(x, qg, sg, bias)
    assert out.dtype == dtype and out.shape == (m, n)
    check_w4a16(out, x, q, s, bias)
    # 3-D input, float4 / e8m0 dtypes, no bias.
    x3 = x.reshape(1, m, k).expand(2, m, k)
    out3 = ops.mxfp4_gemm_w4a16(x3, qg.view(torch.float4_e2m1fn_x2), sg.view(torch.float8_e8m0fnu))
    assert out3.shape == (2, m, n)
    check_w4a16(out3, x3, q, s, None)
    # The kernels' own layout: the same bits.
    packed = ops.prepack_mxfp4_weight_cuda(qg, sg)
    assert torch.equal(ops.mxfp4_gemm_w4a16(x, packed, None, bias), out)
    assert torch.equal(ops.mxfp4_gemm_w4a16(x3, packed, None), out3)


@pytest.mark.parametrize("m", [1, 9, 33, 200])
def test_w4a16_float32_activations(m):
    n, k = 300, 640
    q, s = random_weight(n, k, 3)
    x = torch.randn(m, k, generator=gen(4)).cuda()
    out = ops.mxfp4_gemm_w4a16(x, q.cuda(), s.cuda())
    assert out.dtype == torch.float32
    check_w4a16(out, x, q, s, None)


@pytest.mark.parametrize("m", [1, 5, 12, 40])
def test_w4a16_edge_scales_and_odd_shapes(m):
    # N not a multiple of any tile, K one block past a stage, every code, scales 0 / 1 / 127 / 254 and NaN.
    n, k = 37, 96
    q, s = random_weight(n, k, 5, scale_range=(100, 140))
    s[0, :] = 0
    s[1, :] = 1
    s[2, :] = 254
    s[3, 1] = 255
    x = torch.randn(m, k, generator=gen(6)).to(torch.bfloat16).cuda()
    out = ops.mxfp4_gemm_w4a16(x, q.cuda(), s.cuda())
    assert torch.isnan(out[:, 3]).all()
    keep = [j for j in range(n) if j not in (2, 3)]
    check_w4a16(out[:, keep], x, q[keep], s[keep], None)
    # Scale 254: block values of 2^127 times the block sum pass float32's range, as they do on the CPU; where the
    # total stays finite it is within the bound.
    col = out[:, 2:3]
    finite = torch.isfinite(col.float()).squeeze(1)
    assert finite.sum() < m  # most rows overflow with these sums
    if finite.any():
        check_w4a16(col[finite], x[finite], q[2:3], s[2:3], None)


@pytest.mark.parametrize("m", [1, 4, 9, 128])
def test_w4a16_bf16_scale_window_edges(m):
    # With bf16 activations the scales 77..138 are applied in the decode; a span with any other scale takes the
    # block-by-block path. Columns at both ends of the window, just past them (76, 139) in some blocks, and scales
    # spread over 70..145 (spans of either kind side by side), against float64, in the skinny and wide kernels.
    n, k = 48, 512
    q, s = random_weight(n, k, 11, scale_range=(118, 129))
    s[0:8, :] = 77
    s[8:16, :] = 138
    s[16:24, ::3] = 76
    s[24:32, 1::5] = 139
    s[32:48, :] = torch.randint(70, 146, (16, k // 32), dtype=torch.uint8, generator=gen(12))
    x = torch.randn(m, k, generator=gen(13)).to(torch.bfloat16).cuda()
    out = ops.mxfp4_gemm_w4a16(x, q.cuda(), s.cuda())
    check_w4a16(out, x, q, s, None)
    x32 = torch.randn(m, k, generator=gen(14)).cuda()  # float32: three bf16 parts, float32 output
    check_w4a16(ops.mxfp4_gemm_w4a16(x32, q.cuda(), s.cuda()), x32, q, s, None)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 2, 3, 8])
@pytest.mark.parametrize("k", [1056, 2592, 4096])
def test_w4a16_skinny_chained_spans(m, k, dtype):
    # Up to 8 rows each warp of the skinny kernel issues its next span's loads as its current ones arrive, and
    # one warp also loads the partial span up front: K with a partial span and the whole spans ending at different
    # warps (1056: 8 whole spans, one block more; 2592: 20 and one; 4096: 32, none), scales on both paths (in fp16
    # a span's scales within 2^13 of its largest are folded into the decode).
    n = 48
    q, s = random_weight(n, k, 21, scale_range=(118, 129))
    s[40:48, 1::7] = 60  # some spans take the block-by-block path
    x = torch.randn(m, k, generator=gen(22)).to(dtype).cuda()
    check_w4a16(ops.mxfp4_gemm_w4a16(x, q.cuda(), s.cuda()), x, q, s, None)


@pytest.mark.parametrize("m", [1, 2])
def test_w4a16_skinny_rows_too_long_for_shared_memory(m):
    # The skinny kernel stages 1 or 2 activation rows in shared memory; at K=26624 two rows pass its 100 KiB limit
    # and the warps read them from global memory (one row still fits).
    n, k = 80, 26624
    q, s = random_weight(n, k, 19)
    x = torch.randn(m, k, generator=gen(20)).to(torch.bfloat16).cuda()
    check_w4a16(ops.mxfp4_gemm_w4a16(x, q.cuda(), s.cuda()), x, q, s, None)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "m,n,k", [(40, 100, 1024), (17, 2880, 2880), (300, 130, 4096), (64, 64, 160), (64, 8064, 320)]
)
def test_w4a16_split_over_a_cluster(m, n, k, dtype):
    # Few tiles: the kernel (wgmma on Hopper, else wide) splits K over a cluster of blocks whose partial
    # sums meet in distributed shared memory. (64, 8064): 42 wgmma tiles, split over 2 where 42 clusters of 3 do
    # not all fit at once (the H100).
    q, s = random_weight(n, k, m + k)
    x = torch.randn(m, k, generator=gen(m)).to(dtype).cuda()
    out = ops.mxfp4_gemm_w4a16(x, q.cuda(), s.cuda())
    check_w4a16(out, x, q, s, None)
    assert torch.equal(out, ops.mxfp4_gemm_w4a16(x, q.cuda(), s.cuda()))  # the same bits every time
    name = mxkernels._C.cuda_w4a16_kernel_name(m, n, k)  # the same kernel for bf16 and fp16
    hopper = torch.cuda.get_device_capability() == (9, 0)
    assert name.startswith("wgmma" if hopper else "wide") and "cluster" in name, name


@pytest.mark.parametrize("x_dtype", [torch.bfloat16, torch.float32, torch.float16])
@pytest.mark.parametrize("m", [1000, 128, 40])
def test_w4a16_wgmma_edges(x_dtype, m):
    # The wgmma kernel on Hopper (bf16 or fp16 activations; float32 ones as three bf16 parts): 1000 rows (a
    # partial last tile of rows; 128 and 40 rows: the 88-column tiles with the weights as the MMAs' B operand), 2100
    # columns (a partial last tile of columns), K = 33 blocks (a partial last stage).
    # Scales at both ends of the decode window (bf16 77 and 138, fp16 104 and 140), single scales just past it, 0 and
    # 255, whose tiles take the exact block-by-block path while the others apply the scales in the decode, and an
    # all-zero block with scale 200 (zeros whatever the scale: the decode path). In fp16 the scales from 129 on take a
    # second multiply in the decode; the blocks with the largest scales keep codes of at most 0.5, and the activations
    # are 1/16 of the others', so that the outputs stay in fp16's range.
    fp16 = x_dtype == torch.float16
    lo, hi = (104, 140) if fp16 else (77, 138)
    n, k = 2100, 1056
    q, s = random_weight(n, k, 21)
    s[0:64, :] = lo
    s[300, 5] = lo - 1
    s[700, 32] = hi + 1
    if fp16:
        s[64:128, 3] = hi
        q[64:128, 16 * 3 : 16 * 4] &= 0x99  # codes 0 and ±0.5
        s[128:192, 5] = 129
        q[700, 16 * 32 :] &= 0x99
    else:
        s[64:128, :] = hi
    s[1100, 0] = 0
    s[2090, 7] = 255
    q[1500, 16 * 3 : 16 * 4] = 0x88  # -0 codes
    s[1500, 3] = 200
    x = torch.randn(m, k, generator=gen(22)) / (16 if fp16 else 1)
    x = x.to(x_dtype).cuda()
    bias = torch.randn(n, generator=gen(23)).cuda()
    out = ops.mxfp4_gemm_w4a16(x, q.cuda(), s.cuda(), bias)
    assert torch.isnan(out[:, 2090]).all()
    keep = [j for j in range(n) if j != 2090]
    check_w4a16(out[:, keep], x, q[keep], s[keep], bias[keep])
    if torch.cuda.get_device_capability() == (9, 0) and x_dtype != torch.float32:
        assert mxkernels._C.cuda_w4a16_kernel_name(m, n, k).startswith("wgmma")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "m,n,k,splits",
    [(17, 304, 1056, 4), (40, 2880, 2880, 3), (64, 48, 544, 4), (65, 304, 1056, 4), (100, 2880, 2880, 3),
     (128, 5760, 2880, 2), (128, 48, 544, 4)],
)
def test_w4a16_wgmma_weights_as_b(m, n, k, splits, dtype):
    # One tile of 17 to 64 or 65 to 128 rows: 88-column tiles with the decoded weights as the MMAs' B operand, K in
    # stages of 128 values split over clusters of 2 to 4; a partial last tile of columns (304, 5760, 48), a lone last
    # block (1056, 544: K/32 odd), a partial last stage (2880); activation boxes of M rows rounded up to 8 (17, 65,
    # 100). Against float64, the same bits on every run and with packed weights.
    q, s = random_weight(n, k, m + n + k, scale_range=(118, 129))
    s[n - 8:, 1::7] = 60  # blocks outside the decode's scale window: their tiles take the exact path
    x = torch.randn(m, k, generator=gen(m + k)).to(dtype).cuda()
    bias = torch.randn(n, generator=gen(n)).cuda()
    qg, sg = q.cuda(), s.cuda()
    out = ops.mxfp4_gemm_w4a16(x, qg, sg, bias)
    check_w4a16(out, x, q, s, bias)
    assert torch.equal(out, ops.mxfp4_gemm_w4a16(x, qg, sg, bias))
    packed = ops.prepack_mxfp4_weight_cuda(qg, sg)
    assert torch.equal(bits(ops.mxfp4_gemm_w4a16(x, packed, None, bias)), bits(out))
    if torch.cuda.get_device_capability() == (9, 0):
        name = mxkernels._C.cuda_w4a16_kernel_name(m, n, k)
        assert name.startswith(f"wgmma 88 columns x {64 if m <= 64 else 128} rows"), name
        assert f"cluster of {splits}" in name, name


# Spans: (48, 96) only a partial one of 3 blocks, (32, 1056) 8 whole and 1, (2880, 2880) 22 and 2, (64, 4096) 32 and
# none, (160, 224) 1 and 3; rows over the skinny (staged, chained, 16-row), wide / wgmma and split kernels.
@pytest.mark.parametrize("m", [1, 2, 3, 8, 9, 16, 17, 40, 128, 300])
@pytest.mark.parametrize("n,k", [(48, 96), (32, 1056), (2880, 2880), (64, 4096), (160, 224)])
def test_w4a16_packed_weights_same_bits(m, n, k):
    if m * n * k > 2 ** 28:
        pytest.skip("covered by the smaller shapes")
    q, s = random_weight(n, k, m + n + k, scale_range=(118, 129))
    s[n - 8:, 1::7] = 60  # spans that take the block-by-block path
    qg, sg = q.cuda(), s.cuda()
    packed = ops.prepack_mxfp4_weight_cuda(qg, sg)
    assert torch.equal(packed.cpu(), ops.prepack_mxfp4_weight_cuda(q, s))  # tensor ops here, the scalar packer there
    for i, dtype in enumerate((torch.bfloat16, torch.float16, torch.float32)):
        x = torch.randn(m, k, generator=gen(m + i)).to(dtype).cuda()
        bias = torch.randn(n, generator=gen(n)).cuda() if i != 1 else None
        plain = ops.mxfp4_gemm_w4a16(x, qg, sg, bias)
        assert torch.equal(bits(ops.mxfp4_gemm_w4a16(x, packed, None, bias)), bits(plain)), dtype
        if i == 0:
            check_w4a16(plain, x, q, s, bias)


@pytest.mark.parametrize("m", [1000, 128, 40])
def test_w4a16_packed_wgmma_edges(m):
    # test_w4a16_wgmma_edges's scales with packed weights (N = 2096, a multiple of 16 with a partial last tile: 176 of
    # 192 columns at 1000 rows, 72 of 88 at 128 and 40): the exact path reads the packed layout too.
    n, k = 2096, 1056
    q, s = random_weight(n, k, 21)
    s[0:64, :] = 77
    s[300, 5] = 76
    s[700, 32] = 139
    s[1100, 0] = 0
    s[2090, 7] = 255
    s[1500, 3] = 200
    q[1500, 16 * 3 : 16 * 4] = 0x88
    qg, sg = q.cuda(), s.cuda()
    packed = ops.prepack_mxfp4_weight_cuda(qg, sg)
    for x_dtype in (torch.bfloat16, torch.float16):
        x = torch.randn(m, k, generator=gen(22)).to(x_dtype).cuda()
        plain = ops.mxfp4_gemm_w4a16(x, qg, sg)
        assert torch.isnan(plain[:, 2090]).all()
        assert torch.equal(bits(ops.mxfp4_gemm_w4a16(x, packed, None)), bits(plain))


def test_w4a16_packed_view_off_alignment():
    # A blob that starts off a 16-byte boundary (a view into a larger buffer) is copied, not misread.
    q, s = random_weight(64, 256, 30)
    packed = ops.prepack_mxfp4_weight_cuda(q.cuda(), s.cuda())
    buf = torch.empty(packed.numel() + 1, dtype=torch.uint8, device="cuda")
    view = buf[1:].view(packed.shape)
    view.copy_(packed)
    x = torch.randn(3, 256, generator=gen(31)).to(torch.bfloat16).cuda()
    assert torch.equal(ops.mxfp4_gemm_w4a16(x, view, None), ops.mxfp4_gemm_w4a16(x, packed, None))


def test_w4a16_strided_inputs():
    n, k, m = 96, 256, 24
    q, s = random_weight(n, 2 * k, 8)
    x = torch.randn(3, m, 2 * k, generator=gen(9)).to(torch.bfloat16).cuda()
    xs = x[:, ::2, :k]  # leading strides and rows longer than K
    qs, ss = q.cuda()[:, : k // 2], s.cuda()[:, : k // 32]  # weight rows longer than K/2
    out = ops.mxfp4_gemm_w4a16(xs, qs, ss)
    check_w4a16(out, xs, q[:, : k // 2], s[:, : k // 32], None)


def test_w4a16_empty():
    q, s = random_weight(64, 64, 1)
    assert ops.mxfp4_gemm_w4a16(torch.empty(0, 64, device="cuda", dtype=torch.bfloat16), q.cuda(), s.cuda()).shape == (0, 64)


def test_current_stream_is_used():
    # The input is finished on a side stream after a long sleep; an op that ignored the current stream would read it
    # before the last write.
    x = wide_values((256, 4096), torch.bfloat16, 12)
    q, s = random_weight(512, 4096, 13)
    qg, sg = q.cuda(), s.cuda()
    side = torch.cuda.Stream()
    xg = torch.zeros_like(x, device="cuda")
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)
        xg.copy_(x.cuda(non_blocking=True))
        qm, sm = ops.quantize_mxfp4(xg, "rceil")
        out = ops.mxfp4_gemm_w4a16(xg[:3], qg, sg)
    side.synchronize()
    qc, sc = ops.quantize_mxfp4(x, "rceil")
    assert torch.equal(bits(qm.cpu()), bits(qc)) and torch.equal(bits(sm.cpu()), bits(sc))
    check_w4a16(out, xg[:3], q, s, None)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_second_device():
    x = wide_values((64, 256), torch.bfloat16, 14)
    with torch.cuda.device(0):
        q, s = ops.quantize_mxfp4(x.to("cuda:1"))
    assert q.device == torch.device("cuda:1")
    qc, sc = ops.quantize_mxfp4(x)
    assert torch.equal(bits(q.cpu()), bits(qc)) and torch.equal(bits(s.cpu()), bits(sc))


# ---- opcheck, compile, errors, the layer --------------------------------------------------------------------

@pytest.mark.parametrize("contiguous", [True, False])
def test_opcheck(contiguous):
    x = wide_values((8, 64, 128), torch.bfloat16, 15).cuda()
    if not contiguous:
        x = x[:, ::2]
    opcheck(torch.ops.mxkernels.quantize_mxfp4.default, (x, "floor"))
    opcheck(torch.ops.mxkernels.quantize_fp8.default, (x, 64, 1e-10, True))
    q, s = ops.quantize_mxfp4(x)
    qd, sd = q.view(torch.uint8), s.view(torch.uint8)
    if not contiguous:
        qd, sd = qd.transpose(0, 1), sd.transpose(0, 1)
    opcheck(torch.ops.mxkernels.dequantize_mxfp4.default, (qd, sd, torch.bfloat16))
    wq, ws = random_weight(48, 128, 16)
    wq, ws = wq.cuda(), ws.cuda()
    if not contiguous:
        wq, ws = wq[::2], ws[::2]
    for xm in (x[:1, :3], x):  # 3 rows: the skinny kernel; 8 x 64 (or 8 x 32) rows: the wide one
        opcheck(torch.ops.mxkernels.mxfp4_gemm_w4a16.default, (xm, wq, ws, None))
    opcheck(torch.ops.mxkernels.mxfp4_gemm_w4a16.default,
            (x.float(), wq.view(torch.float4_e2m1fn_x2), ws.view(torch.float8_e8m0fnu), torch.randn(wq.shape[0], device="cuda")))
    if wq.shape[0] % 16 == 0:
        opcheck(torch.ops.mxkernels.prepack_mxfp4_weight_cuda.default, (wq, ws))
        packed = ops.prepack_mxfp4_weight_cuda(wq, ws)
        for xm in (x[:1, :3], x):
            opcheck(torch.ops.mxkernels.mxfp4_gemm_w4a16.default, (xm, packed, None, None))
    q_out = torch.empty(q.shape, dtype=torch.uint8, device="cuda")
    s_out = torch.empty(s.shape, dtype=torch.uint8, device="cuda")
    opcheck(torch.ops.mxkernels.quantize_mxfp4_out.default, (x, q_out, s_out, "rceil"))


def test_torch_compile_dynamic_no_recompile():
    torch._dynamo.reset()
    wq, ws = random_weight(96, 256, 17)
    wq, ws = wq.cuda(), ws.cuda()
    packed = ops.prepack_mxfp4_weight_cuda(wq, ws)

    def f(x):
        q, s = mxkernels.quantize_mxfp4(x, "rceil")
        xq = mxkernels.dequantize_mxfp4(q, s, torch.bfloat16)
        f8, f8s = mxkernels.quantize_fp8(x, 128)
        return (mxkernels.mxfp4_gemm_w4a16(xq, wq, ws) * 2 + mxkernels.mxfp4_gemm_w4a16(xq, packed, None),
                f8.view(torch.uint8), f8s)

    compiled = torch.compile(f, dynamic=True, fullgraph=True)
    from torch._dynamo.utils import counters

    counters.clear()
    for rows in [3, 17, 64, 300]:
        x = wide_values((rows, 256), torch.bfloat16, rows).cuda()
        got = compiled(x)
        want = f(x)
        for a, b in zip(got, want):
            assert torch.equal(bits(a), bits(b))
    assert counters["stats"]["unique_graphs"] == 1
    assert counters["aot_autograd"]["total"] == 1


MIXED_DEVICE_CASES = [
    (lambda: ops.mxfp4_gemm_w4a16(torch.zeros(2, 64, device="cuda", dtype=torch.bfloat16),
                                  torch.zeros(8, 32, dtype=torch.uint8), torch.zeros(8, 2, dtype=torch.uint8)),
     "mxkernels.mxfp4_gemm_w4a16: all tensors must be on one device, got x on cuda:0 and w_q on cpu"),
    (lambda: ops.mxfp4_gemm_w4a16(torch.zeros(2, 64, device="cuda", dtype=torch.bfloat16),
                                  torch.zeros(8, 32, dtype=torch.uint8, device="cuda"), torch.zeros(8, 2, dtype=torch.uint8)),
     "mxkernels.mxfp4_gemm_w4a16: all tensors must be on one device, got x on cuda:0 and w_scales on cpu"),
    (lambda: ops.mxfp4_gemm_w4a16(torch.zeros(2, 64, device="cuda", dtype=torch.bfloat16),
                                  torch.zeros(8, 32, dtype=torch.uint8, device="cuda"),
                                  torch.zeros(8, 2, dtype=torch.uint8, device="cuda"), torch.zeros(8)),
     "mxkernels.mxfp4_gemm_w4a16: all tensors must be on one device, got x on cuda:0 and bias on cpu"),
    (lambda: ops.dequantize_mxfp4(torch.zeros(4, 16, dtype=torch.uint8, device="cuda"), torch.zeros(4, 1, dtype=torch.uint8)),
     "mxkernels.dequantize_mxfp4: all tensors must be on one device, got q on cuda:0 and scales on cpu"),
    (lambda: torch.ops.mxkernels.quantize_mxfp4_out(torch.zeros(4, 32, device="cuda"), torch.zeros(4, 16, dtype=torch.uint8),
                                                    torch.zeros(4, 1, dtype=torch.uint8, device="cuda")),
     "mxkernels.quantize_mxfp4_out: all tensors must be on one device, got x on cuda:0 and q on cpu"),
    (lambda: torch.ops.mxkernels.quantize_fp8_out(torch.zeros(4, 128, device="cuda"), torch.zeros(4, 128, dtype=torch.uint8),
                                                  torch.zeros(4, 1, device="cuda")),
     "mxkernels.quantize_fp8_out: all tensors must be on one device, got x on cuda:0 and q on cpu"),
    (lambda: ops.mxfp4_gemm_w4a16(torch.zeros(2, 64, device="cuda"),
                                  ops.prepack_mxfp4_weight(torch.zeros(8, 32, dtype=torch.uint8),
                                                           torch.zeros(8, 2, dtype=torch.uint8)).cuda(), None),
     "mxkernels.mxfp4_gemm_w4a16: w_q is a prepack_mxfp4_weight blob, a CPU layout"),
    (lambda: ops.mxfp4_gemm_w4a16(torch.zeros(2, 64),
                                  ops.prepack_mxfp4_weight_cuda(torch.zeros(16, 32, dtype=torch.uint8, device="cuda"),
                                                                torch.zeros(16, 2, dtype=torch.uint8, device="cuda")).cpu(),
                                  None),
     "mxkernels.mxfp4_gemm_w4a16: w_q is a prepack_mxfp4_weight_cuda blob [N/16, L, 128], the CUDA kernels' layout"),
    (lambda: ops.prepack_mxfp4_weight_cuda(torch.zeros(16, 32, dtype=torch.uint8, device="cuda"),
                                           torch.zeros(16, 2, dtype=torch.uint8)),
     "mxkernels.prepack_mxfp4_weight_cuda: all tensors must be on one device, got w_q on cuda:0 and w_scales on cpu"),
    (lambda: ops.prepack_mxfp4_weight_cuda(torch.zeros(40, 32, dtype=torch.uint8, device="cuda"),
                                           torch.zeros(40, 2, dtype=torch.uint8, device="cuda")),
     "mxkernels.prepack_mxfp4_weight_cuda: N = w_q.size(0) must be a multiple of 16"),
]


@pytest.mark.parametrize("case", range(len(MIXED_DEVICE_CASES)))
def test_errors(case):
    call, message = MIXED_DEVICE_CASES[case]
    with pytest.raises(RuntimeError) as e:
        call()
    assert str(e.value).splitlines()[0].startswith(message), str(e.value)


def test_mxfp4_linear_cuda_backend():
    linear = torch.nn.Linear(256, 96).to(torch.bfloat16)
    layer = nn.MXFP4Linear.from_float(linear)
    assert layer.backend_name == "cpu_w4a16"
    layer = layer.cuda()
    assert layer.backend_name == "cuda_w4a16" and "cuda_w4a16" in repr(layer)
    x = torch.randn(5, 256, generator=gen(18)).to(torch.bfloat16).cuda()
    want = ops.mxfp4_gemm_w4a16(x, layer.weight_packed, layer.weight_scale, layer.bias)
    assert torch.equal(layer(x), want)
    assert layer.cpu().backend_name == "cpu_w4a16"
    with pytest.raises(RuntimeError, match="cuda_w4a16.*weights are on cpu"):
        nn.MXFP4Linear.from_float(linear, backend="cuda_w4a16")


def test_mxfp4_linear_cuda_packed_backend():
    # Only by name (it holds a second copy of the weights), so the layer is built on the device; the same bits as the
    # plain backend, also after a state_dict load, which builds the blob again.
    linear = torch.nn.Linear(256, 96).to(torch.bfloat16)
    plain = nn.MXFP4Linear.from_float(linear).cuda()
    assert plain.backend_name == "cuda_w4a16"
    with torch.device("cuda"):
        layer = nn.MXFP4Linear.from_float(linear, backend="cuda_w4a16_packed")
        other = nn.MXFP4Linear(256, 96, backend="cuda_w4a16_packed")
    assert layer.backend_name == "cuda_w4a16_packed" and "cuda_w4a16_packed" in repr(layer)
    assert layer._prepacked.shape == (6, 17, 128)
    for m in (1, 5, 40, 200):
        x = torch.randn(m, 256, generator=gen(19)).to(torch.bfloat16).cuda()
        assert torch.equal(layer(x), plain(x)), m
    other.load_state_dict(plain.state_dict())
    x = torch.randn(3, 256, generator=gen(20)).to(torch.bfloat16).cuda()
    assert torch.equal(other(x), plain(x))
    assert set(other.state_dict()) == {"weight_packed", "weight_scale", "bias"}
    with pytest.raises(RuntimeError, match="cuda_w4a16_packed.*weights are on cpu"):
        layer.cpu()
    odd = torch.nn.Linear(256, 40).to(torch.bfloat16)
    with pytest.raises(RuntimeError, match="cuda_w4a16_packed.*out_features must be a multiple of 16 .*, got 40"):
        with torch.device("cuda"):
            nn.MXFP4Linear.from_float(odd, backend="cuda_w4a16_packed")
