"""The exchange side: market data at ``exch_ts`` against our resting orders.

Matching follows hftbacktest's NoPartialFillExchange (default) or, with
``partial_fills``, fills at the queue front only the quantity that traded past
the queue ahead (the order stays open, partially filled). Our orders never
change the replayed book: there is no market impact.

Fill rules for a resting buy (sell is symmetric):
- a sell trade printed below our price fills us in full;
- a sell trade at our price advances the queue model; once the queue ahead is
  used up we are filled (in full, or by the quantity that traded past it);
- the best ask moving down to or through our price fills us in full (crossing).
"""
import numba as nb
import numpy as np

from feeds.events import ADD_ORDER, DEPTH, DEPTH_BBO, DEPTH_SNAPSHOT, FILL, KIND_MASK, TRADE

from engine.book import BEST_ASK, BEST_BID, HIGH_ASK, LOW_BID, apply_event, qty_at
from engine.codes import (BUY, CANCELED, FILLED, FOK, GTC, GTX, INVALID_MAX, INVALID_MIN, MARKET, NEW,
                          PARTIALLY_FILLED, R_BAD_QTY, R_NO_LIQUIDITY, R_NONE, R_POST_ONLY_WOULD_TAKE, R_UNKNOWN_ORDER,
                          REJECTED, EXPIRED, REQ_CANCEL, REQ_MODIFY, REQ_NEW, RESP_FILL, RESP_REQ_REJECTED,
                          RESP_UPDATE, SELL)
from engine import l3
from engine.contracts import trade_value
from engine.rings import reserve
from engine.state import (F_CASH, F_FEE, F_INVERSE, F_LOT, F_MAKER, F_MULT, F_POS, F_TAKER, F_TICK, F_VALUE, F_VOLUME,
                          FL_ID, FL_LTS, FL_MAKER, FL_SIDE, FL_TICK, FL_XTS, FLF_FEE, FLF_PRICE, FLF_QTY,
                          I_LB, I_NFILLS, I_NTRADES, I_NXLIVE, I_NXBUY, I_NXSELL, I_XMAXBUY, I_XMINSELL, I_PARTIAL,
                          I_RS_HEAD, I_RS_TAIL, I_UB, O_ID, O_INFLIGHT, O_SIDE, O_TICK, O_TIF, O_TYPE, O_XSTATUS,
                          O_XTS, OF_QTY, OF_XEXEC, OF_XLEAVES, RQ_KIND, RQ_SLOT, RQ_TICK, RQ_TS, RS_EXEC_TICK, RS_KIND,
                          RS_MAKER, RS_REASON, RS_SLOT, RS_STATUS, RS_TICK, RS_TS, RS_XTS, RSF_EXEC_QTY, RSF_FEE,
                          RSF_LEAVES, RSF_QTY)


@nb.njit(cache=True)
def push_response(S, slot, ts, kind, status, reason, exec_tick, exec_qty, maker, fee, xts):
    """Queue a response; like hftbacktest's order bus it never overtakes an earlier one."""
    ints = S.ints
    tail = ints[I_RS_TAIL]
    r, ts = reserve(S.rs_i, ints[I_RS_HEAD], tail, ts)
    if r < 0:
        raise RuntimeError("response ring full: raise EngineConfig.ring_size")
    S.rs_i[r, RS_TS] = ts
    S.rs_i[r, RS_SLOT] = slot
    S.rs_i[r, RS_KIND] = kind
    S.rs_i[r, RS_STATUS] = status
    S.rs_i[r, RS_REASON] = reason
    S.rs_i[r, RS_EXEC_TICK] = exec_tick
    S.rs_i[r, RS_MAKER] = maker
    S.rs_i[r, RS_XTS] = xts
    S.rs_i[r, RS_TICK] = S.orders_i[slot, O_TICK]
    S.rs_f[r, RSF_EXEC_QTY] = exec_qty
    S.rs_f[r, RSF_LEAVES] = S.orders_f[slot, OF_XLEAVES]
    S.rs_f[r, RSF_FEE] = fee
    S.rs_f[r, RSF_QTY] = S.orders_f[slot, OF_QTY]
    ints[I_RS_TAIL] = tail + 1
    S.orders_i[slot, O_INFLIGHT] += 1
    return ts


