"""The claim shapes Figures 8 and 9 share: the order over pruning ratios and the claims at the paper's ratios.

Each rule on data built to pass and to fail: intervals disjoint in the paper's order, in the reverse
order, overlapping, missing; a read-off inside, outside and across the tolerance band, a ratio that
was not run, and a reason that withholds the verdict."""

import math

from ticketlab import verdicts as vd


def _est(lo, hi, n=20):
    return vd.Estimate((lo + hi) / 2, lo, hi, n, ".0f")


def _order(ests):
    return vd.pruning_order(ests, "median", few="too few ratios", no_interval="no interval at an extreme")


def test_pruning_order_decides_its_direction_on_the_extremes():
    holds = _order({0.1: _est(900, 1000), 0.5: _est(500, 600), 0.9: _est(300, 400)})
    assert (holds.holds, holds.shape) == (True, None)
    assert holds.text == "median at 90% 350 ± 50 vs at 10% 950 ± 50 (the first should be smaller, intervals disjoint)"
    assert _order({0.1: _est(300, 400), 0.9: _est(900, 1000)}).holds is False  # reversed
    assert _order({0.1: _est(300, 500), 0.9: _est(400, 600)}).holds is None  # overlapping intervals
    assert _order({0.1: _est(300, 400), 0.9: vd.bound(500, math.inf, 20)}).holds is False  # a bound counts as an interval
    # a middle ratio merely out of place (intervals overlapping its neighbours) does not count against it
    assert _order({0.1: _est(900, 1000), 0.5: _est(950, 1100), 0.9: _est(300, 400)}).shape is None


def test_a_pair_decisively_out_of_order_breaks_the_shape_or_reverses_an_unresolved_trend():
    # extremes in order, but 50% wholly above 10%: the direction holds, monotony does not (trend only)
    t = _order({0.1: _est(900, 1000), 0.5: _est(2000, 2100), 0.9: _est(300, 400)})
    assert (t.holds, t.shape) == (True, False)
    assert t.text.endswith("; but median at 50% 2050 ± 50 lies wholly above at 10% 950 ± 50 (more pruning, more): "
                           "not monotone")
    assert vd.judge(vd.Estimate(None, n=20), None, None, t, what="").category == "trend only"
    # extremes overlapping, but 40% -> 60% decisively reversed and no pair in order: reversed
    t = _order({0.4: _est(5500, 7000), 0.5: _est(20000, math.inf), 0.6: vd.bound(math.inf, math.inf, 30),
                0.7: _est(6000, math.inf)})
    assert t.holds is False and "at 50% " in t.text and "lies wholly above at 40%" in t.text
    # less information never gives a harsher verdict: widening the most pruned interval of the trend-only
    # case above leaves one pair reversed and one in order - unresolved, not reversed
    t = _order({0.1: _est(900, 1000), 0.5: _est(2000, 2100), 0.9: _est(300, 1200)})
    assert (t.holds, t.shape) == (None, False) and "while other pairs are in order" in t.text
    # a zigzag, each step decided, extremes in order: the direction holds, the shape does not
    t = _order({0.4: _est(900, 1000), 0.5: _est(500, 600), 0.6: _est(700, 800), 0.7: _est(100, 200)})
    assert (t.holds, t.shape) == (True, False)
    # an extreme without an interval (4 trials: no median interval) does not hide a decided reversal
    t = _order({0.4: _est(5500, 7000), 0.6: _est(50000, math.inf), 0.7: vd.Estimate(None, n=4)})
    assert t.holds is False and t.text.startswith("no interval at an extreme; but median at 60%")
    # ... nor invent one: without a reversed pair it stays unresolved
    assert _order({0.4: _est(5500, 7000), 0.6: _est(5000, 6000), 0.7: vd.Estimate(None, n=4)}).holds is None


def test_pruning_order_without_two_ratios_or_intervals_is_unresolved():
    assert _order({}) == vd.Trend(None, "too few ratios")
    assert _order({0.5: _est(1, 2)}) == vd.Trend(None, "too few ratios")
    assert _order({0.1: vd.Estimate(5.0), 0.9: _est(1, 2)}) == vd.Trend(None, "no interval at an extreme")


def test_point_trend_keeps_the_decision_and_shortens_the_text():
    for holds, text in ((True, "fewer with more pruning"), (False, "the order is reversed"),
                        (None, "the order is unresolved")):
        t = vd.point_trend(vd.Trend(holds, "a long check text", needed=7), "fewer with more pruning")
        assert (t.holds, t.text, t.needed) == (holds, text, None)


def _claims(ests, withheld=None, trend=vd.Trend(True, "holds")):
    ref = {"40%": 1000, "70%": 800, "90%": 500}
    return vd.at_pruning_ratios(ref, ests, withheld or {q: [] for q in ests}, {"relative": 0.1}, trend,
                                claim="At {key} pruning about {pv}", what="iterations at {key}",
                                missing="no cell at {key}", command="ticketlab sweep figX --scale paper")


def test_claims_at_ratios_inside_outside_straddling_and_not_run():
    # 40%: inside 1000 +- 100; 70%: wholly above 800 +- 80; 90% pruning was not run
    out = _claims({0.4: _est(950, 1050), 0.7: _est(1000, 1100), 0.5: _est(1, 2)})
    assert [c["claim"] for c in out] == ["At 40% pruning about 1000", "At 70% pruning about 800", "At 90% pruning about 500"]
    assert [c["verdict"] for c in out] == ["reproduced", "trend only", "undecided"]
    assert out[0]["check"].startswith("iterations at 40% 1000 ± 50 vs paper 1000")
    assert out[2]["check"] == "no cell at 90%" and "ticketlab sweep figX --scale paper" in out[2]["reason"]
    assert out[2]["ours"] == "n/a" and out[2]["paper"] == "500"
    # across the band's edge: undecided with the trials that would decide it
    edge = _claims({0.4: _est(1060, 1160, n=10)})[0]
    assert edge["verdict"] == "undecided" and edge["needed"] > 10
    # the trend reversed: not reproduced even where the value is inside
    assert _claims({0.4: _est(950, 1050)}, trend=vd.Trend(False, "reversed"))[0]["verdict"] == "not reproduced"


def test_claims_at_ratios_are_withheld_for_their_own_ratio_only():
    ests = {0.4: _est(950, 1050), 0.7: _est(760, 840)}
    out = _claims(ests, {0.4: ["capped near 40%", None], 0.7: [None, None]})
    assert out[0]["verdict"] == "undecided" and out[0]["reason"] == "capped near 40%"
    assert out[1]["verdict"] == "reproduced"
