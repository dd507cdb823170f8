"""The wake-up and quote-keeping steps shared by the jitted market-making kernels."""
import numba as nb

from engine.codes import BUY, GTX, INVALID_MAX, INVALID_MIN, LIMIT, SELL
from engine.kernel import (best_ask_tick, best_bid_tick, cancel, cancellable, clear_inactive, elapse, n_slots,
                           submit, visible)
from engine.state import O_ID, O_LTICK, O_SIDE


@nb.njit(cache=True)
def requote(S, bid, ask, qty, want_bid, want_ask):
    """Keep one post-only quote at tick ``bid`` and one at ``ask``; cancel every other live quote."""
    has_bid = False
    has_ask = False
    for slot in range(n_slots(S)):
        if not visible(S, slot):
            continue
        tick = S.orders_i[slot, O_LTICK]
        if S.orders_i[slot, O_SIDE] == BUY:
            if want_bid and tick == bid:
                has_bid = True
            elif cancellable(S, slot):
                cancel(S, S.orders_i[slot, O_ID])
        else:
            if want_ask and tick == ask:
                has_ask = True
            elif cancellable(S, slot):
                cancel(S, S.orders_i[slot, O_ID])
    if want_bid and not has_bid:
        submit(S, BUY, bid, qty, GTX, LIMIT)
    if want_ask and not has_ask:
        submit(S, SELL, ask, qty, GTX, LIMIT)


@nb.njit(cache=True)
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
