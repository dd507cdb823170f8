"""Successive full snapshots of the top of a book, turned into the level changes between them.

Vendors sell "book snapshot" data (Tardis's ``book_snapshot_25`` and ``_5``, its
``quotes``, Binance's ``bookTicker``): every row is the whole top N of the book,
not what changed. The engine replays changes, so each snapshot is compared with
the one before it, side by side, and only the differences become events:

- the first snapshot: ``DEPTH_CLEAR`` of each side, then a ``DEPTH_SNAPSHOT`` per level;
- after that, a ``DEPTH`` for every level whose size changed or that appeared
  (its new size), and a ``DEPTH`` of size 0 for every level that left the top N.

So the book rebuilt from the events is, after every row, exactly the row's
snapshot: a level that drops out of the window is removed, because the data no
longer says what rests there. Bids come before asks within a row; every event of
a row carries the row's two timestamps.

Any reader can call :func:`diff_snapshots` with its parsed columns; absent levels
(a book thinner than N) are NaN prices. Levels are compared in price order, so
each row costs O(N) after a sort, in one jitted pass with no Python per row.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from common.errors import DataError
from feeds.events import BUY, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, EVENT_DTYPE, SELL

_BAD_PAIR = 1      # a price without a size or a size without a price
_BAD_SIZE = 2      # a negative size
_BAD_PRICE = 3     # a price <= 0
_DUPLICATE = 4     # one price twice on one side of a row
_REASONS = {
    _BAD_PAIR: "a level with a price but no size, or a size but no price",
    _BAD_SIZE: "a negative size",
    _BAD_PRICE: "a price that is not positive",
    _DUPLICATE: "the same price twice on one side",
}


def _sorted_side(px: np.ndarray, qty: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each row's levels best first (absent levels, NaN, last)."""
    key = np.where(np.isnan(px), np.inf, -px if descending else px)
    order = np.argsort(key, axis=1, kind="stable")
    return np.take_along_axis(px, order, axis=1), np.take_along_axis(qty, order, axis=1)


@nb.njit(cache=True)
def _check_side(px, qty):
    """(row, code) of the first bad level on a side, (-1, 0) when all are good."""
    n, depth = px.shape
    for i in range(n):
        last = np.nan
        for j in range(depth):
            p = px[i, j]
            q = qty[i, j]
            if np.isnan(p) != np.isnan(q):
                return i, _BAD_PAIR
            if np.isnan(p):
                continue
            if not p > 0 or not np.isfinite(p):
                return i, _BAD_PRICE
            if q < 0 or not np.isfinite(q):
                return i, _BAD_SIZE
            if p == last:
                return i, _DUPLICATE
            last = p
    return -1, 0


@nb.njit(cache=True, inline="always")
def _emit(out, k, write, ev, exch, local, px, qty, ival):
    if write:
        out[k].ev = ev
        out[k].exch_ts = exch
        out[k].local_ts = local
        out[k].px = px
        out[k].qty = qty
        out[k].ival = ival
    return k + 1


@nb.njit(cache=True, inline="always")
def _side_changes(out, k, write, flag, better_first_sign, px, qty, r, exch, local, ival):
    """DEPTH events taking one side from row ``r - 1``'s levels to row ``r``'s (both best first).

    ``better_first_sign`` is +1 for bids (higher is better), -1 for asks. Levels of size 0 count as
    absent. Rows are indexed, not sliced, so no array is made per row.
    """
    depth = px.shape[1]
    p = r - 1
    i = 0
    j = 0
    while True:
        while i < depth and not (qty[p, i] > 0):
            i += 1
        while j < depth and not (qty[r, j] > 0):
            j += 1
        has_old = i < depth and not np.isnan(px[p, i])
        has_new = j < depth and not np.isnan(px[r, j])
        if not has_old and not has_new:
            break
        if has_old and has_new and px[p, i] == px[r, j]:
            if qty[p, i] != qty[r, j]:
                k = _emit(out, k, write, DEPTH | flag, exch, local, px[r, j], qty[r, j], ival)
            i += 1
            j += 1
        elif has_new and (not has_old or (px[r, j] - px[p, i]) * better_first_sign > 0):
            k = _emit(out, k, write, DEPTH | flag, exch, local, px[r, j], qty[r, j], ival)   # a new level
            j += 1
        else:
            k = _emit(out, k, write, DEPTH | flag, exch, local, px[p, i], 0.0, ival)         # a level gone
            i += 1
    return k


