"""L2 queue models: front values after trades and depth changes, computed by hand from the formulas."""
from __future__ import annotations

import math

import pytest

from engine import kernel as K
from engine.codes import BUY, FILLED, GTC, LIMIT, NEW, PARTIALLY_FILLED
from engine.models.config import QueueConfig
from engine.state import F_POS, FLF_QTY, I_NFILLS, O_XSTATUS, OF_FRONT
from tests.engine_events import book, sim

# We join bid 100 at t=10 behind 10 lots; 4 lots join behind us (level 14), then 2 lots leave (level 12).
ROWS = book(0, {100: 10}, {101: 5}) + [(20, "depth", "b", 100, 14), (30, "depth", "b", 100, 12)]
FRONT, BACK, CHG = 10.0, 4.0, 2.0


def _front_after(model, power=2.0, rows=ROWS, until=30, qty=1.0, partial=False):
    S = sim(rows, queue=QueueConfig(model=model, power=power, partial_fills=partial))
    K.goto(S, 10)
    K.submit(S, BUY, 100, qty, GTC, LIMIT)
    K.goto(S, until)
    return S


def _est(p):
    """hftbacktest's ProbQueueModel: est = front - (1-p)*chg + min(back - p*chg, 0), capped at the level."""
    return min(FRONT - (1 - p) * CHG + min(BACK - p * CHG, 0.0), 12.0)


@pytest.mark.parametrize("model, power, p", [
    ("power_prob", 2.0, 4 ** 2 / (4 ** 2 + 10 ** 2)),
    ("power_prob", 3.0, 4 ** 3 / (4 ** 3 + 10 ** 3)),
    ("log_prob", 2.0, math.log(5) / (math.log(5) + math.log(11))),
    ("power_prob2", 2.0, 4 ** 2 / 14 ** 2),
    ("log_prob2", 2.0, math.log(5) / math.log(15)),
    ("power_prob3", 2.0, 1 - (10 / 14) ** 2),
])
def test_prob_models_split_a_decrease(model, power, p):
    S = _front_after(model, power)
    assert S.orders_f[0, OF_FRONT] == pytest.approx(_est(p), abs=1e-12)
    assert 8.0 < S.orders_f[0, OF_FRONT] < 10.0


def test_power_prob_hand_values():
    assert _front_after("power_prob").orders_f[0, OF_FRONT] == pytest.approx(10 - (100 / 116) * 2)   # 8.2759
    assert _front_after("log_prob2").orders_f[0, OF_FRONT] == pytest.approx(9.18863, abs=1e-5)


def test_risk_averse_ignores_cancels_above_the_level():
    assert _front_after("risk_averse").orders_f[0, OF_FRONT] == 10.0     # min(10, 12)
    rows = ROWS + [(40, "depth", "b", 100, 7)]
    assert _front_after("risk_averse", rows=rows, until=40).orders_f[0, OF_FRONT] == 7.0   # min(10, 7)


@pytest.mark.parametrize("model", ["risk_averse", "power_prob", "log_prob", "power_prob2", "log_prob2",
                                   "power_prob3"])
def test_trades_then_the_depth_they_explain(model):
    """A 3-lot trade at our price: front 10 -> 7; the level then drops 14 -> 11 by exactly that trade,
    so no model moves front again (chg = 14 - 11 - 3 = 0)."""
    rows = book(0, {100: 10}, {101: 5}) + [(20, "depth", "b", 100, 14), (30, "trade", "s", 100, 3),
                                           (31, "depth", "b", 100, 11)]
    S = _front_after(model, rows=rows, until=30)
    assert S.orders_f[0, OF_FRONT] == 7.0
    K.goto(S, 31)
    assert S.orders_f[0, OF_FRONT] == 7.0


@pytest.mark.parametrize("model", ["risk_averse", "power_prob", "log_prob"])
def test_filled_once_the_queue_ahead_has_traded(model):
    rows = book(0, {100: 10}, {101: 5}) + [(20, "trade", "s", 100, 10), (30, "trade", "s", 100, 1)]
    S = _front_after(model, rows=rows, until=20, qty=2.0)
    assert S.orders_f[0, OF_FRONT] == 0.0 and S.ints[I_NFILLS] == 0    # exactly the queue ahead traded
    K.goto(S, 30)
    assert S.ints[I_NFILLS] == 1 and S.fl_f[0, FLF_QTY] == 2.0 and S.orders_i[0, O_XSTATUS] == FILLED  # in full


def test_partial_fill_at_the_front():
    rows = book(0, {100: 10}, {101: 5}) + [(20, "trade", "s", 100, 11), (30, "trade", "s", 100, 5)]
    S = _front_after("risk_averse", rows=rows, until=20, qty=3.0, partial=True)
    assert S.fl_f[0, FLF_QTY] == 1.0 and S.orders_i[0, O_XSTATUS] == PARTIALLY_FILLED and S.floats[F_POS] == 1.0
    K.goto(S, 30)     # 5 more traded at our price: 2 lots left to us
    assert S.fl_f[1, FLF_QTY] == 2.0 and S.orders_i[0, O_XSTATUS] == FILLED and S.floats[F_POS] == 3.0


def test_depth_crossing_fills_and_other_side_trades_do_not():
    rows = book(0, {100: 10}, {101: 5}) + [(20, "trade", "b", 100, 50), (30, "depth", "s", 100, 3)]
    S = _front_after("risk_averse", rows=rows, until=20)
    assert S.ints[I_NFILLS] == 0 and S.orders_i[0, O_XSTATUS] == NEW   # a buyer-initiated trade cannot hit our bid
    K.goto(S, 30)
    assert S.ints[I_NFILLS] == 1                                  # the ask came down to our bid
