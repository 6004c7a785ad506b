"""Repeat-and-summarise timing shared by the benchmark entries (min / median / max of repeats)."""

from __future__ import annotations

import statistics
import time


def measure(fn, repeats: int) -> dict:
    """Call fn() ``repeats`` times; wall seconds as {'min', 'median', 'max', 'repeats'}."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"min": min(times), "median": statistics.median(times), "max": max(times), "repeats": repeats}


def scaled(stats: dict, factor: float) -> dict:
    """The same summary divided by ``factor`` (e.g. seconds per trial-iteration)."""
    return {k: (v / factor if k != "repeats" else v) for k, v in stats.items()}


def fmt(stats: dict, unit: float = 1e-6, name: str = "us") -> str:
    return (f"{stats['median'] / unit:9.1f} {name} (min {stats['min'] / unit:.1f}, "
            f"max {stats['max'] / unit:.1f}, n={stats['repeats']})")
