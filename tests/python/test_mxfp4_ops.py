"""The MXFP4 ops as torch ops: shapes and strides, N-D and non-contiguous inputs, the out variant, opcheck,
torch.compile, errors (identical from the CPU and the Meta kernel) and thread-count independence."""
import importlib

import pytest
import torch

import mxkernels
from mxkernels import reference

from opchecks import assert_same_error_on_cpu_and_meta
from cases import random_values

ops = torch.ops.mxkernels


def rand(shape, dtype=torch.bfloat16, seed=0):
    n = 1
    for s in shape:
        n *= s
    return random_values(max(n // 32, 1), seed, -12, 12)[:n].reshape(shape).to(dtype)  # finite in float16


@pytest.mark.parametrize("shape", [(64,), (3, 96), (2, 3, 128), (2, 2, 3, 64)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_nd_shapes_dtypes_and_strides(shape, dtype):
    x = rand(shape, dtype)
    q, s = mxkernels.quantize_mxfp4(x)
    assert q.dtype == torch.float4_e2m1fn_x2 and s.dtype == torch.float8_e8m0fnu
    assert q.shape == (*shape[:-1], shape[-1] // 2) and s.shape == (*shape[:-1], shape[-1] // 32)
    assert q.is_contiguous() and s.is_contiguous()
    rq, rs = reference.quantize_mxfp4(x)
    assert torch.equal(q.view(torch.uint8), rq) and torch.equal(s.view(torch.uint8), rs)
    y = mxkernels.dequantize_mxfp4(q, s, dtype)
    assert y.shape == x.shape and y.dtype == dtype and y.is_contiguous()
    assert torch.equal(y, reference.dequantize_mxfp4(rq, rs, dtype))


def test_non_contiguous_leading_dims():
    base = rand((6, 5, 4, 64), torch.float32, 1)
    for x in [base.transpose(0, 2), base[:, ::2], base[::3, :, 1:3], base.permute(2, 1, 0, 3)]:
        assert not x.is_contiguous() and x.stride(-1) == 1
        q, s = mxkernels.quantize_mxfp4(x, "even")
        q2, s2 = mxkernels.quantize_mxfp4(x.contiguous(), "even")
        assert torch.equal(q.view(torch.uint8), q2.view(torch.uint8))
        assert torch.equal(s.view(torch.uint8), s2.view(torch.uint8))
        # Non-contiguous codes and scales for dequantize too.
        qq, ss = q.view(torch.uint8).transpose(0, 1), s.view(torch.uint8).transpose(0, 1)
        assert torch.equal(mxkernels.dequantize_mxfp4(qq, ss), mxkernels.dequantize_mxfp4(q, s).transpose(0, 1))


def test_empty_leading_dims():
    for shape in [(0, 64), (3, 0, 32)]:
        x = torch.empty(shape)
        q, s = mxkernels.quantize_mxfp4(x)
        assert q.shape == (*shape[:-1], shape[-1] // 2) and s.shape == (*shape[:-1], shape[-1] // 32)
        assert mxkernels.dequantize_mxfp4(q, s).shape == shape


def test_out_variant_and_uint8_views():
    x = rand((5, 128), torch.bfloat16, 2)
    q = torch.empty(5, 64, dtype=torch.uint8)
    s = torch.empty(5, 4, dtype=torch.uint8)
    mxkernels.quantize_mxfp4(x, "floor", out=(q, s))
    q2, s2 = mxkernels.quantize_mxfp4(x, "floor")
    assert torch.equal(q, q2.view(torch.uint8)) and torch.equal(s, s2.view(torch.uint8))
    assert torch.equal(mxkernels.dequantize_mxfp4(q, s), mxkernels.dequantize_mxfp4(q2, s2))
    q4 = torch.empty(5, 64, dtype=torch.float4_e2m1fn_x2)
    s8 = torch.empty(5, 4, dtype=torch.float8_e8m0fnu)
    ops.quantize_mxfp4_out(x, q4, s8, "floor")
    assert torch.equal(q4.view(torch.uint8), q)


def test_results_do_not_depend_on_thread_count():
    x = rand((300, 4096), torch.bfloat16, 3)
    before = torch.get_num_threads()
    try:
        outs = []
        for n in [1, 2, 3]:
            torch.set_num_threads(n)
            q, s = mxkernels.quantize_mxfp4(x)
            outs.append((q.view(torch.uint8).clone(), s.view(torch.uint8).clone(), mxkernels.dequantize_mxfp4(q, s)))
    finally:
        torch.set_num_threads(before)
    for o in outs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(o, outs[0]))


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("rows", [3, 17])
def test_opcheck(contiguous, rows):
    base = rand((rows, 2, 128), torch.bfloat16, 4)
    x = base if contiguous else base.transpose(0, 1)
    assert x.is_contiguous() == contiguous
    torch.library.opcheck(ops.quantize_mxfp4.default, (x, "even"))
    q, s = ops.quantize_mxfp4(x, "even")
    q_out = torch.empty(q.shape, dtype=torch.uint8)
    s_out = torch.empty(s.shape, dtype=torch.uint8)
    torch.library.opcheck(ops.quantize_mxfp4_out.default, (x, q_out, s_out, "rceil"))
    qd, sd = q.view(torch.uint8), s.view(torch.uint8)
    if not contiguous:
        qd, sd = qd.transpose(0, 1), sd.transpose(0, 1)
    torch.library.opcheck(ops.dequantize_mxfp4.default, (qd, sd, torch.bfloat16))


def test_torch_compile_dynamic_no_recompile():
    torch._dynamo.reset()

    def f(x):
        q, s = mxkernels.quantize_mxfp4(x, "rceil")
        return mxkernels.dequantize_mxfp4(q, s, torch.bfloat16) * 2, s

    compiled = torch.compile(f, dynamic=True, fullgraph=True)
    from torch._dynamo.utils import counters

    counters.clear()
    for rows in [5, 17, 64]:
        x = rand((rows, 256), torch.bfloat16, rows)
        got, got_s = compiled(x)
        want, want_s = f(x)
        assert torch.equal(got, want)
        assert torch.equal(got_s.view(torch.uint8), want_s.view(torch.uint8))
    assert counters["stats"]["unique_graphs"] == 1
    assert counters["aot_autograd"]["total"] == 1


ERROR_CASES = [
    (lambda d: ops.quantize_mxfp4(torch.empty(4, 64, dtype=torch.int32, device=d)),
     "mxkernels.quantize_mxfp4: x must be Float, BFloat16 or Half, got Int"),
    (lambda d: ops.quantize_mxfp4(torch.empty(4, 48, device=d)),
     "mxkernels.quantize_mxfp4: x.size(-1) must be a positive multiple of 32, got 48"),
    (lambda d: ops.quantize_mxfp4(torch.empty(64, 4, device=d).t()),
     "mxkernels.quantize_mxfp4: x.stride(-1) must be 1, got 4"),
    (lambda d: ops.quantize_mxfp4(torch.empty(4, 64, device=d), "nearest"),
     "mxkernels.quantize_mxfp4: scale_mode must be one of 'floor', 'ceil', 'even', 'rceil', got 'nearest'"),
    (lambda d: ops.quantize_mxfp4_out(torch.empty(4, 64, device=d), torch.empty(4, 30, dtype=torch.uint8, device=d),
                                      torch.empty(4, 2, dtype=torch.uint8, device=d), "rceil"),
     "mxkernels.quantize_mxfp4_out: q must have shape [4, 32], got [4, 30]"),
    (lambda d: ops.quantize_mxfp4_out(torch.empty(4, 64, device=d),
                                      torch.empty(32, 4, dtype=torch.uint8, device=d).t(),
                                      torch.empty(4, 2, dtype=torch.uint8, device=d), "rceil"),
     "mxkernels.quantize_mxfp4_out: q must be contiguous, got strides [1, 4]"),
    (lambda d: ops.quantize_mxfp4_out(torch.empty(4, 64, device=d), torch.empty(4, 32, dtype=torch.uint8, device=d),
                                      torch.empty(4, 2, dtype=torch.float32, device=d), "rceil"),
     "mxkernels.quantize_mxfp4_out: scales must be float8_e8m0fnu or uint8 (E8M0 scales), got Float"),
    (lambda d: ops.dequantize_mxfp4(torch.empty(4, 32, dtype=torch.uint8, device=d),
                                    torch.empty(4, 3, dtype=torch.uint8, device=d), torch.float32),
     "mxkernels.dequantize_mxfp4: scales of shape [4, 3] do not match q of shape [4, 32]"),
    (lambda d: ops.dequantize_mxfp4(torch.empty(4, 24, dtype=torch.uint8, device=d),
                                    torch.empty(4, 1, dtype=torch.uint8, device=d), torch.float32),
     "mxkernels.dequantize_mxfp4: q.size(-1) must be a positive multiple of 16 (32 codes per scale), got 24"),
    (lambda d: ops.dequantize_mxfp4(torch.empty(4, 32, dtype=torch.int8, device=d),
                                    torch.empty(4, 2, dtype=torch.uint8, device=d), torch.float32),
     "mxkernels.dequantize_mxfp4: q must be float4_e2m1fn_x2 or uint8 (two E2M1 codes per byte), got Char"),
    (lambda d: ops.dequantize_mxfp4(torch.empty(4, 32, dtype=torch.uint8, device=d),
                                    torch.empty(4, 2, dtype=torch.uint8, device=d), torch.int32),
     "mxkernels.dequantize_mxfp4: dtype must be Float, BFloat16 or Half, got Int"),
]


@pytest.mark.parametrize("case", range(len(ERROR_CASES)))
def test_errors_are_clear_and_identical_on_cpu_and_meta(case):
    assert_same_error_on_cpu_and_meta(*ERROR_CASES[case])


def test_mixed_devices_are_rejected():
    with pytest.raises(RuntimeError, match="all tensors must be on one device"):
        ops.dequantize_mxfp4(torch.empty(4, 32, dtype=torch.uint8),
                             torch.empty(4, 2, dtype=torch.uint8, device="meta"), torch.float32)


def test_cpu_isa_override():
    assert mxkernels.cpu_isa() in mxkernels.supported_cpu_isas()
    with pytest.raises(ValueError, match="CPU level must be one of"):
        mxkernels.set_cpu_isa("sse9")
    info = mxkernels.build_info()
    assert info["torch_version"] == mxkernels.BUILT_WITH_TORCH
    assert set(mxkernels.supported_cpu_isas()) <= set(info["cpu_isas_compiled"])


def test_env_override_picks_the_level(tmp_path):
    import subprocess, sys
    code = "import mxkernels; print(mxkernels.cpu_isa())"
    for isa in mxkernels.supported_cpu_isas():
        out = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "MXKERNELS_CPU_ISA": isa},
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == isa
    bad = subprocess.run([sys.executable, "-c", code + "; import torch; torch.ops.mxkernels.quantize_mxfp4(torch.zeros(1, 32))"],
                         env={**__import__("os").environ, "MXKERNELS_CPU_ISA": "sse9"}, capture_output=True, text=True)
    assert bad.returncode != 0 and "MXKERNELS_CPU_ISA must be one of scalar, avx2, avx512, avx512_bf16, amx; got 'sse9'" in bad.stderr


def test_torch_version_mismatch_is_explained(monkeypatch):
    from mxkernels import _build_info, _loader

    monkeypatch.setattr(_build_info, "TORCH_VERSION", "2.99.0+cpu")
    with pytest.raises(ImportError, match=r"built against torch 2\.99\.0\+cpu but torch .* is imported"):
        _loader.load_ops_library()
