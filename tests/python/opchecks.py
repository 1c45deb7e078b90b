"""Checks shared by the op tests: torch.library.opcheck for ops that take float8 inputs, and error parity between
the real and the Meta kernels.

opcheck:

opcheck's test_schema checks that no input changed with torch.allclose, which torch 2.13 does not implement for
float8 on the CPU. For such ops we run opcheck's other three tests and check the schema's promise ourselves:
every input bitwise unchanged, no output sharing an input's storage."""
import pytest
import torch

FLOAT8 = (torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e8m0fnu, torch.float4_e2m1fn_x2)
OTHER_TESTS = ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def _bytes(t):
    return t.detach().clone().contiguous().view(torch.uint8) if t.element_size() == 1 else t.detach().clone()


def opcheck(op, args, kwargs=None):
    kwargs = kwargs or {}
    tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
    if not any(t.dtype in FLOAT8 for t in tensors):
        torch.library.opcheck(op, args, kwargs)
        return
    torch.library.opcheck(op, args, kwargs, test_utils=OTHER_TESTS)
    before = [_bytes(t) for t in tensors]
    out = op(*args, **kwargs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for t, b in zip(tensors, before):
        assert torch.equal(_bytes(t), b), f"{op} changed an input that its schema does not mark as mutable"
    storages = {t.untyped_storage().data_ptr() for t in tensors if t.numel()}
    for o in outs:
        if isinstance(o, torch.Tensor) and o.numel():
            assert o.untyped_storage().data_ptr() not in storages, f"{op} returned a view of an input"


def assert_same_error_on_cpu_and_meta(call, message):
    """call(device) must raise, on "cpu" and on "meta", the same first line, which starts with message."""
    with pytest.raises(RuntimeError) as cpu:
        call("cpu")
    with pytest.raises(RuntimeError) as meta:
        call("meta")
    first = str(cpu.value).splitlines()[0]
    assert first.startswith(message), first
    assert str(meta.value).splitlines()[0] == first
