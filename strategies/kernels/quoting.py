"""The wake-up and quote-keeping steps shared by the jitted market-making kernels.

Both run at every wake-up and only call the engine's order API, which is NRT-free, so they are
compiled with ``_nrt=False`` too: with the NRT on, each call would incref and decref the Sim on
entry and exit (atomic instructions). They allocate nothing; a kernel that does keeps the NRT on
and calls them as any function.
"""
import numba as nb

from engine.codes import BUY, GTX, INVALID_MAX, INVALID_MIN, LIMIT, SELL
from engine.views import (best_ask_tick, best_bid_tick, cancel, cancellable, clear_inactive, elapse, modify, n_slots,
                          order_id_at, order_side_at, order_tick_at, submit, visible)
from strategies.ladder import CANCEL, MODIFY


@nb.njit(cache=True)
def send_messages(S, messages, qty):
    """Send the messages of :func:`strategies.ladder.diff_into` to the engine, in order: what ``cancel``,
    ``modify`` and a post-only ``submit`` would send one by one (a new order the engine refuses is skipped,
    and counted in its refused orders). The engine context's ``send_messages`` and CMM's jitted run of
    timer wake-ups (:func:`strategies.cmm_kernel.run_timer`) both send through it."""
    for i in range(messages.shape[0]):
        kind, who, tick = messages[i, 0], messages[i, 1], messages[i, 2]
        if kind == CANCEL:
            cancel(S, who)
        elif kind == MODIFY:
            modify(S, who, tick, qty[i])
        else:
            submit(S, who, tick, qty[i], GTX, LIMIT)


@nb.njit(cache=True, _nrt=False)
def requote(S, bid, ask, qty, want_bid, want_ask):
    """Keep one post-only quote at tick ``bid`` and one at ``ask``; cancel every other live quote."""
    has_bid = False
    has_ask = False
    for slot in range(n_slots(S)):
        if not visible(S, slot):
            continue
        tick = order_tick_at(S, slot)
        if order_side_at(S, slot) == BUY:
            if want_bid and tick == bid:
                has_bid = True
            elif cancellable(S, slot):
                cancel(S, order_id_at(S, slot))
        else:
            if want_ask and tick == ask:
                has_ask = True
            elif cancellable(S, slot):
                cancel(S, order_id_at(S, slot))
    if want_bid and not has_bid:
        submit(S, BUY, bid, qty, GTX, LIMIT)
    if want_ask and not has_ask:
        submit(S, SELL, ask, qty, GTX, LIMIT)


@nb.njit(cache=True, _nrt=False)
def next_wake(S, interval):
    """Advance ``interval`` ns and drop finished orders from the view.

    Returns ``(more, best_bid, best_ask, quotable)``: ``more`` is False once the
    data is exhausted, ``quotable`` whether both sides of the book exist.
    """
    if not elapse(S, interval):
        return False, INVALID_MIN, INVALID_MAX, False
    clear_inactive(S)
    bb = best_bid_tick(S)
    ba = best_ask_tick(S)
    return True, bb, ba, bb != INVALID_MIN and ba != INVALID_MAX
