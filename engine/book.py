"""The L2 price-level book: dense arrays indexed by tick over a preset range.

The range of interest (ROI) is computed up front from the event array, so a
level update is one store and best-price tracking scans only the ticks between
the old best and the next non-empty level. This mirrors hftbacktest's
``ROIVectorMarketDepth`` exactly, crossing included: a bid at or through the
best ask moves the best ask to the first non-empty ask level above it (the
crossed ask quantities are kept, hidden, until the feed updates them).

``bk`` holds ``[best_bid, best_ask, low_bid, high_ask]`` in absolute ticks;
``lb`` is the tick at index 0 and ``ub`` the last tick in range.
"""
import numba as nb
import numpy as np

from feeds.events import BUY as BUY_FLAG, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, SELL as SELL_FLAG, TRADE

from engine.codes import INVALID_MAX, INVALID_MIN

BEST_BID = 0
BEST_ASK = 1
LOW_BID = 2
HIGH_ASK = 3


def empty_bk() -> np.ndarray:
    return np.array([INVALID_MIN, INVALID_MAX, INVALID_MAX, INVALID_MIN], dtype=np.int64)


@nb.njit(cache=True, inline="always")
def price_tick(px, tick_size):
    return np.int64(np.round(px / tick_size))


@nb.njit(cache=True, inline="always")
def tick_grid(tick_size, per_tick):
    """What :func:`price_tick_fast` takes: the tick size, its inverse and the squares of the bounds
    of its fast path (1/4 and 2**40 ticks).

    The bounds are computed here, from a run-time value, so that a loop keeps them in a register or
    its frame: as literals, Numba's code model loads each from an absolute address (two instructions)
    on every row. ``0.0 * per_tick`` is 0 for any tick size and the compiler may not fold it away.
    """
    zero = 0.0 * per_tick
    return tick_size, per_tick, 0.0625 + zero, 1208925819614629174706176.0 + zero


@nb.njit(cache=True, inline="always")
def price_tick_fast(px, grid):
    """:func:`price_tick` without a division where that cannot change the result; ``grid`` is
    :func:`tick_grid`'s.

    ``px * per_tick`` (``per_tick = 1/tick_size``) is within a few ulps of ``px / tick_size``;
    when it lies within 1/4 of an integer (always, for prices on the grid) both round to that
    integer. Otherwise (near a half, NaN, or beyond 2**40 ticks) the division decides. The bounds
    are compared squared (no mask for ``abs``): for these powers of two, ``d * d < b * b`` holds
    exactly when ``abs(d) < b``, rounding included.
    """
    tick_size, per_tick, near2, far2 = grid
    x = px * per_tick
    t = np.round(x)
    d = x - t
    if d * d < near2 and x * x < far2:
        return np.int64(t)
    return np.int64(np.round(px / tick_size))


@nb.njit(cache=True)
def depth_below(depth, start, end, lb, ub):
    """Highest non-empty tick strictly below ``start`` and at or above ``end``."""
    s = min(start, ub) - lb
    e = max(end, lb) - lb
    t = s - 1
    while t >= e:
        if depth[t] > 0.0:
            return t + lb
        t -= 1
    return INVALID_MIN


@nb.njit(cache=True)
def depth_above(depth, start, end, lb, ub):
    """Lowest non-empty tick strictly above ``start`` and at or below ``end``."""
    s = max(start, lb) - lb
    e = min(end, ub) - lb
    t = s + 1
    while t <= e:
        if depth[t] > 0.0:
            return t + lb
        t += 1
    return INVALID_MAX


@nb.njit(cache=True)
def qty_at(depth, tick, lb, ub):
    if tick < lb or tick > ub:
        return 0.0
    return depth[tick - lb]


@nb.njit(cache=True, inline="always")
def update_bid(bid, ask, bk, tick, qty, lot, lb, ub):
    """Set the bid level at ``tick``; returns the quantity it had before."""
    if tick < lb or tick > ub:
        return 0.0
    t = tick - lb
    prev = bid[t]
    bid[t] = qty
    if qty < lot and np.round(qty / lot) == 0.0:   # qty >= lot: no division needed
        if tick == bk[BEST_BID]:
            bk[BEST_BID] = depth_below(bid, bk[BEST_BID], bk[LOW_BID], lb, ub)
            if bk[BEST_BID] == INVALID_MIN:
                bk[LOW_BID] = INVALID_MAX
    else:
        if tick > bk[BEST_BID]:
            bk[BEST_BID] = tick
            if bk[BEST_BID] >= bk[BEST_ASK]:
                bk[BEST_ASK] = depth_above(ask, bk[BEST_BID], bk[HIGH_ASK], lb, ub)
        if tick < bk[LOW_BID]:
            bk[LOW_BID] = tick
    return prev


@nb.njit(cache=True, inline="always")
def update_ask(bid, ask, bk, tick, qty, lot, lb, ub):
    """Set the ask level at ``tick``; returns the quantity it had before."""
    if tick < lb or tick > ub:
        return 0.0
    t = tick - lb
    prev = ask[t]
    ask[t] = qty
    if qty < lot and np.round(qty / lot) == 0.0:   # qty >= lot: no division needed
        if tick == bk[BEST_ASK]:
            bk[BEST_ASK] = depth_above(ask, bk[BEST_ASK], bk[HIGH_ASK], lb, ub)
            if bk[BEST_ASK] == INVALID_MAX:
                bk[HIGH_ASK] = INVALID_MIN
    else:
        if tick < bk[BEST_ASK]:
            bk[BEST_ASK] = tick
            if bk[BEST_BID] >= bk[BEST_ASK]:
                bk[BEST_BID] = depth_below(bid, bk[BEST_ASK], bk[LOW_BID], lb, ub)
        if tick > bk[HIGH_ASK]:
            bk[HIGH_ASK] = tick
    return prev


