"""Verdicts: one of four categories for each claim of the paper, from our estimate with its interval,
the paper's read-off with its tolerance, and the trend.

- ``reproduced``: the trend holds and (where the paper gives a number) our whole interval lies within
  the paper's value +- its tolerance;
- ``trend only``: the trend holds, but our interval lies entirely outside the tolerance band (or the
  shape is wrong: a poor linear fit);
- ``not reproduced``: the trend is reversed, or the value is clearly excluded and no trend holds;
- ``undecided``: the interval straddles the band's edge or the trend's zero; the verdict then says how
  many trials per cell would shrink the interval enough to decide (half-widths scale as 1/sqrt(n)).

Pure functions over plain numbers; the experiments build Estimates and Trends, the report prints
Verdicts. docs/replication.md states the rules and where every tolerance comes from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = [
    "CATEGORIES", "Z95", "MAX_FACTOR", "CAPPED_LIMIT", "Estimate", "bound", "Trend", "trend_of",
    "trials_needed", "Verdict", "band_of", "tolerance_of", "compare", "undecided", "capped_reason",
    "withhold_incomplete", "from_interval_sign", "LINEAR_R2", "t95", "fit_slope", "linear_shape",
    "boundary_estimate", "setting_reason", "judge", "capped_note", "from_direction", "point_trend",
    "pruning_order", "at_pruning_ratios",
]

#: the four verdicts a claim can get (docs/replication.md)
CATEGORIES = ("reproduced", "trend only", "not reproduced", "undecided")
Z95 = 1.959963984540054  #: two-sided 95% normal quantile
MAX_FACTOR = 100  #: beyond 100x the trials, "more trials" is not a plan: say so
CAPPED_LIMIT = 0.05  #: a boundary or radius is stated only where fewer than 5% of the trials near it were capped


@dataclass(frozen=True)
class Estimate:
    """A number with a 95% interval [low, high] (either side may be infinite: a bound) from n trials per
    cell. ``low``/``high`` None means no interval could be formed (then nothing can be decided)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int | None = None  # trials per cell behind the interval (for the trials-needed scaling)
    fmt: str = ".3g"

    @classmethod
    def from_se(cls, value, se, n=None, fmt=".3g") -> "Estimate":
        if value is None or se is None or not math.isfinite(se):
            return cls(value, None, None, n, fmt)
        return cls(value, value - Z95 * se, value + Z95 * se, n, fmt)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def half_width(self) -> float | None:
        if not self.has_interval or not (math.isfinite(self.low) and math.isfinite(self.high)):
            return None
        return (self.high - self.low) / 2

    def text(self) -> str:
        f = self.fmt
        if self.value is None:
            if self.has_interval:
                return _bound_text(self.low, self.high, f)
            return "n/a"
        if not self.has_interval:
            return f"{self.value:{f}} (no interval)"
        if self.half_width is not None and abs(self.value - (self.low + self.high) / 2) < 1e-9 * max(1, abs(self.value)):
            return f"{self.value:{f}} ± {self.half_width:{f}}"
        return f"{self.value:{f}} [{_num(self.low, f)}, {_num(self.high, f)}]"


def _num(x, f):
    return "-inf" if x == -math.inf else "inf" if x == math.inf else format(x, f)


def _bound_text(lo, hi, f):
    if hi == math.inf:
        return f">= {lo:{f}}"
    if lo == -math.inf:
        return f"<= {hi:{f}}"
    return f"in [{lo:{f}}, {hi:{f}}]"


def bound(low=-math.inf, high=math.inf, n=None, fmt=".3g") -> Estimate:
    """A quantity known only to lie in [low, high] (e.g. a boundary beyond the grid): no point value."""
    return Estimate(None, low, high, n, fmt)


@dataclass(frozen=True)
class Trend:
    """Whether the paper's direction holds: True, False (reversed, decided), None (unresolved).
    ``shape``: False when the direction holds but the shape does not (e.g. a linear fit with a low
    R^2); ``needed``: trials per cell that would resolve an unresolved trend."""

    holds: bool | None
    text: str
    shape: bool | None = None
    needed: int | None = None


