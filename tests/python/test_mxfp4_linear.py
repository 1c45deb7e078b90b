"""mxkernels.nn.MXFP4Linear: equal to the ops it runs, the same layer from every checkpoint layout, state_dict round
trips, backend selection and its override, torch.compile without recompiles."""
import pytest
import torch

import mxkernels
from mxkernels.nn import ENV_BACKEND, MXFP4Linear, save_compressed_tensors


def dense(n=48, k=128, bias=True, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(k, n, bias=bias)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
@pytest.mark.parametrize("bias", [True, False])
def test_from_float_equals_the_op(dtype, bias):
    lin = dense(bias=bias)
    layer = MXFP4Linear.from_float(lin, scale_mode="even")
    q, s = mxkernels.quantize_mxfp4(lin.weight.detach(), "even")
    assert torch.equal(layer.weight_packed, q.view(torch.uint8)) and torch.equal(layer.weight_scale, s.view(torch.uint8))
    assert layer.backend_name == "cpu_w4a16" and "backend=cpu_w4a16" in repr(layer)
    x = torch.randn(2, 5, 128).to(dtype)
    want = mxkernels.mxfp4_gemm_w4a16(x, q, s, lin.bias.detach() if bias else None)
    assert torch.equal(layer(x), want)
    # And close to the float layer it came from (MXFP4 keeps ~2 significant bits).
    ref = lin(x.float()).detach()
    assert ((layer(x).float() - ref).pow(2).mean() / ref.pow(2).mean()).sqrt() < 0.25


def gpt_oss_tensors(layer):
    n, half_k = layer.weight_packed.shape
    return layer.weight_packed.reshape(n, half_k // 16, 16), layer.weight_scale


def test_every_checkpoint_layout_gives_the_same_layer(tmp_path):
    pytest.importorskip("safetensors")  # ./run installs it; the device machine may not have it
    layer = MXFP4Linear.from_float(dense())
    x = torch.randn(7, 128, dtype=torch.bfloat16)
    want = layer(x)
    blocks, scales = gpt_oss_tensors(layer)
    layers = [
        MXFP4Linear.from_compressed_tensors(layer.weight_packed, layer.weight_scale, layer.bias),
        MXFP4Linear.from_compressed_tensors(layer.weight_packed.view(torch.float4_e2m1fn_x2),
                                            layer.weight_scale.view(torch.float8_e8m0fnu), layer.bias),
        MXFP4Linear.from_gpt_oss(blocks, scales, layer.bias),
        MXFP4Linear.from_gpt_oss(torch.stack([blocks * 0, blocks]), torch.stack([scales, scales]),
                                 torch.stack([layer.bias * 0, layer.bias]), expert=1),
    ]
    ct_path, oss_path = str(tmp_path / "ct.safetensors"), str(tmp_path / "oss.safetensors")
    save_compressed_tensors(ct_path, {"model.layers.0.mlp.down_proj": layer})
    from safetensors.torch import save_file
    save_file({"block.0.mlp.mlp2_weight_blocks": blocks.contiguous(), "block.0.mlp.mlp2_weight_scales": scales,
               "block.0.mlp.mlp2_weight_bias": layer.bias}, oss_path)
    layers.append(MXFP4Linear.from_safetensors(ct_path, "model.layers.0.mlp.down_proj"))
    layers.append(MXFP4Linear.from_safetensors(oss_path, "block.0.mlp.mlp2_weight"))
    for other in layers:
        assert torch.equal(other(x), want)
        assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), layer.state_dict().values()))
    with pytest.raises(KeyError, match="neither model.nope.weight_packed nor model.nope_blocks"):
        MXFP4Linear.from_safetensors(ct_path, "model.nope")
    with pytest.raises(ValueError, match=r"blocks must be \[N, K/32, 16\]"):
        MXFP4Linear.from_gpt_oss(torch.stack([blocks, blocks]), torch.stack([scales, scales]))


