"""Databento MBO records into L3 events and the L2 book they imply, in one jitted pass.

Databento's normalised MBO is an order-level stream (action A add, C cancel,
M modify, R clear, T trade, F fill, N none). Its rules, from Databento's
"State management of resting orders" and "MBO snapshots" pages:

- Trade (T) and fill (F) records do not change the book: every fill is
  followed by the cancel (C) or modify (M) records that do.
- A book's state is only whole after a record flagged ``F_LAST``; a single
  venue event can be several records.
- A snapshot is an R (clear) followed by A records, all flagged ``F_SNAPSHOT``;
  their ``ts_event`` is when each order was last changed and their
  ``ts_recv`` when the snapshot was made.

The engine's L3 book (engine/l3.py) takes a FILL as a change: it takes the
fill's size off the order. So a C or M that follows a fill of the same order
must not take it off again. Each order carries the fill size not yet matched
by a C; a C removes from the engine's book only the part beyond it. An M
states the order's new size outright, so it is right as it is.

L2 comes out as DEPTH events (a level's new total) for every level an event
touched, written after the event's last record; an event built of snapshot
records writes DEPTH_SNAPSHOT instead. An R writes DEPTH_CLEAR for both sides
(its price is filled in later by ``finish_clears``) and a CANCEL_ORDER for
every order it removes, so the engine's L3 book is cleared with it.

The book is kept in typed dicts the caller owns, so a file is processed a
chunk of records at a time: the function stops before a record whose events
might not fit in ``out`` and says how far it got.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.typed import Dict

from feeds.events import (ADD_ORDER, BUY, CANCEL_ORDER, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, FILL, MODIFY_ORDER,
                          SELL, TRADE)

PRICE_SCALE = 1e-9          # DBN prices are fixed-point int64, 1 unit = 1e-9
F_LAST, F_SNAPSHOT, F_BAD_TS_RECV, F_MAYBE_BAD_BOOK = 128, 32, 8, 4
UNDEF_PRICE = (1 << 63) - 1

# Actions and sides as their ASCII bytes.
A_ADD, A_CANCEL, A_MODIFY, A_CLEAR, A_TRADE, A_FILL, A_NONE = (ord(c) for c in "ACMRTFN")
S_BID, S_ASK, S_NONE = ord("B"), ord("A"), ord("N")

# Counters the pass keeps (``stats``), for the conversion's notes.
(N_UNKNOWN_CANCEL, N_UNKNOWN_MODIFY, N_UNKNOWN_FILL, N_NONE, N_CLEAR, N_SNAPSHOT, N_MAYBE_BAD_BOOK,
 N_BAD_TS_RECV, N_TRADE_NO_PRICE, N_STATS) = range(10)
STAT_NAMES = ("cancels of unknown orders", "modifies of unknown orders (taken as adds)",
              "fills of unknown orders", "N (no action) records", "R (clear) records", "snapshot records",
              "records flagged F_MAYBE_BAD_BOOK", "non-snapshot records flagged F_BAD_TS_RECV",
              "trades without a price")

# Problems that stop the pass; the caller turns them into a DataError naming the record.
E_OK, E_ACTION, E_SIDE, E_PRICE, E_SIZE = 0, 1, 2, 3, 4
ERRORS = {
    E_ACTION: "expected an action A, C, M, R, T, F or N",
    E_SIDE: "expected a side B, A or N (B or A on an add or modify)",
    E_PRICE: "expected a defined positive price (a top-of-book venue's MBO, such as IEX's, is not "
             "order by order and is not read)",
    E_SIZE: "expected a size > 0 on an add",
}

ORDER = types.UniTuple(types.int64, 4)   # (price, size, side flag, fill size not yet matched by a C)


def new_state():
    """An empty book: orders by id, level totals per side, levels touched by the open event."""
    def level_dict():
        return Dict.empty(key_type=types.int64, value_type=types.int64)
    return dict(orders=Dict.empty(key_type=types.int64, value_type=ORDER),
                bids=level_dict(), asks=level_dict(), touched_bids=level_dict(), touched_asks=level_dict(),
                group=np.zeros(2, dtype=np.int64),    # [snapshot records in the open event, open records]
                stats=np.zeros(N_STATS, dtype=np.int64))


@nb.njit(cache=True, inline="always")
def _put(out, k, ev, exch_ts, local_ts, px, qty, order_id, ival):
    r = out[k]
    r.ev = ev
    r.exch_ts = exch_ts
    r.local_ts = local_ts
    r.px = px
    r.qty = qty
    r.order_id = order_id
    r.ival = ival
    r.fval = 0.0
    return k + 1


@nb.njit(cache=True, inline="always")
def _level_add(levels, touched, price, qty):
    levels[price] = levels.get(price, 0) + qty
    touched[price] = 1


@nb.njit(cache=True)
def _flush_side(levels, touched, flag, kind, exch_ts, local_ts, out, k):
    for price in touched:
        qty = levels.get(price, 0)
        if qty <= 0 and price in levels:
            del levels[price]
        k = _put(out, k, kind | flag, exch_ts, local_ts, price * PRICE_SCALE, float(max(qty, 0)), 0, 0)
    touched.clear()
    return k


@nb.njit(cache=True)
def process(ts_event, ts_recv_col, order_id, price_col, size_col, flags_col, action_col, side_col, start,
            orders, bids, asks, touched_bids, touched_asks, group, stats, out):
    """Turn records ``start:`` (the MBO fields as columns) into events in ``out``.

    Returns (next record, events written, error).

    Stops early, with the book consistent, when ``out`` might not hold the next
    record's events; ``error`` is E_OK or the code of what is wrong with record ``next``.
    """
    n = ts_recv_col.shape[0]
    cap = out.shape[0]
    k = 0
    i = start
    while i < n:
        action = action_col[i]
        side_b = side_col[i]
        flags = flags_col[i]
        snap = (flags & F_SNAPSHOT) != 0
        ts_recv = np.int64(ts_recv_col[i])
        exch_ts = ts_recv if snap else np.int64(ts_event[i])   # a snapshot's ts_event is the order's own
        oid = np.int64(order_id[i])
        price = np.int64(price_col[i])
        size = np.int64(size_col[i])
        # Room for this record's events, and for the flush that may follow it.
        need = 4 + len(touched_bids) + len(touched_asks) + (len(orders) + len(bids) + len(asks)
                                                             if action == A_CLEAR else 0)
        if k + need > cap:
            return i, k, E_OK
        if side_b != S_BID and side_b != S_ASK and side_b != S_NONE:
            return i, k, E_SIDE
        side = BUY if side_b == S_BID else (SELL if side_b == S_ASK else 0)
        if action == A_ADD or action == A_MODIFY:
            if side == 0:
                return i, k, E_SIDE
            if price <= 0 or price == UNDEF_PRICE:
                return i, k, E_PRICE
            if action == A_ADD and size <= 0:
                return i, k, E_SIZE
        elif action == A_FILL and (price <= 0 or price == UNDEF_PRICE):
            return i, k, E_PRICE
        elif (action != A_CANCEL and action != A_CLEAR and action != A_TRADE and action != A_NONE
              and action != A_FILL):
            return i, k, E_ACTION
        if snap:
            stats[N_SNAPSHOT] += 1
            group[0] += 1
        elif (flags & F_BAD_TS_RECV) != 0:
            stats[N_BAD_TS_RECV] += 1
        if (flags & F_MAYBE_BAD_BOOK) != 0:
            stats[N_MAYBE_BAD_BOOK] += 1
        group[1] += 1
        if action == A_ADD:
            if oid in orders:                 # a repeated id: the old order is gone
                o = orders[oid]
                if o[2] == BUY:
                    _level_add(bids, touched_bids, o[0], -o[1])
                else:
                    _level_add(asks, touched_asks, o[0], -o[1])
            orders[oid] = (price, size, np.int64(side), np.int64(0))
            if side == BUY:
                _level_add(bids, touched_bids, price, size)
            else:
                _level_add(asks, touched_asks, price, size)
            k = _put(out, k, ADD_ORDER | side, exch_ts, ts_recv, price * PRICE_SCALE, float(size), oid, A_ADD)
        elif action == A_CANCEL:
            if oid not in orders:
                stats[N_UNKNOWN_CANCEL] += 1
            else:
                o = orders[oid]
                removed = min(size, o[1])
                matched = min(removed, o[3])   # already taken off by this order's FILL
                left = o[1] - removed
                if o[2] == BUY:
                    _level_add(bids, touched_bids, o[0], -removed)
                else:
                    _level_add(asks, touched_asks, o[0], -removed)
                if left <= 0:
                    del orders[oid]
                else:
                    orders[oid] = (o[0], left, o[2], o[3] - matched)
                if removed - matched > 0:
                    k = _put(out, k, CANCEL_ORDER | o[2], exch_ts, ts_recv, o[0] * PRICE_SCALE,
                             float(removed - matched), oid, A_CANCEL)
        elif action == A_MODIFY:
            if oid in orders:
                o = orders[oid]
                osd = o[2]
                if osd == BUY:
                    _level_add(bids, touched_bids, o[0], -o[1])
                else:
                    _level_add(asks, touched_asks, o[0], -o[1])
            else:
                stats[N_UNKNOWN_MODIFY] += 1
                osd = np.int64(side)
            if size > 0:
                orders[oid] = (price, size, osd, np.int64(0))
                if osd == BUY:
                    _level_add(bids, touched_bids, price, size)
                else:
                    _level_add(asks, touched_asks, price, size)
            elif oid in orders:
                del orders[oid]
            k = _put(out, k, MODIFY_ORDER | osd, exch_ts, ts_recv, price * PRICE_SCALE, float(size), oid, A_MODIFY)
        elif action == A_CLEAR:
            stats[N_CLEAR] += 1
            for o_id, o in orders.items():
                k = _put(out, k, CANCEL_ORDER | o[2], exch_ts, ts_recv, o[0] * PRICE_SCALE, float(o[1]), o_id,
                         A_CLEAR)
            orders.clear()
            bids.clear()
            asks.clear()
            touched_bids.clear()
            touched_asks.clear()
            k = _put(out, k, DEPTH_CLEAR | BUY, exch_ts, ts_recv, 0.0, 0.0, 0, A_CLEAR)
            k = _put(out, k, DEPTH_CLEAR | SELL, exch_ts, ts_recv, 0.0, 0.0, 0, A_CLEAR)
        elif action == A_TRADE:
            if price <= 0 or price == UNDEF_PRICE or size <= 0:
                stats[N_TRADE_NO_PRICE] += 1
            else:
                k = _put(out, k, TRADE | side, exch_ts, ts_recv, price * PRICE_SCALE, float(size), oid, A_TRADE)
        elif action == A_FILL:
            fsd = np.int64(side)
            if oid in orders:
                o = orders[oid]
                fsd = o[2]
                orders[oid] = (o[0], o[1], o[2], min(o[1], o[3] + size))
            else:
                stats[N_UNKNOWN_FILL] += 1
            k = _put(out, k, FILL | fsd, exch_ts, ts_recv, price * PRICE_SCALE, float(size), oid, A_FILL)
        else:
            stats[N_NONE] += 1
        # The event ends at F_LAST, or where the receive time moves on (a file without F_LAST flags).
        last = (flags & F_LAST) != 0 or i + 1 == n or np.int64(ts_recv_col[i + 1]) != ts_recv
        if last:
            kind = DEPTH_SNAPSHOT if group[0] > 0 else DEPTH
            k = _flush_side(bids, touched_bids, BUY, kind, exch_ts, ts_recv, out, k)
            k = _flush_side(asks, touched_asks, SELL, kind, exch_ts, ts_recv, out, k)
            group[0] = 0
            group[1] = 0
        i += 1
    return i, k, E_OK