def trend_of(est: Estimate, sign: int, what: str | None, shape: bool | None = None, shape_text: str = "") -> Trend:
    """The trend "``what`` has sign ``sign``" judged on an estimate's 95% interval: it holds when the
    interval excludes 0 on the paper's side, is reversed when it excludes 0 on the other side, and is
    unresolved otherwise (with the trials that would resolve it). ``what`` None: the estimate is the
    claim's own value, already in the check, so the text only states the sign required."""
    word = "> 0" if sign > 0 else "< 0"
    head = f"sign {word} required" if what is None else f"{what} {est.text()} (should be {word})"
    if not est.has_interval:
        return Trend(None, head + ": no interval", shape)
    lo, hi = est.low * sign, est.high * sign
    if sign < 0:
        lo, hi = hi, lo
    body = head + (f"; {shape_text}" if shape_text else "")
    if lo > 0:
        return Trend(True, body, shape)
    if hi < 0:
        return Trend(False, body, shape)
    need = trials_needed(est, abs(est.value) if est.value is not None else 0.0)
    return Trend(None, body, shape, need)


def trials_needed(est: Estimate, distance: float) -> int | None:
    """Trials per cell that would shrink the interval's half-width below ``distance`` (1/sqrt(n)
    scaling); None when no count would do (no interval, no n, or a point on the edge)."""
    h = est.half_width
    if h is None or not est.n or distance <= 0:
        return None
    factor = (h / distance) ** 2
    if factor > MAX_FACTOR:
        return None
    return max(est.n + 1, math.ceil(est.n * factor))


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict: its category (one of ``CATEGORIES``), the check with its numbers, the reason,
    and, if undecided, the trials per cell that would decide it."""

    category: str
    check: str  # one line: what was compared, with the numbers
    reason: str = ""  # why this category (and, if undecided, what would decide it)
    needed: int | None = None  # trials per cell that would decide an undecided verdict

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"verdict category {self.category!r} not in {CATEGORIES}")

    def as_dict(self) -> dict:
        return asdict(self)

    def claim(self, claim: str, paper: str, ours: str, **extra) -> dict:
        """The claim row the report and the CLI print."""
        return {"claim": claim, "paper": paper, "ours": ours, "verdict": self.category, "check": self.check,
                "reason": self.reason, "needed": self.needed, **extra}


def _more(needed, n, est: "Estimate | None" = None) -> str:
    if needed is None and est is not None and est.value is None and est.has_interval:
        return "the estimate lies beyond the grid (a bound): extend the grid"
    if needed is None:
        return "more trials alone would not decide it (the estimate sits on the edge, or has no interval)"
    return f"about {needed} trials per cell would decide it (now {n})"


def band_of(paper: float, tolerance) -> tuple[float, float]:
    """The paper's acceptance band: value +- tolerance (a number), or a (low, high) pair as given."""
    if isinstance(tolerance, (tuple, list)):
        return float(tolerance[0]), float(tolerance[1])
    return paper - tolerance, paper + tolerance


def tolerance_of(spec: dict, paper: float) -> float | tuple[float, float]:
    """A tolerance entry of paper_figures.json -> what ``compare`` takes: {"absolute": t} -> t;
    {"relative": r} -> r |paper|; {"factor": f} -> the band [paper / f, paper * f] (log-scale
    read-offs); {"relative_of_1_minus": r} -> r (1 - paper) (rates near 1)."""
    if "absolute" in spec:
        return float(spec["absolute"])
    if "relative" in spec:
        return float(spec["relative"]) * abs(paper)
    if "factor" in spec:
        return paper / float(spec["factor"]), paper * float(spec["factor"])
    if "relative_of_1_minus" in spec:
        return float(spec["relative_of_1_minus"]) * (1 - paper)
    raise ValueError(f"tolerance entry {spec} has none of absolute, relative, factor, relative_of_1_minus")


