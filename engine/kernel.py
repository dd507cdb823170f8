"""The event loop and the order API that jitted strategies call.

Four streams are merged by time: market data on the exchange timeline
(``exch_ts``), our requests reaching the exchange, market data on the local
timeline (``local_ts``) and responses reaching us. At equal timestamps the
exchange goes first (data, then our requests), then the local side (data, then
responses); within a stream, input order. The same input always gives the same
result.

A jitted strategy drives it like hftbacktest's ``elapse`` loop::

    while elapse(S, 100_000_000):
        ... read best_bid_tick(S), position(S), orders ...
        submit(S, BUY, tick, qty, GTX, LIMIT)

Orders sent during a wake-up leave at ``now + compute_ns`` (the strategy's
decision time, see :func:`set_compute_ns`) plus the entry latency.
"""
import numba as nb
import numpy as np

from feeds.events import (ADD_ORDER, BUY as BUY_FLAG, DEPTH, DEPTH_SNAPSHOT, EXCH, FILL, KIND_MASK, LOCAL,
                          SELL as SELL_FLAG, TRADE)

from engine.book import (BEST_ASK, BEST_BID, load_ends, price_tick_fast, qty_at, stores_only, store_ends, tick_grid,
                         update_ask, update_bid)
from engine.codes import (BUY, SELL, INVALID_MAX, INVALID_MIN, MARKET, NEW, NONE, PARTIALLY_FILLED, R_BAD_QTY,
                          R_PRICE_OUT_OF_RANGE, REQ_CANCEL, REQ_MODIFY, REQ_NEW, REQ_NONE)
from engine.exchange import _fill_crossed, _trade, crossed, level_changed, process_data as exch_data, process_request
from engine.rings import reserve
from engine.local import is_final, process_data as local_data, process_response, tick_flags, tick_row, try_free
from engine.state import (field, F_CASH, F_INVERSE, F_LAST_MID, F_MID0, F_MULT, F_SUM_ABS_Q, I_NTICKS, is_book_kind,
                          F_TOP_ASKQ, F_TOP_BIDQ, I_TOP_ASK, I_TOP_BID, I_WAKE_LEFT, I_WAKE_TOP, I_WOKE, I_WOKE_TS,
                          F_LBAL, F_LFEE, F_LOT, F_LPOS, F_PER_TICK, F_POS, F_TICK, I_COMPUTE, I_CUR, I_ENDED, I_IE,
                          I_IL, I_LB, I_LIVE, I_NXLIVE, I_RECORD_TICKS, I_REFUSED_PRICE, I_REFUSED_QTY, I_WAKE_AT, I_WAKE_OPEN, I_XMAXBUY,
                          I_XMINSELL, I_N, I_NEXT_ID, I_NFILLS, I_NUSED, I_RQ_HEAD, I_RQ_TAIL, I_RS_HEAD, I_RS_TAIL,
                          I_SLOT_HWM, I_STARTED, I_UB, O_ID, O_INFLIGHT, O_LCLEARED, O_LREQ, O_LSTATUS, O_LTICK,
                          O_SIDE, O_SUBMIT_TS, O_TICK, O_TIF, O_TYPE, O_USED, O_XSTATUS, OF_LLEAVES, OF_LQTY, OF_QTY,
                          OF_XLEAVES, RQ_ID, RQ_KIND, RQ_SIDE, RQ_SLOT, RQ_TICK, RQ_TS, RS_TS)

END = np.int64(INVALID_MAX)
SIDE_FLAGS = BUY_FLAG | SELL_FLAG   # a depth row with neither flag changes no book
# The exchange row :func:`_replay` holds back until the local side has caught up to its time.
HELD_NONE, HELD_DEPTH, HELD_TRADE, HELD_RARE = 0, 1, 2, 3

# Why a wake-up happened (bits of :func:`advance`'s result).
WOKE_END = 0        # the data is exhausted
WOKE_TIMER = 1      # the timer interval elapsed
WOKE_EVENTS = 2     # the number of local market events was reached
WOKE_TOP = 4        # the local best bid or ask changed
WOKE_WAIT = 8       # live: the next wake-up lies beyond the rows received so far

# Error codes returned by the order API (negative; order ids are positive).
E_NOT_FOUND = -1          # no such order in the strategy's view
E_REQUEST_PENDING = -2    # a request for this order is still in flight
E_BAD_QTY = -R_BAD_QTY
E_PRICE_OUT_OF_RANGE = -R_PRICE_OUT_OF_RANGE


@nb.njit(cache=True, inline="always")
def _next_flagged(ev, i, n, flag):
    while i < n and (ev[i] & flag) == 0:
        i += 1
    return i


