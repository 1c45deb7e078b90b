"""Inputs for the MXFP4 tests: random values over many binades and the edge-case blocks (docs/formats.md)."""
import math

import numpy as np
import torch

F32 = np.float32


def random_values(n_blocks: int, seed: int, min_exp: int = -140, max_exp: int = 126) -> torch.Tensor:
    """[n_blocks * 32] float32: per-block exponents over [min_exp, max_exp], up to 2^12 spread inside a block,
    random signs, some zeros and fp32 subnormals."""
    g = torch.Generator().manual_seed(seed)
    e = torch.randint(min_exp, max_exp, (n_blocks, 1), generator=g) - torch.randint(0, 13, (n_blocks, 32), generator=g)
    m = 1 + torch.rand(n_blocks, 32, generator=g, dtype=torch.float64)
    x = m * torch.exp2(e.to(torch.float64))
    coin = torch.randint(0, 64, (n_blocks, 32), generator=g)
    x = torch.where(coin == 0, 0.0, x)
    x = torch.where(coin == 1, m * 2.0 ** -149 * torch.randint(1, 4096, (n_blocks, 32), generator=g), x)
    x = torch.where(coin % 4 >= 2, -x, x)
    return x.to(torch.float32).reshape(-1)


def edge_blocks() -> torch.Tensor:
    """[n * 32] float32 edge cases. The first value of each block pins the scale (6, 4, 7, 5 or 3 times 2^k and
    the floats next to them); the others are the seven E2M1 rounding ties at that scale and their neighbours,
    grid values, ±0, subnormals, the largest float, and (in the last blocks) NaN and infinities."""
    up = lambda v: np.nextafter(F32(v), F32(np.inf))
    down = lambda v: np.nextafter(F32(v), F32(-np.inf))
    ties = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]
    grid = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    blocks = []
    big = float(np.finfo(F32).max)

    def block(vals):
        vals = list(vals)[:32]
        blocks.append(vals + [0.0] * (32 - len(vals)))

    for k in [-149, -140, -130, -128, -127, -126, -125, -120, -64, -10, -4, -3, -1, 0, 1, 2, 3, 4, 5, 8, 20, 64,
              100, 120, 124, 125, 126, 127]:
        for top in [4.0, 6.0, 7.0, 5.0, 3.0]:
            m = F32(math.ldexp(top, k)) if -149 <= k + 3 and math.ldexp(top, k) < 3.4e38 else None
            if m is None or m == 0 or not np.isfinite(m):
                continue
            for mx in [m, up(m), down(m)]:
                for sign in [1, -1]:
                    vals = [sign * float(mx)]
                    for t in ties:
                        if math.ldexp(t, k) < big:  # 5 * 2^127 and the like would be infinities
                            s = F32(math.ldexp(t, k))
                            vals += [float(s), -float(up(s)), float(down(s))]
                    vals += [float(F32(math.ldexp(g, k))) for g in grid if math.ldexp(g, k) < big]
                    vals += [-0.0, 0.0]
                    block(vals)
    tiny = float(np.finfo(F32).tiny)
    sub = float(np.finfo(F32).smallest_subnormal)
    block([0.0])
    block([-0.0, -0.0, 0.0])
    block([sub, -sub])
    block([tiny, float(down(tiny)), 1e-40, -3e-39])
    block([6 * 2.0 ** -127, 3 * 2.0 ** -127, 2.0 ** -128])
    block([big, -big, 1.0, 1e30])
    block([float(down(big)), 1.75 * 2.0 ** 127, 1.5 * 2.0 ** 127])
    for mant in [1.0, 1.25, 1.5, 1.74, 1.75, 1.76, 1.99]:
        for e in [-126, -20, 0, 1, 2, 3, 30, 126]:
            block([mant * 2.0 ** e, mant * 2.0 ** (e - 3)])
    nan, inf = float("nan"), float("inf")
    block([nan])
    block([1.0, 2.0, nan, -3.0])
    block([inf, 1.0])
    block([-inf, 0.5, 6.0])
    block([inf, -inf, nan])
    block([-nan, big])
    return torch.tensor(blocks, dtype=torch.float32).reshape(-1)