def test_state_dict_round_trip():
    layer = MXFP4Linear.from_float(dense(bias=True))
    sd = layer.state_dict()
    assert set(sd) == {"weight_packed", "weight_scale", "bias"}  # the compressed-tensors names, nothing derived
    empty = MXFP4Linear(128, 48)
    x = torch.randn(3, 128)
    assert not torch.equal(empty(x), layer(x))
    empty.load_state_dict(sd)
    assert torch.equal(empty(x), layer(x))  # the backend re-prepared the loaded weights


def test_backend_priority_override_and_errors(monkeypatch):
    lin = dense()
    x = torch.randn(4, 128, dtype=torch.bfloat16)
    w4a4 = MXFP4Linear.from_float(lin, quantize_activations=True)
    assert w4a4.backend_name == "cpu_w4a4"
    xq, xs = mxkernels.quantize_mxfp4(x)
    assert torch.equal(w4a4(x), mxkernels.mxfp4_gemm(xq, xs, w4a4.weight_packed, w4a4.weight_scale, w4a4.bias, x.dtype))

    monkeypatch.setenv(ENV_BACKEND, "reference")
    ref = MXFP4Linear.from_float(lin)
    assert ref.backend_name == "reference" and "backend=reference" in repr(ref)
    monkeypatch.delenv(ENV_BACKEND)
    fast = MXFP4Linear.from_float(lin)
    torch.testing.assert_close(ref(x), fast(x), rtol=2e-2, atol=2e-2)
    ref_w4a4 = MXFP4Linear.from_float(lin, quantize_activations=True, backend="reference")
    torch.testing.assert_close(ref_w4a4(x), w4a4(x), rtol=2e-2, atol=2e-2)

    monkeypatch.setenv(ENV_BACKEND, "cpu_w4a4")
    with pytest.raises(RuntimeError, match=r"MXFP4 backend 'cpu_w4a4' cannot run MXFP4Linear\(128 -> 48, W4A16, "
                                           r"weights on cpu\): the layer keeps its activations"):
        MXFP4Linear.from_float(lin)
    monkeypatch.setenv(ENV_BACKEND, "cuda_magic")
    with pytest.raises(ValueError,
                       match="unknown MXFP4 backend 'cuda_magic'; known: cuda_w4a16, cuda_w4a16_packed, cpu_w4a16, "
                             "cpu_w4a4, reference"):
        MXFP4Linear.from_float(lin)
    monkeypatch.delenv(ENV_BACKEND)
    # The CUDA backend refuses CPU weights, and says so first where the build has no CUDA kernels.
    why = "weights are on cpu" if mxkernels.has_cuda_kernels() else "built without CUDA kernels"
    for name in ("cuda_w4a16", "cuda_w4a16_packed"):
        with pytest.raises(RuntimeError, match=f"'{name}' cannot run .*: .*{why}"):
            MXFP4Linear.from_float(lin, backend=name)
    with pytest.raises(RuntimeError, match="'cpu_w4a16' cannot run .*W4A4.*: the layer quantizes its activations"):
        MXFP4Linear.from_float(lin, quantize_activations=True, backend="cpu_w4a16")
    with pytest.raises(ValueError, match="in_features must be a positive multiple of 32, got 100"):
        MXFP4Linear(100, 8)


@pytest.mark.parametrize("quantize_activations", [False, True])
def test_torch_compile_no_recompile(quantize_activations):
    torch._dynamo.reset()
    from torch._dynamo.utils import counters
    layer = MXFP4Linear.from_float(dense(n=64, k=256), quantize_activations=quantize_activations)
    compiled = torch.compile(layer, dynamic=True, fullgraph=True)
    counters.clear()
    for m in (3, 64, 257):
        x = torch.randn(m, 256, dtype=torch.bfloat16)
        assert torch.equal(compiled(x), layer(x))
    assert counters["stats"]["unique_graphs"] == 1