@nb.njit(cache=True, _nrt=False)
def _start(S):
    ints = field(S, "ints")
    n = ints[I_N]
    ints[I_IE] = _next_flagged(field(S, "ev"), 0, n, EXCH)
    ints[I_IL] = _next_flagged(field(S, "ev"), 0, n, LOCAL)
    te = field(S, "exch_ts")[ints[I_IE]] if ints[I_IE] < n else END
    tl = field(S, "local_ts")[ints[I_IL]] if ints[I_IL] < n else END
    ints[I_CUR] = min(te, tl)
    ints[I_STARTED] = 1


@nb.njit(cache=True, inline="always")
def _u(i):
    """An index the loop has already range-checked, as unsigned: Numba skips negative-index wraparound."""
    return np.uint64(i)


@nb.njit(cache=True, inline="always")
def _ours_at(nbuy_at, nsell_at, buy, tick, lb, ub):
    """Whether an order of ours rests at ``tick`` on the row's side (the exchange's counts)."""
    return lb <= tick <= ub and (nbuy_at[_u(tick - lb)] if buy else nsell_at[_u(tick - lb)]) > 0


@nb.njit(cache=True, inline="always")
def _our_orders(ints, floats, rs_i):
    """What the replay loop keeps of our orders: fills so far, most aggressive live prices, live
    orders, position, cash, the tick log's fill/quote word, and when the next response arrives."""
    tr = rs_i[ints[I_RS_HEAD] & (rs_i.shape[0] - 1), RS_TS] if ints[I_RS_TAIL] > ints[I_RS_HEAD] else END
    return (ints[I_NFILLS], ints[I_XMAXBUY], ints[I_XMINSELL], ints[I_NXLIVE], floats[F_POS], floats[F_CASH],
            tick_flags(ints), tr)


