"""The initialization study: how the moment starts' error falls with N, for several r and d.

Every (d, r, N) cell draws its own trials (seeds from the cell's stable id), and every init kind runs
on the same data, so kinds compare on equal footing. With the mask the error should track the kept
weights (r, through the union of supports), not d; the dense method of moments should need many more
samples. The result is a plain dict (rows, summary, sample ratios), JSON-ready.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..config import ConfigError, OracleSpec, build, stable_hash
from ..metrics import aligned_relative_error
from ..oracle import make_problem, r_tilde
from ..seeding import trial_seed
from .moments import INIT_METHODS

DEFAULT_KINDS = ("tensor", "moments", "moments0", "dense")


def _check_grid(name: str, values, lo: int = 1) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if not values or any(v < lo for v in values):
        raise ConfigError(f"invalid {name} {list(values)}: give one or more integers >= {lo}")
    return tuple(sorted(set(values)))


def _samples_to_reach(Ns: list[int], errs: list[float], target: float) -> float | None:
    """Smallest N at which the median error curve crosses ``target`` (log-log interpolation)."""
    for i, (n, e) in enumerate(zip(Ns, errs)):
        if e <= target:
            if i == 0:
                return float(n)
            n0, e0 = Ns[i - 1], errs[i - 1]
            t = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e))
            return float(math.exp(math.log(n0) + t * (math.log(n) - math.log(n0))))
    return None


def init_study(N_grid=(1000, 4000, 16000), r_grid=(10, 20), d_grid=(100, 300, 1000), *, K: int = 5,
               trials: int = 3, kinds=DEFAULT_KINDS, seed: int = 0, layout: str = "overlap",
               noise: float = 0.0, target: float = 0.5, device: str = "cpu",
               dtype: torch.dtype = torch.float64, progress=None) -> dict:
    """Run the study; returns {'settings', 'rows', 'summary', 'sample_ratio'}.

    rows: one per (kind, d, r, N, trial) with init_relative_error. summary: median and quartiles per
    (kind, d, r, N). sample_ratio: per (d, r) and mask-aware kind, the N each needs to bring the
    median error to ``target`` and the dense method's N / that N (a lower bound when the dense method
    never reaches it on the grid). ``progress``: optional callable(done, total).
    """
    N_grid = _check_grid("N grid", N_grid)
    r_grid = _check_grid("r grid", r_grid)
    d_grid = _check_grid("d grid", d_grid)
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in INIT_METHODS]
    if bad or not kinds:
        raise ConfigError(f"invalid kinds {list(kinds)}: choose from {', '.join(INIT_METHODS)}")
    if trials < 1:
        raise ConfigError(f"invalid trials = {trials}: must be >= 1")
    if not 0 < target < 10:
        raise ConfigError(f"invalid target = {target}: the error level must be in (0, 10)")
    specs = {(d, r): build(OracleSpec, d=d, K=K, r=r, layout=layout, noise=noise)
             for d in d_grid for r in r_grid if r <= d}
    if not specs:
        raise ConfigError(f"invalid grids: no r in {list(r_grid)} fits any d in {list(d_grid)}")
    rows = []
    total, done = len(specs) * len(N_grid) * trials, 0
    for (d, r), spec in specs.items():
        for N in N_grid:
            key = stable_hash({"study": "init", "oracle": spec.model_dump(mode="json"), "N": N})
            for t in range(trials):
                s = trial_seed(seed, key, t)
                # one trial at a time: X is N x d, and a trial's numbers never depend on its batch
                p = make_problem(spec, N, [s], device=device, dtype=dtype)
                rt = float(r_tilde(p.mask)[0])
                for kind in kinds:
                    t0 = time.perf_counter()
                    W0 = INIT_METHODS[kind](p.X, p.y, p.mask, p.seeds)
                    wall = time.perf_counter() - t0
                    err, _ = aligned_relative_error(W0, p.W_star)
                    rows.append({"kind": kind, "d": d, "r": r, "K": K, "N": N, "trial": t, "seed": s,
                                 "r_tilde": rt, "init_relative_error": float(err[0]), "wall_time": wall})
                done += 1
                if progress is not None:
                    progress(done, total)
    summary = _summarize(rows)
    return {
        "settings": {"N_grid": list(N_grid), "r_grid": list(r_grid), "d_grid": list(d_grid), "K": K,
                     "trials": trials, "kinds": list(kinds), "seed": seed, "layout": layout, "noise": noise,
                     "target": target},
        "rows": rows,
        "summary": summary,
        "sample_ratio": _sample_ratios(summary, target) if "dense" in kinds else [],
    }


def _summarize(rows: list[dict]) -> list[dict]:
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((row["kind"], row["d"], row["r"], row["N"]), []).append(row)
    out = []
    for (kind, d, r, N), rs in sorted(cells.items()):
        e = np.array([x["init_relative_error"] for x in rs])
        out.append({"kind": kind, "d": d, "r": r, "N": N, "trials": len(rs),
                    "r_tilde": float(np.mean([x["r_tilde"] for x in rs])),
                    "median": float(np.median(e)), "q25": float(np.quantile(e, 0.25)),
                    "q75": float(np.quantile(e, 0.75)),
                    "wall_time": float(np.mean([x["wall_time"] for x in rs]))})
    return out


def _sample_ratios(summary: list[dict], target: float) -> list[dict]:
    curves: dict[tuple, tuple[list, list]] = {}
    for s in summary:
        Ns, es = curves.setdefault((s["kind"], s["d"], s["r"]), ([], []))
        Ns.append(s["N"])
        es.append(s["median"])
    out = []
    for (kind, d, r), (Ns, es) in sorted(curves.items()):
        if kind == "dense" or ("dense", d, r) not in curves:
            continue
        n_kind = _samples_to_reach(Ns, es, target)
        dNs, des = curves[("dense", d, r)]
        n_dense = _samples_to_reach(dNs, des, target)
        # a crossing at the grid's first N, or none for dense, makes the ratio a lower bound
        lower = n_dense is None or (n_kind is not None and n_kind == min(Ns))
        ratio = None
        if n_kind is not None:
            ratio = (n_dense if n_dense is not None else max(dNs)) / n_kind
        out.append({"kind": kind, "d": d, "r": r, "target": target, "N_kind": n_kind, "N_dense": n_dense,
                    "ratio": ratio, "ratio_is_lower_bound": lower and ratio is not None})
    return out


def format_table(result: dict) -> str:
    """The summary as a text table: one line per (kind, r, d), median error per N."""
    Ns = result["settings"]["N_grid"]
    head = f"{'kind':<9} {'r':>4} {'r~':>6} {'d':>5}  " + "  ".join(f"N={n:<7}" for n in Ns)
    lines = [head, "-" * len(head)]
    by = {}
    for s in result["summary"]:
        by.setdefault((s["kind"], s["r"], s["d"]), {})[s["N"]] = s
    order = {k: i for i, k in enumerate(result["settings"]["kinds"])}
    for (kind, r, d), cells in sorted(by.items(), key=lambda kv: (order[kv[0][0]], kv[0][1], kv[0][2])):
        rt = next(iter(cells.values()))["r_tilde"]
        vals = "  ".join(f"{cells[n]['median']:<9.3g}" if n in cells else f"{'-':<9}" for n in Ns)
        lines.append(f"{kind:<9} {r:>4} {rt:>6.1f} {d:>5}  {vals}")
    if result["sample_ratio"]:
        lines.append("")
        lines.append(f"samples to reach median error {result['settings']['target']}: dense / mask-aware")
        for s in result["sample_ratio"]:
            if s["ratio"] is None:
                txt = "not reached by the mask-aware kind on this grid"
            else:
                txt = f"{'>= ' if s['ratio_is_lower_bound'] else ''}{s['ratio']:.3g}x  (N {s['N_kind']:.0f} vs " + \
                      (f"{s['N_dense']:.0f})" if s["N_dense"] is not None else f"> {max(Ns)})")
            lines.append(f"  {s['kind']:<9} r={s['r']:<4} d={s['d']:<5} {txt}")
    return "\n".join(lines)


def plot_study(result: dict, stem: str) -> list[str]:
    """Median error vs N, one panel per kind, colour = r, line style = d. Writes stem.png and stem.pdf."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = result["settings"]
    kinds, rs, ds = st["kinds"], st["r_grid"], st["d_grid"]
    styles = ["-", "--", ":", "-."]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for i, r in enumerate(rs):
            for j, d in enumerate(ds):
                cells = [s for s in result["summary"] if (s["kind"], s["r"], s["d"]) == (kind, r, d)]
                if not cells:
                    continue
                Ns = [s["N"] for s in cells]
                ax.plot(Ns, [s["median"] for s in cells], styles[j % len(styles)], marker="o", ms=3,
                        color=colors[i % len(colors)], label=f"r={r}, d={d}")
                ax.fill_between(Ns, [s["q25"] for s in cells], [s["q75"] for s in cells],
                                color=colors[i % len(colors)], alpha=0.12, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(kind)
        ax.set_xlabel("samples N")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("init relative error (median, IQR)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"moment initializations, K={st['K']}, {st['trials']} trials per cell", fontsize=10)
    fig.tight_layout()
    paths = [f"{stem}.png", f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths
