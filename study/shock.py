"""The synthetic shock of the stress table: a flash move injected into a copy of the test data.

At ``t`` every price of the market falls by ``ticks`` ticks and stays there for ``duration_ns``, then
comes back. So that the replayed book stays a book (no stale level left at the old prices), the move
is a book reset at both ends: a ``DEPTH_CLEAR`` of both sides, then a ``DEPTH_SNAPSHOT`` of every level
of the book as it stood, at the new prices; between the two, every row's price (depth, BBO, trades,
order-level rows) is shifted. Sizes, times and the order of rows are the data's own. A strategy sees a
gap down, a market that trades there for ``duration_ns``, and a gap back up: the jump risk the paper's
"extreme market" table is about, on a day that had none.
"""
from __future__ import annotations

import numpy as np

from feeds.events import BUY, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, EXCH, KIND_MASK, LOCAL, SELL

PRICED = DEPTH_BBO   # every kind up to DEPTH_BBO, and the order-level ones, carry a price; TRADING_STATUS does not


def book_at(events: np.ndarray, i: int) -> list[tuple[int, float, float]]:
    """The price levels (side flag, price, qty) the data's depth rows ``[0, i)`` leave, since the last clear."""
    ev = events["ev"][:i]
    kind = ev & np.uint64(KIND_MASK)
    clears = np.flatnonzero(kind == DEPTH_CLEAR)
    start = int(clears[-1]) + 1 if len(clears) else 0
    rows = start + np.flatnonzero((kind[start:] == DEPTH) | (kind[start:] == DEPTH_SNAPSHOT))
    levels: dict[tuple[int, float], float] = {}
    for e, px, qty in zip(ev[rows].tolist(), events["px"][rows].tolist(), events["qty"][rows].tolist()):
        side = BUY if e & BUY else SELL
        levels[(side, px)] = qty
    return sorted((side, px, qty) for (side, px), qty in levels.items() if qty > 0)


def _reset(dtype: np.dtype, at: int, local: int, book: list[tuple[int, float, float]], shift: float) -> np.ndarray:
    """A book reset at ``at``: clear both sides, then every level of ``book`` shifted by ``shift``."""
    rows = np.zeros(1 + len(book), dtype=dtype)
    rows["exch_ts"], rows["local_ts"] = at, local
    rows["ev"][0] = EXCH | LOCAL | DEPTH_CLEAR           # neither side flag: both sides, entirely
    for j, (side, px, qty) in enumerate(book, 1):
        rows["ev"][j] = EXCH | LOCAL | side | DEPTH_SNAPSHOT
        rows["px"][j] = px + shift
        rows["qty"][j] = qty
    return rows


def inject(events: np.ndarray, t: int, ticks: int, duration_ns: int, tick_size: float) -> np.ndarray:
    """A copy of ``events`` with the flash move: prices ``ticks`` lower from exch time ``t`` for ``duration_ns``."""
    exch = events["exch_ts"]
    a = int(np.searchsorted(exch, t, side="left"))
    b = int(np.searchsorted(exch, t + duration_ns, side="left"))
    if not 0 < a < b < len(events):
        raise ValueError("the shock must start and end inside the data, with rows between")
    shift = -ticks * tick_size
    out = events.copy()
    kind = out["ev"][a:b] & np.uint64(KIND_MASK)
    priced = (kind >= DEPTH) & (kind <= PRICED) & (kind != DEPTH_CLEAR) | (kind >= 10) & (kind <= 13)
    out["px"][a:b][priced] += shift
    # Seen locally with the row before it (its feed latency), never before it happened at the exchange.
    down = _reset(events.dtype, int(exch[a]), int(max(out["local_ts"][a - 1], exch[a])), book_at(events, a), shift)
    up = _reset(events.dtype, int(exch[b]), int(max(out["local_ts"][b - 1], exch[b])), book_at(events, b), 0.0)
    return np.concatenate([out[:a], down, out[a:b], up, out[b:]])
