"""Steps of `ticketlab reproduce` that are not store sweeps: lottery tickets on real data (Figure 11)
and the initialization study. Each gives run(...) for reproduce and section(...) for the report."""

from __future__ import annotations

from pathlib import Path


def imp_dir(store) -> Path:
    """The IMP store: a folder given as such (`ticketlab imp --store DIR`), else the folder of the SQLite
    store; runs live under <folder>/imp/ (they hold checkpoints, not rows)."""
    p = Path(store)
    return p if p.is_dir() else p.parent


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
    from .deep.fig11 import fig11_claims, fig11_notes, summarize_fig11
    from .report import paper_values

    folder = imp_dir(store)
    if not (folder / "imp").exists():
        return None
    summary = summarize_fig11(str(folder))
    if not summary["families"]:
        return None
    figures = plot_fig11(store=store, out=Path(out) / "figures")
    paper = paper_values().get("fig11_lenet5_mnist_test_error_percent", {})
    scale = "paper" if any(int(n) >= 25000 for f in summary["families"] for n in f["curves"]) else "quick"
    return {"name": "fig11", "title": "Figure 11: lottery tickets on real data (IMP)", "scale": scale,
            "figures": [str(p) for p in figures], "claims": fig11_claims(summary, paper),
            "notes": fig11_notes(summary, scale), "summary": summary}


INIT_QUICK = dict(N_grid=(1000, 4000, 16000), r_grid=(10,), d_grid=(100, 300, 1000), trials=2)
INIT_PAPER = dict(N_grid=(1000, 4000, 16000, 64000), r_grid=(10, 20, 40), d_grid=(100, 300, 1000), trials=10)


def _init_file(store) -> Path:
    return Path(store).parent / "init_study.json"


def run_init_study(*, scale, store, out, device, progress):
    """The initialization study: its error against N, r and d, with and without the mask. Results go
    to a JSON file beside the store; a finished study is read back, not recomputed."""
    import json

    from .init.study import init_study

    path = _init_file(store)
    grid = INIT_QUICK if scale == "quick" else INIT_PAPER
    if path.exists():
        old = json.loads(path.read_text())
        if {k: old["settings"].get(k) for k in ("N_grid", "r_grid", "d_grid", "trials")} == \
                {k: list(v) if isinstance(v, tuple) else v for k, v in grid.items()}:
            return old
    result = init_study(**grid, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=float))
    tmp.replace(path)  # atomic: a killed run leaves no half-written study
    return result


def section_init_study(*, store, out):
    import html
    import json

    from .init.study import format_table, plot_study

    path = _init_file(store)
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    fig_dir = Path(out) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = plot_study(result, str(fig_dir / "init_study"))
    med = {(s["kind"], s["d"], s["r"], s["N"]): s["median"] for s in result["summary"]}
    ds = sorted({s["d"] for s in result["summary"]})
    Ns = sorted({s["N"] for s in result["summary"]})
    claims = []
    for kind in ("moments0", "tensor"):
        keys = [(kind, d, r, n) for (k, d, r, n) in med if k == kind and n == Ns[-1]]
        if not keys:
            continue
        r = keys[0][2]
        growth_mask = med[(kind, ds[-1], r, Ns[-1])] / med[(kind, ds[0], r, Ns[-1])]
        growth_dense = med[("dense", ds[-1], r, Ns[-1])] / med[("dense", ds[0], r, Ns[-1])]
        claims.append({
            "claim": f"With the mask, the initialization error depends on the kept weights, not on d ({kind})",
            "paper": "Lemma 1: N = Omega(K^5 r_max log q) for the pruned network (no figure)",
            "ours": f"error x{growth_mask:.2f} with the mask vs x{growth_dense:.2f} without, from d={ds[0]} to "
                    f"d={ds[-1]} at N={Ns[-1]}, r={r}",
            "verdict": bool(growth_mask < 1.5 and growth_dense > growth_mask)})
    table = format_table(result)
    return {"name": "init", "title": "Initialization from data (method of moments, Lemma 1)",
            "scale": "quick" if result["settings"]["trials"] <= INIT_QUICK["trials"] else "paper",
            "figures": [str(p) for p in figures if str(p).endswith((".png", ".pdf"))], "claims": claims,
            "notes": ["Median aligned relative error of W(0) over trials; 'dense' ignores the mask. "
                      "See docs/tensor-init.md for the derivation and which start to use when."],
            "config": result["settings"], "markdown": "```\n" + table + "\n```",
            "html": "<pre>" + html.escape(table) + "</pre>"}


def register(steps: dict) -> None:
    steps["fig11"] = {"run": run_fig11, "section": section_fig11, "plot": plot_fig11}
    steps["init"] = {"run": run_init_study, "section": section_init_study}