@nb.njit(cache=True, _nrt=False)
def _replay(S, ie, il, target):
    """The four streams merged by time up to ``target`` (see the module docstring): market data
    on both timelines, our requests reaching the exchange and responses reaching us.

    This is the hot loop: depth and trade rows run inline on arrays taken out of
    ``S`` once, and only rows that touch our orders (or rarer kinds) call out.
    Its rules are the exchange's and the local side's own, on its locals: a
    depth row that ``book.stores_only`` says leaves the book's ends as they are
    is one store, any other goes through ``update_bid``/``update_ask``; what a
    row does to our orders is ``exchange.level_changed`` (called only with an
    order of ours at that price) and ``exchange.crossed``; a tick's values are
    ``local.tick_row``. A call with nothing due by ``target`` (most wake-ups of a
    fast timer on sparse data) returns before any set-up. It returns
    ``(ie, il, rare)``: at ``target`` or at a wake-up with ``rare`` False, or with
    ``rare`` True right after a rare row kind, whose handling may have changed
    our orders (:func:`goto` calls it again from there).
    Fills, requests and responses stay in the loop: one call per message made the
    loop's set-up a large part of a quoting strategy's run.

    The scalars every row reads (both books' best prices and extent, the tick
    log's running values, our most aggressive live prices) live in locals: every
    store to a book level or the tick log could alias ``ints``/``floats``/``bk`` as far
    as the compiler knows, so reading them from memory reloads them each row.
    They are stored back before any call that reads them, and at the end. The
    values derived from our orders change only with a fill or a request, and are
    taken in again right after either; responses change only the strategy's view.
    """
    ints = field(S, "ints")
    n = ints[I_N]
    events = field(S, "events")
    te = events[_u(ie)].exch_ts if ie < n else END
    tl = events[_u(il)].local_ts if il < n else END
    rs_i = field(S, "rs_i")
    rs_mask = rs_i.shape[0] - 1
    rq_i = field(S, "rq_i")
    rq_mask = rq_i.shape[0] - 1
    tq = rq_i[ints[I_RQ_HEAD] & rq_mask, RQ_TS] if ints[I_RQ_TAIL] > ints[I_RQ_HEAD] else END
    if te > target and tl > target and tq > target and (
            ints[I_RS_TAIL] == ints[I_RS_HEAD] or rs_i[ints[I_RS_HEAD] & rs_mask, RS_TS] > target):
        return ie, il, False
    floats = field(S, "floats")
    xbid = field(S, "xbid")
    xask = field(S, "xask")
    xbook_ends = field(S, "xbook_ends")
    lbid = field(S, "lbid")
    lask = field(S, "lask")
    lbook_ends = field(S, "lbook_ends")
    nbuy_at = field(S, "nbuy_at")
    nsell_at = field(S, "nsell_at")
    tk_mid = field(S, "tk_mid")
    tk_epnl = field(S, "tk_epnl")
    tk_nq = field(S, "tk_nq")
    lb = ints[I_LB]
    ub = ints[I_UB]
    tick_size = floats[F_TICK]
    grid = tick_grid(tick_size, floats[F_PER_TICK])
    lot = floats[F_LOT]
    mult = floats[F_MULT]
    inverse = floats[F_INVERSE] != 0.0
    record = ints[I_RECORD_TICKS] == 1
    order_level = field(S, "queue").order_level
    watch = ints[I_WAKE_LEFT] > 0 or ints[I_WAKE_TOP] == 1
    fills, max_buy, min_sell, nlive, pos, cash, nq, tr = _our_orders(ints, floats, rs_i)
    x_bb, x_ba, x_low, x_high = load_ends(xbook_ends)
    l_bb, l_ba, l_low, l_high = load_ends(lbook_ends)
    k = ints[I_NTICKS]
    last_mid = floats[F_LAST_MID]
    mid0 = floats[F_MID0]
    sum_abs_q = floats[F_SUM_ABS_Q]
    # A tick's mid and EPnL follow from the local best bid and ask and from our fills (cash, position)
    # only, so a row that changed none of them (most rows: a level behind the best) repeats the last
    # row's; ``seen_fills = -1`` makes the next row compute them.
    seen_bb = l_bb
    seen_ba = l_ba
    seen_fills = -1
    epnl = 0.0
    stop = False
    rare = False
    while not stop:
        # Market data up to our next message (exchange data before a request at the
        # same time, local data before a response), then that message.
        exch_lim = min(tq, tr, target)
        local_lim = min(tq - 1, tr, target)
        while True:
            # The two timelines in runs, not row by row: between our messages only a row that acts on
            # our orders (a fill, a queue change, a rare kind) moves what the local side reads, so the
            # exchange runs ahead to the next such row (``held``), the local side catches up to just
            # before it (the exchange goes first at equal times), then the held row acts. Merged row
            # by row, which timeline comes next is a coin flip for the branch predictor. Watching for
            # a wake-up on local data, the exchange may not run past the next local row.
            held = HELD_NONE
            held_i = held_ts = np.int64(0)
            held_prev = 0.0
            held_cross = False
            exch_run = min(exch_lim, tl) if watch else exch_lim
            while te <= exch_run:
                i = ie
                ts = te
                ie += 1
                while ie < n and (events[_u(ie)].ev & EXCH) == 0:
                    ie += 1
                te = events[_u(ie)].exch_ts if ie < n else END
                row = events[_u(i)]
                e = row.ev
                kind = e & KIND_MASK
                if kind == DEPTH or kind == DEPTH_SNAPSHOT:
                    if (e & SIDE_FLAGS) != 0:
                        tick = price_tick_fast(row.px, grid)
                        q = row.qty
                        buy = (e & BUY_FLAG) != 0
                        # One path for both sides, on values and arrays picked by side (conditional moves,
                        # not branches): the side of a row is a coin flip the branch predictor cannot learn.
                        prev_best = x_bb if buy else x_ba
                        if stores_only(buy, tick, q, lot, x_bb, x_ba, x_low, x_high):
                            side_levels = xbid if buy else xask
                            prev = side_levels[_u(tick - lb)]
                            side_levels[_u(tick - lb)] = q
                            cross = False         # the ends stayed: nothing moved through our orders
                        else:
                            store_ends(xbook_ends, x_bb, x_ba, x_low, x_high)
                            if buy:
                                prev = update_bid(xbid, xask, xbook_ends, tick, q, lot, lb, ub)
                            else:
                                prev = update_ask(xbid, xask, xbook_ends, tick, q, lot, lb, ub)
                            x_bb, x_ba, x_low, x_high = load_ends(xbook_ends)
                            cross = crossed(buy, x_bb, x_ba, prev_best, max_buy, min_sell)
                        if cross or _ours_at(nbuy_at, nsell_at, buy, tick, lb, ub):
                            held, held_i, held_ts, held_prev, held_cross = HELD_DEPTH, i, ts, prev, cross
                            break
                elif kind == TRADE:
                    tick = price_tick_fast(row.px, grid)
                    if (tick >= min_sell and (e & BUY_FLAG) != 0) or (tick <= max_buy and (e & SELL_FLAG) != 0 and
                                                                       (e & BUY_FLAG) == 0):
                        held, held_i, held_ts = HELD_TRADE, i, ts
                        break
                elif ADD_ORDER <= kind <= FILL and not order_level:
                    pass                      # order-level rows only move an L3 queue
                else:
                    held, held_i, held_ts = HELD_RARE, i, ts
                    break
            local_run = min(local_lim, (held_ts if held != HELD_NONE else te) - 1)
            while tl <= local_run:
                i = il
                ts = tl
                il += 1
                while il < n and (events[_u(il)].ev & LOCAL) == 0:
                    il += 1
                tl = events[_u(il)].local_ts if il < n else END
                row = events[_u(i)]
                e = row.ev
                kind = e & KIND_MASK
                if kind == DEPTH or kind == DEPTH_SNAPSHOT:
                    if (e & SIDE_FLAGS) != 0:
                        tick = price_tick_fast(row.px, grid)
                        q = row.qty
                        buy = (e & BUY_FLAG) != 0
                        if stores_only(buy, tick, q, lot, l_bb, l_ba, l_low, l_high):
                            (lbid if buy else lask)[_u(tick - lb)] = q
                        else:
                            store_ends(lbook_ends, l_bb, l_ba, l_low, l_high)
                            if buy:
                                update_bid(lbid, lask, lbook_ends, tick, q, lot, lb, ub)
                            else:
                                update_ask(lbid, lask, lbook_ends, tick, q, lot, lb, ub)
                            l_bb, l_ba, l_low, l_high = load_ends(lbook_ends)
                elif kind != TRADE:
                    store_ends(lbook_ends, l_bb, l_ba, l_low, l_high)
                    ints[I_NTICKS] = k
                    floats[F_LAST_MID] = last_mid
                    floats[F_MID0] = mid0
                    floats[F_SUM_ABS_Q] = sum_abs_q
                    local_data(S, i)     # records its own tick
                    l_bb, l_ba, l_low, l_high = load_ends(lbook_ends)
                    k = ints[I_NTICKS]
                    last_mid = floats[F_LAST_MID]
                    mid0 = floats[F_MID0]
                    sum_abs_q = floats[F_SUM_ABS_Q]
                    seen_fills = -1
                    if watch and _woke(ints, floats, lbook_ends, lbid, lask, ts):
                        stop = True
                        break
                    continue
                if record:
                    if l_bb != seen_bb or l_ba != seen_ba or fills != seen_fills:
                        last_mid, epnl, mid0 = tick_row(l_bb, l_ba, tick_size, mult, inverse, cash, pos, last_mid,
                                                        mid0)
                        seen_bb = l_bb
                        seen_ba = l_ba
                        seen_fills = fills
                    sum_abs_q += abs(pos)
                    tk_mid[_u(k)] = last_mid
                    tk_epnl[_u(k)] = epnl
                    tk_nq[_u(k)] = nq
                    k += 1
                if watch:
                    store_ends(lbook_ends, l_bb, l_ba, l_low, l_high)
                    if _woke(ints, floats, lbook_ends, lbid, lask, ts):
                        stop = True
                        break
            if stop:
                break      # only watching, where nothing is held: the exchange stopped at the next local row
            if held == HELD_NONE:
                if te > exch_lim and tl > local_lim:
                    break
                continue
            # The held row acts on our orders, with the local side caught up to its time.
            row = events[_u(held_i)]
            e = row.ev
            if held == HELD_RARE:
                store_ends(xbook_ends, x_bb, x_ba, x_low, x_high)
                exch_data(S, held_i)
                x_bb, x_ba, x_low, x_high = load_ends(xbook_ends)
                rare = True
                stop = True
                break
            tick = price_tick_fast(row.px, grid)
            if held == HELD_DEPTH:
                buy = (e & BUY_FLAG) != 0
                if _ours_at(nbuy_at, nsell_at, buy, tick, lb, ub):
                    level_changed(S, buy, tick, held_prev, row.qty)
                if held_cross:
                    _fill_crossed(S, SELL if buy else BUY, x_bb if buy else x_ba, held_ts)
            else:                             # a trade that can fill our sells (buyer-initiated) or our buys
                _trade(S, SELL if (e & BUY_FLAG) != 0 else BUY, tick, row.qty, held_ts)
            if ints[I_NFILLS] != fills:
                fills, max_buy, min_sell, nlive, pos, cash, nq, tr = _our_orders(ints, floats, rs_i)
                exch_lim = min(tq, tr, target)
                local_lim = min(tq - 1, tr, target)
        if stop:
            break
        if tq <= tr:
            if tq > target:
                break
            h = ints[I_RQ_HEAD]
            ints[I_RQ_HEAD] = h + 1
            store_ends(xbook_ends, x_bb, x_ba, x_low, x_high)
            process_request(S, h & rq_mask)
            fills, max_buy, min_sell, nlive, pos, cash, nq, tr = _our_orders(ints, floats, rs_i)
            tq = rq_i[ints[I_RQ_HEAD] & rq_mask, RQ_TS] if ints[I_RQ_TAIL] > ints[I_RQ_HEAD] else END
        else:
            if tr > target:
                break
            h = ints[I_RS_HEAD]
            ints[I_RS_HEAD] = h + 1
            process_response(S, h & rs_mask)
            tr = rs_i[ints[I_RS_HEAD] & rs_mask, RS_TS] if ints[I_RS_TAIL] > ints[I_RS_HEAD] else END
    store_ends(xbook_ends, x_bb, x_ba, x_low, x_high)
    store_ends(lbook_ends, l_bb, l_ba, l_low, l_high)
    ints[I_NTICKS] = k
    floats[F_LAST_MID] = last_mid
    floats[F_MID0] = mid0
    floats[F_SUM_ABS_Q] = sum_abs_q
    return ie, il, rare


