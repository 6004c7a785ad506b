"""The machine a benchmark ran on, and its measured peaks (matmul flop/s, memory bandwidth)."""

from __future__ import annotations

import os
import platform

import numpy as np
import torch

from .timing import measure


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_bytes(level: int) -> int | None:
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if open(os.path.join(path, "level")).read().strip() == str(level):
                size = open(os.path.join(path, "size")).read().strip()
                return int(size[:-1]) * 1024 if size.endswith("K") else int(size)
    except (OSError, ValueError):
        return None
    return None


def info() -> dict:
    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = None
    try:
        from threadpoolctl import threadpool_info

        blas = [" ".join(filter(None, [p["internal_api"], p.get("version"), f"x{p['num_threads']}"]))
                for p in threadpool_info()]
    except ImportError:
        blas = []
    return {
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "l2_bytes": cache_bytes(2),
        "l3_bytes": cache_bytes(3),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numba": numba_version,
        "torch_threads": torch.get_num_threads(),
        "blas": blas,
        "load_average": os.getloadavg(),
    }


def peaks(quick: bool = False) -> dict:
    """Measured matmul flop/s (float64, float32; all torch threads and one) and read bandwidth."""
    out = {}
    n = 512 if quick else 1024
    reps = 3 if quick else 5
    threads = torch.get_num_threads()
    for dt in (torch.float64, torch.float32):
        a = torch.randn(n, n, dtype=dt)
        b = torch.randn(n, n, dtype=dt)
        a @ b
        for th in sorted({1, threads}):
            torch.set_num_threads(th)
            s = measure(lambda: a @ b, reps)
            out[f"matmul_{str(dt)[6:]}_x{th}_flops"] = 2 * n**3 / s["min"]
        torch.set_num_threads(threads)
    x = np.ones((32 if quick else 64) * 2**20 // 8)  # 32-64 MiB: larger than any last-level cache
    x.sum()
    s = measure(lambda: x.sum(), reps)
    out["read_bandwidth_x1"] = x.nbytes / s["min"]  # one core streaming (numpy reductions are serial)
    xt = torch.from_numpy(x)
    s = measure(lambda: xt.sum(), reps)
    out[f"read_bandwidth_x{threads}"] = x.nbytes / s["min"]  # torch reductions use all its threads
    return out
