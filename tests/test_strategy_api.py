"""The Python Strategy API over the engine: callbacks, views, order calls and decision time, by hand."""
from __future__ import annotations

import functools
import time

import pytest

from engine.views import EngineConfig, LatencyConfig, make_sim
from feeds import events as E
from runtime import session as backtest
from strategies.api import WakePolicy
from strategies.base import Strategy
from tests import engine_events

MS = 1_000_000
FEED = 1 * MS          # every event reaches us 1 ms after the exchange stamped it
TICK = 0.01


stream = functools.partial(engine_events.stream, feed_latency=FEED)


BOOK = [(E.DEPTH, 1, 0, 100.00, 5.0), (E.DEPTH, -1, 0, 100.02, 5.0)]


def sim_for(events, **cfg):
    latency = LatencyConfig(place_entry_ns=MS, place_response_ns=MS, cancel_entry_ns=MS, cancel_response_ns=MS)
    return make_sim(events, EngineConfig(tick_size=TICK, lot_size=1.0, **(dict(latency=latency) | cfg)))


class Recorder(Strategy):
    """Buys 2 at 100.00 at the first timer wake-up and writes down every callback."""

    def __init__(self, **kw):
        super().__init__(wake=WakePolicy(every_ns=10 * MS), **kw)
        self.calls = []

    def on_start(self, ctx):
        self.calls.append(("start", ctx.now))

    def on_depth(self, ctx):
        self.calls.append(("depth", ctx.now, ctx.best_bid, ctx.best_ask))

    def on_trade(self, ctx, trades):
        self.calls.append(("trade", ctx.now, list(trades.price), list(trades.side)))

    def on_fill(self, ctx, fill):
        self.calls.append(("fill", ctx.now, fill.price, fill.qty, fill.maker, fill.exch_ts, fill.local_ts))

    def on_order_update(self, ctx, order):
        self.calls.append(("order", ctx.now, order.status, order.leaves))

    def on_timer(self, ctx):
        if not any(c[0] == "sent" for c in self.calls):
            self.calls.append(("sent", ctx.now, ctx.buy(100.00, 2)))

    def on_stop(self, ctx):
        self.calls.append(("stop", ctx.position))


def test_callbacks_in_order_with_hand_computed_fill():
    # A seller trades through our bid at 50 ms: we (arrived at 11 ms) fill in full at our price.
    events = stream(*BOOK, (E.TRADE, -1, 50 * MS, 99.99, 1.0), (E.DEPTH, 1, 70 * MS, 100.00, 4.0))
    s = Recorder()
    result = backtest.run(s, sim_for(events), TICK, 1.0)
    assert s.calls == [
        ("start", 0),
        ("depth", 10 * MS, 100.00, 100.02),                 # the book arrived at 1 ms
        ("sent", 10 * MS, 1),                               # leaves at 10 ms, reaches the exchange at 11 ms
        ("order", 20 * MS, "new", 2.0),                     # acknowledged at 12 ms
        ("fill", 60 * MS, 100.00, 2.0, True, 50 * MS, 51 * MS),
        ("order", 60 * MS, "filled", 0.0),
        ("trade", 60 * MS, [99.99], [-1]),
        ("depth", 80 * MS, 100.00, 100.02),
        ("stop", 2.0),
    ]
    assert result.account.position == 2.0
    assert result.account.cash == pytest.approx(-200.0)
    assert len(result.fills) == 1 and result.fills[0]["exch_ts"] == 50 * MS


