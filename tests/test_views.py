"""engine.views: one run's state under names, checked against a run worked out by hand.

Tick 1, lot 1, 10 ns each way for orders, maker fee 0.1% of notional. The book at t=0 is bids
{99: 5, 98: 3}, asks {101: 4, 102: 2}; we bid 1 @ 100 at t=0 (at the exchange at 10, alone at its
level), a depth row at 50 leaves it resting, and a sell trade of 2 @ 100 at t=100 fills it: maker,
fee 0.1, known to us at 110.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine import views as engine
from engine.codes import BUY, FILLED, GTC, LIMIT, NEW, NONE, REQ_MODIFY, REQ_NEW, REQ_NONE, SELL
from engine.views import QUOTED_BID, Account, FeeConfig, LatencyConfig, Request, SimView, decode_ticks
from tests import engine_events as ev

ROWS = ev.book(0, {99: 5, 98: 3}, {101: 4, 102: 2}) + [(50, "depth", "s", 102, 3), (100, "trade", "s", 100, 2)]


@pytest.fixture
def run():
    S = ev.sim(ROWS, latency=LatencyConfig(place_entry_ns=10, place_response_ns=10), fees=FeeConfig(maker=0.001))
    engine.elapse(S, 0)                 # the book at t=0
    return S, SimView(S)


def test_the_book_and_a_new_order_read_by_name(run):
    S, v = run
    assert v.now == 0 and (v.best_bid_tick, v.best_ask_tick) == (99, 101)
    bid_ticks, bid_qty, ask_ticks, ask_qty = v.book_levels(2)
    assert bid_ticks.tolist() == [99, 98] and bid_qty.tolist() == [5, 3]
    assert ask_ticks.tolist() == [101, 102] and ask_qty.tolist() == [4, 2]
    assert engine.submit(S, BUY, 100, 1.0, GTC, LIMIT) == 1
    slots = engine.visible_slots(S)
    # id, side, tick, status, tif, type, reason, pending: not acknowledged yet, the new request in flight
    assert list(v.local_orders(slots)) == [((1, BUY, 100, NONE, GTC, LIMIT, 0, REQ_NEW), (1.0, 1.0, 0.0))]
    assert v.requests_sent == 1
    assert v.requests(0, 1) == [Request(order_id=1, kind="new", side=BUY, tick=100, qty=1.0, arrives_ts=10)]


def test_a_fill_decoded_once_for_every_reader(run):
    S, v = run
    engine.submit(S, BUY, 100, 1.0, GTC, LIMIT)
    engine.elapse(S, 105)
    assert v.now == 105 and v.n_fills == 1
    assert v.fills(0, 1).tolist() == [(1, BUY, 100, 110, True, 100.0, 1.0, 0.1)]
    assert v.fill_ticks(0, 1).tolist() == [100]
    # At the exchange the fill counts at 100; we learn of it at 110.
    assert v.account() == Account(position=1.0, cash=-100.1, fees=0.1, volume=1.0, notional=100.0, n_fills=1,
                                  contract_multiplier=1.0)
    assert v.fills_known(0, 105) == 0 and v.position == 0.0
    engine.elapse(S, 5)
    assert v.fills_known(0, 110) == 1 and v.position == 1.0 and v.balance == -100.0
    slots = engine.visible_slots(S)
    assert list(v.local_orders(slots)) == [((1, BUY, 100, FILLED, GTC, LIMIT, 0, REQ_NONE), (1.0, 0.0, 1.0))]


def test_order_columns_are_the_local_orders_in_one_call(run):
    S, v = run
    assert engine.submit(S, BUY, 100, 1.0, GTC, LIMIT) == 1
    assert engine.submit(S, SELL, 103, 2.0, GTC, LIMIT) == 2
    engine.elapse(S, 105)                # the bid fills at 100, the ask rests; both acknowledged by 110
    engine.elapse(S, 5)
    assert engine.modify(S, 2, 104, 3.0) == 0
    ints, floats = engine.local_order_columns(S)
    # rows: id, side, tick, status, pending request; leaves, executed
    assert ints.tolist() == [[1, 2], [BUY, SELL], [100, 103], [FILLED, NEW], [REQ_NONE, REQ_MODIFY]]
    assert floats.tolist() == [[0.0, 2.0], [1.0, 0.0]]
    slots = engine.visible_slots(S)
    by_tuples = [(o[0], o[1], o[2], o[3], o[7]) for o, _ in v.local_orders(slots)]
    assert by_tuples == list(zip(*ints.tolist()))
    engine.clear_inactive(S)             # the filled order leaves the view, and the columns
    assert engine.local_order_columns(S)[0][0].tolist() == [2]


def test_the_tick_log_and_the_order_log(run):
    S, v = run
    engine.submit(S, BUY, 100, 1.0, GTC, LIMIT)
    engine.run_to_end(S)
    held = v.tick_log()
    assert len(held) == 6
    log = decode_ticks(held.rows(0, 6))
    # Six market rows seen locally; mid once both sides exist; the bid quoted at 50 only (filled at 100).
    assert log["ts"].tolist() == [0, 0, 0, 0, 50, 100]
    assert np.isnan(log["mid"][:2]).all() and log["mid"][2:].tolist() == [100.0] * 4
    assert log["fills"].tolist() == [0, 0, 0, 0, 0, 1]
    assert log["quoted"].tolist() == [0, 0, 0, 0, QUOTED_BID, 0]
    # Read a piece at a time, in order or not, the rows are the same.
    pieces = ((4, 6), (1, 3), (3, 4), (5, 9))
    assert [held.rows(a, b)["ts"].tolist() for a, b in pieces] == [[50, 100], [0, 0], [0], [100]]
    np.testing.assert_array_equal(held.rows(2, 5)["mid"], log["mid"][2:5])
    assert log["epnl"][-1] == pytest.approx(-0.1)
    so_far = v.so_far()
    assert (so_far.n_ticks, so_far.tick_fills, so_far.n_fills, so_far.fees) == (6, 1, 1, 0.1)
    assert so_far.epnl == log["epnl"][-1] and so_far.sum_abs_position == 1.0
    table = v.order_table()
    assert table[["order_id", "side", "price", "qty", "executed", "status", "submit_ts", "done_ts"]].tolist() == [
        (1, BUY, 100.0, 1.0, 1.0, FILLED, 0, 110)]
    assert v.next_local_row == len(v.ev)


def test_slot_records_write_through_to_the_engine(run):
    """What the strategy process's mirror does: load an order into a slot, then the order API sees it."""
    S, v = run
    slot = v.slots[0]
    slot["used"], slot["id"], slot["side"], slot["tick"], slot["status"] = 1, 7, BUY, 99, 1
    v.slot_sizes[0]["qty"] = 2.0
    v.slot_hwm, v.next_order_id = 1, 8
    assert engine.find(S, 7) == 0 and engine.n_slots(S) == 1
    assert engine.cancel(S, 7) == 0 and v.requests(0, 1)[0].kind == "cancel"
    v.drop_requests()
    assert engine.submit(S, BUY, 98, 1.0, GTC, LIMIT) == 8
    v.clear_slots(2)
    assert engine.find(S, 7) == -1 and engine.find(S, 8) == -1
