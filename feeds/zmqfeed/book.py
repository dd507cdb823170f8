"""The L2 book a feed publisher serves snapshots of, and a subscriber keeps in step.

Levels are keyed by price in two jitted hash maps, so no tick size or price
range is needed up front (a feed may carry any instrument). The update rules
are the engine's (:mod:`engine.book`): DEPTH and DEPTH_SNAPSHOT set a level
(a quantity <= 0 removes it), DEPTH_BBO also removes the levels better than
it, DEPTH_CLEAR clears one side from its best through ``px`` (the whole side
when ``px`` is not finite, both sides when no side flag is set). Other kinds
leave the book as it is.

A snapshot is written as event records (one DEPTH_CLEAR of both sides, then a
DEPTH_SNAPSHOT row per level, best first), so any consumer that applies the
feed's events, this book or the engine's, rebuilds the publisher's book from it.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.typed import Dict

from feeds.events import BUY, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, EXCH, LOCAL, SELL, empty


@nb.njit(cache=True)
def _clear(levels, upto, is_bid):
    doomed = []
    for px in levels.keys():
        if not np.isfinite(upto) or (px >= upto if is_bid else px <= upto):
            doomed.append(px)
    for px in doomed:
        levels.pop(px)


@nb.njit(cache=True)
def _remove_better(levels, px, is_bid):
    doomed = []
    for p in levels.keys():
        if (p > px) if is_bid else (p < px):
            doomed.append(p)
    for p in doomed:
        levels.pop(p)


@nb.njit(cache=True)
def _apply(bids, asks, ev, px, qty):
    for i in range(ev.shape[0]):
        kind = ev[i] & 0xFF
        is_bid = (ev[i] & BUY) != 0
        is_ask = (ev[i] & SELL) != 0
        if kind == DEPTH_CLEAR:
            if is_bid:
                _clear(bids, px[i], True)
            elif is_ask:
                _clear(asks, px[i], False)
            else:
                bids.clear()
                asks.clear()
        elif (kind == DEPTH or kind == DEPTH_SNAPSHOT or kind == DEPTH_BBO) and (is_bid or is_ask):
            levels = bids if is_bid else asks
            if kind == DEPTH_BBO:
                _remove_better(levels, px[i], is_bid)
            if qty[i] > 0.0:
                levels[px[i]] = qty[i]
            elif px[i] in levels:
                levels.pop(px[i])


@nb.njit(cache=True)
def _sorted_levels(levels, descending):
    n = len(levels)
    px = np.empty(n)
    qty = np.empty(n)
    k = 0
    for p, q in levels.items():
        px[k] = p
        qty[k] = q
        k += 1
    order = np.argsort(px)
    if descending:
        order = order[::-1]
    return px[order], qty[order]


def _new_side():
    return Dict.empty(key_type=types.float64, value_type=types.float64)


class L2Book:
    """Price -> quantity on each side, updated a batch of event records at a time."""

    def __init__(self):
        self.bids = _new_side()
        self.asks = _new_side()

    def apply(self, events: np.ndarray) -> None:
        _apply(self.bids, self.asks, events["ev"], events["px"], events["qty"])

    def levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(bid_px, bid_qty, ask_px, ask_qty)``, each side best first."""
        bid_px, bid_qty = _sorted_levels(self.bids, True)
        ask_px, ask_qty = _sorted_levels(self.asks, False)
        return bid_px, bid_qty, ask_px, ask_qty

    def best_bid(self) -> float:
        return max(self.bids.keys()) if len(self.bids) else float("nan")

    def best_ask(self) -> float:
        return min(self.asks.keys()) if len(self.asks) else float("nan")

    def snapshot_events(self, ts: int) -> np.ndarray:
        """The book as records stamped ``ts`` on both timelines: DEPTH_CLEAR, then one row per level."""
        bid_px, bid_qty, ask_px, ask_qty = self.levels()
        nb_, na = len(bid_px), len(ask_px)
        out = empty_book_events(ts, nb_ + na)
        out["ev"][1:1 + nb_] = DEPTH_SNAPSHOT | EXCH | LOCAL | BUY
        out["ev"][1 + nb_:] = DEPTH_SNAPSHOT | EXCH | LOCAL | SELL
        out["px"][1:] = np.concatenate([bid_px, ask_px])
        out["qty"][1:] = np.concatenate([bid_qty, ask_qty])
        return out


def empty_book_events(ts: int, levels: int = 0) -> np.ndarray:
    """An empty book's snapshot stamped ``ts`` (one DEPTH_CLEAR of both sides), with room for ``levels`` rows."""
    out = empty(1 + levels)
    out["exch_ts"] = ts
    out["local_ts"] = ts
    out["ev"][0] = DEPTH_CLEAR | EXCH | LOCAL
    return out
