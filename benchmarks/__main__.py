"""``python -m benchmarks [--quick] [--json] [--skip-others]``: the machine, its peaks, then every entry.

The engine entries (a)-(e) print here; other modules of this package with a ``run(quick)`` entry
(OTHERS: the figures, memory, init, IMP, Dask, shared-problem design and slot-engine benchmarks, the cost model
against every quick sweep) run after them, each isolated so one failure does not lose
the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import time
import traceback

from . import engine, figures, machine, roofline, scaling
from .timing import fmt

OTHERS = ("figures", "memory", "init_bench", "imp_bench", "dask_bench", "design", "slots", "cost_model")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller repeats and workloads (about 2 minutes)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    ap.add_argument("--skip-others", action="store_true", help=f"run only the engine entries, not {', '.join(OTHERS)}")
    args = ap.parse_args(argv)
    q = args.quick
    t0 = time.perf_counter()
    info = machine.info()
    pk = machine.peaks(q)
    say = (lambda *a: None) if args.json else print
    say(f"machine: {info['cpu']}, {info['cores']} cores, L2 {info['l2_bytes']}, L3 {info['l3_bytes']}")
    say(f"  python {info['python']}, torch {info['torch']} ({info['torch_threads']} threads), numpy "
        f"{info['numpy']}, numba {info['numba']}; thread pools: {', '.join(info['blas'])}")
    say(f"  load average at start: {', '.join(f'{x:.1f}' for x in info['load_average'])}")
    say("peaks: " + ", ".join(f"{k} {v / 1e9:.1f}G" for k, v in pk.items()))

    e = {"issue2": engine.issue2(q)}
    a = e["issue2"]
    w = a["workload"]
    say(f"\n(a) Figure 4 workload: {w['trials']} trials x {w['iterations']} iterations, d={w['d']} K={w['K']} "
        f"r~{w['r']} N={w['N']}, layout {w['layouts']}; seconds per trial-iteration:")
    for name in ("reference", "fast", "numpy_loop"):
        say(f"  {name:11s} {fmt(a[name])}")
    say(f"  fast vs reference x{a['speedup_fast_vs_reference']:.1f}, fast vs numpy loop "
        f"x{a['speedup_fast_vs_numpy_loop']:.1f}, numpy loop vs reference x{a['speedup_numpy_loop_vs_reference']:.1f}; "
        f"max rel. diff fast/reference {a['max_rel_diff_fast_vs_reference']:.1e}")

    rf = roofline.roofline(q, pk)
    say(f"\n(b) roofline ({rf['threads']} threads, peak = threads x one core's matmul peak): fast engine per "
        "trial-iteration vs max(useful flops/peak, bytes/bandwidth), bytes only when data exceed L3")
    for row in rf["rows"]:
        say(f"  {row['workload']} r={row['r']:3d} sum_r={row['r_sum']:6.0f} u={row['union']:5.0f} "
            f"{row['layouts']}: {fmt(row['seconds_per_trial_iteration'])}, bound "
            f"{max(row['bound_flops_s'], row['bound_bytes_s']) * 1e6:.1f} us "
            f"({'flops' if row['bound_flops_s'] >= row['bound_bytes_s'] else 'bytes'}"
            f"{', in cache' if row['cache_resident'] else ''}), "
            f"{100 * row['fraction_of_bound']:.0f}% of bound, {row['achieved_gflops']:.1f} GFLOP/s useful "
            f"({100 * row['fraction_of_measured_all_thread_peak']:.0f}% of the measured {rf['threads']}-thread matmul peak)")
        say(f"      BLAS matrix-vector pair, same flops, one core: {fmt(row['blas_matvec_s'])} per trial-iteration, "
            f"{100 * row['blas_fraction_of_bound']:.0f}% of the same bound; engine x{row['engine_vs_blas_matvec']:.2f} of BLAS")

    c = roofline.cost_follows_mask(q)
    say("\n(c) cost follows the mask: d=300 K=10 N=5000, one trial on one core, seconds per iteration")
    for row in c["rows"]:
        say(f"  r={row['r']:3d} {row['layout']:6s} {fmt(row['chosen_s'])}   dense layout {fmt(row['dense_s'])}"
            f"   chosen/dense x{row['chosen_over_dense']:.2f}   model {row['model_s'] * 1e6:.0f} us")
    say(f"  r=300 / r=10: x{c['r300_over_r10']:.1f}; chosen layout never slower than dense (min of repeats, 10% margin): {c['never_above_dense']}")

    g = engine.grid(q)
    say(f"\n(d) Figure-4-like grid, tol 1e-8, max_iter {g['max_iter']}: numpy loop vs fast engine (wall s)")
    for row in g["cells"]:
        say(f"  r={row['r']:3d} N={row['N']:4d} x{row['trials']}: mean iterations {row['iterations_mean']:7.0f}, "
            f"converged {row['converged']}/{row['trials']}, numpy {row['numpy_loop_s']:.2f}s, fast "
            f"{row['fast_s']:.2f}s, x{row['speedup']:.1f}, same iterations: {row['same_iterations']}")
    say(f"  total: numpy {g['numpy_loop_s']:.1f}s, fast {g['fast_s']:.1f}s, x{g['speedup']:.1f}")

    sc = scaling.run(q)
    say("\n(e) scaling of the fast engine from N=300 d=100 K=5 r=20 (one core, min seconds per trial-iteration)")
    for row in sc["rows"]:
        say(f"  {row['change']:7s} N={row['N']:4d} d={row['d']:3d} K={row['K']:2d} r={row['r']:3d}: "
            f"{row['s'] * 1e6:8.1f} us  x{row['ratio']:.2f}")
    (m1, w1), (m2, w2) = sc["trials"].items()
    say(f"  trials ({sc['threads']} threads): {m1} trials {w1:.2f}s, {m2} trials {w2:.2f}s, x{sc['trials_ratio']:.2f}")

    say("\n(f) paper-scale Figure 4: the floor its useful flops set on this machine")
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:  # entries print their own tables; --json keeps stdout for the one JSON object
        f4 = figures.fig4_floor(2 if q else 4, pk)

    others = {}
    for name in () if args.skip_others else OTHERS:
        say(f"\n[{name}]")
        try:
            with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
                others[name] = importlib.import_module(f".{name}", __package__).run(q)
        except Exception as err:  # noqa: BLE001 - report and go on with the other entries
            others[name] = {"error": repr(err)}
            say(traceback.format_exc(limit=3))

    out = {"machine": info, "peaks": pk, "engine": e["issue2"], "roofline": rf, "cost_follows_mask": c,
           "grid": g, "scaling": sc, "fig4_floor": f4, "others": others,
           "load_average_end": os.getloadavg(), "wall_s": time.perf_counter() - t0, "quick": q}
    say(f"\nload average at end: {', '.join(f'{x:.1f}' for x in out['load_average_end'])}; "
        f"total {out['wall_s']:.0f}s")
    if args.json:
        print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main()
