"""A strategy process for the transport tests: a strategy that makes every kind of order call, served over ZeroMQ.

``python -m tests.remote_exerciser --connect ADDR --token T`` is what
:class:`runtime.link.engine_side.StrategyProcess` starts for the test; the test
runs the same :class:`Exerciser` in process too and compares what each saw.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from feeds import events as E
from runtime.link import strategy_process as remote
from strategies.api import WakePolicy
from runtime.session import OrderRejected
from strategies.base import Strategy
from tests import engine_events

MS = 1_000_000
TICK = 0.01
END = 60 * MS                   # the last event (local time 61 ms)
STATUS = {"none": 0, "new": 1, "partially_filled": 2, "filled": 3, "canceled": 4, "expired": 5, "rejected": 6}
PENDING = {"": 0, "new": 1, "modify": 2, "cancel": 3}


def exerciser_events() -> np.ndarray:
    """A book at 100.00 / 100.02 that trades through both sides twice and moves, with 1 ms feed latency."""
    rows = [(E.DEPTH, 1, 0, 100.00, 5.0), (E.DEPTH, -1, 0, 100.02, 5.0)]
    for k in range(4):
        t = (10 * k + 4) * MS
        rows += [(E.TRADE, -1, t, 100.00 - 0.01 * k, 20.0), (E.DEPTH, 1, t + MS, 99.99 - 0.01 * k, 7.0),
                 (E.TRADE, 1, t + 3 * MS, 100.03 + 0.01 * k, 20.0), (E.DEPTH, -1, t + 4 * MS, 100.04 + 0.01 * k, 3.0)]
    rows.append((E.DEPTH, 1, END, 99.95, 1.0))
    return engine_events.stream(*rows, feed_latency=MS)


class Exerciser(Strategy):
    """New (limit, market, post-only that crosses), cancel, modify, cancel_all and refused calls, from every callback.

    Each call's answer and the view after it are logged; :meth:`decision_record` returns the log.
    """

    wake = WakePolicy(every_ns=3 * MS, on_top_change=True)
    compute_ns = 50_000

    def __init__(self):
        super().__init__()
        self.log: list[tuple] = []
        self.timers = 0
        self.modified: set[int] = set()

    def note(self, ctx, what: int, value: float) -> None:
        view = [(o.id, o.price, o.leaves, STATUS[o.status], PENDING[o.pending]) for o in ctx.orders()]
        self.log.append((ctx.now, what, value, ctx.position, ctx.best_bid, ctx.best_ask, ctx.metrics().n_fills,
                         float(hash(tuple(view)) % 1_000_003), len(ctx.new_events())))

    def on_start(self, ctx):
        self.note(ctx, 0, ctx.buy(100.00, 2))

    def on_fill(self, ctx, fill):
        side = ctx.sell if fill.side == "buy" else ctx.buy
        self.note(ctx, 1, side(fill.price + (0.02 if fill.side == "buy" else -0.02), fill.qty, tif="gtc"))

    def on_order_update(self, ctx, order):
        self.note(ctx, 2, order.id * 10 + STATUS[order.status])
        if order.status == "new" and not order.pending and order.side == "sell" and order.id not in self.modified:
            self.modified.add(order.id)
            self.note(ctx, 3, ctx.modify(order.id, order.price + 0.01, order.qty + 1))

    def on_trade(self, ctx, trades):
        self.note(ctx, 4, float(trades.qty.sum() * trades.side.sum()))
        for o in ctx.orders():      # cancels that race the fills the trade made: slots dropped while still held
            if o.is_live and not o.pending:
                self.note(ctx, 16, ctx.cancel(o.id))

    def on_depth(self, ctx):
        self.note(ctx, 5, float(ctx.book(3).bid_qty.sum()))

    def on_timer(self, ctx):
        if ctx.now >= END:
            return                  # nothing new after the data, so the run can end
        self.timers += 1
        k = self.timers % 5
        if k == 1:
            self.note(ctx, 6, ctx.buy(0.0, 1, tif="ioc", type="market"))
            self.note(ctx, 7, ctx.cancel(999))
            try:
                ctx.buy(100.00, 0)
            except OrderRejected:
                self.note(ctx, 8, -1)
        elif k == 2:
            self.note(ctx, 9, ctx.cancel_all())
        elif k == 3:
            self.note(ctx, 10, ctx.buy(ctx.best_bid - 0.01, 3, tif="gtc"))
            self.note(ctx, 11, ctx.sell(ctx.best_bid, 1))          # post-only through the bid: rejected
        elif k == 4:
            live = [o for o in ctx.orders() if o.is_live]
            if live:
                self.note(ctx, 12, ctx.cancel(live[0].id))
                self.note(ctx, 13, ctx.cancel(live[0].id))         # a cancel already pending: refused
        else:
            self.note(ctx, 14, ctx.buy(ctx.best_bid, 1))

    def on_stop(self, ctx):
        self.note(ctx, 15, ctx.cancel_all())

    def decision_record(self) -> dict[str, np.ndarray]:
        return {"log": np.array(self.log, dtype=np.float64)}


if __name__ == "__main__":
    args = remote.link_arguments(argparse.ArgumentParser()).parse_args()
    sys.exit(remote.run(Exerciser, args.connect, args.token))
