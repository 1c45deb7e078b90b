"""MXFP4 linear layers with kernel selection.

:class:`MXFP4Linear` holds a linear layer's weight as MXFP4 (``weight_packed`` uint8 ``[N, K/2]``, two E2M1 codes per
byte, element 2i in the low nibble; ``weight_scale`` uint8 ``[N, K/32]``, E8M0), the compressed-tensors layout, so
its ``state_dict`` is a checkpoint in that format. A backend runs it. Each backend says whether it is supported on this
machine and whether it can run a given layer, and transforms the weights once after loading; the layer takes the
first backend that fits, in this priority order:

1. ``cuda_w4a16``: ``mxfp4_gemm_w4a16``'s CUDA kernels (tensor cores, codes decoded in registers) on the plain
   weights, for a layer on a CUDA device; needs a build with ``MXKERNELS_CUDA=ON`` against a CUDA build of torch.
2. ``cuda_w4a16_packed``: the same kernels on a ``prepack_mxfp4_weight_cuda`` copy of the weights (out_features a
   multiple of 16), with the same results bit for bit. Faster (on an H100 about 10% at 1 or 2 rows, 3-5% up to 16
   and at 128, bench/RESULTS.md), but the layer then holds its weights twice on the GPU (the plain ones stay, as
   the ``state_dict``), so it runs only where asked for by name (build the layer on the device, e.g. under
   ``with torch.device("cuda"):``, since a forced backend is checked as the layer is built).
3. ``cpu_w4a16``: ``mxfp4_gemm_w4a16`` on prepacked weights; activations stay in their precision.
4. ``cpu_w4a4``: activations quantized to MXFP4 on the fly (``quantize_mxfp4``), then ``mxfp4_gemm`` on the integer
   dot-product units. Only for layers built with ``quantize_activations=True``: it changes the layer's numerics.
5. ``reference``: pure PyTorch, dequantize then ``torch.nn.functional.linear``.

A backend whose ``automatic`` is False is skipped unless named. ``MXKERNELS_MXFP4_BACKEND=<name>`` (or
``backend=<name>``) forces one; if it cannot run the layer, building the layer
fails with the reasons. ``layer.backend_name`` and ``repr(layer)`` show the choice. Moving the layer (``.to``,
``.cuda()``) picks the backend again.
"""
import os
from typing import Dict, List, Optional, Tuple

import torch

from . import _build_info, ops, reference

ENV_BACKEND = "MXKERNELS_MXFP4_BACKEND"


