"""The L3 order-level book and the exact-FIFO queue model ("l3").

Order-level feeds (LOBSTER) name every resting order, so our queue position
need not be estimated: our order queues behind every real order resting at its
price when it reaches the exchange, and ahead of every order that joins later.

Book layout, preallocated by ``state.make_sim`` when the queue model is "l3":

- ``l3_i[slot] = (order_id, side, tick, live)``; slots are handed out in
  arrival order and never reused, so the slot number *is* the order's place in
  time: a real order is ahead of ours iff its slot is below the slot counter
  when ours arrived. Row 0 is the header: ``l3_i[0, 0]`` is the next free slot.
- ``l3_q[slot]``: the order's remaining size.
- ``l3_h``: open-addressing hash (linear probing) from order id to slot;
  0 is empty, -1 a deleted entry.
- ``l3_lv[0|1, tick - lb]``: remaining size of the known bid (0) and ask (1)
  orders at each tick.

For each of our resting orders the queue state is ``orders_f[slot, OF_FRONT]``,
the quantity ahead of us, and ``orders_f[slot, OF_QUEUE_STATE]``, the slot
counter at our arrival (the queue model is engine/models/queue/l3.py).
``front`` starts at the larger of the known orders' total and the L2 level (orders that predate the data are in L2 only; they are ahead of us).
Then, at our price and side:

- a cancel (full or partial) of an order ahead of us lowers ``front``; one
  behind us does not; an unknown order id counts as ahead (it predates us);
- a FILL of an order ahead of us lowers ``front``; a FILL of an order behind us
  means FIFO already executed us: we are filled in full;
- a TRADE larger than ``front`` reaches us (handled in ``exchange._trade``);
- a FILL of a resting order at a worse price (a sell execution below our bid)
  went through our price: we are filled in full.
"""
import numba as nb
import numpy as np

from feeds.events import ADD_ORDER, BUY as BUY_FLAG, CANCEL_ORDER, FILL, KIND_MASK, MODIFY_ORDER

from engine.codes import BUY, SELL
from engine.state import (F_LOT, F_TICK, I_LB, I_NXLIVE, L_ID, L_LIVE, L_SIDE, L_TICK, O_SIDE, O_TICK, OF_FRONT,
                          OF_QUEUE_STATE)


@nb.njit(cache=True, inline="always")
def _home(order_id, mask):
    # Fibonacci hashing spreads sequential exchange ids over the table.
    return np.int64((np.uint64(order_id) * np.uint64(11400714819323198485)) >> np.uint64(20)) & mask


@nb.njit(cache=True)
def lookup(S, order_id):
    """Slot of a live order, or 0 when unknown."""
    h = S.l3_h
    mask = h.shape[0] - 1
    k = _home(order_id, mask)
    while True:
        v = h[k]
        if v == 0:
            return 0
        if v > 0 and S.l3_i[v, L_ID] == order_id:
            return v
        k = (k + 1) & mask


@nb.njit(cache=True)
def _hash_put(S, order_id, slot):
    h = S.l3_h
    mask = h.shape[0] - 1
    k = _home(order_id, mask)
    while h[k] > 0:
        k = (k + 1) & mask
    h[k] = slot


@nb.njit(cache=True)
def _hash_del(S, order_id):
    h = S.l3_h
    mask = h.shape[0] - 1
    k = _home(order_id, mask)
    while h[k] != 0:
        if h[k] > 0 and S.l3_i[h[k], L_ID] == order_id:
            h[k] = -1
            return
        k = (k + 1) & mask


@nb.njit(cache=True)
def _add(S, order_id, side, tick, qty, lb):
    slot = S.l3_i[0, 0]
    if slot >= S.l3_i.shape[0]:
        raise RuntimeError("L3 book full: more orders than ADD/MODIFY events")
    S.l3_i[0, 0] = slot + 1
    S.l3_i[slot, L_ID] = order_id
    S.l3_i[slot, L_SIDE] = side
    S.l3_i[slot, L_TICK] = tick
    S.l3_i[slot, L_LIVE] = 1
    S.l3_q[slot] = qty
    _hash_put(S, order_id, slot)
    t = tick - lb
    if 0 <= t < S.l3_lv.shape[1]:
        S.l3_lv[0 if side == BUY else 1, t] += qty


