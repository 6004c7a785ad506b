"""Figure 4 near its boundaries: the 10,000-iteration cap against 50,000, on the same problems.

The paper-scale sweeps (`ticketlab sweep fig4 --scale paper [--set step_convention=K2]`) hold 100 trials
a cell at the 10,000 cap. This compares their first 30 trials of a few boundary cells with the same
trials (same seeds: a cell's seeds do not depend on the solver) rerun with the cap at 50,000:

    for conv in K K2; do for g in "50 250,300,350" "10 50,100,150" "90 500,550,600"; do set -- $g
      ticketlab sweep fig4 --scale paper --trials 30 --set max_iter=50000 --set step_convention=$conv \
        --set r_tilde=$1 --set N=$2 --store STORE --yes; done; done
    python scripts/fig4_cap_check.py STORE
"""
import sys
import pandas as pd
from ticketlab.app import make_config
from ticketlab.experiments import get_experiment

db = sys.argv[1]
e = get_experiment("fig4")
grids = {50: [250, 300, 350], 10: [50, 100, 150], 90: [500, 550, 600]}
rows = []
for conv in ("K", "K2"):
    base = make_config(e, "paper", None, [f"step_convention={conv}"])
    df10 = e.load(base, db)
    for rt, Ns in grids.items():
        cfg = make_config(e, "paper", 30, [f"step_convention={conv}", "max_iter=50000", f"r_tilde={rt}",
                                           "N=" + ",".join(map(str, Ns))])
        df50 = e.load(cfg, db)
        if df50.empty:
            continue
        for N in Ns:
            a = df10[(df10.r_tilde_target == rt) & (df10.N == N) & (df10.trial < 30)].set_index("seed")
            b = df50[(df50.r_tilde_target == rt) & (df50.N == N)].set_index("seed")
            common = a.index.intersection(b.index)
            if len(common) == 0:
                continue
            a, b = a.loc[common], b.loc[common]
            rows.append(dict(step=conv, r_tilde=rt, N=N, trials=len(common),
                             success_10k=int(a.success.sum()), capped_10k=int((a.iterations >= 10000).sum()),
                             success_50k=int(b.success.sum()), capped_50k=int((b.iterations >= 50000).sum()),
                             median_iter_50k=int(b.iterations.median()),
                             flipped=int((~a.success.astype(bool) & b.success.astype(bool)).sum())))
t = pd.DataFrame(rows)
print(t.to_string(index=False))