def compare(estimate: Estimate, paper: float | None, tolerance, trend: Trend, *,
            what: str, paper_text: str | None = None) -> Verdict:
    """The verdict on one claim: our ``estimate`` of ``what`` against the paper's value +- ``tolerance``
    (a half-width, or a (low, high) band; None for a claim without a number) and the ``trend``."""
    band = None if paper is None else band_of(paper, tolerance)
    if paper is None:
        check = f"{what} {estimate.text()}; {trend.text}" if estimate.value is not None or estimate.has_interval \
            else trend.text
    else:
        f = estimate.fmt
        tol = f"± {format(tolerance, f)}" if not isinstance(tolerance, (tuple, list)) else \
            f"(band {format(band[0], f)}-{format(band[1], f)})"
        check = f"{what} {estimate.text()} vs paper {paper_text or format(paper, f)} {tol}; {trend.text}"
    if trend.holds is False:
        return Verdict("not reproduced", check, "the trend is reversed")
    if band is not None and not estimate.has_interval:
        return Verdict("undecided", check, "no interval on our estimate")
    inside = outside = False
    if band is not None:
        inside = band[0] <= estimate.low and estimate.high <= band[1]
        outside = estimate.high < band[0] or estimate.low > band[1]
    if trend.holds is None:
        if outside:
            return Verdict("not reproduced", check, "the value is clearly outside the tolerance and the trend "
                                                   "is not resolved")
        return Verdict("undecided", check, "the trend is not resolved: " + _more(trend.needed, estimate.n),
                       trend.needed)
    # the trend holds
    if band is None:
        if trend.shape is False:
            return Verdict("trend only", check, "the direction holds but the shape does not")
        return Verdict("reproduced", check, "the trend holds (the paper gives no number to compare)")
    if outside:
        return Verdict("trend only", check, "the trend holds; the value is outside the paper's tolerance")
    if inside:
        if trend.shape is False:
            return Verdict("trend only", check, "the value is within tolerance but the shape does not hold")
        return Verdict("reproduced", check, "within the paper's tolerance and the trend holds")
    v = estimate.value if estimate.value is not None else (
        estimate.low if math.isfinite(estimate.low) else estimate.high)
    distance = min(abs(v - band[0]), abs(v - band[1]))
    needed = trials_needed(estimate, distance)
    return Verdict("undecided", check, "our interval straddles the edge of the paper's tolerance: "
                   + _more(needed, estimate.n, estimate), needed)


def undecided(check: str, reason: str, needed: int | None = None) -> Verdict:
    """A verdict withheld for a reason other than the interval (capped trials, an incomplete sweep, a
    setting that differs from the paper's)."""
    return Verdict("undecided", check, reason, needed)


def capped_reason(capped: int, trials: int, where: str, *, what: str = "ran to max_iter without deciding",
                  fix: str = "raise max_iter or change the step convention") -> str | None:
    """Why a boundary or radius cannot be stated: at least 5% of the trials near it ran to the
    iteration cap undecided (or, with ``what``/``fix``, hit another cap such as the radius grid's end).
    None when fewer did."""
    if trials and capped / trials >= CAPPED_LIMIT:
        return f"{capped} of {trials} trials {where} {what} (>= 5%): {fix}"
    return None


def withhold_incomplete(claims: list[dict], have: int, want: int) -> list[dict]:
    """An incomplete sweep: every verdict is withheld, saying how many trials the store holds."""
    if have >= want:
        return claims
    why = f"incomplete sweep: {have} of {want} trials; verdict withheld"
    return [{**c, "verdict": "undecided", "reason": why, "needed": None} for c in claims]


def from_interval_sign(mean: float | None, se: float | None, n: int | None, sign: int, what: str) -> Trend:
    """A trend on a mean with a standard error (convenience over ``trend_of``)."""
    return trend_of(Estimate.from_se(mean, se, n), sign, what)


LINEAR_R2 = 0.9  #: a "linear" shape claim needs R^2 >= 0.9 of the straight-line fit