@nb.njit(cache=True, inline="always")
def load_ends(bk):
    """``bk``'s four values, for a loop that keeps them in locals."""
    return bk[BEST_BID], bk[BEST_ASK], bk[LOW_BID], bk[HIGH_ASK]


@nb.njit(cache=True, inline="always")
def store_ends(bk, best_bid, best_ask, low_bid, high_ask):
    """Write a loop's locals back to ``bk`` before anything reads it."""
    bk[BEST_BID] = best_bid
    bk[BEST_ASK] = best_ask
    bk[LOW_BID] = low_bid
    bk[HIGH_ASK] = high_ask


@nb.njit(cache=True, inline="always")
def stores_only(buy, tick, qty, lot, best_bid, best_ask, low_bid, high_ask):
    """Whether a depth row leaves the book's ends as they are: :func:`update_bid`/:func:`update_ask` would
    only store ``qty`` at ``tick``.

    So it is for a row inside its side's extent that keeps the best (a new size,
    or an emptied level behind the best). Scalars only, so the replay loop can
    keep the ends in registers and make such a row one store.
    """
    lo = low_bid if buy else best_ask
    hi = best_bid if buy else high_ask
    best = best_bid if buy else best_ask
    # ``&``/``|``, not ``and``/``or``: no short cut, so no branch on whether a row deletes a level or
    # sizes it (as unpredictable as the data).
    return (lo <= tick) & (tick <= hi) & ((qty >= lot) | ((qty == 0.0) & (tick != best)))


@nb.njit(cache=True)
def clear_side(bid, ask, bk, side, upto, lb, ub):
    """DEPTH_CLEAR: side 1 clears bids from the best down to ``upto``, -1 asks up
    to ``upto``, 0 both sides entirely."""
    if side == 1:
        if bk[BEST_BID] != INVALID_MIN:
            for t in range(max(upto, lb), min(bk[BEST_BID], ub) + 1):
                bid[t - lb] = 0.0
        bk[BEST_BID] = depth_below(bid, upto, bk[LOW_BID], lb, ub)
        if bk[BEST_BID] == INVALID_MIN:
            bk[LOW_BID] = INVALID_MAX
    elif side == -1:
        if bk[BEST_ASK] != INVALID_MAX:
            for t in range(max(bk[BEST_ASK], lb), min(upto, ub) + 1):
                ask[t - lb] = 0.0
        bk[BEST_ASK] = depth_above(ask, upto, bk[HIGH_ASK], lb, ub)
        if bk[BEST_ASK] == INVALID_MAX:
            bk[HIGH_ASK] = INVALID_MIN
    else:
        bid[:] = 0.0
        ask[:] = 0.0
        bk[BEST_BID] = INVALID_MIN
        bk[BEST_ASK] = INVALID_MAX
        bk[LOW_BID] = INVALID_MAX
        bk[HIGH_ASK] = INVALID_MIN


@nb.njit(cache=True)
def apply_event(ev, px, qty, bid, ask, bk, tick_size, lot, lb, ub):
    """Apply one market-data row to a book.

    Returns ``(kind, side, tick, prev_qty, prev_best)``: side 1 bid/buyer, -1
    ask/seller, 0 none; ``prev_best`` is that side's best before the update.
    DEPTH_BBO (a top-of-book feed) also removes the levels better than it.
    Trades and non-book kinds leave the book as it is.
    """
    kind = ev & 0xFF
    side = 1 if ev & BUY_FLAG else (-1 if ev & SELL_FLAG else 0)
    if kind == DEPTH_CLEAR:
        upto = price_tick(px, tick_size)
        clear_side(bid, ask, bk, side, upto, lb, ub)
        return kind, side, upto, 0.0, np.int64(0)
    if kind != DEPTH and kind != DEPTH_SNAPSHOT and kind != DEPTH_BBO and kind != TRADE:
        return kind, side, np.int64(0), 0.0, np.int64(0)
    tick = price_tick(px, tick_size)
    if kind == TRADE:
        return kind, side, tick, 0.0, np.int64(0)
    if side == 1:
        if kind == DEPTH_BBO:
            t = bk[BEST_BID]
            while t > tick and t != INVALID_MIN:
                update_bid(bid, ask, bk, t, 0.0, lot, lb, ub)
                t = bk[BEST_BID]
        prev_best = bk[BEST_BID]
        prev = update_bid(bid, ask, bk, tick, qty, lot, lb, ub)
        return kind, side, tick, prev, prev_best
    if side == -1:
        if kind == DEPTH_BBO:
            t = bk[BEST_ASK]
            while t < tick and t != INVALID_MAX:
                update_ask(bid, ask, bk, t, 0.0, lot, lb, ub)
                t = bk[BEST_ASK]
        prev_best = bk[BEST_ASK]
        prev = update_ask(bid, ask, bk, tick, qty, lot, lb, ub)
        return kind, side, tick, prev, prev_best
    return kind, side, tick, 0.0, np.int64(0)


@nb.njit(cache=True)
def apply_events(ev, px, qty, bid, ask, bk, tick_size, lot, lb, ub):
    """:func:`apply_event` for each row in order: a copy of a book kept elsewhere from the rows it applied."""
    for i in range(ev.shape[0]):
        apply_event(ev[i], px[i], qty[i], bid, ask, bk, tick_size, lot, lb, ub)
