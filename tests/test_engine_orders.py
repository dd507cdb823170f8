"""Order types, states and reasons, cancel and modify, on hand-built L2 streams (tick 1, lot 1, 0 latency)."""
from __future__ import annotations

from engine import kernel as K
from engine.codes import (BUY, CANCELED, EXPIRED, FILLED, FOK, GTC, GTX, IOC, LIMIT, MARKET, NEW, NONE,
                          PARTIALLY_FILLED, R_NO_LIQUIDITY, R_NONE, R_POST_ONLY_WOULD_TAKE, REJECTED, SELL)
from engine.models.config import LatencyConfig, QueueConfig
from engine.state import (F_CASH, F_POS, FL_MAKER, FL_TICK, FLF_QTY, I_NFILLS, O_LSTATUS, O_REASON, O_XSTATUS,
                          OF_FRONT, OF_LEXEC, OF_LLEAVES, OF_XLEAVES)
from tests.engine_events import book, sim

# Bids 100x10, 99x5; asks 101x7, 102x5. Events after t=0 come from each test.
BOOK = book(0, {99: 5, 100: 10}, {101: 7, 102: 5})
END = [(1000, "depth", "b", 98, 1)]


def _one(side, tick, qty, tif, typ=LIMIT, rows=(), partial=False, until=10):
    S = sim(BOOK + list(rows) + END, queue=QueueConfig(partial_fills=partial))
    K.goto(S, 5)
    oid = K.submit(S, side, tick, qty, tif, typ)
    assert oid == 1
    K.goto(S, until)
    return S


def _fills(S):
    n = S.ints[I_NFILLS]
    return [(int(S.fl_i[k, FL_TICK]), float(S.fl_f[k, FLF_QTY]), int(S.fl_i[k, FL_MAKER])) for k in range(n)]


def test_gtc_rests_with_the_level_ahead():
    S = _one(BUY, 100, 2.0, GTC)
    assert (S.orders_i[0, O_XSTATUS], S.orders_i[0, O_LSTATUS], S.orders_i[0, O_REASON]) == (NEW, NEW, R_NONE)
    assert S.orders_f[0, OF_FRONT] == 10.0 and _fills(S) == []


def test_gtx_post_only_rejected_when_it_would_take():
    S = _one(BUY, 101, 2.0, GTX)
    assert (S.orders_i[0, O_LSTATUS], S.orders_i[0, O_REASON]) == (REJECTED, R_POST_ONLY_WOULD_TAKE)
    assert _fills(S) == []
    S = _one(SELL, 100, 2.0, GTX)
    assert S.orders_i[0, O_LSTATUS] == REJECTED
    S = _one(SELL, 101, 2.0, GTX)    # joins the ask: accepted
    assert S.orders_i[0, O_LSTATUS] == NEW and S.orders_f[0, OF_FRONT] == 7.0


def test_gtc_crossing_takes_at_the_opposite_best():
    S = _one(BUY, 102, 3.0, GTC)
    assert _fills(S) == [(101, 3.0, 0)]
    assert S.orders_i[0, O_LSTATUS] == FILLED
    assert S.floats[F_POS] == 3.0 and S.floats[F_CASH] == -303.0


def test_ioc():
    S = _one(BUY, 101, 3.0, IOC)
    assert _fills(S) == [(101, 3.0, 0)] and S.orders_i[0, O_LSTATUS] == FILLED
    S = _one(BUY, 100, 3.0, IOC)     # nothing to take
    assert (S.orders_i[0, O_LSTATUS], S.orders_i[0, O_REASON]) == (EXPIRED, R_NO_LIQUIDITY) and _fills(S) == []
    S = _one(BUY, 101, 10.0, IOC, partial=True)   # 7 at 101, the limit stops it; 3 expire
    assert _fills(S) == [(101, 7.0, 0)]
    assert S.orders_i[0, O_LSTATUS] == EXPIRED and S.orders_f[0, OF_LEXEC] == 7.0 and S.orders_f[0, OF_LLEAVES] == 3.0
    assert S.floats[F_POS] == 7.0 and S.floats[F_CASH] == -707.0


