"""Builds mxkernels with CMake (the source of truth) and installs the Python package.

    pip install --no-build-isolation -e .      # torch==2.13.0 must already be installed

Environment:
    MXKERNELS_BUILD_DIR   CMake build folder (default: build/py); the tests and benchmarks are built there too
    MXKERNELS_BUILD_TESTS / MXKERNELS_BUILD_BENCHMARKS   ON or OFF (default OFF for a plain install)
    MXKERNELS_SANITIZE    ON builds with ASan + UBSan
    MXKERNELS_CUDA        ON builds the CUDA kernels and, with a CUDA build of torch, their ops (default OFF)
    MXKERNELS_CUDA_ARCHITECTURES   e.g. 90a (the default: Hopper, with the wgmma kernel) or "90a;100"
    MAX_JOBS              parallel build jobs (default: the CPU count)
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = Path(os.environ.get("MXKERNELS_BUILD_DIR", ROOT / "build" / "py")).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        # CMake writes the Python-facing files (the ops library, _C, _build_info.py) to one folder of the
        # build; they are copied from there to where setuptools wants the extension and, for editable
        # installs, into the source package (setuptools itself would copy _C alone).
        staged = build_dir / "python_package"
        flag = lambda name, default: os.environ.get(name, default)
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir),
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DMXKERNELS_PYTHON_OUT_DIR={staged}",
            f"-DMXKERNELS_BUILD_TESTS={flag('MXKERNELS_BUILD_TESTS', 'OFF')}",
            f"-DMXKERNELS_BUILD_BENCHMARKS={flag('MXKERNELS_BUILD_BENCHMARKS', 'OFF')}",
            f"-DMXKERNELS_SANITIZE={flag('MXKERNELS_SANITIZE', 'OFF')}",
            f"-DMXKERNELS_CUDA={flag('MXKERNELS_CUDA', 'OFF')}",
            f"-DMXKERNELS_CUDA_ARCHITECTURES={flag('MXKERNELS_CUDA_ARCHITECTURES', '90a')}",
            f"-DCMAKE_BUILD_TYPE={flag('CMAKE_BUILD_TYPE', 'Release')}",
        ]
        if not (build_dir / "CMakeCache.txt").exists() and _has("ninja"):
            configure += ["-G", "Ninja"]
        subprocess.check_call(configure)
        jobs = flag("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.check_call(["cmake", "--build", str(build_dir), "-j", jobs])
        targets = [Path(self.get_ext_fullpath(ext.name)).resolve().parent]
        if self.inplace or getattr(self, "editable_mode", False):
            targets.append(ROOT / "python" / "mxkernels")
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            for f in staged.iterdir():
                shutil.copy2(f, target / f.name)


def _has(program):
    return any((Path(p) / program).exists() for p in os.environ.get("PATH", "").split(os.pathsep))


setup(
    name="mxkernels",
    version="0.1.0",
    description="MXFP4 and FP8 inference operators for PyTorch, in C++",
    package_dir={"": "python"},
    packages=["mxkernels"],
    ext_modules=[CMakeExtension("mxkernels._C")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    install_requires=["torch"],
    zip_safe=False,
)
