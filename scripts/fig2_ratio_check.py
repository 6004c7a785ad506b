"""Figure 2 at the paper's ratios on a 25x smaller problem: does any unstated choice shrink the radius?

The paper's Figure 2 (d = 500, N = 5,000, K = 10, sqrt(r~) = 10..20) has K r~/N from 0.2 to 0.8 and
N/d = 10. This keeps both ratios on d = 100, N = 1,000 (sqrt(r~) = 4.5..8.5: K r~/N = 0.2..0.72) and
runs every combination of the batch scheme (full; T = 8 or 32 fresh disjoint batches, one per
iteration, the analysed algorithm) and the step convention (K, K2), 20 problems a column, on the
paper's starts (2-38%) and on starts extended to 200%:

    for lam in 0.02,0.06,0.1,0.14,0.18,0.22,0.26,0.3,0.34,0.38 0.02,0.1,0.2,0.3,0.4,0.6,0.8,1.0,1.5,2.0; do
      ticketlab sensitivity fig2 --scale paper --set d=100 --set N=1000 --set sqrt_r_tilde=4.5,5.5,6.5,7.5,8.5 \
        --set lam=$lam --set design=bisect --trials 20 --vary batches=full,fresh:8,fresh:32 \
        --vary step_convention=K,K2 --store STORE --run --yes; done
    python scripts/fig2_ratio_check.py STORE        # STORE: the SQLite store or its packed tables (shipped: results/paper/sensitivity/fig2-ratio)

Per variant it prints the 50% radius of each column (the same bootstrap transition as Figure 2's
claims, ">= edge" when no crossing lies inside the grid) and the trials that ran to the cap unsuccessful.
"""
import sys

from ticketlab.app import make_config
from ticketlab.experiments import get_experiment

PAPER_LAM = "0.02,0.06,0.1,0.14,0.18,0.22,0.26,0.3,0.34,0.38"
WIDE_LAM = "0.02,0.1,0.2,0.3,0.4,0.6,0.8,1.0,1.5,2.0"
BASE = ["d=100", "N=1000", "sqrt_r_tilde=4.5,5.5,6.5,7.5,8.5", "design=bisect"]
BATCHES = {"full": ["solver.sampling=full", "solver.num_batches=1"],
           "fresh:8": ["solver.sampling=fresh", "solver.num_batches=8"],
           "fresh:32": ["solver.sampling=fresh", "solver.num_batches=32"]}


def radius_text(r: dict, lo: float, hi: float) -> str:
    """The radius and its bootstrap interval; an interval end beyond the grid is shown as the grid's edge
    with < or > (the data bound it only from one side there)."""
    if r["radius"] is not None and r["outside_grid"] is None:
        a = f"<{lo:g}" if r["ci_low"] < lo else f"{r['ci_low']:.2f}"
        b = f">{hi:g}" if r["ci_high"] > hi else f"{r['ci_high']:.2f}"
        return f"{r['radius']:.2f} [{a}, {b}]"
    return {"above": ">= grid end", "below": "< grid start"}.get(r["outside_grid"], "n/a")


def main(store: str) -> None:
    e = get_experiment("fig2")
    for name, lam in (("paper starts 2-38%", PAPER_LAM), ("starts 2-200%", WIDE_LAM)):
        print(f"## {name}\n")
        header = None
        for batches, sets in BATCHES.items():
            for conv in ("K", "K2"):
                cfg = make_config(e, "paper", 20, BASE + sets + [f"lam={lam}", f"step_convention={conv}"])
                df = e.load(cfg, store)
                if df.empty:
                    print(f"{batches:9s} {conv:3s} not run")
                    continue
                s = e.summarize(cfg, df)
                capped = sum(c["capped_undecided"] for c in s["cells"])
                if header is None:
                    cols = [f"sqrt(r~)={r['sqrt_r_tilde_target']:g}" for r in s["radius"]]
                    header = "| batches | step | trials done/asked | " + " | ".join(cols) + " | capped undecided |"
                    print(header)
                    print("|---" * (len(cols) + 4) + "|")
                asked = len(e.cells(cfg)) * cfg.trials
                print(f"| {batches} | {conv} | {s['trials']}/{asked} | "
                      + " | ".join(radius_text(r, min(cfg.lam), max(cfg.lam)) for r in s["radius"]) + f" | {capped} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1])
