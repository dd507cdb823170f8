"""FixedSpread as a jitted kernel: :mod:`strategies.fixed_spread`, decision for decision.

bench/vs_hftbacktest.py runs the same logic on hftbacktest, so the two engines
can be compared fill for fill.
"""
import numba as nb

from engine.views import lot_size, position

from strategies.kernels.limits import sides_within_limit
from strategies.kernels.quoting import next_wake, requote


@nb.njit(cache=True)
def quote_ticks(best_bid, best_ask, half_spread_ticks):
    """Bid and ask ticks ``k`` ticks either side of the mid, rounded away from it."""
    mid2 = best_bid + best_ask
    bid = (mid2 - 2 * half_spread_ticks) // 2
    ask = -((-(mid2 + 2 * half_spread_ticks)) // 2)
    return bid, ask


@nb.njit(cache=True)
def fixed_spread(S, interval, half_spread_ticks, qty, max_position):
    """Run to the end of the data, waking every ``interval`` ns; returns the number of wake-ups."""
    wakes = 0
    while True:
        more, bb, ba, quotable = next_wake(S, interval)
        if not more:
            return wakes
        wakes += 1
        if not quotable:
            continue
        bid, ask = quote_ticks(bb, ba, half_spread_ticks)
        pos = position(S)
        want_bid, want_ask = sides_within_limit(pos, qty, max_position, lot_size(S))
        requote(S, bid, ask, qty, want_bid, want_ask)
