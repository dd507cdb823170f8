"""Order entry/response latency per command type, recorded-latency interpolation, compute time, feed latency."""
from __future__ import annotations

import pytest

from engine import kernel as K
from engine.codes import BUY, CANCELED, GTC, LIMIT, NEW, NONE
from engine.models.config import LatencyConfig
from engine.models.latency.recorded import latency_table
from engine.state import I_NFILLS, O_LSTATUS, O_LTICK, O_TICK, O_XSTATUS, O_XTS, OF_LQTY
from tests.engine_events import book, sim

ROWS = book(0, {100: 10, 99: 5}, {101: 7}) + [(10_000, "depth", "b", 98, 1)]
LAT = dict(latency=LatencyConfig(place_entry_ns=5, place_response_ns=7, modify_entry_ns=11, modify_response_ns=13,
                                 cancel_entry_ns=17, cancel_response_ns=19))


def _watch(S, column, times):
    out = []
    for t in times:
        K.goto(S, t)
        out.append(int(S.orders_i[0, column]))
    return out


def test_constant_latency_per_command():
    S = sim(ROWS, **LAT)
    K.goto(S, 100)
    K.submit(S, BUY, 100, 1.0, GTC, LIMIT)
    assert _watch(S, O_XSTATUS, [104, 105]) == [NONE, NEW]          # reaches the exchange at 100 + 5
    assert S.orders_i[0, O_XTS] == 105
    assert _watch(S, O_LSTATUS, [111, 112]) == [NONE, NEW]          # and us at 105 + 7
    K.modify(S, 1, 99, 2.0)                                          # sent at 112
    assert _watch(S, O_TICK, [122, 123]) == [100, 99]                # 112 + 11
    assert _watch(S, O_LTICK, [135, 136]) == [100, 99]               # 123 + 13
    assert S.orders_f[0, OF_LQTY] == 2.0
    K.cancel(S, 1)                                                   # sent at 136
    assert _watch(S, O_XSTATUS, [152, 153]) == [NEW, CANCELED]       # 136 + 17
    assert _watch(S, O_LSTATUS, [171, 172]) == [NEW, CANCELED]       # 153 + 19


def test_recorded_latency_is_interpolated():
    table = latency_table([0, 1000], [10, 1030], [30, 1080])   # entry 10 -> 30, response 20 -> 50
    S = sim(ROWS, latency_table=table)
    K.goto(S, 500)
    K.submit(S, BUY, 100, 1.0, GTC, LIMIT)
    assert _watch(S, O_XSTATUS, [519, 520]) == [NONE, NEW]          # entry at 500: 10 + 20 * 0.5 = 20
    # The response latency is interpolated at the exchange time 520: int(20 + 30 * 0.52) = 35.
    assert _watch(S, O_LSTATUS, [554, 555]) == [NONE, NEW]
    S = sim(ROWS, latency_table=table)
    K.goto(S, 2000)                                                  # past the table: its last row
    K.submit(S, BUY, 100, 1.0, GTC, LIMIT)
    assert _watch(S, O_XSTATUS, [2029, 2030]) == [NONE, NEW]
    assert _watch(S, O_LSTATUS, [2079, 2080]) == [NONE, NEW]


def test_latency_table_checks():
    with pytest.raises(ValueError):
        latency_table([0, 10], [5, 4], [6, 6])      # exchange before request


def test_compute_time_delays_orders():
    S = sim(ROWS, **LAT)
    K.goto(S, 100)
    K.set_compute_ns(S, 50)
    K.submit(S, BUY, 100, 1.0, GTC, LIMIT)
    assert _watch(S, O_XSTATUS, [154, 155]) == [NONE, NEW]          # 100 + 50 + 5
    assert _watch(S, O_LSTATUS, [161, 162]) == [NONE, NEW]
    K.set_compute_ns(S, 0)
    assert K.cancel(S, 1) == 0                                       # sent at 162
    assert _watch(S, O_XSTATUS, [178, 179]) == [NEW, CANCELED]


def test_compute_time_can_miss_the_queue():
    """A trade at 120 fills an order that arrived at 105; with 50 ns of thinking it arrives too late."""
    rows = ROWS + [(120, "trade", "s", 99, 1)]
    for compute, filled in ((0, True), (50, False)):
        S = sim(rows, **LAT)
        K.goto(S, 100)
        K.set_compute_ns(S, compute)
        K.submit(S, BUY, 100, 1.0, GTC, LIMIT)
        K.goto(S, 200)
        assert (S.ints[I_NFILLS] == 1) == filled


def test_feed_latency_delays_the_local_book():
    rows = book(0, {100: 10}, {101: 7}) + [(50, "depth", "b", 100, 0), (50, "depth", "b", 99, 3)]
    S = sim(rows, feed_latency=30)
    K.goto(S, 60)
    assert K.best_bid_tick(S) == 100                # the exchange moved at 50; we see it at 80
    K.goto(S, 80)
    assert K.best_bid_tick(S) == 99
    assert S.xbook_ends[0] == 99
