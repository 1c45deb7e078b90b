"""Loads libmxkernels_ops.so into torch, after checking it was built against this torch."""
import os
from pathlib import Path

import torch

_HERE = Path(__file__).resolve().parent


def _minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def load_ops_library() -> None:
    try:
        from . import _build_info
    except ImportError as e:
        raise ImportError(
            "mxkernels is not built: run `pip install --no-build-isolation -e .` in the source tree"
        ) from e
    built, running = _build_info.TORCH_VERSION, torch.__version__
    if _minor(built) != _minor(running):
        raise ImportError(
            f"mxkernels was built against torch {built} but torch {running} is imported; a C++ extension "
            f"only loads into the torch minor version it was built with. Rebuild mxkernels with this torch "
            f"(pip install --no-build-isolation -e .) or install torch {_minor(built)}."
        )
    library = _HERE / "libmxkernels_ops.so"
    if not library.exists():
        raise ImportError(f"mxkernels: {library} is missing; rebuild the package")
    torch.ops.load_library(os.fspath(library))