def test_declared_decision_time_delays_the_order_past_a_trade():
    # The trade at 15.5 ms fills an order that reached the exchange at 11 ms, but not one held
    # 5 ms for the decision (reaches it at 16 ms).
    events = stream(*BOOK, (E.TRADE, -1, 15 * MS + MS // 2, 99.99, 1.0), (E.DEPTH, 1, 40 * MS, 100.00, 5.0))
    fast = backtest.run(Recorder(compute_ns=0), sim_for(events), TICK, 1.0)
    slow = backtest.run(Recorder(compute_ns=5 * MS), sim_for(events), TICK, 1.0)
    assert len(fast.fills) == 1 and fast.account.position == 2.0
    assert len(slow.fills) == 0 and slow.account.position == 0.0


class Sleeper(Recorder):
    def on_timer(self, ctx):
        time.sleep(0.004)
        super().on_timer(ctx)


def test_compute_ns_reads_like_the_config():
    assert Sleeper().compute_ns == Recorder.compute_ns == 0          # None: the class's own
    assert Sleeper(compute_ns="measured").compute_ns is None
    assert Sleeper(compute_ns=7).compute_ns == 7


def test_measured_decision_time_is_charged():
    # Sleeping 4 ms in the callback makes the order reach the exchange after the 12.5 ms trade.
    events = stream(*BOOK, (E.TRADE, -1, 12 * MS + MS // 2, 99.99, 1.0), (E.DEPTH, 1, 40 * MS, 100.00, 5.0))
    declared = backtest.run(Sleeper(compute_ns=0), sim_for(events), TICK, 1.0)
    measured = backtest.run(Sleeper(compute_ns="measured"), sim_for(events), TICK, 1.0)
    assert len(declared.fills) == 1
    assert len(measured.fills) == 0


class Viewer(Strategy):
    def __init__(self):
        super().__init__(wake=WakePolicy(every_ns=10 * MS))
        self.seen = []

    def on_timer(self, ctx):
        if not self.seen:
            self.seen.append(ctx.book(3))
            ctx.sell(100.05, 1, tif="gtc")
            ctx.buy(99.90, 3, tif="gtc")
        elif len(self.seen) == 1:
            self.seen.append(sorted((o.side, o.price, o.qty, o.status) for o in ctx.orders()))
            self.seen.append(ctx.cancel_all())
        elif len(self.seen) == 3:
            self.seen.append(ctx.orders())


def test_views_and_cancel_all():
    events = stream((E.DEPTH, 1, 0, 100.00, 5.0), (E.DEPTH, 1, 0, 99.98, 7.0), (E.DEPTH, -1, 0, 100.02, 4.0),
                    (E.DEPTH, -1, 0, 100.05, 6.0), (E.DEPTH, 1, 60 * MS, 99.98, 8.0))
    v = Viewer()
    result = backtest.run(v, sim_for(events), TICK, 1.0)
    book, orders, cancelled, after = v.seen
    assert list(book.bid_price) == pytest.approx([100.00, 99.98])
    assert list(book.bid_qty) == [5.0, 7.0]
    assert list(book.ask_price) == pytest.approx([100.02, 100.05])
    assert list(book.ask_qty) == [4.0, 6.0]
    assert orders == [("buy", pytest.approx(99.90), 3.0, "new"), ("sell", pytest.approx(100.05), 1.0, "new")]
    assert cancelled == 2
    assert after == []                                      # cancelled, reported, then dropped from view
    assert sorted(result.orders["status"].tolist()) == [4, 4]   # both CANCELED


def test_wake_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        WakePolicy(every_ns=0)
    with pytest.raises(ValueError):
        WakePolicy(every_ns=None)


class Waker(Strategy):
    def __init__(self, wake):
        super().__init__(wake=wake)
        self.seen = []

    def on_depth(self, ctx):
        self.seen.append(("depth", ctx.now // MS, ctx.book(1).bid_qty.tolist(), ctx.book(1).ask_qty.tolist()))

    def on_trade(self, ctx, trades):
        self.seen.append(("trade", ctx.now // MS, len(trades)))

    def on_timer(self, ctx):
        self.seen.append(("timer", ctx.now // MS))


WAKE_EVENTS = [*BOOK, (E.DEPTH, 1, 20 * MS, 100.00, 6.0), (E.DEPTH, -1, 30 * MS, 100.03, 2.0),
               (E.DEPTH, 1, 40 * MS, 99.99, 3.0), (E.TRADE, 1, 50 * MS, 100.02, 1.0)]


def test_wake_every_n_events_counts_local_market_events():
    w = Waker(WakePolicy(every_ns=None, every_events=2))
    backtest.run(w, sim_for(stream(*WAKE_EVENTS)), TICK, 1.0)
    assert w.seen == [("depth", 1, [5.0], [5.0]),          # the two book rows at 1 ms
                      ("depth", 31, [6.0], [5.0]),         # rows at 21 and 31 ms
                      ("trade", 51, 1), ("depth", 51, [6.0], [5.0])]


def test_wake_on_top_change_stops_between_events_of_one_timestamp():
    w = Waker(WakePolicy(every_ns=None, on_top_change=True))
    backtest.run(w, sim_for(stream(*WAKE_EVENTS)), TICK, 1.0)
    assert w.seen == [("depth", 1, [5.0], []),             # the bid arrived; the ask, same ms, not yet
                      ("depth", 1, [5.0], [5.0]),
                      ("depth", 21, [6.0], [5.0]),         # size at the best bid changed
                      ("trade", 51, 1), ("depth", 51, [6.0], [5.0])]   # the end: the rest, no top change


def test_timer_and_events_together_restart_the_timer_at_each_wake():
    w = Waker(WakePolicy(every_ns=25 * MS, every_events=3))
    backtest.run(w, sim_for(stream(*WAKE_EVENTS)), TICK, 1.0)
    assert w.seen == [("depth", 21, [6.0], [5.0]),          # third local event, before the 25 ms timer
                      ("depth", 46, [6.0], [5.0]), ("timer", 46),   # timer 21 + 25 ms
                      ("trade", 71, 1)]                   # the data ended at 51 ms: a last wake-up, no timer
