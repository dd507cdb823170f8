"""Replay an event file's L2 stream on the local timeline to check that the book is sane.

This is a checker, not the engine's book: it answers "does the data describe a
book that never crosses?" for ``cmm data info`` and ``cmm data validate``. It
keeps dense quantity arrays over the file's tick range, applies DEPTH,
DEPTH_CLEAR and DEPTH_SNAPSHOT events, and after each group of events sharing
a local timestamp counts the states where best bid >= best ask.
"""
from __future__ import annotations

import numba as nb
import numpy as np
import msgspec

from feeds.events import BUY, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, KIND_MASK, LOCAL

_BOOK_KINDS = (DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT)


class BookCheck(msgspec.Struct):
    groups: int                  # local timestamps at which the book was checked
    crossed: int                 # of those, how many showed best bid >= best ask
    first_crossed_ts: int | None
    final_best_bid: float | None
    final_best_ask: float | None
    bid_levels: int
    ask_levels: int


@nb.njit(cache=True)
def _replay(ev, local_ts, ticks, qty, n_ticks):
    bids = np.zeros(n_ticks)
    asks = np.zeros(n_ticks)
    best_bid = -1          # index of the best bid, -1 when the side is empty
    best_ask = n_ticks     # index of the best ask, n_ticks when empty
    groups = 0
    crossed = 0
    first_crossed = -1
    n = ev.shape[0]
    for i in range(n):
        e = ev[i]
        if (e & LOCAL) == 0:
            continue
        kind = e & KIND_MASK
        is_bid = (e & BUY) != 0
        t = ticks[i]
        if kind == DEPTH or kind == DEPTH_SNAPSHOT:
            if is_bid:
                bids[t] = qty[i]
                if qty[i] > 0 and t > best_bid:
                    best_bid = t
                elif qty[i] <= 0 and t == best_bid:
                    while best_bid >= 0 and bids[best_bid] <= 0:
                        best_bid -= 1
            else:
                asks[t] = qty[i]
                if qty[i] > 0 and t < best_ask:
                    best_ask = t
                elif qty[i] <= 0 and t == best_ask:
                    while best_ask < n_ticks and asks[best_ask] <= 0:
                        best_ask += 1
        elif kind == DEPTH_CLEAR:
            # Clear from the best price through px (the whole side when px is unknown).
            if is_bid:
                lo = t if t >= 0 else 0
                for k in range(lo, n_ticks):
                    bids[k] = 0.0
                best_bid = lo - 1
                while best_bid >= 0 and bids[best_bid] <= 0:
                    best_bid -= 1
            else:
                hi = t if t >= 0 else n_ticks - 1
                for k in range(0, hi + 1):
                    asks[k] = 0.0
                best_ask = hi + 1
                while best_ask < n_ticks and asks[best_ask] <= 0:
                    best_ask += 1
        else:
            continue
        last_of_group = True
        for j in range(i + 1, n):
            if (ev[j] & LOCAL) != 0:
                last_of_group = local_ts[j] != local_ts[i]
                break
        if last_of_group:
            groups += 1
            if best_bid >= 0 and best_ask < n_ticks and best_bid >= best_ask:
                crossed += 1
                if first_crossed < 0:
                    first_crossed = local_ts[i]
    n_bid = 0
    n_ask = 0
    for k in range(n_ticks):
        if bids[k] > 0:
            n_bid += 1
        if asks[k] > 0:
            n_ask += 1
    return groups, crossed, first_crossed, best_bid, best_ask, n_bid, n_ask


def check_book(events: np.ndarray, tick_size: float) -> BookCheck:
    kind = events["ev"] & np.uint64(KIND_MASK)
    book = np.isin(kind, np.array(_BOOK_KINDS, dtype=np.uint64))
    px = events["px"]
    priced = book & np.isfinite(px) & (px > 0)
    if not priced.any():
        return BookCheck(0, 0, None, None, None, 0, 0)
    all_ticks = np.full(len(events), -1, dtype=np.int64)
    all_ticks[priced] = np.rint(px[priced] / tick_size).astype(np.int64)
    lo = int(all_ticks[priced].min())
    ticks = np.where(priced, all_ticks - lo, -1)
    n_ticks = int(ticks.max()) + 1
    ev = np.where(book, events["ev"], np.uint64(0))
    groups, crossed, first, bb, ba, nb_, na = _replay(ev, events["local_ts"], ticks, events["qty"], n_ticks)
    return BookCheck(
        groups=int(groups), crossed=int(crossed),
        first_crossed_ts=int(first) if first >= 0 else None,
        final_best_bid=(bb + lo) * tick_size if bb >= 0 else None,
        final_best_ask=(ba + lo) * tick_size if ba < n_ticks else None,
        bid_levels=int(nb_), ask_levels=int(na))
