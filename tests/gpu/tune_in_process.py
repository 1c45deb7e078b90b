"""Several tune_cuda builds run in turn in one process, where the GPU runs kernels slower from the second run on.

On the H100 a process's first tune_cuda run measured the fast state (M=1 on packed weights 5.66-5.73 us), and every
later run in the same process the slower one (5.83-5.99) that bench_cuda measures. This happened with torch's CUDA
started first (--torch) and without it. Its cause was not found (bench/RESULTS.md, eighteenth pass). So variants are
compared here as well as in tune_cuda itself. Build tune_cuda as shared libraries (the flags in
tests/gpu/tune_cuda.cu's header plus these), one per header version to compare. Then run them in turn, the order
alternating between rounds, and read the rounds after the first:

    nvcc <tune_cuda's flags> -shared -Xcompiler -fPIC -Dmain=tune_main \
        tests/gpu/tune_cuda.cu csrc/core/cuda/quantize.cu -o /tmp/tune_a.so
    python3 tests/gpu/tune_in_process.py --rounds 4 /tmp/tune_a.so /tmp/tune_b.so -- quick 1,8 library
"""
import argparse
import ctypes
import sys
import time

# tune_cuda's main renamed to tune_main by -Dmain=tune_main: a C++ function, so its name is mangled (Itanium ABI).
TUNE_MAIN = "_Z9tune_mainiPPc"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--torch", action="store_true", help="start CUDA through torch first, as bench_cuda does")
    parser.add_argument("--wait", type=float, default=3.0, help="seconds before the first run")
    parser.add_argument("libs", nargs="+", help="tune_cuda shared libraries")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    tune_args = ["tune_cuda"] + argv[split + 1:]

    if args.torch:
        import torch

        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
    time.sleep(args.wait)
    libs = [ctypes.CDLL(path) for path in args.libs]
    libc = ctypes.CDLL(None)
    c_argv = (ctypes.c_char_p * len(tune_args))(*[a.encode() for a in tune_args])
    for r in range(args.rounds):
        order = list(range(len(libs))) if r % 2 == 0 else list(reversed(range(len(libs))))
        for i in order:
            print(f"== round {r + 1}: {args.libs[i]}", flush=True)
            getattr(libs[i], TUNE_MAIN)(len(tune_args), c_argv)
            libc.fflush(None)  # tune_cuda prints through C stdio


if __name__ == "__main__":
    main()