class MXFP4Backend:
    """A way to run an :class:`MXFP4Linear`. Subclasses set ``name`` and override the methods below."""

    name = ""
    #: Whether the layer may pick it without being asked (else only by name).
    automatic = True

    def unsupported_reason(self) -> Optional[str]:
        """Why this backend cannot run on this machine, or None."""
        return None

    def cannot_run_reason(self, layer: "MXFP4Linear") -> Optional[str]:
        """Why this backend cannot run this layer, or None."""
        return None

    def prepare(self, layer: "MXFP4Linear") -> None:
        """Transforms the layer's weights once, after they are loaded."""

    def forward(self, layer: "MXFP4Linear", x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _cpu_reason(layer: "MXFP4Linear") -> Optional[str]:
    if layer.weight_packed.device.type != "cpu":
        return f"the weights are on {layer.weight_packed.device}, the kernels on the CPU"
    return None


class CudaW4A16(MXFP4Backend):
    name = "cuda_w4a16"

    def unsupported_reason(self):
        if not _build_info.CUDA:
            return "mxkernels was built without CUDA kernels (build with MXKERNELS_CUDA=ON against a CUDA torch)"
        return None

    def cannot_run_reason(self, layer):
        if layer.weight_packed.device.type != "cuda":
            return f"the weights are on {layer.weight_packed.device}, the kernels on CUDA"
        if layer.quantize_activations:
            return "the layer quantizes its activations (quantize_activations=True); this backend keeps them"
        return None

    def prepare(self, layer):
        layer._prepacked = None

    def forward(self, layer, x):
        return ops.mxfp4_gemm_w4a16(x, layer.weight_packed, layer.weight_scale, layer.bias)


class CudaW4A16Packed(CudaW4A16):
    name = "cuda_w4a16_packed"
    automatic = False  # a second copy of the weights on the GPU

    def cannot_run_reason(self, layer):
        why = super().cannot_run_reason(layer)
        if why is None and layer.out_features % 16:
            why = f"out_features must be a multiple of 16 for the CUDA weight layout, got {layer.out_features}"
        return why

    def prepare(self, layer):
        layer._prepacked = ops.prepack_mxfp4_weight_cuda(layer.weight_packed, layer.weight_scale)

    def forward(self, layer, x):
        return ops.mxfp4_gemm_w4a16(x, layer._prepacked, None, layer.bias)


class CpuW4A16(MXFP4Backend):
    name = "cpu_w4a16"

    def cannot_run_reason(self, layer):
        if layer.quantize_activations:
            return "the layer quantizes its activations (quantize_activations=True); this backend keeps them"
        return _cpu_reason(layer)

    def prepare(self, layer):
        layer._prepacked = ops.prepack_mxfp4_weight(layer.weight_packed, layer.weight_scale)

    def forward(self, layer, x):
        return ops.mxfp4_gemm_w4a16(x, layer._prepacked, None, layer.bias)


class CpuW4A4(MXFP4Backend):
    name = "cpu_w4a4"

    def cannot_run_reason(self, layer):
        if not layer.quantize_activations:
            return "the layer keeps its activations (quantize_activations=False); this backend quantizes them to MXFP4"
        return _cpu_reason(layer)

    def prepare(self, layer):
        layer._prepacked = ops.prepack_mxfp4_weight(layer.weight_packed, layer.weight_scale)

    def forward(self, layer, x):
        x_q, x_scales = ops.quantize_mxfp4(x, layer.activation_scale_mode)
        return ops.mxfp4_gemm(x_q, x_scales, layer._prepacked, None, layer.bias, x.dtype)


class Reference(MXFP4Backend):
    name = "reference"

    def prepare(self, layer):
        layer._prepacked = None

    def forward(self, layer, x):
        if layer.quantize_activations:
            x = reference.dequantize_mxfp4(*reference.quantize_mxfp4(x, layer.activation_scale_mode), x.dtype)
        w = reference.dequantize_mxfp4(layer.weight_packed, layer.weight_scale, x.dtype)
        return torch.nn.functional.linear(x, w, None if layer.bias is None else layer.bias.to(x.dtype))


#: The backends in priority order.
BACKENDS: List[MXFP4Backend] = [CudaW4A16(), CudaW4A16Packed(), CpuW4A16(), CpuW4A4(), Reference()]


def backend_reasons(layer: "MXFP4Linear") -> Dict[str, Optional[str]]:
    """For each backend, why it cannot run this layer here (None: it can)."""
    return {b.name: b.unsupported_reason() or b.cannot_run_reason(layer) for b in BACKENDS}


def select_backend(layer: "MXFP4Linear", requested: Optional[str] = None) -> MXFP4Backend:
    requested = requested or os.environ.get(ENV_BACKEND) or None
    reasons = backend_reasons(layer)
    if requested is not None:
        by_name = {b.name: b for b in BACKENDS}
        if requested not in by_name:
            raise ValueError(f"unknown MXFP4 backend '{requested}'; known: {', '.join(by_name)}")
        if reasons[requested] is not None:
            raise RuntimeError(f"MXFP4 backend '{requested}' cannot run {layer.describe()}: {reasons[requested]}")
        return by_name[requested]
    for b in BACKENDS:
        if b.automatic and reasons[b.name] is None:
            return b
    raise RuntimeError(f"no MXFP4 backend can run {layer.describe()}: " +
                       "; ".join(f"{name}: {why}" for name, why in reasons.items()))


class MXFP4Linear(torch.nn.Module):
    """``y = x @ W.T + b`` with W held as MXFP4. Build it with :meth:`from_float`, :meth:`from_compressed_tensors`,
    :meth:`from_gpt_oss` or :meth:`from_safetensors` (or construct empty and ``load_state_dict``).

    Args:
        in_features: K, a positive multiple of 32. out_features: N.
        bias: whether the layer has a bias (float32 ``[N]``).
        quantize_activations: quantize the activations to MXFP4 too (W4A4), with ``activation_scale_mode``.
        backend: a backend name to force (else ``$MXKERNELS_MXFP4_BACKEND``, else the first that fits).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, quantize_activations: bool = False,
                 activation_scale_mode: str = "rceil", backend: Optional[str] = None):
        super().__init__()
        if in_features <= 0 or in_features % 32:
            raise ValueError(f"MXFP4Linear: in_features must be a positive multiple of 32, got {in_features}")
        self.in_features, self.out_features = in_features, out_features
        self.quantize_activations = quantize_activations
        self.activation_scale_mode = activation_scale_mode
        self._requested_backend = backend
        self.register_buffer("weight_packed", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("weight_scale", torch.full((out_features, in_features // 32), 127, dtype=torch.uint8))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self.register_buffer("_prepacked", None, persistent=False)
        self.register_load_state_dict_post_hook(lambda module, keys: module.prepare())
        self.prepare()

    # --- construction -----------------------------------------------------------------------------------------

    @classmethod
    def from_float(cls, linear: torch.nn.Linear, scale_mode: str = "rceil", **kwargs) -> "MXFP4Linear":
        """Quantizes an ``nn.Linear``'s weight with :func:`mxkernels.quantize_mxfp4` (``scale_mode``)."""
        q, s = ops.quantize_mxfp4(linear.weight.detach(), scale_mode)
        return cls.from_compressed_tensors(q, s, linear.bias.detach() if linear.bias is not None else None, **kwargs)

    @classmethod
    def from_compressed_tensors(cls, weight_packed: torch.Tensor, weight_scale: torch.Tensor,
                                bias: Optional[torch.Tensor] = None, **kwargs) -> "MXFP4Linear":
        """From compressed-tensors MXFP4 tensors: ``weight_packed`` uint8 ``[N, K/2]`` (or float4_e2m1fn_x2),
        ``weight_scale`` uint8 ``[N, K/32]`` (or float8_e8m0fnu), optional ``bias`` ``[N]``."""
        weight_packed, weight_scale = weight_packed.view(torch.uint8), weight_scale.view(torch.uint8)
        if weight_packed.dim() != 2 or weight_scale.shape != (weight_packed.shape[0], weight_packed.shape[1] // 16):
            raise ValueError(f"MXFP4Linear: weight_packed must be [N, K/2] and weight_scale [N, K/32], got "
                             f"{list(weight_packed.shape)} and {list(weight_scale.shape)}")
        n, k = weight_packed.shape[0], weight_packed.shape[1] * 2
        layer = cls(k, n, bias=bias is not None, **kwargs)
        with torch.no_grad():
            layer.weight_packed.copy_(weight_packed)
            layer.weight_scale.copy_(weight_scale)
            if bias is not None:
                layer.bias.copy_(bias.reshape(-1))
        layer.prepare()
        return layer

    @classmethod
    def from_gpt_oss(cls, blocks: torch.Tensor, scales: torch.Tensor, bias: Optional[torch.Tensor] = None,
                     expert: Optional[int] = None, **kwargs) -> "MXFP4Linear":
        """From gpt-oss style ``*_blocks`` uint8 ``[..., N, K/32, 16]`` and ``*_scales`` uint8 ``[..., N, K/32]``
        (the same nibble order and E8M0 bias as compressed-tensors); ``expert`` picks one of a leading expert dim."""
        if expert is not None:
            blocks, scales = blocks[expert], scales[expert]
            bias = bias[expert] if bias is not None else None
        if blocks.dim() != 3 or blocks.shape[-1] != 16:
            raise ValueError(f"MXFP4Linear.from_gpt_oss: blocks must be [N, K/32, 16] (pass expert= for a leading "
                             f"expert dim), got {list(blocks.shape)}")
        return cls.from_compressed_tensors(blocks.reshape(blocks.shape[0], -1), scales, bias, **kwargs)

    @classmethod
    def from_safetensors(cls, path: str, prefix: str, expert: Optional[int] = None, **kwargs) -> "MXFP4Linear":
        """Loads ``{prefix}.weight_packed`` / ``.weight_scale`` / ``.bias`` (compressed-tensors) or ``{prefix}_blocks``
        / ``_scales`` / ``_bias`` (gpt-oss) from a safetensors file."""
        from safetensors import safe_open
        with safe_open(path, framework="pt") as f:
            keys = set(f.keys())

            def get(name):
                return f.get_tensor(name) if name in keys else None

            if f"{prefix}.weight_packed" in keys:
                return cls.from_compressed_tensors(get(f"{prefix}.weight_packed"), get(f"{prefix}.weight_scale"),
                                                   get(f"{prefix}.bias"), **kwargs)
            if f"{prefix}_blocks" in keys:
                return cls.from_gpt_oss(get(f"{prefix}_blocks"), get(f"{prefix}_scales"), get(f"{prefix}_bias"),
                                        expert=expert, **kwargs)
        raise KeyError(f"MXFP4Linear.from_safetensors: neither {prefix}.weight_packed nor {prefix}_blocks in {path}")

    # --- running ----------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Picks the backend and lets it transform the weights (again after a load_state_dict)."""
        self._backend = select_backend(self, self._requested_backend)
        self._backend.prepare(self)

    def _apply(self, fn, *args, **kwargs):
        # After a move (.to, .cuda, .cpu) the weights may sit where another backend runs.
        module = super()._apply(fn, *args, **kwargs)
        self.prepare()
        return module

    @property
    def backend_name(self) -> str:
        return self._backend.name

    def describe(self) -> str:
        return (f"MXFP4Linear({self.in_features} -> {self.out_features}, "
                f"{'W4A4' if self.quantize_activations else 'W4A16'}, weights on {self.weight_packed.device})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._backend.forward(self, x)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"quantize_activations={self.quantize_activations}, backend={self.backend_name}")


def save_compressed_tensors(path: str, layers: Dict[str, MXFP4Linear]) -> None:
    """Writes layers to a safetensors file under ``{prefix}.weight_packed`` / ``.weight_scale`` / ``.bias``."""
    from safetensors.torch import save_file
    tensors = {}
    for prefix, layer in layers.items():
        tensors.update({f"{prefix}.{k}": v.contiguous() for k, v in layer.state_dict().items()})
    save_file(tensors, path)


# --- mixture of experts ----------------------------------------------------------------------------------------


class _MoE(torch.nn.Module):
    """The parts :class:`MXFP4MoE` and :class:`FP8MoE` share: a router (``router``, ``nn.Linear(H, E_global)`` with
    bias, as gpt-oss has it), top-k routing with a softmax over the selected logits, and the fused experts
    (``experts``, a module of buffers named as in the checkpoints) for the local experts."""

    def __init__(self, hidden_size: int, intermediate_size: int, num_experts: int, top_k: int, *,
                 local_experts: Optional[List[int]] = None, activation: str = "swiglu_oai",
                 swiglu_alpha: float = 1.702, swiglu_limit: float = 7.0, bias: bool = True,
                 router_dtype: torch.dtype = torch.float32):
        super().__init__()
        if hidden_size <= 0 or hidden_size % 32 or intermediate_size <= 0 or intermediate_size % 32:
            raise ValueError(f"{type(self).__name__}: hidden_size and intermediate_size must be positive multiples "
                             f"of 32, got {hidden_size} and {intermediate_size}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"{type(self).__name__}: top_k must be in [1, num_experts = {num_experts}], got {top_k}")
        self.hidden_size, self.intermediate_size = hidden_size, intermediate_size
        self.num_experts, self.top_k = num_experts, top_k
        self.activation, self.swiglu_alpha, self.swiglu_limit = activation, swiglu_alpha, swiglu_limit
        self.local_experts = list(range(num_experts)) if local_experts is None else [int(e) for e in local_experts]
        if not self.local_experts or len(set(self.local_experts)) != len(self.local_experts) or not all(
                0 <= e < num_experts for e in self.local_experts):
            raise ValueError(f"{type(self).__name__}: local_experts must be distinct ids in [0, {num_experts}), got "
                             f"{self.local_experts}")
        self.router = torch.nn.Linear(hidden_size, num_experts, bias=True, dtype=router_dtype).requires_grad_(False)
        self.experts = torch.nn.Module()
        self.has_bias = bias
        if len(self.local_experts) == num_experts and self.local_experts == sorted(self.local_experts):
            self.register_buffer("expert_map", None)
        else:
            expert_map = torch.full((num_experts,), -1, dtype=torch.int32)
            expert_map[torch.tensor(self.local_experts)] = torch.arange(len(self.local_experts), dtype=torch.int32)
            self.register_buffer("expert_map", expert_map)
        self._init_experts(self._expert_specs(hidden_size, intermediate_size))

    def _init_experts(self, names_shapes_dtypes) -> None:
        """Registers the experts' buffers (the subclass's ``_expert_specs``: ``(name, shape without E, dtype[,
        fill])``), then the prepacked weights, which
        are built now and again after every load_state_dict."""
        e = len(self.local_experts)
        for name, shape, dtype, *fill in names_shapes_dtypes:
            if name.endswith("_bias") and not self.has_bias:
                self.experts.register_buffer(name, None)
            else:
                self.experts.register_buffer(name, torch.full((e, *shape), fill[0] if fill else 0, dtype=dtype))
        self.register_buffer("_w13", None, persistent=False)
        self.register_buffer("_w2", None, persistent=False)
        self.register_load_state_dict_post_hook(lambda module, keys: module.prepare())
        self.prepare()

    def _load(self, tensors: Dict[str, torch.Tensor]) -> None:
        """Copies router.* and experts.* tensors holding all num_experts experts (the local ones are picked)."""
        local = torch.tensor(self.local_experts)
        with torch.no_grad():
            for name, t in tensors.items():
                if t is None:
                    continue
                if name.startswith("router."):
                    getattr(self.router, name[len("router."):]).copy_(t)
                else:
                    buf = getattr(self.experts, name[len("experts."):])
                    if buf is None:
                        raise ValueError(f"{type(self).__name__}: the checkpoint has {name}, the layer was built "
                                         f"without biases")
                    buf.copy_(t.reshape(t.shape[0], *buf.shape[1:])[local])
        self.prepare()

    def route(self, x: torch.Tensor):
        """``(topk_weights float32 [T, k], topk_ids int32 [T, k])``: the router in x's dtype, then a softmax over the
        top-k logits (gpt-oss routing)."""
        logits = torch.nn.functional.linear(x, self.router.weight.to(x.dtype), self.router.bias.to(x.dtype))
        return ops.topk_softmax(logits, self.top_k, True)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[..., H] -> [..., H]``: route, then the local experts' weighted sum (tokens routed to experts held by
        other processes get their share from those; all-reduce the outputs)."""
        x = hidden.reshape(-1, self.hidden_size)
        return self.experts_forward(x, *self.route(x)).reshape(hidden.shape)

    def experts_forward(self, x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor) -> torch.Tensor:
        """The local experts' part for given routing: ``[T, H]``, with ``topk_weights [T, k]``, ``topk_ids [T, k]``."""
        w13, s13, w2, s2 = self._expert_weights()
        return ops.fused_moe(x, w13, s13, w2, s2, topk_weights, topk_ids, w13_bias=self.experts.gate_up_proj_bias,
                             w2_bias=self.experts.down_proj_bias, activation=self.activation,
                             swiglu_alpha=self.swiglu_alpha, swiglu_limit=self.swiglu_limit,
                             expert_map=self.expert_map)

    def extra_repr(self) -> str:
        return (f"hidden_size={self.hidden_size}, intermediate_size={self.intermediate_size}, "
                f"experts={len(self.local_experts)} of {self.num_experts}, top_k={self.top_k}, "
                f"activation={self.activation}")


class MXFP4MoE(_MoE):
    """A mixture-of-experts layer with MXFP4 experts, laid out as gpt-oss checkpoints store them: ``router.weight``
    ``[E, H]``, ``router.bias`` ``[E]``, ``experts.gate_up_proj_blocks`` uint8 ``[E, 2I, H/32, 16]`` (gate and up rows
    interleaved for ``swiglu_oai``), ``experts.gate_up_proj_scales`` uint8 ``[E, 2I, H/32]``,
    ``experts.gate_up_proj_bias`` ``[E, 2I]``, ``experts.down_proj_blocks`` ``[E, H, I/32, 16]``,
    ``experts.down_proj_scales`` ``[E, H, I/32]``, ``experts.down_proj_bias`` ``[E, H]``. The experts run in
    :func:`mxkernels.fused_moe` on weights prepacked once after loading.

    Args:
        hidden_size (H), intermediate_size (I): multiples of 32. num_experts (E), top_k.
        local_experts: the global ids of the experts this process holds (expert parallel), default all.
        activation, swiglu_alpha, swiglu_limit: as in :func:`mxkernels.fused_moe` (gpt-oss: ``swiglu_oai``).
        bias: whether the experts have biases. router_dtype: the router's parameter dtype.
    """

    @staticmethod
    def _expert_specs(h: int, i: int):
        return [
            ("gate_up_proj_blocks", (2 * i, h // 32, 16), torch.uint8),
            ("gate_up_proj_scales", (2 * i, h // 32), torch.uint8),
            ("gate_up_proj_bias", (2 * i,), torch.float32),
            ("down_proj_blocks", (h, i // 32, 16), torch.uint8),
            ("down_proj_scales", (h, i // 32), torch.uint8),
            ("down_proj_bias", (h,), torch.float32),
        ]

    def prepare(self) -> None:
        """Prepacks the experts' weights (again after a load_state_dict)."""
        ex = self.experts

        def packed(blocks, scales):
            codes = blocks.reshape(blocks.shape[0], blocks.shape[1], -1)
            return torch.stack([ops.prepack_mxfp4_weight(codes[e], scales[e]) for e in range(codes.shape[0])])

        self._w13 = packed(ex.gate_up_proj_blocks, ex.gate_up_proj_scales)
        self._w2 = packed(ex.down_proj_blocks, ex.down_proj_scales)

    def _expert_weights(self):
        return self._w13, None, self._w2, None

    @classmethod
    def from_gpt_oss(cls, tensors: Dict[str, torch.Tensor], top_k: int = 4, **kwargs) -> "MXFP4MoE":
        """From one gpt-oss MoE block's tensors, named without the layer prefix (``router.weight``,
        ``experts.gate_up_proj_blocks``, ...). Sizes are taken from the tensors."""
        blocks = tensors["experts.gate_up_proj_blocks"]
        e, two_i, h = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
        kwargs.setdefault("bias", "experts.gate_up_proj_bias" in tensors)
        kwargs.setdefault("router_dtype", tensors["router.weight"].dtype)
        layer = cls(h, two_i // 2, e, top_k, **kwargs)
        layer._load(tensors)
        return layer

    @classmethod
    def from_safetensors(cls, path: str, prefix: str = "", top_k: int = 4, **kwargs) -> "MXFP4MoE":
        """Loads ``{prefix}router.*`` and ``{prefix}experts.*`` (gpt-oss names, e.g. prefix ``model.layers.0.mlp.``)
        from a safetensors file; with ``local_experts`` only those experts are kept."""
        return cls.from_gpt_oss(_read_safetensors(path, prefix), top_k, **kwargs)


class FP8MoE(_MoE):
    """A mixture-of-experts layer with FP8 (e4m3fn) experts and float32 128x128 block scales:
    ``experts.gate_up_proj`` ``[E, 2I, H]``, ``experts.gate_up_proj_scale`` ``[E, ceil(2I/128), ceil(H/128)]``,
    ``experts.gate_up_proj_bias`` ``[E, 2I]``, ``experts.down_proj`` ``[E, H, I]``, ``experts.down_proj_scale``
    ``[E, ceil(H/128), ceil(I/128)]``, ``experts.down_proj_bias`` ``[E, H]``; router and arguments as
    :class:`MXFP4MoE`. Build it with :meth:`from_float`, :meth:`from_gpt_oss` (MXFP4 experts requantized) or
    :meth:`from_safetensors`."""

    @staticmethod
    def _expert_specs(h: int, i: int):
        cdiv = lambda a: -(-a // 128)
        return [
            ("gate_up_proj", (2 * i, h), torch.float8_e4m3fn),
            ("gate_up_proj_scale", (cdiv(2 * i), cdiv(h)), torch.float32, 1.0),
            ("gate_up_proj_bias", (2 * i,), torch.float32),
            ("down_proj", (h, i), torch.float8_e4m3fn),
            ("down_proj_scale", (cdiv(h), cdiv(i)), torch.float32, 1.0),
            ("down_proj_bias", (h,), torch.float32),
        ]

    def prepare(self) -> None:
        """Prepacks the experts' weights (again after a load_state_dict)."""
        ex = self.experts
        self._w13 = torch.stack([ops.prepack_fp8_weight(w) for w in ex.gate_up_proj])
        self._w2 = torch.stack([ops.prepack_fp8_weight(w) for w in ex.down_proj])

    def _expert_weights(self):
        return self._w13, self.experts.gate_up_proj_scale, self._w2, self.experts.down_proj_scale

    @classmethod
    def from_float(cls, router: torch.nn.Linear, gate_up_proj: torch.Tensor, down_proj: torch.Tensor,
                   gate_up_proj_bias: Optional[torch.Tensor] = None, down_proj_bias: Optional[torch.Tensor] = None,
                   top_k: int = 4, **kwargs) -> "FP8MoE":
        """Quantizes dense expert weights in the nn.Linear layout, ``gate_up_proj [E, 2I, H]`` and ``down_proj
        [E, H, I]``, to FP8 with 128x128 block scales (:func:`mxkernels.reference.quantize_fp8_blocks`)."""
        e, two_i, h = gate_up_proj.shape
        kwargs.setdefault("bias", gate_up_proj_bias is not None)
        kwargs.setdefault("router_dtype", router.weight.dtype)
        w13, s13 = reference.quantize_fp8_blocks(gate_up_proj.detach())
        w2, s2 = reference.quantize_fp8_blocks(down_proj.detach())
        layer = cls(h, two_i // 2, e, top_k, **kwargs)
        layer._load({"router.weight": router.weight.detach(), "router.bias": router.bias.detach(),
                     "experts.gate_up_proj": w13, "experts.gate_up_proj_scale": s13, "experts.down_proj": w2,
                     "experts.down_proj_scale": s2, "experts.gate_up_proj_bias": gate_up_proj_bias,
                     "experts.down_proj_bias": down_proj_bias})
        return layer

    @classmethod
    def from_gpt_oss(cls, tensors: Dict[str, torch.Tensor], top_k: int = 4, **kwargs) -> "FP8MoE":
        """From a gpt-oss MoE block's MXFP4 tensors (as :meth:`MXFP4MoE.from_gpt_oss`), dequantized and requantized
        to FP8 blocks: lossy (an E8M0 scale per 32 values becomes one float32 scale per 128x128)."""
        def dense(name):
            blocks, scales = tensors[f"experts.{name}_blocks"], tensors[f"experts.{name}_scales"]
            return ops.dequantize_mxfp4(blocks.reshape(*blocks.shape[:2], -1), scales, torch.float32)

        router = torch.nn.Linear(1, 1)
        router.weight, router.bias = torch.nn.Parameter(tensors["router.weight"]), torch.nn.Parameter(tensors["router.bias"])
        return cls.from_float(router, dense("gate_up_proj"), dense("down_proj"),
                              tensors.get("experts.gate_up_proj_bias"), tensors.get("experts.down_proj_bias"), top_k,
                              **kwargs)

    @classmethod
    def from_safetensors(cls, path: str, prefix: str = "", top_k: int = 4, **kwargs) -> "FP8MoE":
        """Loads FP8 experts (``{prefix}experts.gate_up_proj`` and ``_scale``, ...) or gpt-oss MXFP4 ones (requantized,
        see :meth:`from_gpt_oss`), and ``{prefix}router.*``, from a safetensors file."""
        tensors = _read_safetensors(path, prefix)
        if "experts.gate_up_proj_blocks" in tensors:
            return cls.from_gpt_oss(tensors, top_k, **kwargs)
        return cls.from_fp8(tensors, top_k, **kwargs)

    @classmethod
    def from_fp8(cls, tensors: Dict[str, torch.Tensor], top_k: int = 4, **kwargs) -> "FP8MoE":
        """From FP8 tensors named as this layer's state_dict (``router.weight``, ``experts.gate_up_proj``,
        ``experts.gate_up_proj_scale``, ...); sizes are taken from them."""
        w13 = tensors["experts.gate_up_proj"]
        e, two_i, h = w13.shape
        kwargs.setdefault("bias", "experts.gate_up_proj_bias" in tensors)
        kwargs.setdefault("router_dtype", tensors["router.weight"].dtype)
        layer = cls(h, two_i // 2, e, top_k, **kwargs)
        layer._load(tensors)
        return layer


def _read_safetensors(path: str, prefix: str) -> Dict[str, torch.Tensor]:
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        tensors = {name[len(prefix):]: f.get_tensor(name) for name in f.keys() if name.startswith(prefix)}
    if "router.weight" not in tensors:
        raise KeyError(f"no {prefix}router.weight in {path}")
    return tensors


__all__ = ["MXFP4Linear", "MXFP4Backend", "BACKENDS", "ENV_BACKEND", "select_backend", "backend_reasons",
           "save_compressed_tensors", "MXFP4MoE", "FP8MoE"]
