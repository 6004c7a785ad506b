"""One figure style for every experiment: grey-scale phase diagrams, curves with std bands, PNG+PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # never open a window; works on headless machines and workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.grid": True,
                     "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False})


def new_figure(width=4.6, height=3.4):
    return plt.subplots(figsize=(width, height), constrained_layout=True)


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """Write name.png and name.pdf; an axis with labelled lines but no legend yet gets one."""
    for ax in fig.axes:
        if ax.get_legend() is None and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


def phase_diagram(ax, xs, ys, rate: np.ndarray, xlabel: str, ylabel: str, *, cbar=True):
    """Success rate as grey levels (white = every trial succeeded, black = none), as in the paper."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)

    def edges(v):
        if len(v) == 1:
            return np.array([v[0] - 0.5, v[0] + 0.5])
        mid = (v[1:] + v[:-1]) / 2
        return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])

    mesh = ax.pcolormesh(edges(xs), edges(ys), np.ma.masked_invalid(rate), cmap="gray", vmin=0, vmax=1,
                         shading="flat")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    for side in ("top", "right"):  # frame the grid: white cells (success) must not merge with the page
        ax.spines[side].set_visible(True)
    if cbar:
        ax.figure.colorbar(mesh, ax=ax, label="success rate")
    return mesh


def rate_grid(table, x: str, y: str):
    """Success rates of a (x, y) grid table with 'successes' and 'trials' columns, as the sorted axes
    and a (len(ys), len(xs)) matrix for phase_diagram (NaN where a cell holds no trials)."""
    xs, ys = sorted(table[x].unique()), sorted(table[y].unique())
    rate = np.full((len(ys), len(xs)), np.nan)
    for _, row in table.iterrows():
        rate[ys.index(row[y]), xs.index(row[x])] = row["successes"] / row["trials"]
    return xs, ys, rate


def band(ax, x, mean, std, label, **kw):
    x, mean, std = (np.asarray(v, float) for v in (x, mean, std))
    line, = ax.plot(x, mean, marker="o", ms=3, label=label, **kw)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    return line
