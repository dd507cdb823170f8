"""The L2 book a feed publisher serves snapshots of, and a subscriber keeps in step.

Levels are keyed by price in two open-addressing hash tables of plain arrays
(a price's bits, multiplied, pick the slot; linear probing), so no tick size or
price range is needed up front (a feed may carry any instrument). The
publisher applies every batch it sends, so this is on the feed's hot path: an
update is a probe or two in a table that fits in L1, where numba's typed dict
cost ~80 ns an event. A table doubles when it is half full (counting deleted
slots), and is sorted only when a snapshot or the levels are asked for.

The update rules are the engine's (:mod:`engine.book`): DEPTH and
DEPTH_SNAPSHOT set a level (a quantity <= 0 removes it), DEPTH_BBO also removes
the levels better than it, DEPTH_CLEAR clears one side from its best through
``px`` (the whole side when ``px`` is not finite, both sides when no side flag
is set). Other kinds, and a NaN price (the feed's checks refuse one), leave the
book as it is.

A snapshot is written as event records (one DEPTH_CLEAR of both sides, then a
DEPTH_SNAPSHOT row per level, best first), so any consumer that applies the
feed's events, this book or the engine's, rebuilds the publisher's book from it.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from feeds.events import BUY, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, EXCH, LOCAL, SELL, empty

EMPTY, USED, DELETED = 0, 1, 2
INITIAL_SLOTS = 512


@nb.njit(cache=True, inline="always")
def _slot(bits, mask):
    """The home slot of a price, from its bits (Fibonacci hashing: the multiply spreads nearby prices)."""
    return int((bits * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask


@nb.njit(cache=True)
def _apply(keys, vals, state, counts, ev, px, px_bits, qty, start):
    """Apply events ``start`` on; returns the index of the first one a table too full could not take, or len(ev).

    Row 0 of ``keys``, ``vals`` and ``state`` is the bids' table, row 1 the
    asks' (one array each, not one per side: picking an array per event cost
    more than the probe). ``counts`` is ``[[levels, deleted slots]]`` a side.
    """
    slots = state.shape[1]
    mask = slots - 1
    for i in range(start, ev.shape[0]):
        e = ev[i]
        kind = e & 0xFF
        is_bid = (e & BUY) != 0
        is_ask = (e & SELL) != 0
        p = px[i]
        if kind == DEPTH_CLEAR:
            whole = not (is_bid or is_ask) or not np.isfinite(p)
            for side in range(2):
                if (is_bid and side == 1) or (not is_bid and is_ask and side == 0):
                    continue                         # a bid clear leaves the asks, an ask clear the bids
                for s in range(slots):
                    if state[side, s] == USED and (whole or (keys[side, s] >= p if side == 0 else keys[side, s] <= p)):
                        state[side, s] = DELETED
                        counts[side, 0] -= 1
                        counts[side, 1] += 1
            continue
        if not (kind == DEPTH or kind == DEPTH_SNAPSHOT or kind == DEPTH_BBO) or not (is_bid or is_ask) \
                or np.isnan(p):
            continue
        side = 0 if is_bid else 1
        if kind == DEPTH_BBO:
            for s in range(slots):
                if state[side, s] == USED and ((keys[side, s] > p) if is_bid else (keys[side, s] < p)):
                    state[side, s] = DELETED
                    counts[side, 0] -= 1
                    counts[side, 1] += 1
        s = _slot(px_bits[i], mask)
        free = -1
        while state[side, s] != EMPTY:
            if state[side, s] == USED and keys[side, s] == p:
                break
            if state[side, s] == DELETED and free < 0:
                free = s
            s = (s + 1) & mask
        found = state[side, s] == USED
        if qty[i] > 0.0:
            if found:
                vals[side, s] = qty[i]
                continue
            if 2 * (counts[side, 0] + counts[side, 1] + 1) > slots:
                return i                             # half full: the caller rebuilds the tables and calls again
            if free >= 0:
                s = free
                counts[side, 1] -= 1
            keys[side, s] = p
            vals[side, s] = qty[i]
            state[side, s] = USED
            counts[side, 0] += 1
        elif found:
            state[side, s] = DELETED
            counts[side, 0] -= 1
            counts[side, 1] += 1
    return ev.shape[0]


@nb.njit(cache=True)
def _rehash(keys, vals, state, slots):
    """Tables of ``slots`` slots a side holding the levels of ``(keys, vals, state)``, with no deleted slot."""
    new_keys = np.empty((2, slots))
    new_vals = np.empty((2, slots))
    new_state = np.zeros((2, slots), np.int8)
    mask = slots - 1
    bits = keys.view(np.uint64)
    for side in range(2):
        for s in range(state.shape[1]):
            if state[side, s] == USED:
                t = _slot(bits[side, s], mask)
                while new_state[side, t] != EMPTY:
                    t = (t + 1) & mask
                new_keys[side, t] = keys[side, s]
                new_vals[side, t] = vals[side, s]
                new_state[side, t] = USED
    return new_keys, new_vals, new_state


class L2Book:
    """Price -> quantity on each side, updated a batch of event records at a time."""

    def __init__(self):
        self._keys = np.empty((2, INITIAL_SLOTS))
        self._vals = np.empty((2, INITIAL_SLOTS))
        self._state = np.zeros((2, INITIAL_SLOTS), np.int8)
        self._counts = np.zeros((2, 2), dtype=np.int64)

    def apply(self, events: np.ndarray) -> None:
        ev, px, qty = events["ev"], events["px"], events["qty"]
        done = 0
        while (done := _apply(self._keys, self._vals, self._state, self._counts, ev, px, px.view(np.uint64), qty,
                              done)) < len(events):
            self._rebuild()

    def _rebuild(self) -> None:
        """Drop the deleted slots, doubling the tables when a side's levels fill a quarter of them."""
        slots = self._state.shape[1]
        if 4 * (int(self._counts[:, 0].max()) + 1) > slots:
            slots *= 2
        self._keys, self._vals, self._state = _rehash(self._keys, self._vals, self._state, slots)
        self._counts[:, 1] = 0

    def _side(self, side: int, descending: bool) -> tuple[np.ndarray, np.ndarray]:
        used = self._state[side] == USED
        px, qty = self._keys[side][used], self._vals[side][used]
        order = np.argsort(-px if descending else px, kind="stable")
        return px[order], qty[order]

    def levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(bid_px, bid_qty, ask_px, ask_qty)``, each side best first."""
        return (*self._side(0, True), *self._side(1, False))

    def best_bid(self) -> float:
        used = self._state[0] == USED
        return float(self._keys[0][used].max()) if used.any() else float("nan")

    def best_ask(self) -> float:
        used = self._state[1] == USED
        return float(self._keys[1][used].min()) if used.any() else float("nan")

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
