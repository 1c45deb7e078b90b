"""This machine's measured memory bandwidth and arithmetic peaks, from the google-benchmark programs
bench_memory_bandwidth and bench_peak (built with the tests), for the ratios the Python benchmarks print."""
import json
import subprocess
from pathlib import Path


def _run(binary: Path, pattern: str) -> dict:
    out = subprocess.run([str(binary), f"--benchmark_filter={pattern}", "--benchmark_format=json"],
                         capture_output=True, text=True, check=True).stdout
    return {b["name"]: b for b in json.loads(out)["benchmarks"] if not b.get("error_occurred")}


def measure(build_dir: str = "build", threads: int = 2) -> dict:
    """{'read_gbs', 'copy_gbs', 'fp32_gflops', 'int8_gops', 'bf16_gflops'} for this many threads (None if absent)."""
    bench = Path(build_dir) / "bench"
    bw = _run(bench / "bench_memory_bandwidth", f"BM_(read|copy)/{threads}/")
    peak = _run(bench / "bench_peak", f"/{threads}/")
    get_bw = lambda name: next((b["bytes_per_second"] / 1e9 for k, b in bw.items() if k.startswith(name)), None)
    get_peak = lambda name: next((b["GFLOP/s"] for k, b in peak.items() if name in k), None)
    return {
        "read_gbs": get_bw(f"BM_read/{threads}/"),
        "copy_gbs": get_bw(f"BM_copy/{threads}/"),
        "fp32_gflops": get_peak("fp32_fma_avx512") or get_peak("fp32_fma_avx2"),
        "int8_gops": get_peak("int8_dot_vnni"),
        "bf16_gflops": get_peak("bf16_dot_avx512bf16"),
    }
