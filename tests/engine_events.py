"""Tiny hand-built event streams for the engine tests.

Prices are given in ticks (tick size 1.0, lot 1.0 unless a test says otherwise)
so expected values can be computed by hand.
"""
from __future__ import annotations

import numpy as np

from engine.state import EngineConfig, make_sim
from feeds import events as E
from feeds.ordering import order_timelines

SIDE = {"b": E.BUY, "s": E.SELL, "": 0}
KIND = {"depth": E.DEPTH, "trade": E.TRADE, "clear": E.DEPTH_CLEAR, "snap": E.DEPTH_SNAPSHOT,
        "add": E.ADD_ORDER, "cancel": E.CANCEL_ORDER, "modify": E.MODIFY_ORDER, "fill": E.FILL}


def events(rows, feed_latency: int = 0) -> np.ndarray:
    """Rows ``(exch_ts, kind, side, px, qty[, order_id])`` -> events ordered on both timelines.

    ``local_ts = exch_ts + feed_latency``.
    """
    out = E.empty(len(rows))
    for r, row in zip(out, rows):
        ts, kind, side, px, qty = row[:5]
        r["ev"] = KIND[kind] | SIDE[side]
        r["exch_ts"] = ts
        r["local_ts"] = ts + feed_latency
        r["px"] = px
        r["qty"] = qty
        r["order_id"] = row[5] if len(row) > 5 else 0
    return order_timelines(out)


def stream(*rows, feed_latency: int) -> np.ndarray:
    """Rows ``(kind, side, exch_ts, price, qty)``, with event codes and side +1 / -1 / 0, in real prices.

    The form the strategy tests use: ``local_ts = exch_ts + feed_latency``.
    """
    out = E.empty(len(rows))
    for r, (kind, side, ts, px, qty) in zip(out, rows):
        r["ev"] = kind | (E.BUY if side > 0 else E.SELL if side < 0 else 0)
        r["exch_ts"], r["local_ts"], r["px"], r["qty"] = ts, ts + feed_latency, px, qty
    return order_timelines(out)


def sim(rows, feed_latency: int = 0, latency_table=None, **cfg):
    """A Sim over hand-built rows; ``cfg`` overrides EngineConfig (tick 1, lot 1, pad 20)."""
    base = dict(tick_size=1.0, lot_size=1.0, tick_range_pad=20)
    base.update(cfg)
    return make_sim(events(rows, feed_latency), EngineConfig(**base), latency_table)


def book(t, bids, asks):
    """DEPTH rows at ``t``: ``bids``/``asks`` map tick -> qty."""
    return ([(t, "depth", "b", px, q) for px, q in bids.items()]
            + [(t, "depth", "s", px, q) for px, q in asks.items()])