def t95(dof: int | None) -> float:
    """The two-sided 95% Student-t quantile (the normal one without dof)."""
    if not dof or dof < 1:
        return Z95
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def fit_slope(fit: dict, n: int | None, fmt=".3g", xs=None, point_half_widths=None) -> Estimate:
    """The slope of a linear_fit as an Estimate: a t interval on its residual dof, widened to the
    interval that the points' own 95% half-widths imply (Var a = sum (x - x_bar)^2 s_i^2 / Sxx^2), so
    that two points, or points that happen to fall on a line, still carry their uncertainty."""
    if fit.get("a") is None:
        return Estimate(None)
    hs = []
    if fit.get("a_se") is not None:
        hs.append(t95(fit["n"] - 2) * fit["a_se"])
    if xs is not None and point_half_widths is not None and len(xs) >= 2:
        if any(h is None or not math.isfinite(h) for h in point_half_widths):
            hs.append(math.inf)
        else:
            xbar = sum(xs) / len(xs)
            sxx = sum((x - xbar) ** 2 for x in xs)
            if sxx > 0:
                hs.append(math.sqrt(sum((x - xbar) ** 2 * h ** 2 for x, h in zip(xs, point_half_widths))) / sxx)
    if not hs:
        return Estimate(fit["a"], n=n, fmt=fmt)
    h = max(hs)
    return Estimate(fit["a"], fit["a"] - h, fit["a"] + h, n, fmt)


def linear_shape(fit: dict) -> tuple[bool | None, str]:
    """Whether a fit is good enough to call the relation linear, and the words for it."""
    if fit.get("r2") is None or fit.get("n", 0) < 3:
        return None, f"{fit.get('n', 0)} points: linearity not tested"
    ok = fit["r2"] >= LINEAR_R2
    return ok, f"R^2 = {fit['r2']:.2f} ({'>=' if ok else '<'} {LINEAR_R2} for linear, {fit['n']} points)"


def boundary_estimate(b: dict, key: str, grid, n: int | None, floor: float = 0.0, fmt=".3g") -> Estimate:
    """A transition estimate ({key, ci_low, ci_high, outside_grid}) as an Estimate: beyond the grid it is
    a bound (between ``floor`` and the grid's first value, or above its last)."""
    grid = sorted(float(x) for x in grid)
    side = b.get("outside_grid")
    if side == "below":
        return bound(floor, grid[0], n, fmt)
    if side == "above":
        return bound(grid[-1], math.inf, n, fmt)
    lo = b.get("ci_low")
    return Estimate(b[key], None if lo is None else max(lo, floor), b.get("ci_high"), n, fmt)


def setting_reason(ours: dict, paper: dict, command: str) -> str | None:
    """Why a paper number cannot be compared here: a setting that differs from the paper's (None if none)."""
    diff = [f"{k} = {ours.get(k)} (paper {v})" for k, v in paper.items() if ours.get(k) != v]
    if not diff:
        return None
    return "the paper's number holds at its setting, not here: " + ", ".join(diff) + f"; run `{command}`"


def judge(estimate: Estimate, paper, tolerance, trend: Trend, *, what: str, paper_text: str | None = None,
          withheld=()) -> Verdict:
    """``compare``, unless a reason withholds the verdict (capped trials near a boundary, a setting
    other than the paper's): then undecided with those reasons and the same check."""
    v = compare(estimate, paper, tolerance, trend, what=what, paper_text=paper_text)
    reasons = [r for r in withheld if r]
    if reasons:
        return Verdict("undecided", v.check, "; ".join(reasons))
    return v


def point_trend(trend: Trend, holds: str, reversed_: str = "the order is reversed",
                unresolved: str = "the order is unresolved") -> Trend:
    """The overall trend as the claims at single points cite it: the same decision, a short text."""
    return Trend(trend.holds, {True: holds, False: reversed_, None: unresolved}[trend.holds], trend.shape)