def test_fok():
    S = _one(BUY, 101, 10.0, FOK, partial=True)   # only 7 up to 101: nothing executes
    assert (S.orders_i[0, O_LSTATUS], S.orders_i[0, O_REASON]) == (EXPIRED, R_NO_LIQUIDITY) and _fills(S) == []
    S = _one(BUY, 102, 10.0, FOK, partial=True)   # 7 at 101 + 3 at 102
    assert _fills(S) == [(101, 7.0, 0), (102, 3.0, 0)] and S.orders_i[0, O_LSTATUS] == FILLED
    assert S.floats[F_CASH] == -(707.0 + 306.0)
    S = _one(SELL, 100, 4.0, FOK)
    assert _fills(S) == [(100, 4.0, 0)]


def test_market():
    S = _one(SELL, 0, 4.0, IOC, MARKET)
    assert _fills(S) == [(100, 4.0, 0)] and S.floats[F_POS] == -4.0 and S.floats[F_CASH] == 400.0
    S = _one(BUY, 0, 15.0, IOC, MARKET, partial=True)   # walks the asks: 7 at 101, 5 at 102, 3 expire
    assert _fills(S) == [(101, 7.0, 0), (102, 5.0, 0)] and S.orders_i[0, O_LSTATUS] == EXPIRED
    S = sim([(0, "depth", "b", 100, 5), (10, "depth", "b", 99, 1)])
    K.submit(S, BUY, 0, 1.0, IOC, MARKET)                # no asks at all
    K.goto(S, 5)
    assert (S.orders_i[0, O_LSTATUS], S.orders_i[0, O_REASON]) == (EXPIRED, R_NO_LIQUIDITY)


def test_states_before_and_after_the_exchange():
    S = sim(BOOK + END, latency=LatencyConfig(place_entry_ns=10, place_response_ns=10))
    K.goto(S, 5)
    K.submit(S, BUY, 100, 1.0, GTC, LIMIT)
    K.goto(S, 14)
    assert (S.orders_i[0, O_XSTATUS], S.orders_i[0, O_LSTATUS]) == (NONE, NONE)
    K.goto(S, 15)
    assert (S.orders_i[0, O_XSTATUS], S.orders_i[0, O_LSTATUS]) == (NEW, NONE)
    K.goto(S, 25)
    assert S.orders_i[0, O_LSTATUS] == NEW


def test_api_errors():
    S = sim(BOOK + END)
    assert K.submit(S, BUY, 100, 0.0, GTC, LIMIT) == K.E_BAD_QTY
    assert K.submit(S, BUY, 10_000, 1.0, GTC, LIMIT) == K.E_PRICE_OUT_OF_RANGE
    assert K.cancel(S, 42) == K.E_NOT_FOUND
    oid = K.submit(S, BUY, 100, 1.0, GTC, LIMIT)
    assert K.cancel(S, oid) == K.E_REQUEST_PENDING   # the new-order request is still in flight


def test_cancel():
    S = _one(BUY, 100, 2.0, GTC)
    assert K.cancel(S, 1) == 0
    K.goto(S, 20)
    assert (S.orders_i[0, O_XSTATUS], S.orders_i[0, O_LSTATUS]) == (CANCELED, CANCELED)
    # A cancel that reaches the exchange after the fill is refused; the order stays filled.
    S = sim(BOOK + [(20, "trade", "s", 99, 1)] + END, latency=LatencyConfig(cancel_entry_ns=20))
    K.goto(S, 5)
    K.submit(S, BUY, 100, 2.0, GTC, LIMIT)
    K.goto(S, 10)
    assert K.cancel(S, 1) == 0         # reaches the exchange at 30, after the fill at 20
    K.goto(S, 40)
    assert S.orders_i[0, O_LSTATUS] == FILLED and _fills(S) == [(100, 2.0, 1)]


