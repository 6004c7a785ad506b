"""One figure style for every experiment, applied as a context (never to the user's global rcParams or
backend): grey-scale phase diagrams with unrun cells hatched, curves with labelled bands, the paper's
read-offs as marked points, PNG+PDF.

Figures are built on ``matplotlib.figure.Figure`` directly, not through pyplot, so drawing one needs
no GUI backend and leaves pyplot's state alone. Draw inside ``style()`` (or decorate with ``styled``)
so that the style applies both to the artists and to the saved files.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import LogFormatterSciNotation, LogLocator

__all__ = ["STYLE", "PAPER_STYLE", "MISSING_STYLE", "style", "styled", "new_figure", "save", "phase_diagram",
           "rate_grid", "band", "paper_points", "log_axis", "wilson_interval", "completeness", "trials_title",
           "legend_with_missing", "finite", "paper_values"]

#: the rcParams of every figure, applied as a context by ``style`` (never globally)
STYLE = {"figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
         "axes.spines.top": False, "axes.spines.right": False, "legend.fontsize": 7, "legend.framealpha": 0.85,
         "axes.titlesize": 9, "pdf.fonttype": 42}

#: the paper's read-offs: black stars, drawn over our data, always labelled "paper"
PAPER_STYLE = dict(marker="*", ms=9, color="black", mfc="gold", mec="black", mew=0.7, ls="none", zorder=6)
#: cells of a grid that hold no trial: hatched, never white (white is 100% success)
MISSING_STYLE = dict(facecolor="#fbe3c8", edgecolor="tab:orange", hatch="///", lw=0)


@contextmanager
def style() -> Iterator[None]:
    """The ticketlab figure style for the duration of a ``with`` block (``matplotlib.rc_context``)."""
    with matplotlib.rc_context(STYLE):
        yield


def styled(fn):
    """Run a plotting function inside ``style()``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with style():
            return fn(*args, **kwargs)

    return wrapper


def new_figure(width: float = 4.6, height: float = 3.4, ncols: int = 1, nrows: int = 1, **subplot_kw):
    """A figure (no pyplot, no backend switch) and its axes: one Axes, or an array for a grid."""
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """Write name.png and name.pdf; an axis with labelled artists but no legend yet gets one."""
    with style():
        for ax in fig.axes:
            if ax.get_legend() is None and ax.get_legend_handles_labels()[0]:
                ax.legend()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
        for p in paths:
            fig.savefig(p)
    return paths


def completeness(done: int, asked: int) -> str:
    """'' when a sweep is complete, else '290 of 600 trials'."""
    return "" if done >= asked else f"{done} of {asked} trials"


def trials_title(ax, title: str, done: int, asked: int) -> None:
    """Set an axis title; an incomplete sweep says so in it, in red: 'incomplete: 290 of 600 trials'."""
    missing = completeness(done, asked)
    if missing:
        ax.set_title(f"{title}\nincomplete: {missing}", color="tab:red")
    else:
        ax.set_title(title)


