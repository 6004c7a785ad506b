"""Figures 11-12: test error vs pruning ratio per training-set size, read from an IMP store.

Runs are grouped into *families* (every setting but n_train and seed); within a family, each N
gets a curve (mean over seeds, error bar = std over seeds) and we list every "pruned on less data
beats dense on more" pair: (N1 < N2, level L >= 1) with mean error(N1, L) < mean error(N2, dense).
Each pair carries its margin in standard errors, so a reader can tell a clear win from noise.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from ..config import ConfigError
from .data import load_data
from .imp import IMPSpec, finished_levels, level_dir, run_imp
from .train import TrainSpec

# The quick recipe ``ticketlab reproduce`` runs (<= 2 min on 2 busy cores, one torch thread):
# LeNet-300-100 on mnist5k, N = 500, 1000, 2000, seeds 0-2, 3 rounds at 36 % (pruning ratio 0, 36,
# 59, 74 %), output layer at 18 %, rewind to init, SGD lr 0.05 momentum 0.9, batch 64, 8 epochs.
QUICK = dict(model="lenet300", data="mnist5k", n_train=(500, 1000, 2000), seeds=(0, 1, 2), rounds=3, rate=0.36,
             output_rate=0.18, train=dict(epochs=8, lr=0.05, batch_size=64))


def collect(store: str) -> list[dict]:
    """Every finished level of every run under ``<store>/imp``: one row per (run, level)."""
    root = os.path.join(store, "imp")
    if not os.path.isdir(root):
        raise ConfigError(f"invalid store {store!r}: no imp runs under {root!r}")
    rows = []
    for name in sorted(os.listdir(root)):
        rdir = os.path.join(root, name)
        cfg = os.path.join(rdir, "config.json")
        if not os.path.isfile(cfg):
            continue
        with open(cfg) as f:
            spec = json.load(f)["identity"]
        family = {k: v for k, v in spec.items() if k not in ("n_train", "seed")}
        for level in finished_levels(rdir):
            with open(os.path.join(level_dir(rdir, level), "metrics.json")) as f:
                m = json.load(f)
            rows.append({"run": name, "family": family, "family_id": json.dumps(family, sort_keys=True),
                         "n_train": m["n_train"], "seed": spec["seed"], "level": level,
                         "pruning_ratio_percent": m["pruning_ratio_percent"], "test_error": m["test_error"],
                         "best_test_error": m["best_test_error"], "error_unit": m["error_unit"]})
    return rows


def _family_summary(rows: list[dict], metric: str) -> dict:
    by_n: dict[int, dict[int, dict]] = {}
    for r in rows:
        cell = by_n.setdefault(r["n_train"], {}).setdefault(r["level"], {"ratio": r["pruning_ratio_percent"],
                                                                          "errors": {}})
        cell["errors"][r["seed"]] = r[metric]
    curves, fixed_n = {}, {}
    for n in sorted(by_n):
        pts = []
        for level in sorted(by_n[n]):
            e = np.array(list(by_n[n][level]["errors"].values()), dtype=float)
            pts.append({"level": level, "pruning_ratio_percent": by_n[n][level]["ratio"], "mean": float(e.mean()),
                        "std": float(e.std(ddof=1)) if len(e) > 1 else 0.0, "n_seeds": int(len(e)),
                        "seeds": sorted(by_n[n][level]["errors"])})
        curves[n] = pts
        if 0 in by_n[n] and len(pts) > 1:
            best = min(pts[1:], key=lambda p: p["mean"])
            dense, pruned = by_n[n][0]["errors"], by_n[n][best["level"]]["errors"]
            common = sorted(set(dense) & set(pruned))
            diff = np.array([dense[s] - pruned[s] for s in common], dtype=float)
            fixed_n[n] = {"dense_mean": pts[0]["mean"], "dense_std": pts[0]["std"], "best_level": best["level"],
                          "best_pruning_ratio_percent": best["pruning_ratio_percent"], "best_mean": best["mean"],
                          "best_std": best["std"], "improvement_mean": float(diff.mean()) if len(diff) else None,
                          "improvement_se": float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else None,
                          "paired_seeds": len(common),
                          "note": "best level chosen after the fact on the test set: optimistic"}
    beats = []
    for n1 in curves:
        for n2 in curves:
            if n1 >= n2 or not curves[n2] or curves[n2][0]["level"] != 0:
                continue
            dense = curves[n2][0]
            for p in curves[n1]:
                if p["level"] >= 1 and p["mean"] < dense["mean"]:
                    se = math.sqrt(p["std"] ** 2 / p["n_seeds"] + dense["std"] ** 2 / dense["n_seeds"])
                    beats.append({"n_pruned": n1, "level": p["level"],
                                  "pruning_ratio_percent": p["pruning_ratio_percent"], "pruned_mean": p["mean"],
                                  "pruned_std": p["std"], "n_dense": n2, "dense_mean": dense["mean"],
                                  "dense_std": dense["std"],
                                  "margin_se": (dense["mean"] - p["mean"]) / se if se > 0 else None})
    return {"curves": {str(n): v for n, v in curves.items()}, "fixed_n": {str(n): v for n, v in fixed_n.items()},
            "beats": beats}


def summarize_fig11(store: str, metric: str = "test_error") -> dict:
    """Per family, N and level: mean/std test error over seeds; per N the dense vs best pruned level
    (paired over seeds); and the pruned-on-less-beats-dense-on-more pairs.

    ``metric``: 'test_error' (after the last epoch, the default) or 'best_test_error' (best epoch).
    """
    if metric not in ("test_error", "best_test_error"):
        raise ConfigError(f"invalid metric {metric!r}: must be test_error or best_test_error")
    rows = collect(store)
    fams: dict[str, list] = {}
    for r in rows:
        fams.setdefault(r["family_id"], []).append(r)
    out = []
    for fid, rs in fams.items():
        s = _family_summary(rs, metric)
        out.append({"family": rs[0]["family"], "error_unit": rs[0]["error_unit"], "metric": metric, **s})
    return {"store": store, "families": out}


def _family_label(f: dict) -> str:
    label = f"{f['model']}-{f['data'].split(':')[0]}"
    return label if f.get("control", "none") == "none" else f"{label}-{f['control']}"


def plot_fig11(store: str, out_dir: str, metric: str = "test_error") -> list[str]:
    """One figure per family: test error vs pruning ratio, a curve per N (mean +- std over seeds);
    a star marks a pruned point on less data that beats the dense net of a larger N (whose level
    is drawn as a dashed line). PNG and PDF; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize_fig11(store, metric)
    os.makedirs(out_dir, exist_ok=True)
    paths, used = [], set()
    for fam in summary["families"]:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        colors = {}
        for n, pts in sorted(fam["curves"].items(), key=lambda kv: int(kv[0])):
            x = [p["pruning_ratio_percent"] for p in pts]
            y = [p["mean"] for p in pts]
            e = [p["std"] for p in pts]
            line = ax.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=3, label=f"N = {n}")
            colors[int(n)] = line[0].get_color()
        for n, c in colors.items():
            pts = fam["curves"][str(n)]
            if pts and pts[0]["level"] == 0 and any(b["n_dense"] == n for b in fam["beats"]):
                ax.axhline(pts[0]["mean"], color=c, ls="--", lw=0.8)
        for b in fam["beats"]:
            ax.plot(b["pruning_ratio_percent"], b["pruned_mean"], marker="*", ms=13, mfc="none",
                    mec=colors[b["n_pruned"]], ls="none")
        unit = "%" if fam["error_unit"] == "percent" else "relative RMSE"
        ax.set_xlabel("pruning ratio (%)")
        ax.set_ylabel(f"test error ({unit})")
        ax.set_title(f"IMP: {_family_label(fam['family'])}  (mean ± std over seeds)", fontsize=9)
        ax.plot([], [], marker="*", ms=10, mfc="none", mec="k", ls="none",
                label="pruned on less data beats\ndense on more (dashed)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        base = "fig11-" + _family_label(fam["family"])
        stem, k = base, 1
        while stem in used:
            k += 1
            stem = f"{base}-{k}"
        used.add(stem)
        for ext in ("png", "pdf"):
            p = os.path.join(out_dir, f"{stem}.{ext}")
            fig.savefig(p, dpi=150)
            paths.append(p)
        plt.close(fig)
    return paths


def run_grid(base: dict, n_train, seeds, store: str, *, device: str = "cpu", progress: bool = True,
             controls=("none",), factory=None, data=None) -> list[dict]:
    """Run IMP for every (family, N, seed) of a recipe, level-major: level L of every run before level
    L + 1 of any, so an interrupted grid holds complete levels across N, seeds and families.
    Returns one summary row per run."""
    from tqdm.auto import tqdm

    specs = [IMPSpec(**{**base, "n_train": n, "seed": s, "control": c}) for c in controls for n in n_train
             for s in seeds]
    rounds = max(sp.rounds for sp in specs)
    total = sum(sp.rounds * sp.train.epochs + (sp.train.epochs if sp.control == "none" else 0) for sp in specs)
    pool = data if data is not None else load_data(specs[0].data, split_seed=specs[0].split_seed)
    res = {}
    with tqdm(total=total, desc="IMP epochs", unit="ep", disable=not progress, leave=False) as bar:
        for level in range(rounds + 1):
            done_before = bar.n
            for sp in specs:
                if level <= sp.rounds:
                    res[sp.run_name()] = run_imp(sp.model_copy(update={"rounds": level}), store, device=device,
                                                 data=pool, factory=factory)
            bar.update(sum(sp.train.epochs for sp in specs if level <= sp.rounds
                           and (level > 0 or sp.control == "none")) - (bar.n - done_before))
    return [{"run": sp.run_name(), "control": sp.control, "n_train": sp.n_train, "seed": sp.seed,
             "test_error": [r["early_stop_test_error"] for r in res[sp.run_name()]],
             "pruning_ratio_percent": [r["pruning_ratio_percent"] for r in res[sp.run_name()]]} for sp in specs]


def quick_fig11(store: str, *, device: str = "cpu", progress: bool = True, threads: int | None = 1) -> dict:
    """The quick Figure 11 (see ``QUICK``): runs what is missing under ``store`` and returns
    ``summarize_fig11(store)`` plus the wall time. ``threads=1`` because on a small shared CPU one
    torch thread is much faster than oversubscribed ones for these tiny nets."""
    import torch

    t0 = time.perf_counter()
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        base = {k: v for k, v in QUICK.items() if k not in ("n_train", "seeds")}
        base["train"] = TrainSpec(**QUICK["train"])
        run_grid(base, QUICK["n_train"], QUICK["seeds"], store, device=device, progress=progress)
    finally:
        torch.set_num_threads(old)
    out = summarize_fig11(store)
    out["recipe"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in QUICK.items()}
    out["seconds"] = time.perf_counter() - t0
    return out
