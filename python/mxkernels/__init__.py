"""mxkernels: MXFP4 and FP8 inference operators for PyTorch, written in C++.

The ops live in ``torch.ops.mxkernels`` (visible to torch.compile); this package loads them and adds typed
wrappers, a pure-PyTorch reference (:mod:`mxkernels.reference`) and build / CPU-level information.
"""
from ._loader import load_ops_library as _load_ops_library

_load_ops_library()

from . import _C, nn, reference  # noqa: E402
from ._build_info import TORCH_VERSION as BUILT_WITH_TORCH, VERSION as __version__  # noqa: E402
from .ops import (  # noqa: E402
    SCALE_MODES, dequantize_mxfp4, fp8_gemm, fp8_gemm_w8a16, quantize_fp8, quantize_fp8_per_tensor, quantize_mxfp4,
    prepack_fp8_weight, mxfp4_gemm_w4a16, mxfp4_gemm, prepack_mxfp4_weight, prepack_mxfp4_weight_cuda, fused_moe,
    topk_softmax,
)


def build_info() -> dict:
    """Version, the torch it was built against, the compiler and the CPU levels compiled in."""
    return dict(_C.build_info())


def has_cuda_kernels() -> bool:
    """Whether this build has the CUDA kernels (``MXKERNELS_CUDA=ON`` against a CUDA build of torch)."""
    from ._build_info import CUDA
    return CUDA


def cpu_isa() -> str:
    """The CPU instruction-set level the kernels run at now ('scalar', 'avx2' or 'avx512')."""
    return _C.cpu_isa()


def supported_cpu_isas() -> list:
    """The levels this machine can run, lowest first."""
    return list(_C.supported_cpu_isas())


def set_cpu_isa(name: str) -> None:
    """Runs the kernels at this level from now on (for tests and benchmarks).

    The environment variable ``MXKERNELS_CPU_ISA`` does the same at start-up.
    """
    _C.set_cpu_isa(name)


__all__ = [
    "quantize_mxfp4", "dequantize_mxfp4", "SCALE_MODES", "quantize_fp8", "quantize_fp8_per_tensor", "fp8_gemm", "fp8_gemm_w8a16", "prepack_fp8_weight", "mxfp4_gemm_w4a16", "mxfp4_gemm",
    "prepack_mxfp4_weight", "prepack_mxfp4_weight_cuda", "fused_moe", "topk_softmax", "nn", "reference", "build_info", "cpu_isa",
    "supported_cpu_isas", "set_cpu_isa", "has_cuda_kernels", "BUILT_WITH_TORCH", "__version__",
]
