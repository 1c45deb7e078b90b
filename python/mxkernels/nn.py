"""MXFP4 linear layers with kernel selection.

:class:`MXFP4Linear` holds a linear layer's weight as MXFP4 (``weight_packed`` uint8 ``[N, K/2]``, two E2M1 codes per
byte, element 2i in the low nibble; ``weight_scale`` uint8 ``[N, K/32]``, E8M0), the compressed-tensors layout, so
its ``state_dict`` is a checkpoint in that format. A backend runs it. Each backend says whether it is supported on this
machine and whether it can run a given layer, and transforms the weights once after loading; the layer takes the
first backend that fits, in this priority order:

1. ``cpu_w4a16``: ``mxfp4_gemm_w4a16`` on prepacked weights; activations stay in their precision.
2. ``cpu_w4a4``: activations quantized to MXFP4 on the fly (``quantize_mxfp4``), then ``mxfp4_gemm`` on the integer
   dot-product units. Only for layers built with ``quantize_activations=True``: it changes the layer's numerics.
3. ``reference``: pure PyTorch, dequantize then ``torch.nn.functional.linear``.

``MXKERNELS_MXFP4_BACKEND=<name>`` (or ``backend=<name>``) forces one; if it cannot run the layer, building the layer
fails with the reasons. ``layer.backend_name`` and ``repr(layer)`` show the choice.
"""
import os
from typing import Dict, List, Optional, Tuple

import torch

from . import ops, reference

ENV_BACKEND = "MXKERNELS_MXFP4_BACKEND"


class MXFP4Backend:
    """A way to run an :class:`MXFP4Linear`. Subclasses set ``name`` and override the methods below."""

    name = ""

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
BACKENDS: List[MXFP4Backend] = [CpuW4A16(), CpuW4A4(), Reference()]


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
        if reasons[b.name] is None:
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


__all__ = ["MXFP4Linear", "MXFP4Backend", "BACKENDS", "ENV_BACKEND", "select_backend", "backend_reasons",
           "save_compressed_tensors"]