def _edges(v: np.ndarray) -> np.ndarray:
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def phase_diagram(ax, xs, ys, rate: np.ndarray, xlabel: str, ylabel: str, *, cbar=True, partial=None):
    """Success rate as grey levels (white = every trial succeeded, black = none), as in the paper.
    Cells with no trial (NaN) are hatched orange, never white; ``partial`` (a boolean matrix like
    ``rate``) dots the cells that hold fewer trials than asked. Both get a legend entry when present."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    rate = np.asarray(rate, float)
    ex, ey = _edges(xs), _edges(ys)
    missing = ~np.isfinite(rate)
    handles = []
    if missing.any():
        for i, j in zip(*np.nonzero(missing)):
            ax.add_patch(Rectangle((ex[j], ey[i]), ex[j + 1] - ex[j], ey[i + 1] - ey[i],
                                                      zorder=0.5, **MISSING_STYLE))
        handles.append(Patch(label="not run", **MISSING_STYLE))
    mesh = ax.pcolormesh(ex, ey, np.ma.masked_invalid(rate), cmap="gray", vmin=0, vmax=1, shading="flat", zorder=1)
    if partial is not None and np.any(np.asarray(partial) & ~missing):
        for i, j in zip(*np.nonzero(np.asarray(partial) & ~missing)):
            ax.add_patch(Rectangle((ex[j], ey[i]), ex[j + 1] - ex[j], ey[i + 1] - ey[i],
                                                      fill=False, hatch="..", edgecolor="tab:orange", lw=0,
                                                      zorder=1.5))
        handles.append(Patch(fill=False, hatch="..", edgecolor="tab:orange", label="fewer trials than asked"))
    ax.set_xlim(ex[0], ex[-1])
    ax.set_ylim(ey[0], ey[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    for side in ("top", "right"):  # frame the grid: white cells (success) must not merge with the page
        ax.spines[side].set_visible(True)
    if cbar:
        ax.figure.colorbar(mesh, ax=ax, label="success rate")
    ax._ticketlab_missing_handles = handles  # picked up by legend_with_missing
    return mesh


def legend_with_missing(ax, **kw):
    """A legend that includes the 'not run' / 'fewer trials' entries of a phase diagram."""
    h, labels = ax.get_legend_handles_labels()
    extra = getattr(ax, "_ticketlab_missing_handles", [])
    if h or extra:
        ax.legend(h + extra, labels + [p.get_label() for p in extra], **kw)


def rate_grid(table, x: str, y: str, asked: int | None = None, *, x_grid=None, y_grid=None):
    """Success rates of a (x, y) grid table with 'successes' and 'trials' columns, as the sorted axes
    and a (len(ys), len(xs)) matrix for phase_diagram (NaN where a cell holds no trials). With
    ``asked`` (trials per cell) also the boolean matrix of cells holding fewer: (xs, ys, rate, partial).
    ``x_grid``/``y_grid``: the config's whole grid, so that cells not run yet are drawn (hatched) too."""
    xs = sorted(set(table[x].unique()) | set(x_grid or ()))
    ys = sorted(set(table[y].unique()) | set(y_grid or ()))
    rate = np.full((len(ys), len(xs)), np.nan)
    partial = np.zeros_like(rate, dtype=bool)
    for _, row in table.iterrows():
        i, j = ys.index(row[y]), xs.index(row[x])
        rate[i, j] = row["successes"] / row["trials"]
        partial[i, j] = asked is not None and row["trials"] < asked
    return (xs, ys, rate, partial) if asked is not None else (xs, ys, rate)


def band(ax, x, mean, spread, label, *, band_label: str = "±1 std over trials", lower=None, **kw):
    """A line with markers and a shaded band: mean +- spread (or between ``lower`` and ``spread``
    as the upper edge, when ``lower`` is given). The band's meaning goes in the legend once per axis."""
    x, mean, spread = (np.asarray(v, float) for v in (x, mean, spread))
    line, = ax.plot(x, mean, marker="o", ms=3, label=label, **kw)
    lo, hi = (mean - spread, mean + spread) if lower is None else (np.asarray(lower, float), spread)
    seen = getattr(ax, "_ticketlab_bands", set())
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0,
                    label="_nolegend_" if band_label in seen else f"shaded: {band_label}")
    ax._ticketlab_bands = seen | {band_label}
    return line


def paper_points(ax, x, y, label: str = "paper", **kw):
    """The paper's read-off values as marked points (gold stars), labelled in the legend."""
    return ax.plot(np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float)),
                   label=label, **{**PAPER_STYLE, **kw})[0]


def log_axis(ax, which: str = "y") -> None:
    """A real log axis that keeps several tick labels on a narrow range: call it after plotting. Under
    two decades the minor ticks are labelled too; under one, at 1.5, 2, 3, 5 and 7 per decade, as plain
    numbers."""
    from matplotlib.ticker import FuncFormatter

    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lim = ax.dataLim.intervaly if which == "y" else ax.dataLim.intervalx
    lo, hi = (float(v) for v in lim)
    span = math.log10(hi / lo) if lo > 0 and hi > lo and math.isfinite(hi / lo) else 3.0
    axis.set_major_locator(LogLocator(base=10))
    if span < 1:
        axis.set_minor_locator(LogLocator(base=10, subs=(1.5, 2, 3, 5, 7)))
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    else:
        axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10)))
        axis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(2, 0.6)))


def wilson_interval(successes, trials, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """The 95% Wilson score interval of a binomial proportion (elementwise)."""
    k, n = np.asarray(successes, float), np.asarray(trials, float)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def paper_values() -> dict:
    """The paper's read-off values (``paper_figures.json``, shipped with the package), for overlays.
    (Figures may not import the report, which imports them.)"""
    import json

    return json.loads((Path(__file__).resolve().parent / "paper_figures.json").read_text())


def finite(values) -> np.ndarray:
    """A list with None for missing values as a float array with NaN."""
    return np.array([np.nan if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values],
                    dtype=float)