def pruning_order(ests: dict[float, Estimate], what: str, *, few: str, no_interval: str,
                  intervals: str = "intervals") -> Trend:
    """"More pruning needs less" over estimates by pruning ratio. The extremes decide the direction:
    it holds when the most pruned one's interval lies wholly below the least pruned one's, is reversed
    when wholly above. A claim of order is also one of monotony, so pairs of ratios whose intervals are
    disjoint count too: one in the reverse order (more pruning, wholly more) breaks the shape when the
    extremes are in order (trend only); with the extremes unresolved (or one without an interval) the
    trend is reversed only if reversed pairs are all the decided ones, and stays unresolved, its shape
    broken, when decided pairs point both ways. ``what`` names the quantity in the text; ``few``: the text
    with fewer than 2 ratios; ``no_interval``: the text when an extreme lacks an interval."""
    xs = sorted(ests)
    if len(xs) < 2:
        return Trend(None, few)
    pairs = [(p, q) for i, p in enumerate(xs) for q in xs[i + 1:] if ests[p].has_interval and ests[q].has_interval]
    inverted = [(p, q) for p, q in pairs if ests[q].low > ests[p].high]
    in_order = [(p, q) for p, q in pairs if ests[q].high < ests[p].low]

    def against(pair):
        p, q = pair
        return (f"{what} at {q:.0%} {ests[q].text()} lies wholly above at {p:.0%} {ests[p].text()} "
                "(more pruning, more)")

    a, b = ests[xs[0]], ests[xs[-1]]  # least and most pruned
    if a.has_interval and b.has_interval:
        holds = True if b.high < a.low else False if b.low > a.high else None
        text = (f"{what} at {xs[-1]:.0%} {b.text()} vs at {xs[0]:.0%} {a.text()} (the first should be smaller, "
                f"{intervals} disjoint)")
    else:
        holds, text = None, no_interval
    if not inverted or holds is False:
        return Trend(holds, text)
    if holds:
        return Trend(True, f"{text}; but {against(inverted[0])}: not monotone", shape=False)
    if in_order:  # decided pairs both ways: no direction, and not monotone
        return Trend(None, f"{text}; {against(inverted[0])}, while other pairs are in order: not monotone",
                     shape=False)
    return Trend(False, f"{text}; but {against(inverted[0])}")


def at_pruning_ratios(ref: dict[str, float], ests: dict[float, Estimate], withheld: dict[float, list], tol: dict,
                      trend: Trend, *, claim: str, what: str, missing: str, command: str) -> list[dict]:
    """One claim per paper read-off at a pruning ratio (``ref``: '40%' -> value): the estimate at that
    ratio judged against the value within ``tolerance_of(tol, value)`` and ``trend``, withheld for
    ``withheld[ratio]``; undecided, not run, where no estimate is at that ratio. ``claim``, ``what``
    and ``missing`` are formatted with key (the '40%') and pv (the paper's value); ``command`` runs
    the missing cells."""
    out = []
    for key, pv in ref.items():
        p = float(key.rstrip("%")) / 100
        text = claim.format(key=key, pv=pv)
        q = next((q for q in ests if abs(q - p) < 1e-9), None)
        if q is None:
            out.append(undecided(missing.format(key=key, pv=pv), f"not run (run `{command}`)").claim(text, str(pv), "n/a"))
            continue
        out.append(judge(ests[q], pv, tolerance_of(tol, pv), trend, what=what.format(key=key, pv=pv),
                         withheld=withheld[q]).claim(text, str(pv), ests[q].text()))
    return out


def capped_note(cells: list[dict], max_iter: int) -> str:
    """The report's line on capping: how many trials ran to max_iter, how many of them undecided."""
    k = sum(int(c.get("capped", 0)) for c in cells)
    u = sum(int(c.get("capped_undecided", 0)) for c in cells)
    t = sum(int(c["trials"]) for c in cells)
    worst = max(cells, key=lambda c: c.get("capped_undecided", 0) / max(c["trials"], 1), default=None)
    tail = ""
    if worst is not None and worst.get("capped_undecided", 0):
        where = ", ".join(f"{k_}={v}" for k_, v in worst.items() if k_ not in
                          ("successes", "trials", "capped", "capped_undecided", "r_tilde", "r_ave", "iterations",
                           "mean", "std"))
        tail = f"; worst cell ({where}): {worst['capped_undecided']} of {worst['trials']}"
    return (f"Capped: {k} of {t} trials ran to max_iter = {max_iter}; {u} of them had not succeeded (undecided)"
            + tail + ".")


def from_direction(c: dict, how: str) -> dict:
    """A claim judged elsewhere as a direction (True: holds, False: reversed, None: unresolved) in the
    four categories; ``how`` says in a few words how that direction was decided."""
    cat = {True: "reproduced", False: "not reproduced", None: "undecided"}[c["verdict"]]
    reason = {True: "the direction holds", False: "the direction is reversed",
              None: "the direction is unresolved"}[c["verdict"]] + f" ({how})"
    return {**c, "verdict": cat, "check": f"{c['ours']}", "reason": reason, "needed": None}
