"""The trapezoidal quote ladder and the order diff: jitted kernels in ticks and lots, and their Python form.

:func:`build` turns a prediction (mid m, spread s in ticks, volume V) into K
levels per side. With ``c = m - skew_ticks * position / max_position`` (the
inventory skew moves both sides against the position: long -> lower, so the
ask fills sooner and the bid later), the inner bid is ``floor(c - s/2)`` and
the inner ask ``ceil(c + s/2)``; further levels step ``spacing`` ticks out
(bids down, asks up). Quotes are post-only, so the inner bid is kept at least
one tick below the current best ask and the inner ask one above the best bid;
the outer levels follow the inner one. Each side's size is
``round(rho * V / lot)`` lots, shared across the levels in proportion to
``1 + slope * k`` (k = 0 innermost: a positive slope puts more size further
out) by largest remainder, so the lots add up exactly; a level left with no
lot is dropped.

:func:`limit` is the risk cut: it trims each side so that if every quote on
it filled, ``|position|`` would stay within ``max_position`` (the innermost
levels keep their size, the outer ones give it up), then keeps at most
``max_orders`` quotes, innermost first, bid before ask at each level.

:func:`diff` is the rule that turns a wanted ladder into order messages:

- a live order at a wanted price with the wanted remaining size is left alone;
- a live order at a wanted price with another size is modified to it (a
  smaller size keeps its queue place, a larger one loses it);
- a second order at one price, and any order at a price no longer wanted, is
  cancelled;
- a wanted price with no order gets a new one.

An order with a request in flight is not touched (the venue refuses a second
one) and holds its price, except a pending cancel, which counts as gone. When
the ladder matches the live orders, no message is sent. The messages go out
as every cancel, then every modify, then every new order.

Each rule is one Numba kernel (:func:`build_into`, :func:`limit_into`,
:func:`diff_into`) over a ladder held in an int64 ``[4, levels]`` array (rows
:data:`BID_TICKS`, :data:`BID_LOTS`, :data:`ASK_TICKS`, :data:`ASK_LOTS`, the
first ``n_bid`` / ``n_ask`` columns in use) and orders held as columns
(:class:`strategies.api.OrderColumns`), because CMM runs all three at every
decision, live, where Python per level and per order cost it hundreds of
microseconds (:mod:`strategies.cmm_kernel` chains them in one call). The
functions :func:`build`, :func:`limit` and :func:`diff` are the same kernels
over :class:`Ladder` tuples and :class:`~strategies.api.Order` lists, for the
strategy hooks a variant overrides.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numba as nb
import numpy as np

from engine.codes import (BUY, INVALID_MAX, INVALID_MIN, NEW, PARTIALLY_FILLED, REQ_CANCEL, REQ_NONE, REQUEST_NAMES,
                          SELL, SIDE_NAMES, SIDES_BY_NAME, STATUS_NAMES)
from engine.views import COL_EXECUTED, COL_ID, COL_LEAVES, COL_PENDING, COL_SIDE, COL_STATUS, COL_TICK
from strategies.api import Order, OrderColumns

EPS = 1e-7     # in ticks or lots: absorbs float error from prices and sizes that are on the grid

# Rows of a ladder array; an empty side of the book is given to build_into as the engine's sentinels.
BID_TICKS, BID_LOTS, ASK_TICKS, ASK_LOTS = range(4)
NO_BID, NO_ASK = INVALID_MIN, INVALID_MAX
# Columns of diff_into's messages: (kind, order id or side, tick), and a float qty beside.
CANCEL, MODIFY, PLACE = 0, 1, 2

_STATUS_CODES = {name: code for code, name in STATUS_NAMES.items()}
_REQUEST_CODES = {"": REQ_NONE} | {name: code for code, name in REQUEST_NAMES.items()}


class Ladder(NamedTuple):
    """Quotes per side, innermost first: prices in ticks, sizes in lots."""

    bid_ticks: tuple[int, ...] = ()
    bid_lots: tuple[int, ...] = ()
    ask_ticks: tuple[int, ...] = ()
    ask_lots: tuple[int, ...] = ()


class Actions(NamedTuple):
    """The messages that turn the live orders into a ladder."""

    cancel: list[int]                          # order ids
    modify: list[tuple[int, int, float]]       # (order id, tick, new total qty incl. executed)
    place: list[tuple[str, int, float]]        # (side, tick, qty)

    def __len__(self) -> int:
        return len(self.cancel) + len(self.modify) + len(self.place)


# ---- the kernels -------------------------------------------------------------------------------

@nb.njit(cache=True)
def level_lots_into(total, slope, out):
    """``total`` lots over ``out.size`` levels in proportion to ``1 + slope * k``, largest remainder first
    (ties: inner), written into ``out`` (int64)."""
    levels = out.size
    weight_sum = 0.0
    for k in range(levels):
        weight_sum += 1.0 + slope * k
    scale = total / weight_sum
    given = 0
    for k in range(levels):
        out[k] = int((1.0 + slope * k) * scale)
        given += out[k]
    spare = np.zeros(levels, np.bool_)
    for _ in range(total - given):          # the spare lots, one each, by (lots - ideal, k) ascending
        best, best_key = -1, 0.0
        for k in range(levels):
            key = out[k] - (1.0 + slope * k) * scale
            if not spare[k] and (best < 0 or key < best_key):
                best, best_key = k, key
        spare[best] = True
        out[best] += 1
    return out


@nb.njit(cache=True)
def build_into(mid_ticks, spread_ticks, volume, position, best_bid, best_ask, spacing, slope, rho, lot,
               skew_ticks, max_position, out):
    """:func:`build` into ``out`` (int64 ``[4, levels]``); returns ``(n_bid, n_ask)``. ``best_bid`` /
    ``best_ask`` in ticks, :data:`NO_BID` / :data:`NO_ASK` for an empty side."""
    levels = out.shape[1]
    center = mid_ticks - skew_ticks * position / max_position
    bid = math.floor(center - spread_ticks / 2 + EPS)
    ask = math.ceil(center + spread_ticks / 2 - EPS)
    if best_ask != NO_ASK:
        bid = min(bid, best_ask - 1)
    if best_bid != NO_BID:
        ask = max(ask, best_bid + 1)
    lots = level_lots_into(math.floor(max(rho * volume, 0.0) / lot + 0.5), slope, np.empty(levels, np.int64))
    n = 0
    for k in range(levels):
        if lots[k] > 0:
            out[BID_TICKS, n] = bid - k * spacing
            out[ASK_TICKS, n] = ask + k * spacing
            out[BID_LOTS, n] = out[ASK_LOTS, n] = lots[k]
            n += 1
    return n, n


@nb.njit(cache=True)
def _within(lots, n, room):
    """Cut the first ``n`` sizes of ``lots`` in place, innermost first, to add up to at most ``room``;
    returns how many are left."""
    for k in range(n):
        take = min(lots[k], room)
        if take <= 0:
            return k
        lots[k] = take
        room -= take
    return n


@nb.njit(cache=True)
def limit_into(ladder, n_bid, n_ask, position, max_position, max_orders, lot):
    """:func:`limit` on a ladder array, in place; returns the new ``(n_bid, n_ask)``."""
    bids = _within(ladder[BID_LOTS], n_bid, math.floor((max_position - position) / lot + EPS))
    asks = _within(ladder[ASK_LOTS], n_ask, math.floor((max_position + position) / lot + EPS))
    n_bid = n_ask = 0
    for k in range(max(bids, asks)):
        if k < bids and n_bid + n_ask < max_orders:
            n_bid += 1
        if k < asks and n_bid + n_ask < max_orders:
            n_ask += 1
    return n_bid, n_ask


@nb.njit(cache=True)
def _side_diff(side, ticks, lots, n_wanted, order_ints, order_floats, lot,
               cancels, n_cancel, modifies, modify_qty, n_modify, places, place_qty, n_place):
    """One side of :func:`diff_into`: its cancels, modifies and places appended; returns the new counts."""
    oid, oside, otick = order_ints[COL_ID], order_ints[COL_SIDE], order_ints[COL_TICK]
    status, pending = order_ints[COL_STATUS], order_ints[COL_PENDING]
    leaves, executed = order_floats[COL_LEAVES], order_floats[COL_EXECUTED]
    held = np.empty(otick.size + n_wanted, np.int64)
    n_held = 0
    for i in range(otick.size):
        if oside[i] != side or pending[i] == REQ_CANCEL:
            continue
        tick = otick[i]
        in_held = False
        for h in range(n_held):
            if held[h] == tick:
                in_held = True
                break
        if pending[i] != REQ_NONE:          # in flight: leave it, and let it hold its price
            held[n_held] = tick
            n_held += 1
        elif status[i] != NEW and status[i] != PARTIALLY_FILLED:
            continue
        else:
            want = -1
            for k in range(n_wanted):       # the last quote at the tick, as a dict of the ladder keeps
                if ticks[k] == tick:
                    want = k
            if want >= 0 and not in_held:
                held[n_held] = tick
                n_held += 1
                if round(leaves[i] / lot) != lots[want]:
                    modifies[n_modify, 0] = oid[i]
                    modifies[n_modify, 1] = tick
                    modify_qty[n_modify] = executed[i] + lots[want] * lot
                    n_modify += 1
            else:
                cancels[n_cancel] = oid[i]
                n_cancel += 1
    for k in range(n_wanted):
        skip = False
        for h in range(n_held):
            if held[h] == ticks[k]:
                skip = True
        for j in range(k):                  # a tick quoted twice is placed once, at its first place
            if ticks[j] == ticks[k]:
                skip = True
        if not skip:
            size = lots[k]
            for j in range(k + 1, n_wanted):    # ... with its last size
                if ticks[j] == ticks[k]:
                    size = lots[j]
            places[n_place, 0] = side
            places[n_place, 1] = ticks[k]
            place_qty[n_place] = size * lot
            n_place += 1
    return n_cancel, n_modify, n_place


@nb.njit(cache=True)
def diff_into(ladder, n_bid, n_ask, order_ints, order_floats, lot, out, out_qty):
    """:func:`diff` of the orders given as :class:`~strategies.api.OrderColumns` blocks against a ladder
    array; the messages go into ``out`` (int64 ``[m, 3]``: :data:`CANCEL` / :data:`MODIFY` / :data:`PLACE`,
    order id or side, tick) and ``out_qty`` (float64 ``[m]``), ``m >= 2 * orders + 2 * levels``, in the
    order they are to be sent; returns their count."""
    n_orders = order_ints.shape[1]
    cancels = np.empty(n_orders, np.int64)
    modifies = np.empty((n_orders, 2), np.int64)
    modify_qty = np.empty(n_orders)
    places = np.empty((n_bid + n_ask, 2), np.int64)
    place_qty = np.empty(n_bid + n_ask)
    counts = _side_diff(BUY, ladder[BID_TICKS], ladder[BID_LOTS], n_bid, order_ints, order_floats, lot,
                        cancels, 0, modifies, modify_qty, 0, places, place_qty, 0)
    n_cancel, n_modify, n_place = _side_diff(SELL, ladder[ASK_TICKS], ladder[ASK_LOTS], n_ask, order_ints,
                                             order_floats, lot, cancels, counts[0], modifies, modify_qty,
                                             counts[1], places, place_qty, counts[2])
    m = 0
    for i in range(n_cancel):
        out[m, 0], out[m, 1], out[m, 2] = CANCEL, cancels[i], 0
        out_qty[m] = 0.0
        m += 1
    for i in range(n_modify):
        out[m, 0], out[m, 1], out[m, 2] = MODIFY, modifies[i, 0], modifies[i, 1]
        out_qty[m] = modify_qty[i]
        m += 1
    for i in range(n_place):
        out[m, 0], out[m, 1], out[m, 2] = PLACE, places[i, 0], places[i, 1]
        out_qty[m] = place_qty[i]
        m += 1
    return m


# ---- the same rules over Ladder tuples and Order lists (the hooks a variant overrides) ---------

def level_lots(total: int, levels: int, slope: float) -> list[int]:
    """``total`` lots over ``levels`` in proportion to ``1 + slope * k``, largest remainder first (ties: inner)."""
    return level_lots_into(total, slope, np.empty(levels, np.int64)).tolist()


def array_of(ladder: Ladder) -> tuple[np.ndarray, int, int]:
    """A :class:`Ladder` as a ladder array and its ``(n_bid, n_ask)``."""
    n_bid, n_ask = len(ladder.bid_ticks), len(ladder.ask_ticks)
    out = np.zeros((4, max(n_bid, n_ask, 1)), dtype=np.int64)
    out[BID_TICKS, :n_bid], out[BID_LOTS, :n_bid] = ladder.bid_ticks, ladder.bid_lots
    out[ASK_TICKS, :n_ask], out[ASK_LOTS, :n_ask] = ladder.ask_ticks, ladder.ask_lots
    return out, n_bid, n_ask


def ladder_of(array: np.ndarray, n_bid: int, n_ask: int) -> Ladder:
    """A ladder array's first ``n_bid`` / ``n_ask`` quotes as a :class:`Ladder`."""
    rows = array.tolist()
    return Ladder(tuple(rows[BID_TICKS][:n_bid]), tuple(rows[BID_LOTS][:n_bid]), tuple(rows[ASK_TICKS][:n_ask]),
                  tuple(rows[ASK_LOTS][:n_ask]))