@nb.njit(cache=True)
def respond(S, slot, ts, request, kind, status, reason):
    """Answer a request of kind ``request`` handled at ``ts``."""
    rts = ts + S.latency.response(S, request, ts)
    push_response(S, slot, rts, kind, status, reason, 0, 0.0, 0, 0.0, ts)


@nb.njit(cache=True)
def activate(S, slot):
    """Put an order on the exchange's book of our orders."""
    ints = S.ints
    S.xlive[ints[I_NXLIVE]] = slot
    ints[I_NXLIVE] += 1
    tick = S.orders_i[slot, O_TICK]
    if S.orders_i[slot, O_SIDE] == BUY:
        S.nbuy_at[tick - ints[I_LB]] += 1
        ints[I_NXBUY] += 1
        ints[I_XMAXBUY] = max(ints[I_XMAXBUY], tick)
    else:
        S.nsell_at[tick - ints[I_LB]] += 1
        ints[I_NXSELL] += 1
        ints[I_XMINSELL] = min(ints[I_XMINSELL], tick)


@nb.njit(cache=True)
def deactivate(S, slot):
    ints = S.ints
    n = ints[I_NXLIVE]
    for k in range(n):
        if S.xlive[k] == slot:
            S.xlive[k] = S.xlive[n - 1]
            n -= 1
            ints[I_NXLIVE] = n
            break
    t = S.orders_i[slot, O_TICK] - ints[I_LB]
    if S.orders_i[slot, O_SIDE] == BUY:
        S.nbuy_at[t] -= 1
        ints[I_NXBUY] -= 1
    else:
        S.nsell_at[t] -= 1
        ints[I_NXSELL] -= 1
    # Recompute the most aggressive live prices: the fast path's cheap filters.
    hi = INVALID_MIN
    lo = INVALID_MAX
    for k in range(n):
        other = S.xlive[k]
        tick = S.orders_i[other, O_TICK]
        if S.orders_i[other, O_SIDE] == BUY:
            hi = max(hi, tick)
        else:
            lo = min(lo, tick)
    ints[I_XMAXBUY] = hi
    ints[I_XMINSELL] = lo


@nb.njit(cache=True)
def fill(S, slot, ts, exec_tick, exec_qty, maker):
    """Execute ``exec_qty`` of an order at ``exec_tick``; book it and tell the local side."""
    ints = S.ints
    floats = S.floats
    orders_i = S.orders_i
    orders_f = S.orders_f
    side = orders_i[slot, O_SIDE]
    orders_f[slot, OF_XLEAVES] -= exec_qty
    orders_f[slot, OF_XEXEC] += exec_qty
    if np.round(orders_f[slot, OF_XLEAVES] / floats[F_LOT]) > 0.0:
        status = PARTIALLY_FILLED
    else:
        status = FILLED
    orders_i[slot, O_XSTATUS] = status
    orders_i[slot, O_XTS] = ts
    price = exec_tick * floats[F_TICK]
    value = trade_value(price, exec_qty, floats[F_MULT], floats[F_INVERSE] != 0.0)
    amount = abs(value)
    rate = floats[F_MAKER] if maker else floats[F_TAKER]
    fee = S.fee.fee(S, rate, exec_qty, amount)
    floats[F_POS] += exec_qty * side
    floats[F_CASH] -= value * side
    floats[F_CASH] -= fee
    floats[F_FEE] += fee
    floats[F_VOLUME] += exec_qty
    floats[F_VALUE] += amount
    ints[I_NTRADES] += 1
    rts = ts + S.latency.response(S, REQ_NEW, ts)
    rts = push_response(S, slot, rts, RESP_FILL, status, R_NONE, exec_tick, exec_qty, 1 if maker else 0, fee, ts)
    k = ints[I_NFILLS]
    if k >= S.fl_i.shape[0]:
        raise RuntimeError("fill log full: raise EngineConfig.max_fills")
    S.fl_i[k, FL_ID] = orders_i[slot, O_ID]
    S.fl_i[k, FL_SIDE] = side
    S.fl_i[k, FL_XTS] = ts
    S.fl_i[k, FL_LTS] = rts
    S.fl_i[k, FL_MAKER] = 1 if maker else 0
    S.fl_i[k, FL_TICK] = exec_tick
    S.fl_f[k, FLF_QTY] = exec_qty
    S.fl_f[k, FLF_PRICE] = price
    S.fl_f[k, FLF_FEE] = fee
    ints[I_NFILLS] = k + 1
    return status