@nb.njit(cache=True)
def _top(lbook_ends, lbid, lask, lb):
    """Best bid and ask ticks of the local book, and the sizes resting there."""
    bb = lbook_ends[BEST_BID]
    ba = lbook_ends[BEST_ASK]
    bq = lbid[bb - lb] if bb != INVALID_MIN and 0 <= bb - lb < lbid.shape[0] else 0.0
    aq = lask[ba - lb] if ba != INVALID_MAX and 0 <= ba - lb < lask.shape[0] else 0.0
    return bb, ba, bq, aq


@nb.njit(cache=True)
def _woke(ints, floats, lbook_ends, lbid, lask, ts):
    """After a local market event: has a wake-up on events or on the top of book come due?"""
    woke = 0
    if ints[I_WAKE_LEFT] > 0:
        ints[I_WAKE_LEFT] -= 1
        if ints[I_WAKE_LEFT] == 0:
            woke |= WOKE_EVENTS
    if ints[I_WAKE_TOP] == 1:
        bb, ba, bq, aq = _top(lbook_ends, lbid, lask, ints[I_LB])
        if bb != ints[I_TOP_BID] or ba != ints[I_TOP_ASK] or bq != floats[F_TOP_BIDQ] or aq != floats[F_TOP_ASKQ]:
            woke |= WOKE_TOP
    if woke != 0:
        ints[I_WOKE] = woke
        ints[I_WOKE_TS] = ts
        return True
    return False