def build(mid_ticks: float, spread_ticks: float, volume: float, position: float, best_bid: int | None,
          best_ask: int | None, *, levels: int, spacing: int, slope: float, rho: float, lot: float,
          skew_ticks: float, max_position: float) -> Ladder:
    """The ladder for one prediction; ``best_bid``/``best_ask`` in ticks, None for an empty side."""
    out = np.empty((4, levels), dtype=np.int64)
    n_bid, n_ask = build_into(float(mid_ticks), float(spread_ticks), float(volume), float(position),
                              NO_BID if best_bid is None else best_bid, NO_ASK if best_ask is None else best_ask,
                              spacing, float(slope), float(rho), float(lot), float(skew_ticks), float(max_position),
                              out)
    return ladder_of(out, n_bid, n_ask)


def limit(ladder: Ladder, position: float, max_position: float, max_orders: int, lot: float) -> Ladder:
    """The ladder within the position limit (if all of a side filled) and the order count."""
    array, n_bid, n_ask = array_of(ladder)
    n_bid, n_ask = limit_into(array, n_bid, n_ask, float(position), float(max_position), max_orders, float(lot))
    return ladder_of(array, n_bid, n_ask)


def order_columns(orders: Sequence[Order], tick_size: float) -> OrderColumns:
    """Orders as the columns :func:`diff_into` reads (prices in ticks, engine codes)."""
    ints = np.empty((5, len(orders)), dtype=np.int64)
    floats = np.empty((2, len(orders)), dtype=np.float64)
    for k, o in enumerate(orders):
        ints[[COL_ID, COL_SIDE, COL_TICK, COL_STATUS, COL_PENDING], k] = (
            o.id, SIDES_BY_NAME[o.side], round(o.price / tick_size), _STATUS_CODES[o.status],
            _REQUEST_CODES[o.pending])
        floats[[COL_LEAVES, COL_EXECUTED], k] = o.leaves, o.executed
    return OrderColumns(ints, floats)


def diff_messages(columns: OrderColumns, ladder: np.ndarray, n_bid: int, n_ask: int,
                  lot: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`diff_into` with its output made here: ``(messages [m, 3], qty [m])``."""
    room = 2 * columns.ints.shape[1] + n_bid + n_ask
    out, qty = np.empty((room, 3), dtype=np.int64), np.empty(room)
    m = diff_into(ladder, n_bid, n_ask, columns.ints, columns.floats, float(lot), out, qty)
    return out[:m], qty[:m]


def diff(orders: Sequence[Order], ladder: Ladder, tick_size: float, lot: float) -> Actions:
    """The messages that make ``orders`` (the venue's view of ours) match ``ladder``; see the module doc."""
    array, n_bid, n_ask = array_of(ladder)
    messages, qty = diff_messages(order_columns(orders, tick_size), array, n_bid, n_ask, lot)
    actions = Actions([], [], [])
    for (kind, who, tick), q in zip(messages.tolist(), qty.tolist()):
        if kind == CANCEL:
            actions.cancel.append(who)
        elif kind == MODIFY:
            actions.modify.append((who, tick, q))
        else:
            actions.place.append((SIDE_NAMES[who], tick, q))
    return actions
