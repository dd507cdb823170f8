"""The local side: what our strategy sees, at ``local_ts``.

It keeps its own copy of the book (built from events as they arrive locally),
applies order responses when they arrive (so the strategy's position lags the
exchange's by the response latency, as in hftbacktest), and records one row of
metrics per tick.

A *tick* is one market-data event (depth, depth clear/snapshot/BBO or trade)
processed on the local timeline. Per tick we record:

- ``ts``: its local timestamp;
- ``mid``: (best bid + best ask)/2 of the local book, carried forward while a
  side is empty (NaN before both sides first exist);
- ``position``: our position at the exchange at that moment (fills count when
  executed);
- ``epnl = (cash_t + q_t*mid_t*mult) - (cash_0 + q_0*mid_0*mult)``, cash net of
  fees, where 0 is the first tick with a valid mid (inverse contracts: ``-q*mult/mid``
  in place of ``q*mid*mult``, in the coin: :mod:`engine.contracts`);
- ``map``: mean of |position| over the ticks so far;
- ``rpt = epnl / (our fills so far)``, 0 before the first fill.
"""
import numba as nb
import numpy as np

from feeds.events import DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, TRADE

from engine.book import BEST_ASK, BEST_BID, apply_event
from engine.contracts import position_value, trade_value
from engine.codes import (CANCELED, EXPIRED, FILLED, INVALID_MAX, INVALID_MIN, REJECTED, REQ_NEW, REQ_NONE, RESP_FILL,
                          RESP_REQ_REJECTED)
from engine.state import (field, F_INVERSE, F_LBAL, F_LFEE, F_LOT, F_LPOS, F_LVALUE, F_LVOLUME, F_MID0, F_MULT, F_POS, F_CASH,
                    F_SUM_ABS_Q, F_TICK, F_LAST_MID, I_LB, I_LNTRADES, I_NORDLOG, I_NTICKS, I_NTRADES,
                    I_NUSED, I_RECORD_ORDERS, I_RECORD_TICKS, I_NLOG_DROPPED, I_UB, O_ID, O_INFLIGHT,
                    O_LCLEARED, O_LREQ, O_LSTATUS, O_LTICK, O_LTS, O_REASON, O_SIDE, O_SUBMIT_TS, O_TIF,
                    O_TYPE, O_USED, O_XSTATUS, OL_DONE_TS, OL_ID, OL_REASON, OL_SIDE, OL_STATUS,
                    OL_SUBMIT_TS, OL_TICK, OL_TIF, OL_TYPE, OLF_EXEC, OLF_QTY, OF_LEXEC, OF_LLEAVES, OF_LQTY,
                    RS_EXEC_TICK, RS_KIND, RS_REASON, RS_SLOT, RS_STATUS, RS_TICK, RS_TS, RSF_EXEC_QTY,
                    RSF_FEE, RSF_LEAVES, RSF_QTY, TQ_ASK, TQ_BID, TQ_SHIFT,
                    I_NXBUY, I_NXSELL)


@nb.njit(cache=True)
def is_final(status):
    return status == FILLED or status == CANCELED or status == EXPIRED or status == REJECTED


@nb.njit(cache=True, inline="always")
def tick_flags(ints):
    """The tick log's fill/quote word: our fills so far << TQ_SHIFT | a live bid, a live ask at the exchange."""
    return np.int32((ints[I_NTRADES] << TQ_SHIFT) | (TQ_BID if ints[I_NXBUY] > 0 else 0)
                    | (TQ_ASK if ints[I_NXSELL] > 0 else 0))


@nb.njit(cache=True, inline="always")
def tick_row(best_bid, best_ask, tick_size, mult, inverse, cash, pos, last_mid, mid0):
    """One row of the tick log: ``(mid, epnl, mid0)``, the mid (carried forward while a side is empty)
    and EPnL to store with the equity at the first valid mid after the row.

    Scalars only, so the replay loop keeps them in registers. Only mid, EPnL and
    the fill/quote word (:func:`tick_flags`) are stored; ``analysis.results.collect``
    derives the rest. The caller adds |position| to the running sum ``F_SUM_ABS_Q``
    (a wake-up reads MAP so far from it). The same inputs give the same row, which
    lets the replay loop repeat the last row's values while they stay the same.
    """
    if best_bid != INVALID_MIN and best_ask != INVALID_MAX:
        last_mid = (best_bid + best_ask) * 0.5 * tick_size
    equity = cash + position_value(pos, last_mid, mult, inverse)
    if np.isnan(mid0) and not np.isnan(last_mid):
        mid0 = equity
    return last_mid, equity - mid0, mid0