# ---------------------------------------------------------------- market data


@nb.njit(cache=True, _nrt=True)
def level_changed(S, buy, tick, prev_qty, new_qty):
    """A depth row changed the exchange's level at ``tick``: the queue model hears it for each order of ours there."""
    side = BUY if buy else SELL
    for k in range(S.ints[I_NXLIVE]):
        slot = S.xlive[k]
        if S.orders_i[slot, O_SIDE] == side and S.orders_i[slot, O_TICK] == tick:
            S.queue.depth(S, slot, prev_qty, new_qty)


@nb.njit(cache=True, inline="always")
def crossed(buy, best_bid, best_ask, prev_best, max_buy, min_sell):
    """Whether a depth row moved its side's best to or through our most aggressive order on the other side."""
    if buy:
        return best_bid > prev_best and best_bid >= min_sell
    return best_ask < prev_best and best_ask <= max_buy


@nb.njit(cache=True, _nrt=True)
def _fill_crossed(S, side, limit_tick, ts):
    """The opposite best moved through our price: fill those orders in full (maker)."""
    k = 0
    while k < S.ints[I_NXLIVE]:
        slot = S.xlive[k]
        t = S.orders_i[slot, O_TICK]
        if S.orders_i[slot, O_SIDE] == side and (
                (side == SELL and t <= limit_tick) or (side == BUY and t >= limit_tick)):
            fill(S, slot, ts, t, S.orders_f[slot, OF_XLEAVES], True)
            deactivate(S, slot)   # swaps the last entry into k: look at k again
        else:
            k += 1


@nb.njit(cache=True, _nrt=True)
def _trade(S, side, tick, qty, ts):
    """A trade printed at ``tick``; ``side`` is the side of our orders it can hit."""
    ints = S.ints
    partial = ints[I_PARTIAL] == 1
    k = 0
    while k < ints[I_NXLIVE]:
        slot = S.xlive[k]
        done = False
        if S.orders_i[slot, O_SIDE] == side:
            t = S.orders_i[slot, O_TICK]
            through = (side == SELL and t < tick) or (side == BUY and t > tick)
            if through:
                fill(S, slot, ts, t, S.orders_f[slot, OF_XLEAVES], True)
                done = True
            elif t == tick:
                S.queue.trade(S, slot, qty)
                avail = S.queue.is_filled(S, slot, qty)
                if avail > 0.0:
                    leaves = S.orders_f[slot, OF_XLEAVES]
                    exec_qty = min(avail, qty, leaves) if partial else leaves
                    S.queue.executed(S, slot, exec_qty)
                    status = fill(S, slot, ts, t, exec_qty, True)
                    done = status == FILLED
        if done:
            deactivate(S, slot)
        else:
            k += 1


@nb.njit(cache=True, _nrt=True)
def process_data(S, i):
    """Apply event row ``i`` on the exchange timeline: the book first, then what it does to our orders."""
    ints = S.ints
    floats = S.floats
    lb = ints[I_LB]
    ts = S.exch_ts[i]
    bk = S.xbook_ends
    kind, side, tick, prev, prev_best = apply_event(S.ev[i], S.px[i], S.qty[i], S.xbid, S.xask, bk, floats[F_TICK],
                                                    floats[F_LOT], lb, ints[I_UB])
    if (kind == DEPTH or kind == DEPTH_SNAPSHOT or kind == DEPTH_BBO) and side != 0:
        buy = side == 1
        level_changed(S, buy, tick, prev, S.qty[i])
        if crossed(buy, bk[BEST_BID], bk[BEST_ASK], prev_best, ints[I_XMAXBUY], ints[I_XMINSELL]):
            _fill_crossed(S, SELL if buy else BUY, bk[BEST_BID] if buy else bk[BEST_ASK], ts)
    elif kind == TRADE:
        if side == 1:              # buyer-initiated: lifts asks, can fill our sells
            if tick >= ints[I_XMINSELL]:
                _trade(S, SELL, tick, S.qty[i], ts)
        elif side == -1:
            if tick <= ints[I_XMAXBUY]:
                _trade(S, BUY, tick, S.qty[i], ts)
    elif ADD_ORDER <= kind <= FILL and S.queue.order_level:
        _l3_event(S, i, ts)


# ---------------------------------------------------------------- our requests


