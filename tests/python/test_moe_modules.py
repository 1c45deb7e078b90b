"""mxkernels.nn.MXFP4MoE / FP8MoE: loading gpt-oss tensors, routing + experts against the float64 reference, state_dict
round trips, expert parallel (local experts and the 2-process example), torch.compile."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mxkernels
from mxkernels import reference
from mxkernels.nn import FP8MoE, MXFP4MoE

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from moe_expert_parallel import synthetic_gpt_oss_block  # noqa: E402

H, I, E, K = 128, 96, 8, 2


def block(seed=0):
    return synthetic_gpt_oss_block(H, I, E, seed)


def float64_layer(tensors, x, top_k):
    """Router in float64 on the same bf16 parameters, then reference.fused_moe on the plain MXFP4 tensors."""
    logits = x.double() @ tensors["router.weight"].double().T + tensors["router.bias"].double()
    weights, ids = reference.topk_softmax(logits, top_k, True)
    codes = lambda name: tensors[f"experts.{name}_blocks"].reshape(E, tensors[f"experts.{name}_blocks"].shape[1], -1)
    return reference.fused_moe(x, codes("gate_up_proj"), tensors["experts.gate_up_proj_scales"], codes("down_proj"),
                               tensors["experts.down_proj_scales"], weights, ids, tensors["experts.gate_up_proj_bias"],
                               tensors["experts.down_proj_bias"], "swiglu_oai"), ids


def test_mxfp4_moe_from_safetensors_matches_float64(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file
    tensors = block()
    path = str(tmp_path / "model.safetensors")
    save_file({f"model.layers.3.mlp.{k}": v for k, v in tensors.items()}, path)
    layer = MXFP4MoE.from_safetensors(path, "model.layers.3.mlp.", top_k=K)
    assert (layer.hidden_size, layer.intermediate_size, layer.num_experts, layer.top_k) == (H, I, E, K)
    x = torch.randn(2, 9, H)
    out = layer(x)
    want, ids = float64_layer(tensors, x.reshape(-1, H), K)
    w, i = layer.route(x.reshape(-1, H))
    assert torch.equal(i, ids)  # no near-ties among these logits
    torch.testing.assert_close(out.reshape(-1, H).double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    # The same as the op on the plain (not prepacked) checkpoint tensors, to the bit.
    codes = lambda name: tensors[f"experts.{name}_blocks"].reshape(E, tensors[f"experts.{name}_blocks"].shape[1], -1)
    direct = mxkernels.fused_moe(x.reshape(-1, H), codes("gate_up_proj"), tensors["experts.gate_up_proj_scales"],
                                 codes("down_proj"), tensors["experts.down_proj_scales"], w, i,
                                 w13_bias=tensors["experts.gate_up_proj_bias"], w2_bias=tensors["experts.down_proj_bias"],
                                 activation="swiglu_oai")
    assert torch.equal(out.reshape(-1, H), direct)


def test_state_dict_round_trip_reprepares():
    layer = MXFP4MoE.from_gpt_oss(block(1), top_k=K)
    fresh = MXFP4MoE(H, I, E, K, router_dtype=torch.bfloat16)
    x = torch.randn(5, H, dtype=torch.bfloat16)
    assert not torch.equal(fresh(x), layer(x))
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh(x), layer(x))
    assert set(layer.state_dict()) == {f"router.{n}" for n in ("weight", "bias")} | {
        f"experts.{p}_{n}" for p in ("gate_up_proj", "down_proj") for n in ("blocks", "scales", "bias")}


def test_local_experts_add_up_to_the_whole_layer():
    tensors = block(2)
    full = MXFP4MoE.from_gpt_oss(tensors, top_k=K)
    halves = [MXFP4MoE.from_gpt_oss(tensors, top_k=K, local_experts=ids) for ids in ([0, 2, 4, 6], [7, 5, 3, 1])]
    assert halves[1].expert_map.tolist() == [-1, 3, -1, 2, -1, 1, -1, 0]
    x = torch.randn(11, H)
    torch.testing.assert_close(halves[0](x) + halves[1](x), full(x), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("fmt", ["mxfp4", "fp8"])
def test_expert_parallel_example_two_processes(fmt):
    pytest.importorskip("safetensors")
    example = Path(__file__).resolve().parents[2] / "examples" / "moe_expert_parallel.py"
    port = "29531" if fmt == "mxfp4" else "29532"
    res = subprocess.run([sys.executable, str(example), "--tokens", "7", "--hidden", "128", "--intermediate", "64",
                          "--experts", "8", "--top-k", "2", "--format", fmt, "--port", port],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("match")


def test_fp8_moe_from_float_and_from_gpt_oss():
    tensors = block(3)
    mx = MXFP4MoE.from_gpt_oss(tensors, top_k=K)
    fp8 = FP8MoE.from_gpt_oss(tensors, top_k=K)
    x = torch.randn(6, H)
    # The FP8 layer against the float64 reference on its own (quantized) buffers.
    weights, ids = fp8.route(x)
    ex = fp8.experts
    want = reference.fused_moe(x, ex.gate_up_proj, ex.gate_up_proj_scale, ex.down_proj, ex.down_proj_scale, weights,
                               ids, ex.gate_up_proj_bias, ex.down_proj_bias, "swiglu_oai")
    out = fp8(x)
    torch.testing.assert_close(out.double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    # Requantizing MXFP4 to FP8 blocks costs a few percent at most here.
    ref = mx(x)
    assert ((out - ref).norm() / ref.norm()).item() < 0.1
    # from_float on the same dense weights gives the same layer.
    dense = lambda n: reference.dequantize_mxfp4(tensors[f"experts.{n}_blocks"].reshape(E, -1, tensors[
        f"experts.{n}_blocks"].shape[2] * 16), tensors[f"experts.{n}_scales"])
    router = torch.nn.Linear(H, E, dtype=torch.bfloat16)
    with torch.no_grad():
        router.weight.copy_(tensors["router.weight"])
        router.bias.copy_(tensors["router.bias"])
    again = FP8MoE.from_float(router, dense("gate_up_proj"), dense("down_proj"), tensors["experts.gate_up_proj_bias"],
                              tensors["experts.down_proj_bias"], top_k=K)
    assert torch.equal(again(x), out)


def test_torch_compile_dynamic_no_recompile():
    torch._dynamo.reset()
    from torch._dynamo.utils import counters
    for layer in (MXFP4MoE.from_gpt_oss(block(4), top_k=K), FP8MoE.from_gpt_oss(block(4), top_k=K)):
        compiled = torch.compile(layer, dynamic=True, fullgraph=True)
        counters.clear()
        for tokens in (3, 17, 40):
            x = torch.randn(tokens, H, dtype=torch.bfloat16)
            assert torch.equal(compiled(x), layer(x))
        assert counters["stats"]["unique_graphs"] == 1


def test_construction_errors():
    with pytest.raises(ValueError, match="hidden_size and intermediate_size must be positive multiples of 32, got 100"):
        MXFP4MoE(100, 64, 4, 2)
    with pytest.raises(ValueError, match=r"top_k must be in \[1, num_experts = 4\], got 5"):
        FP8MoE(64, 64, 4, 5)
    with pytest.raises(ValueError, match=r"local_experts must be distinct ids in \[0, 4\), got \[1, 1\]"):
        MXFP4MoE(64, 64, 4, 2, local_experts=[1, 1])
    with pytest.raises(ValueError, match="the checkpoint has experts.gate_up_proj_bias, the layer was built without"):
        MXFP4MoE.from_gpt_oss(block(), top_k=K, bias=False)