@nb.njit(cache=True)
def _first_side(out, k, write, flag, px, qty, exch, local, ival):
    """The first row of one side: a DEPTH_CLEAR through its deepest level, then its levels."""
    deepest = 0.0
    for j in range(px.shape[0]):
        if not np.isnan(px[j]) and qty[j] > 0:
            deepest = px[j]
    k = _emit(out, k, write, DEPTH_CLEAR | flag, exch, local, deepest, 0.0, ival)
    for j in range(px.shape[0]):
        if not np.isnan(px[j]) and qty[j] > 0:
            k = _emit(out, k, write, DEPTH_SNAPSHOT | flag, exch, local, px[j], qty[j], ival)
    return k


@nb.njit(cache=True)
def _diff(out, write, exch_ts, local_ts, ival, bid_px, bid_qty, ask_px, ask_qty):
    n = exch_ts.shape[0]
    k = 0
    for r in range(n):
        if r == 0:
            k = _first_side(out, k, write, BUY, bid_px[0], bid_qty[0], exch_ts[0], local_ts[0], ival[0])
            k = _first_side(out, k, write, SELL, ask_px[0], ask_qty[0], exch_ts[0], local_ts[0], ival[0])
            continue
        k = _side_changes(out, k, write, BUY, 1.0, bid_px, bid_qty, r, exch_ts[r], local_ts[r], ival[r])
        k = _side_changes(out, k, write, SELL, -1.0, ask_px, ask_qty, r, exch_ts[r], local_ts[r], ival[r])
    return k


def diff_snapshots(exch_ts: np.ndarray, local_ts: np.ndarray, bid_px: np.ndarray, bid_qty: np.ndarray,
                   ask_px: np.ndarray, ask_qty: np.ndarray, ival: np.ndarray | None = None, *,
                   path: str | None = None, lines: np.ndarray | None = None) -> np.ndarray:
    """Events (source order, no timeline flags) that take a book through each snapshot row in turn.

    ``bid_px`` .. ``ask_qty`` are (rows x N) arrays, levels in any order, NaN where a row has
    fewer than N levels; a size of 0 is an absent level. ``ival`` (optional) is copied onto each
    row's events (an update id). A row with a level that is not a price and a size, or with a
    price twice on one side, is a DataError naming ``path`` and the row's line in ``lines``.
    """
    n = len(exch_ts)
    if n == 0:
        return np.zeros(0, dtype=EVENT_DTYPE)
    shape = (n, -1)
    bid_px, bid_qty, ask_px, ask_qty = (np.asarray(a, dtype=np.float64).reshape(shape)
                                        for a in (bid_px, bid_qty, ask_px, ask_qty))
    ival = np.zeros(n, dtype=np.int64) if ival is None else np.asarray(ival, dtype=np.int64)
    bid_px, bid_qty = _sorted_side(bid_px, bid_qty, descending=True)
    ask_px, ask_qty = _sorted_side(ask_px, ask_qty, descending=False)
    for side, px, qty in (("bids", bid_px, bid_qty), ("asks", ask_px, ask_qty)):
        row, code = _check_side(px, qty)
        if row >= 0:
            raise DataError(f"snapshot {side}: {_REASONS[int(code)]}", path=path,
                            line=int(lines[row]) if lines is not None else None, field=side)
    args = (np.asarray(exch_ts, dtype=np.int64), np.asarray(local_ts, dtype=np.int64), ival,
            bid_px, bid_qty, ask_px, ask_qty)
    count = _diff(np.zeros(1, dtype=EVENT_DTYPE), False, *args)
    out = np.zeros(count, dtype=EVENT_DTYPE)
    _diff(out, True, *args)
    return out