@nb.njit(cache=True)
def _join_queue(S, slot, tick):
    """Our order joins the back of the queue at ``tick``."""
    ints = S.ints
    own = S.xbid if S.orders_i[slot, O_SIDE] == BUY else S.xask
    S.queue.new_order(S, slot, qty_at(own, tick, ints[I_LB], ints[I_UB]))


@nb.njit(cache=True)
def _l3_event(S, i, ts):
    """An order-level event: update the L3 book; fill our orders a FILL executed."""
    side, tick, real = l3.apply(S, i)
    if (S.ev[i] & KIND_MASK) != FILL:
        return
    k = 0
    while k < S.ints[I_NXLIVE]:
        slot = S.xlive[k]
        if l3.executes(S, slot, side, tick, real):
            fill(S, slot, ts, S.orders_i[slot, O_TICK], S.orders_f[slot, OF_XLEAVES], True)
            deactivate(S, slot)   # swaps the last entry into k: look at k again
        else:
            k += 1


@nb.njit(cache=True)
def _take(S, slot, ts):
    """A marketable order: take liquidity from the opposite side.

    Without partial fills (hftbacktest semantics) the whole order executes at the
    opposite best. With partial fills it walks the levels up to its limit; the
    remainder rests (GTC limit) or expires (IOC, market); FOK executes only if
    the levels up to its limit hold its whole size.
    """
    ints = S.ints
    floats = S.floats
    orders_i = S.orders_i
    lot = floats[F_LOT]
    side = orders_i[slot, O_SIDE]
    bk = S.xbook_ends
    lb = ints[I_LB]
    ub = ints[I_UB]
    best = bk[BEST_ASK] if side == BUY else bk[BEST_BID]
    if ints[I_PARTIAL] == 0:
        fill(S, slot, ts, best, S.orders_f[slot, OF_XLEAVES], False)
        return
    is_market = orders_i[slot, O_TYPE] == MARKET
    limit = orders_i[slot, O_TICK]
    book = S.xask if side == BUY else S.xbid
    end = bk[HIGH_ASK] if side == BUY else bk[LOW_BID]
    if not is_market:
        end = min(end, limit) if side == BUY else max(end, limit)
    step = 1 if side == BUY else -1
    if orders_i[slot, O_TIF] == FOK and not is_market:
        cum = 0.0
        t = best
        enough = False
        while (t <= end) if side == BUY else (t >= end):
            cum += qty_at(book, t, lb, ub)
            if np.round(cum / lot) >= np.round(S.orders_f[slot, OF_QTY] / lot):
                enough = True
                break
            t += step
        if not enough:
            orders_i[slot, O_XSTATUS] = EXPIRED
            respond(S, slot, ts, REQ_NEW, RESP_UPDATE, EXPIRED, R_NO_LIQUIDITY)
            return
    t = best
    status = NEW
    while (t <= end) if side == BUY else (t >= end):
        q = qty_at(book, t, lb, ub)
        if q > 0.0:
            status = fill(S, slot, ts, t, min(q, S.orders_f[slot, OF_XLEAVES]), False)
            if status == FILLED:
                return
        t += step
    if not is_market and orders_i[slot, O_TIF] == GTC:
        _join_queue(S, slot, limit)
        if status != PARTIALLY_FILLED:
            orders_i[slot, O_XSTATUS] = NEW
            respond(S, slot, ts, REQ_NEW, RESP_UPDATE, NEW, R_NONE)
        activate(S, slot)
    else:
        orders_i[slot, O_XSTATUS] = EXPIRED
        respond(S, slot, ts, REQ_NEW, RESP_UPDATE, EXPIRED, R_NO_LIQUIDITY)