@nb.njit(cache=True, _nrt=False)
def goto(S, target):
    """Process every event up to and including ``target``; False at end of data."""
    ints = field(S, "ints")
    if ints[I_STARTED] == 0:
        _start(S)
    ie = ints[I_IE]
    il = ints[I_IL]
    while True:
        # The merged streams up to the target; a rare row kind returns right after it, to go on afresh.
        ie, il, rare = _replay(S, ie, il, target)
        if ints[I_WOKE] != 0 or not rare:
            break
    n = ints[I_N]
    # Live, no row yet is a wait; offline, nothing left on any stream is the end.
    more = ints[I_WOKE] != 0 or ints[I_LIVE] == 1 or ie < n or il < n or (
        ints[I_RQ_TAIL] > ints[I_RQ_HEAD] or ints[I_RS_TAIL] > ints[I_RS_HEAD])
    ints[I_IE] = ie
    ints[I_IL] = il
    # The clock moves to the target also at the end of data: orders sent now must not be stamped
    # in the past. A wake-up on events stops it at the event that caused it.
    ints[I_CUR] = ints[I_WOKE_TS] if ints[I_WOKE] != 0 else target
    if not more:
        ints[I_ENDED] = 1
    return more


@nb.njit(cache=True, _nrt=False)
def elapse(S, duration):
    """Advance the strategy clock by ``duration`` ns; False once the data is exhausted."""
    if field(S, "ints")[I_STARTED] == 0:
        _start(S)
    if field(S, "ints")[I_ENDED] == 1:
        return False
    return goto(S, field(S, "ints")[I_CUR] + duration)


@nb.njit(cache=True)
def run_to_end(S):
    """Replay everything left (no strategy)."""
    goto(S, END - 1)


# ---------------------------------------------------------------- order API
#
# A jitted strategy calls these and the reads below at every wake-up, so they read the Sim through
# ``field`` and are compiled with ``_nrt=False``: with the NRT on, each call that takes ``S`` and each
# ``S.<array>`` read increfs and decrefs the Sim around it, an atomic instruction each time, about a
# tenth of a 1 ms wake-up of a quoting kernel. The latency model is the one exception: a model reads
# the Sim as ``S.ints`` (engine/models/unit.py), so :func:`_reaches_exchange` runs it with the NRT on,
# once per request sent.


@nb.njit(cache=True, _nrt=False)
def set_compute_ns(S, ns):
    """The strategy's decision time: orders sent from now on leave ``ns`` after the wake-up."""
    field(S, "ints")[I_COMPUTE] = ns


@nb.njit(cache=True, _nrt=False)
def requests_sent(S):
    """A mark in the request stream: pass it to :func:`charge_compute` after the decision."""
    return field(S, "ints")[I_RQ_TAIL]