def test_modify_priority():
    """Queue front: 10 at join; a 4-lot trade -> 6; the level grows to 9 behind us -> 6.
    Size down keeps 6; size up re-queues at 9; a new price re-queues at that level (99: 5)."""
    rows = [(20, "trade", "s", 100, 4), (21, "depth", "b", 100, 6), (25, "depth", "b", 100, 9)]
    S = _one(BUY, 100, 3.0, GTC, rows=rows, until=30)
    assert S.orders_f[0, OF_FRONT] == 6.0
    assert K.modify(S, 1, 100, 2.0) == 0
    K.goto(S, 31)
    assert S.orders_f[0, OF_FRONT] == 6.0 and S.orders_f[0, OF_XLEAVES] == 2.0 and S.orders_i[0, O_LSTATUS] == NEW
    assert K.modify(S, 1, 100, 4.0) == 0
    K.goto(S, 32)
    assert S.orders_f[0, OF_FRONT] == 9.0 and S.orders_f[0, OF_XLEAVES] == 4.0
    assert K.modify(S, 1, 100, 3.0) == 0
    K.goto(S, 33)
    assert S.orders_f[0, OF_FRONT] == 9.0
    assert K.modify(S, 1, 99, 3.0) == 0
    K.goto(S, 34)
    assert S.orders_f[0, OF_FRONT] == 5.0 and K.best_bid_tick(S) == 100


def test_modify_into_the_opposite_side():
    S = _one(BUY, 100, 3.0, GTX)
    K.modify(S, 1, 101, 3.0)           # post-only: rejected
    K.goto(S, 20)
    assert (S.orders_i[0, O_LSTATUS], S.orders_i[0, O_REASON]) == (REJECTED, R_POST_ONLY_WOULD_TAKE)
    S = _one(BUY, 100, 3.0, GTC)
    K.modify(S, 1, 101, 3.0)           # takes at 101
    K.goto(S, 20)
    assert _fills(S) == [(101, 3.0, 0)] and S.orders_i[0, O_LSTATUS] == FILLED


def test_partial_fill_state_and_many_orders_per_side():
    rows = [(20, "trade", "s", 100, 12)]  # 10 ahead: 2 lots reach each of our orders at 100
    S = sim(BOOK + rows + END, queue=QueueConfig(partial_fills=True))
    K.goto(S, 5)
    K.submit(S, BUY, 100, 3.0, GTC, LIMIT)
    K.submit(S, BUY, 100, 1.0, GTC, LIMIT)
    K.submit(S, BUY, 99, 1.0, GTC, LIMIT)
    K.goto(S, 20)
    assert S.orders_i[0, O_LSTATUS] == PARTIALLY_FILLED
    assert S.orders_f[0, OF_LEXEC] == 2.0 and S.orders_f[0, OF_LLEAVES] == 1.0
    # Our orders do not queue behind each other (no market impact): the second also sees 10 ahead.
    assert S.orders_i[1, O_LSTATUS] == FILLED and S.orders_i[2, O_LSTATUS] == NEW
    assert S.floats[F_POS] == 3.0 and S.floats[F_CASH] == -300.0


def test_kernel_views_read_the_local_book():
    from engine import kernel
    from engine.state import EngineConfig, make_sim
    from feeds import events as E
    from feeds.ordering import order_timelines
    ev = E.empty(2)
    ev["ev"] = [E.DEPTH | E.BUY, E.DEPTH | E.SELL]
    ev["px"], ev["qty"], ev["local_ts"] = [100.0, 100.02], [5, 7], [1, 1]
    S = make_sim(order_timelines(ev), EngineConfig(tick_size=0.01, lot_size=1.0))
    kernel.run_to_end(S)
    assert (kernel.best_bid_tick(S), kernel.best_ask_tick(S)) == (10000, 10002)
    assert (kernel.bid_qty_at(S, 10000), kernel.ask_qty_at(S, 10002)) == (5.0, 7.0)
    assert kernel.bid_qty_at(S, 10001) == 0.0 and kernel.ask_qty_at(S, 10**9) == 0.0   # empty, out of range