@nb.njit(cache=True)
def _new(S, slot, ts):
    orders_i = S.orders_i
    side = orders_i[slot, O_SIDE]
    tick = orders_i[slot, O_TICK]
    bk = S.xbook_ends
    opposite = bk[BEST_ASK] if side == BUY else bk[BEST_BID]
    empty = opposite == INVALID_MAX if side == BUY else opposite == INVALID_MIN
    orders_i[slot, O_XTS] = ts
    if orders_i[slot, O_TYPE] == MARKET:
        if empty:
            orders_i[slot, O_XSTATUS] = EXPIRED
            respond(S, slot, ts, REQ_NEW, RESP_UPDATE, EXPIRED, R_NO_LIQUIDITY)
        else:
            _take(S, slot, ts)
        return
    crosses = (tick >= opposite) if side == BUY else (tick <= opposite)
    tif = orders_i[slot, O_TIF]
    if crosses:
        if tif == GTX:
            orders_i[slot, O_XSTATUS] = REJECTED
            respond(S, slot, ts, REQ_NEW, RESP_UPDATE, REJECTED, R_POST_ONLY_WOULD_TAKE)
        else:
            _take(S, slot, ts)
    elif tif == GTC or tif == GTX:
        _join_queue(S, slot, tick)
        orders_i[slot, O_XSTATUS] = NEW
        activate(S, slot)
        respond(S, slot, ts, REQ_NEW, RESP_UPDATE, NEW, R_NONE)
    else:
        orders_i[slot, O_XSTATUS] = EXPIRED
        respond(S, slot, ts, REQ_NEW, RESP_UPDATE, EXPIRED, R_NO_LIQUIDITY)


@nb.njit(cache=True)
def _is_live(status):
    return status == NEW or status == PARTIALLY_FILLED


@nb.njit(cache=True)
def _cancel(S, slot, ts):
    orders_i = S.orders_i
    if not _is_live(orders_i[slot, O_XSTATUS]):
        respond(S, slot, ts, REQ_CANCEL, RESP_REQ_REJECTED, orders_i[slot, O_XSTATUS], R_UNKNOWN_ORDER)
        return
    deactivate(S, slot)
    orders_i[slot, O_XSTATUS] = CANCELED
    orders_i[slot, O_XTS] = ts
    respond(S, slot, ts, REQ_CANCEL, RESP_UPDATE, CANCELED, R_NONE)


@nb.njit(cache=True)
def _modify(S, slot, ts, new_tick, new_qty):
    """Change price and/or size. A new price or a larger size re-queues the order
    at the back; a smaller size keeps its place."""
    orders_i = S.orders_i
    orders_f = S.orders_f
    if not _is_live(orders_i[slot, O_XSTATUS]):
        respond(S, slot, ts, REQ_MODIFY, RESP_REQ_REJECTED, orders_i[slot, O_XSTATUS], R_UNKNOWN_ORDER)
        return
    leaves = new_qty - orders_f[slot, OF_XEXEC]
    if np.round(leaves / S.floats[F_LOT]) <= 0.0:
        respond(S, slot, ts, REQ_MODIFY, RESP_REQ_REJECTED, orders_i[slot, O_XSTATUS], R_BAD_QTY)
        return
    side = orders_i[slot, O_SIDE]
    old_tick = orders_i[slot, O_TICK]
    lose_priority = new_tick != old_tick or new_qty > orders_f[slot, OF_QTY]
    deactivate(S, slot)
    orders_i[slot, O_TICK] = new_tick
    orders_f[slot, OF_QTY] = new_qty
    orders_f[slot, OF_XLEAVES] = leaves
    orders_i[slot, O_XTS] = ts
    bk = S.xbook_ends
    crosses = (new_tick >= bk[BEST_ASK]) if side == BUY else (new_tick <= bk[BEST_BID])
    if crosses:
        if orders_i[slot, O_TIF] == GTX:
            orders_i[slot, O_XSTATUS] = REJECTED
            respond(S, slot, ts, REQ_MODIFY, RESP_UPDATE, REJECTED, R_POST_ONLY_WOULD_TAKE)
        else:
            _take(S, slot, ts)
        return
    if lose_priority:
        _join_queue(S, slot, new_tick)
    activate(S, slot)
    respond(S, slot, ts, REQ_MODIFY, RESP_UPDATE, orders_i[slot, O_XSTATUS], R_NONE)


@nb.njit(cache=True, _nrt=True)
def process_request(S, r):
    """Handle request ring entry ``r`` as it reaches the exchange."""
    slot = S.rq_i[r, RQ_SLOT]
    ts = S.rq_i[r, RQ_TS]
    kind = S.rq_i[r, RQ_KIND]
    S.orders_i[slot, O_INFLIGHT] -= 1
    if kind == REQ_NEW:
        _new(S, slot, ts)
    elif kind == REQ_CANCEL:
        _cancel(S, slot, ts)
    else:
        _modify(S, slot, ts, S.rq_i[r, RQ_TICK], S.rq_f[r])