@nb.njit(cache=True)
def charge_compute(S, mark, ns):
    """Delay the requests sent since ``mark`` by a decision time measured after the fact.

    A strategy whose decision time is only known once it has decided sends its
    orders first; this moves them to leave ``ns`` later, with entry latency
    re-taken at the new send time, as if they had been held until then.
    """
    ints = S.ints
    cap = S.rq_i.shape[0]
    last = np.int64(-(2**63) + 1)
    if mark > ints[I_RQ_HEAD]:
        last = S.rq_i[(mark - 1) & (cap - 1), RQ_TS]
    for k in range(max(mark, ints[I_RQ_HEAD]), ints[I_RQ_TAIL]):
        r = k & (cap - 1)
        send = ints[I_CUR] + ints[I_COMPUTE] + ns
        ts = max(send + S.latency.entry(S, S.rq_i[r, RQ_KIND], send), last)
        S.rq_i[r, RQ_TS] = ts
        last = ts


@nb.njit(cache=True, _nrt=True)
def _reaches_exchange(S, kind):
    """When a request of ``kind`` sent at this wake-up reaches the exchange: the decision time, then the
    latency model's entry latency. The NRT is on here for the model, which reads ``S.ints``."""
    send = S.ints[I_CUR] + S.ints[I_COMPUTE]
    return send + S.latency.entry(S, kind, send)


@nb.njit(cache=True, _nrt=False)
def _push_request(S, slot, kind, tick, qty):
    ints = field(S, "ints")
    rq_i = field(S, "rq_i")
    orders_i = field(S, "orders_i")
    tail = ints[I_RQ_TAIL]
    r, ts = reserve(rq_i, ints[I_RQ_HEAD], tail, _reaches_exchange(S, kind))
    if r < 0:
        raise RuntimeError("request ring full: raise EngineConfig.ring_size")
    rq_i[r, RQ_TS] = ts
    rq_i[r, RQ_SLOT] = slot
    rq_i[r, RQ_ID] = orders_i[slot, O_ID]
    rq_i[r, RQ_SIDE] = orders_i[slot, O_SIDE]
    rq_i[r, RQ_KIND] = kind
    rq_i[r, RQ_TICK] = tick
    field(S, "rq_f")[r] = qty
    ints[I_RQ_TAIL] = tail + 1
    orders_i[slot, O_INFLIGHT] += 1


@nb.njit(cache=True, _nrt=False)
def _free_slot(S):
    """Lowest free slot, so live orders stay packed below the high-water mark."""
    ints = field(S, "ints")
    orders_i = field(S, "orders_i")
    for slot in range(orders_i.shape[0]):
        if orders_i[slot, O_USED] == 0:
            if slot >= ints[I_SLOT_HWM]:
                ints[I_SLOT_HWM] = slot + 1
            return slot
    raise RuntimeError("too many live orders: raise EngineConfig.max_orders (call clear_inactive to free done ones)")


@nb.njit(cache=True, _nrt=False)
def n_slots(S):
    """Slots to scan when iterating orders: every order lives below this index."""
    return field(S, "ints")[I_SLOT_HWM]


@nb.njit(cache=True, _nrt=False)
def submit(S, side, tick, qty, tif, order_type):
    """Send a new order; returns its id (> 0) or a negative error code.

    ``side`` is BUY (1) or SELL (-1); ``tick`` the limit price in ticks (ignored
    for market orders); ``tif`` GTC/GTX/IOC/FOK; ``order_type`` LIMIT/MARKET.
    """
    ints = field(S, "ints")
    if not np.round(qty / field(S, "floats")[F_LOT]) > 0.0:
        ints[I_REFUSED_QTY] += 1
        return np.int64(E_BAD_QTY)
    if order_type == MARKET:
        tick = ints[I_LB]
    elif tick < ints[I_LB] or tick > ints[I_UB]:
        ints[I_REFUSED_PRICE] += 1
        return np.int64(E_PRICE_OUT_OF_RANGE)
    slot = _free_slot(S)
    orders_i = field(S, "orders_i")
    orders_f = field(S, "orders_f")
    oid = ints[I_NEXT_ID]
    ints[I_NEXT_ID] = oid + 1
    orders_i[slot, :] = 0
    orders_f[slot, :] = 0.0
    orders_i[slot, O_USED] = 1
    orders_i[slot, O_ID] = oid
    orders_i[slot, O_SIDE] = side
    orders_i[slot, O_TICK] = tick
    orders_i[slot, O_LTICK] = tick
    orders_i[slot, O_TIF] = tif
    orders_i[slot, O_TYPE] = order_type
    orders_i[slot, O_XSTATUS] = NONE
    orders_i[slot, O_LSTATUS] = NONE
    orders_i[slot, O_LREQ] = REQ_NEW
    orders_i[slot, O_SUBMIT_TS] = ints[I_CUR]
    orders_f[slot, OF_QTY] = qty
    orders_f[slot, OF_XLEAVES] = qty
    orders_f[slot, OF_LQTY] = qty
    orders_f[slot, OF_LLEAVES] = qty
    ints[I_NUSED] += 1
    _push_request(S, slot, REQ_NEW, tick, qty)
    return oid