@nb.njit(cache=True, _nrt=True)
def process_data(S, i):
    """Apply event row ``i`` to the local book and record a tick."""
    ints = S.ints
    floats = S.floats
    kind = apply_event(S.ev[i], S.px[i], S.qty[i], S.lbid, S.lask, S.lbook_ends, floats[F_TICK], floats[F_LOT],
                       ints[I_LB], ints[I_UB])[0]
    market = kind == DEPTH or kind == DEPTH_SNAPSHOT or kind == DEPTH_BBO or kind == DEPTH_CLEAR or kind == TRADE
    if market and ints[I_RECORD_TICKS] == 1:
        k = ints[I_NTICKS]
        mid, epnl, floats[F_MID0] = tick_row(
            S.lbook_ends[BEST_BID], S.lbook_ends[BEST_ASK], floats[F_TICK], floats[F_MULT], floats[F_INVERSE] != 0.0,
            floats[F_CASH], floats[F_POS], floats[F_LAST_MID], floats[F_MID0])
        floats[F_SUM_ABS_Q] += abs(floats[F_POS])
        floats[F_LAST_MID] = mid
        S.tk_mid[k] = mid
        S.tk_epnl[k] = epnl
        S.tk_nq[k] = tick_flags(ints)
        ints[I_NTICKS] = k + 1


@nb.njit(cache=True)
def _log_order(S, slot, ts):
    ints = S.ints
    if ints[I_RECORD_ORDERS] == 0:
        return
    k = ints[I_NORDLOG]
    if k >= S.ol_i.shape[0]:
        ints[I_NLOG_DROPPED] += 1
        return
    orders_i = S.orders_i
    S.ol_i[k, OL_ID] = orders_i[slot, O_ID]
    S.ol_i[k, OL_SIDE] = orders_i[slot, O_SIDE]
    S.ol_i[k, OL_TICK] = orders_i[slot, O_LTICK]
    S.ol_i[k, OL_TIF] = orders_i[slot, O_TIF]
    S.ol_i[k, OL_TYPE] = orders_i[slot, O_TYPE]
    S.ol_i[k, OL_STATUS] = orders_i[slot, O_LSTATUS]
    S.ol_i[k, OL_REASON] = orders_i[slot, O_REASON]
    S.ol_i[k, OL_SUBMIT_TS] = orders_i[slot, O_SUBMIT_TS]
    S.ol_i[k, OL_DONE_TS] = ts
    S.ol_f[k, OLF_QTY] = S.orders_f[slot, OF_LQTY]
    S.ol_f[k, OLF_EXEC] = S.orders_f[slot, OF_LEXEC]
    ints[I_NORDLOG] = k + 1


@nb.njit(cache=True, _nrt=False)
def try_free(S, slot):
    """Release a slot once the strategy dropped it and nothing refers to it any more.

    NRT-free (``field``) as the order API that calls it at every wake-up (engine/kernel.py)."""
    orders_i = field(S, "orders_i")
    if (orders_i[slot, O_LCLEARED] == 1 and orders_i[slot, O_INFLIGHT] == 0 and is_final(orders_i[slot, O_XSTATUS])
            and orders_i[slot, O_USED] == 1):
        orders_i[slot, O_USED] = 0
        field(S, "ints")[I_NUSED] -= 1


@nb.njit(cache=True, _nrt=True)
def process_response(S, r):
    """Apply response ring entry ``r`` as it reaches the strategy."""
    ints = S.ints
    floats = S.floats
    orders_i = S.orders_i
    orders_f = S.orders_f
    slot = S.rs_i[r, RS_SLOT]
    ts = S.rs_i[r, RS_TS]
    kind = S.rs_i[r, RS_KIND]
    status = S.rs_i[r, RS_STATUS]
    orders_i[slot, O_INFLIGHT] -= 1
    was_final = is_final(orders_i[slot, O_LSTATUS])
    if kind == RESP_FILL:
        side = orders_i[slot, O_SIDE]
        qty = S.rs_f[r, RSF_EXEC_QTY]
        price = S.rs_i[r, RS_EXEC_TICK] * floats[F_TICK]
        value = trade_value(price, qty, floats[F_MULT], floats[F_INVERSE] != 0.0)
        amount = abs(value)
        floats[F_LPOS] += qty * side
        floats[F_LBAL] -= value * side
        floats[F_LFEE] += S.rs_f[r, RSF_FEE]
        floats[F_LVOLUME] += qty
        floats[F_LVALUE] += amount
        ints[I_LNTRADES] += 1
        orders_f[slot, OF_LEXEC] += qty
    if orders_i[slot, O_LCLEARED] == 0:
        if kind == RESP_REQ_REJECTED:
            if orders_i[slot, O_LREQ] == REQ_NEW:
                orders_i[slot, O_LSTATUS] = REJECTED
                orders_i[slot, O_REASON] = S.rs_i[r, RS_REASON]
            orders_i[slot, O_LREQ] = REQ_NONE
        else:
            orders_i[slot, O_LSTATUS] = status
            orders_i[slot, O_LREQ] = REQ_NONE
            orders_i[slot, O_LTICK] = S.rs_i[r, RS_TICK]
            orders_f[slot, OF_LQTY] = S.rs_f[r, RSF_QTY]
            orders_f[slot, OF_LLEAVES] = S.rs_f[r, RSF_LEAVES]
            if S.rs_i[r, RS_REASON] != 0:
                orders_i[slot, O_REASON] = S.rs_i[r, RS_REASON]
        orders_i[slot, O_LTS] = ts
        if not was_final and is_final(orders_i[slot, O_LSTATUS]):
            _log_order(S, slot, ts)
    try_free(S, slot)