@nb.njit(cache=True)
def _reduce(S, slot, qty, lot, lb):
    """Take ``qty`` off a known order; drop it once nothing is left. Returns the amount removed."""
    rem = S.l3_q[slot]
    qty = min(qty, rem)
    S.l3_q[slot] = rem - qty
    t = S.l3_i[slot, L_TICK] - lb
    if 0 <= t < S.l3_lv.shape[1]:
        S.l3_lv[0 if S.l3_i[slot, L_SIDE] == BUY else 1, t] -= qty
    if np.round(S.l3_q[slot] / lot) <= 0.0:
        S.l3_i[slot, L_LIVE] = 0
        _hash_del(S, S.l3_i[slot, L_ID])
    return qty


@nb.njit(cache=True)
def level_qty(S, side, tick, lb):
    t = tick - lb
    if t < 0 or t >= S.l3_lv.shape[1]:
        return 0.0
    return S.l3_lv[0 if side == BUY else 1, t]


@nb.njit(cache=True)
def join(S, slot, l2_qty):
    """Our order reached the exchange: it queues behind everything resting at its price now."""
    lb = S.ints[I_LB]
    known = level_qty(S, S.orders_i[slot, O_SIDE], S.orders_i[slot, O_TICK], lb)
    S.orders_f[slot, OF_FRONT] = max(known, l2_qty)
    S.orders_f[slot, OF_QUEUE_STATE] = S.l3_i[0, 0]


@nb.njit(cache=True)
def executes(S, ours, side, tick, slot):
    """Whether a FILL of real order ``slot`` (0: unknown) at ``side``/``tick`` executes our order.

    It does when it went through our price, or when it hit an order behind us at it.
    """
    if S.orders_i[ours, O_SIDE] != side:
        return False
    t = S.orders_i[ours, O_TICK]
    through = t > tick if side == BUY else t < tick
    return through or (t == tick and slot > 0 and slot >= S.orders_f[ours, OF_QUEUE_STATE])


@nb.njit(cache=True)
def _ahead_removed(S, slot, side, tick, qty):
    """``qty`` of real order ``slot`` (0: unknown, so ahead of us) left the queue at ``tick``."""
    for k in range(S.ints[I_NXLIVE]):
        ours = S.xlive[k]
        if (S.orders_i[ours, O_SIDE] == side and S.orders_i[ours, O_TICK] == tick
                and (slot == 0 or slot < S.orders_f[ours, OF_QUEUE_STATE])):
            S.orders_f[ours, OF_FRONT] = max(S.orders_f[ours, OF_FRONT] - qty, 0.0)


@nb.njit(cache=True)
def apply(S, i):
    """Apply L3 row ``i`` to the book and to the queue ahead of our orders.

    Returns ``(side, tick, slot)`` of the order it names (slot 0: unknown) so the
    exchange can fill the orders of ours that a FILL executes (see :func:`executes`).
    """
    ev = S.ev[i]
    kind = ev & KIND_MASK
    lb = S.ints[I_LB]
    lot = S.floats[F_LOT]
    side = np.int64(BUY if ev & BUY_FLAG else SELL)
    tick = np.int64(np.round(S.px[i] / S.floats[F_TICK]))
    order_id = np.int64(S.order_id[i])
    qty = S.qty[i]
    if kind == ADD_ORDER:
        _add(S, order_id, side, tick, qty, lb)
        return side, tick, np.int64(0)
    slot = lookup(S, order_id)
    new_tick = tick
    if slot > 0:
        side = S.l3_i[slot, L_SIDE]
        tick = S.l3_i[slot, L_TICK]
    if kind == MODIFY_ORDER:
        if slot == 0:
            _add(S, order_id, side, new_tick, qty, lb)
            return side, new_tick, np.int64(0)
        rem = S.l3_q[slot]
        keeps = new_tick == tick and qty <= rem   # a smaller size keeps its place
        removed = _reduce(S, slot, rem - qty if keeps else rem, lot, lb)
        _ahead_removed(S, slot, side, tick, removed)
        if not keeps:
            _add(S, order_id, side, new_tick, qty, lb)
    elif kind == CANCEL_ORDER:
        removed = _reduce(S, slot, qty, lot, lb) if slot > 0 else qty
        _ahead_removed(S, slot, side, tick, removed)
    elif kind == FILL:
        for k in range(S.ints[I_NXLIVE]):
            ours = S.xlive[k]
            if (S.orders_i[ours, O_SIDE] == side and S.orders_i[ours, O_TICK] == tick
                    and not executes(S, ours, side, tick, slot)):
                S.orders_f[ours, OF_FRONT] = max(S.orders_f[ours, OF_FRONT] - qty, 0.0)
        if slot > 0:
            _reduce(S, slot, qty, lot, lb)
    return side, tick, slot