@nb.njit(cache=True, _nrt=False)
def find(S, order_id):
    """Slot of an order in the strategy's view, or -1."""
    orders_i = field(S, "orders_i")
    for slot in range(field(S, "ints")[I_SLOT_HWM]):
        if orders_i[slot, O_USED] == 1 and orders_i[slot, O_ID] == order_id and orders_i[slot, O_LCLEARED] == 0:
            return slot
    return -1


@nb.njit(cache=True, _nrt=False)
def cancel(S, order_id):
    """Ask the exchange to cancel; 0 when sent, else a negative error code."""
    slot = find(S, order_id)
    if slot < 0:
        return np.int64(E_NOT_FOUND)
    orders_i = field(S, "orders_i")
    if orders_i[slot, O_LREQ] != REQ_NONE:
        return np.int64(E_REQUEST_PENDING)
    orders_i[slot, O_LREQ] = REQ_CANCEL
    _push_request(S, slot, REQ_CANCEL, 0, 0.0)
    return np.int64(0)


@nb.njit(cache=True, _nrt=False)
def modify(S, order_id, tick, qty):
    """Ask for a new price and/or total size; 0 when sent, else a negative error code."""
    slot = find(S, order_id)
    if slot < 0:
        return np.int64(E_NOT_FOUND)
    ints = field(S, "ints")
    orders_i = field(S, "orders_i")
    if orders_i[slot, O_LREQ] != REQ_NONE:
        return np.int64(E_REQUEST_PENDING)
    if tick < ints[I_LB] or tick > ints[I_UB]:
        ints[I_REFUSED_PRICE] += 1
        return np.int64(E_PRICE_OUT_OF_RANGE)
    if not np.round(qty / field(S, "floats")[F_LOT]) > 0.0:
        ints[I_REFUSED_QTY] += 1
        return np.int64(E_BAD_QTY)
    orders_i[slot, O_LREQ] = REQ_MODIFY
    _push_request(S, slot, REQ_MODIFY, tick, qty)
    return np.int64(0)


@nb.njit(cache=True, _nrt=False)
def cancel_all(S):
    """Cancel every live order with no request in flight; returns how many were sent."""
    orders_i = field(S, "orders_i")
    sent = 0
    for slot in range(field(S, "ints")[I_SLOT_HWM]):
        if visible(S, slot) and cancellable(S, slot):
            if cancel(S, orders_i[slot, O_ID]) == 0:
                sent += 1
    return sent


@nb.njit(cache=True, _nrt=False)
def clear_inactive(S):
    """Drop filled, cancelled, expired and rejected orders from the strategy's view."""
    orders_i = field(S, "orders_i")
    for slot in range(field(S, "ints")[I_SLOT_HWM]):
        if visible(S, slot) and is_final(orders_i[slot, O_LSTATUS]):
            orders_i[slot, O_LCLEARED] = 1
            try_free(S, slot)


@nb.njit(cache=True, _nrt=False)
def cancellable(S, slot):
    orders_i = field(S, "orders_i")
    st = orders_i[slot, O_LSTATUS]
    return (st == NEW or st == PARTIALLY_FILLED) and orders_i[slot, O_LREQ] == REQ_NONE


@nb.njit(cache=True, _nrt=False)
def visible(S, slot):
    """Whether ``slot`` holds an order in the strategy's view (iterate 0..n_slots(S))."""
    orders_i = field(S, "orders_i")
    return orders_i[slot, O_USED] == 1 and orders_i[slot, O_LCLEARED] == 0


@nb.njit(cache=True)
def visible_slots(S):
    """The slots :func:`visible` holds, in order: one call from Python instead of one per slot."""
    out = np.empty(S.ints[I_SLOT_HWM], dtype=np.int64)
    k = 0
    for slot in range(S.ints[I_SLOT_HWM]):
        if visible(S, slot):
            out[k] = slot
            k += 1
    return out[:k]


# ---------------------------------------------------------------- read-only views
# NRT-free as the order API is, for the same reason.


@nb.njit(cache=True, _nrt=False)
def now(S):
    return field(S, "ints")[I_CUR]


@nb.njit(cache=True, _nrt=False)
def best_bid_tick(S):
    return field(S, "lbook_ends")[BEST_BID]


