"""Expert parallel MoE over 2 processes (torch.distributed, gloo): each process loads half of a gpt-oss-style MoE
layer's experts from one safetensors file (MXFP4MoE.from_safetensors(..., local_experts=...)), runs every token
through the router and its own experts (slots routed to the other process's experts add zero, via expert_map), and
the outputs are all-reduced. Rank 0 checks the result against the single-process layer holding all experts.

    python examples/moe_expert_parallel.py [--tokens 16] [--hidden 512] [--intermediate 512] [--experts 32] [--top-k 4]

Prints the largest difference; exits 1 if it exceeds the float32 summation bound. --format fp8 runs FP8MoE.
"""
import argparse
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mxkernels
from mxkernels.nn import FP8MoE, MXFP4MoE


def synthetic_gpt_oss_block(h, inter, experts, seed=0):
    """One MoE block's tensors, gpt-oss names: random codes, E8M0 scales that keep activations near the swiglu limit."""
    g = torch.Generator().manual_seed(seed)
    e_gate = 127 - 4 - (h.bit_length() - 9) // 2
    e_down = 127 - 4 - (inter.bit_length() - 9) // 2
    return {
        "router.weight": (torch.randn(experts, h, generator=g) / h ** 0.5).to(torch.bfloat16),
        "router.bias": torch.randn(experts, generator=g).to(torch.bfloat16),
        "experts.gate_up_proj_blocks": torch.randint(0, 256, (experts, 2 * inter, h // 32, 16), generator=g,
                                                     dtype=torch.uint8),
        "experts.gate_up_proj_scales": torch.randint(e_gate - 1, e_gate + 2, (experts, 2 * inter, h // 32),
                                                     generator=g, dtype=torch.uint8),
        "experts.gate_up_proj_bias": torch.randn(experts, 2 * inter, generator=g).to(torch.bfloat16),
        "experts.down_proj_blocks": torch.randint(0, 256, (experts, h, inter // 32, 16), generator=g, dtype=torch.uint8),
        "experts.down_proj_scales": torch.randint(e_down - 1, e_down + 2, (experts, h, inter // 32), generator=g,
                                                  dtype=torch.uint8),
        "experts.down_proj_bias": torch.randn(experts, h, generator=g).to(torch.bfloat16),
    }


def layer_class(fmt):
    return MXFP4MoE if fmt == "mxfp4" else FP8MoE


def worker(rank, world, args, path, x, result_path):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(args.port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    share = args.experts // world
    local = list(range(rank * share, (rank + 1) * share)) if rank + 1 < world else list(range(rank * share, args.experts))
    layer = layer_class(args.format).from_safetensors(path, "model.layers.0.mlp.", top_k=args.top_k,
                                                      local_experts=local)
    out = layer(x)
    dist.all_reduce(out)
    if rank == 0:
        torch.save(out, result_path)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--intermediate", type=int, default=512)
    p.add_argument("--experts", type=int, default=32)
    p.add_argument("--top-k", type=int, default=4)
    p.add_argument("--format", choices=["mxfp4", "fp8"], default="mxfp4")
    p.add_argument("--port", type=int, default=29517)
    args = p.parse_args()
    from safetensors.torch import save_file
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "moe.safetensors")
        block = synthetic_gpt_oss_block(args.hidden, args.intermediate, args.experts)
        save_file({f"model.layers.0.mlp.{k}": v for k, v in block.items()}, path)
        # float32 hidden: the two partial sums and their all-reduce then differ from one process's sum only by
        # float32 rounding.
        x = torch.randn(args.tokens, args.hidden, generator=torch.Generator().manual_seed(1))
        full = layer_class(args.format).from_safetensors(path, "model.layers.0.mlp.", top_k=args.top_k)
        want = full(x)
        result_path = os.path.join(tmp, "out.pt")
        mp.spawn(worker, args=(2, args, path, x, result_path), nprocs=2, join=True)
        got = torch.load(result_path)
        # Each output is a float32 sum of k terms w_j y_j; regrouping it into two partial sums and their sum changes
        # it by at most (k + 1) 2^-24 sum_j |w_j y_j| (each term computed alone, one slot at a time).
        weights, ids = full.route(x)
        terms = sum(full.experts_forward(x, weights[:, j:j + 1], ids[:, j:j + 1]).abs() for j in range(args.top_k))
        bound = (args.top_k + 1) * 2.0 ** -24 * terms
    diff = (got - want).abs()
    print(f"{args.format} MoE, {args.experts} experts split over 2 processes (gloo), {args.tokens} tokens, "
          f"H={args.hidden} I={args.intermediate} top-{args.top_k}: max |expert parallel - single process| = "
          f"{diff.max().item():.3g} (float32 regrouping bound there {bound.reshape(-1)[diff.argmax()].item():.3g}, "
          f"outputs up to {want.abs().max().item():.3g})")
    ok = bool((diff <= bound).all())
    if not ok:
        print("MISMATCH")
        sys.exit(1)
    print("match")


if __name__ == "__main__":
    main()
