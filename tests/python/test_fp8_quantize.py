"""FP8 (E4M3) quantization: bit for bit against the pure-PyTorch reference (explicit clamp, then cast) on every
CPU level, the edge cases, opcheck, torch.compile and the errors."""
import math

import numpy as np
import pytest
import torch

import mxkernels
from mxkernels import reference

from opchecks import assert_same_error_on_cpu_and_meta
from cases import random_values

ops = torch.ops.mxkernels


def same(a, b):
    """Bitwise equality (NaN payloads included) for float8 and float32 tensors."""
    view = torch.uint8 if a.dtype == torch.float8_e4m3fn else torch.int32
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(view), b.view(view))


def edge_groups():
    """Groups of 32 whose amax pins the scale at 1 (448) or at a power of two, holding the E4M3 rounding ties, the
    values next to them, subnormals, zeros of both signs, values beyond 448 and non-finite values."""
    f32 = np.float32
    up = lambda v: float(np.nextafter(f32(v), f32(np.inf)))
    down = lambda v: float(np.nextafter(f32(v), f32(-np.inf)))
    ties = [2.0 ** -10, 3 * 2.0 ** -10, 1.0625, 1.1875, 2.125, 17.0, 232.0, 440.0]
    groups = []
    for top in [448.0, 896.0, 448.0 * 2 ** -20, 448.0 * 2 ** 30]:
        f = top / 448.0
        g = [top, -0.0, 0.0]
        for t in ties:
            g += [t * f, up(t * f), -down(t * f)]
        g += [2.0 ** -149, -1e-40 * f]
        groups.append(g + [0.0] * (32 - len(g)))
    groups.append([460.0, 465.0, -1000.0] + [1.0] * 29)       # amax above 448: scale > 1
    groups.append([float("nan")] + [1.0] * 31)
    groups.append([float("inf"), -2.0] + [1.0] * 30)
    groups.append([0.0] * 32)
    return torch.tensor(groups, dtype=torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("group_size", [128, 64, "per-token"])
@pytest.mark.parametrize("ue8m0", [False, True])
def test_matches_reference(isa, dtype, group_size, ue8m0):
    x = random_values(2048, 3, -12 if dtype == torch.float16 else -60, 12 if dtype == torch.float16 else 60)
    x = x.reshape(64, 1024).to(dtype)
    g = x.shape[-1] if group_size == "per-token" else group_size
    q, s = mxkernels.quantize_fp8(x, g, 1e-10, ue8m0)
    rq, rs = reference.quantize_fp8(x, g, 1e-10, ue8m0)
    assert q.dtype == torch.float8_e4m3fn and s.dtype == torch.float32
    assert s.shape == (64, 1024 // g)
    assert same(s, rs) and same(q, rq)


@pytest.mark.parametrize("ue8m0", [False, True])
def test_edge_cases(isa, ue8m0):
    x = edge_groups()
    q, s = mxkernels.quantize_fp8(x, 32, 1e-10, ue8m0)
    rq, rs = reference.quantize_fp8(x, 32, 1e-10, ue8m0)
    assert same(s, rs) and same(q, rq)
    qb = q.view(torch.uint8)
    if not ue8m0:
        assert s[0].item() == 1.0
        assert qb[0, :3].tolist() == [0x7E, 0x80, 0x00]                   # 448, -0, +0
        # 2^-10 is the tie between 0 and 2^-9, 3 * 2^-10 the one between 2^-9 and 2^-8: both go to the even code,
        # their float32 neighbours to the nearer one.
        assert qb[0, 3:9].tolist() == [0x00, 0x01, 0x80, 0x02, 0x02, 0x81]
    # NaN: scale NaN, every value NaN. Inf: scale Inf, the Inf itself NaN (Inf/Inf), the rest ±0. Zeros: eps.
    assert math.isnan(s[-3].item()) and ((qb[-3] & 0x7F) == 0x7F).all()
    assert math.isinf(s[-2].item()) and (qb[-2, 0].item() & 0x7F) == 0x7F and qb[-2, 1].item() == 0x80
    assert (qb[-2, 2:] == 0).all()
    assert s[-1].item() == reference.fp8_scale(torch.tensor(0.0), 1e-10, ue8m0).item() and (qb[-1] == 0).all()


def test_group_size_equal_to_k_is_per_token():
    x = random_values(64, 4, -5, 5).reshape(8, 256)
    q, s = mxkernels.quantize_fp8(x, 256)
    assert s.shape == (8, 1)
    assert torch.equal(s[:, 0], x.abs().amax(-1).clamp(min=1e-10) / 448.0)


def test_per_tensor_dynamic_and_static(isa):
    x = random_values(256, 5, -8, 8).reshape(32, 256).to(torch.bfloat16)
    for xx in [x, x.t(), x[::2]]:  # any layout
        q, s = mxkernels.quantize_fp8_per_tensor(xx)
        rq, rs = reference.quantize_fp8_per_tensor(xx)
        assert s.shape == (1,) and same(s, rs) and same(q, rq)
        static = torch.tensor([0.03125])
        q, s = mxkernels.quantize_fp8_per_tensor(xx, static)
        rq, _ = reference.quantize_fp8_per_tensor(xx, static)
        assert same(q, rq) and s.item() == 0.03125
    with pytest.raises(RuntimeError, match="scale must be positive and finite, got -1"):
        mxkernels.quantize_fp8_per_tensor(x, torch.tensor([-1.0]))


def test_nd_non_contiguous_empty_and_out():
    base = random_values(512, 6, -6, 6).reshape(4, 8, 512)
    x = base.transpose(0, 1)[:, :, :256]
    q, s = mxkernels.quantize_fp8(x, 128)
    rq, rs = reference.quantize_fp8(x, 128)
    assert same(q, rq) and same(s, rs) and q.is_contiguous()
    q0, s0 = mxkernels.quantize_fp8(torch.empty(0, 3, 256), 128)
    assert q0.shape == (0, 3, 256) and s0.shape == (0, 3, 2)
    qo, so = torch.empty(8, 4, 256, dtype=torch.float8_e4m3fn), torch.empty(8, 4, 2)
    mxkernels.quantize_fp8(x, 128, out=(qo, so))
    assert same(qo, rq) and same(so, rs)
    qu = torch.empty(8, 4, 256, dtype=torch.uint8)
    mxkernels.quantize_fp8(x, 128, out=(qu, so))
    assert torch.equal(qu, rq.view(torch.uint8))


def test_thread_count_does_not_matter():
    x = random_values(4096, 7, -6, 6).reshape(128, 1024)
    before = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append(mxkernels.quantize_fp8(x, 128) + mxkernels.quantize_fp8_per_tensor(x))
    finally:
        torch.set_num_threads(before)
    assert all(same(a, b) for a, b in zip(*outs))


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("rows", [5, 33])
def test_opcheck(contiguous, rows):
    base = random_values(rows * 8, 8, -5, 5).reshape(2, rows, 128).to(torch.bfloat16)
    x = base if contiguous else base.transpose(0, 1)
    torch.library.opcheck(ops.quantize_fp8.default, (x, 64, 1e-10, True))
    # uint8 q: opcheck cannot compare mutated float8 tensors on the CPU (test_out_... covers float8 q).
    torch.library.opcheck(ops.quantize_fp8_out.default,
                          (x, torch.empty(x.shape, dtype=torch.uint8), torch.empty(*x.shape[:-1], 2), 64, 1e-6, False))
    torch.library.opcheck(ops.quantize_fp8_per_tensor.default, (x, None, 1e-10))
    torch.library.opcheck(ops.quantize_fp8_per_tensor.default, (x, torch.tensor([0.5]), 1e-10))


def test_torch_compile_dynamic_no_recompile():
    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    def f(x):
        q, s = mxkernels.quantize_fp8(x, 128)
        qt, st = mxkernels.quantize_fp8_per_tensor(x)
        return q.float() * s.repeat_interleave(128, -1), qt.float() * st

    compiled = torch.compile(f, dynamic=True, fullgraph=True)
    counters.clear()
    for rows in (3, 17, 64):
        x = random_values(rows * 8, rows, -4, 4).reshape(rows, 256)
        for a, b in zip(compiled(x), f(x)):
            assert torch.equal(a, b)
    assert counters["stats"]["unique_graphs"] == 1


ERRORS = [
    (lambda d: ops.quantize_fp8(torch.empty(4, 256, dtype=torch.int8, device=d), 128, 1e-10, False),
     "mxkernels.quantize_fp8: x must be Float, BFloat16 or Half, got Char"),
    (lambda d: ops.quantize_fp8(torch.empty(4, 200, device=d), 128, 1e-10, False),
     "mxkernels.quantize_fp8: x.size(-1) must be a positive multiple of group_size (128), got 200"),
    (lambda d: ops.quantize_fp8(torch.empty(4, 256, device=d), 0, 1e-10, False),
     "mxkernels.quantize_fp8: group_size must be positive, got 0"),
    (lambda d: ops.quantize_fp8(torch.empty(4, 256, device=d), 128, -1.0, False),
     "mxkernels.quantize_fp8: eps must be a positive float32, got -1"),
    (lambda d: ops.quantize_fp8(torch.empty(256, 4, device=d).t(), 4, 1e-10, False),
     "mxkernels.quantize_fp8: x.stride(-1) must be 1, got 4"),
    (lambda d: ops.quantize_fp8_out(torch.empty(4, 256, device=d), torch.empty(4, 256, dtype=torch.int8, device=d),
                                    torch.empty(4, 2, device=d), 128, 1e-10, False),
     "mxkernels.quantize_fp8_out: q must be Float8_e4m3fn or Byte, got Char"),
    (lambda d: ops.quantize_fp8_out(torch.empty(4, 256, device=d), torch.empty(4, 256, dtype=torch.float8_e4m3fn, device=d),
                                    torch.empty(4, 3, device=d), 128, 1e-10, False),
     "mxkernels.quantize_fp8_out: scales must have shape [4, 2], got [4, 3]"),
    (lambda d: ops.quantize_fp8_per_tensor(torch.empty(4, 256, device=d), torch.ones(2, device=d), 1e-10),
     "mxkernels.quantize_fp8_per_tensor: scale must hold one element, got shape [2]"),
    (lambda d: ops.quantize_fp8_per_tensor(torch.empty(4, 256, device=d), torch.ones(1, dtype=torch.half, device=d), 1e-10),
     "mxkernels.quantize_fp8_per_tensor: scale must be float32, got Half"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_identical_on_cpu_and_meta(case):
    assert_same_error_on_cpu_and_meta(*ERRORS[case])