@nb.njit(cache=True, _nrt=False)
def best_ask_tick(S):
    return field(S, "lbook_ends")[BEST_ASK]


@nb.njit(cache=True, _nrt=False)
def bid_qty_at(S, tick):
    ints = field(S, "ints")
    return qty_at(field(S, "lbid"), tick, ints[I_LB], ints[I_UB])


@nb.njit(cache=True, _nrt=False)
def ask_qty_at(S, tick):
    ints = field(S, "ints")
    return qty_at(field(S, "lask"), tick, ints[I_LB], ints[I_UB])


@nb.njit(cache=True)
def window(ev):
    """A wake-up's rows (their ``ev`` column): how many are local trades, and whether any changed the book."""
    trades = 0
    book = False
    for i in range(ev.shape[0]):
        e = ev[i]
        if e & LOCAL:
            kind = e & KIND_MASK
            if kind == TRADE:
                trades += 1
            elif is_book_kind(kind):
                book = True
    return trades, book


@nb.njit(cache=True, _nrt=False)
def position(S):
    """Position as the strategy knows it (fills applied when their response arrives)."""
    return field(S, "floats")[F_LPOS]


@nb.njit(cache=True, _nrt=False)
def balance(S):
    """Cash as the strategy knows it, before fees (hftbacktest's ``balance``)."""
    return field(S, "floats")[F_LBAL]


@nb.njit(cache=True, _nrt=False)
def fees(S):
    return field(S, "floats")[F_LFEE]


# ---------------------------------------------------------------- wake-ups for the Python path



@nb.njit(cache=True)
def start(S):
    """Position both timelines on their first rows; the clock starts at the first event."""
    if S.ints[I_STARTED] == 0:
        _start(S)


@nb.njit(cache=True)
def advance(S, every_ns, every_events, on_top_change):
    """Run until the next wake-up; returns why (WOKE_* bits), WOKE_END at the end of data.

    ``every_ns`` > 0: a timer, restarted at each wake-up; ``every_events`` > 0:
    after that many market events seen locally; ``on_top_change``: when the local
    best bid or ask price or size changes. A wake-up on events stops the clock at
    the event that caused it, even between events with the same timestamp.
    """
    return advance_until(S, every_ns, every_events, on_top_change, END - 1)


@nb.njit(cache=True)
def advance_until(S, every_ns, every_events, on_top_change, horizon):
    """:func:`advance`, processing nothing later than ``horizon``: WOKE_WAIT if the wake-up is not due by then.

    Paper trading calls it as rows arrive, with ``horizon`` the last time up to
    which every row is known. A pending wake-up keeps its timer and its event
    count across WOKE_WAIT returns, so a run cut into any number of horizons
    wakes at exactly the times of one uninterrupted run.
    """
    ints = S.ints
    if ints[I_STARTED] == 0:
        _start(S)
    if ints[I_ENDED] == 1:
        return WOKE_END
    if ints[I_WAKE_OPEN] == 0:
        ints[I_WAKE_OPEN] = 1
        ints[I_WAKE_LEFT] = every_events
        ints[I_WAKE_TOP] = 1 if on_top_change else 0
        if on_top_change:
            bb, ba, bq, aq = _top(S.lbook_ends, S.lbid, S.lask, ints[I_LB])
            ints[I_TOP_BID] = bb
            ints[I_TOP_ASK] = ba
            S.floats[F_TOP_BIDQ] = bq
            S.floats[F_TOP_ASKQ] = aq
        ints[I_WAKE_AT] = ints[I_CUR] + every_ns if every_ns > 0 else END - 1
    ints[I_WOKE] = 0
    due = ints[I_WAKE_AT]
    target = min(due, horizon)
    more = goto(S, target)
    woke = ints[I_WOKE]
    ints[I_WOKE] = 0
    if woke == 0 and more and target < due:
        return WOKE_WAIT
    ints[I_WAKE_OPEN] = 0
    ints[I_WAKE_LEFT] = 0
    ints[I_WAKE_TOP] = 0
    if woke != 0:
        return woke
    if more:
        return WOKE_TIMER
    if every_ns <= 0:
        ints[I_CUR] = _last_local_ts(S)   # no timer: the last wake-up is at the last event
    return WOKE_END


@nb.njit(cache=True)
def _last_local_ts(S):
    i = S.ints[I_N] - 1
    while i >= 0 and (S.ev[i] & LOCAL) == 0:
        i -= 1
    return S.local_ts[i] if i >= 0 else S.ints[I_CUR]


@nb.njit(cache=True)
def progress_rows(S):
    """Rows consumed on the slower of the two timelines, for progress bars."""
    return min(S.ints[I_IE], S.ints[I_IL])
