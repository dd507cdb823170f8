"""Avellaneda–Stoikov as a jitted kernel: :mod:`strategies.avellaneda_stoikov`, decision for decision."""
import math

import numba as nb

from engine.views import lot_size, now, position

from strategies.kernels.limits import sides_within_limit
from strategies.kernels.quoting import next_wake, requote


@nb.njit(cache=True)
def avellaneda_stoikov(S, interval, tick_size, gamma, kappa, horizon_s, sigma0, sigma_window, qty, max_position):
    """Run to the end of the data, waking every ``interval`` ns; returns the number of wake-ups."""
    variance = sigma0 * sigma0
    alpha = 2.0 / (sigma_window + 1.0)
    last_mid = math.nan
    last_ts = 0
    wakes = 0
    while True:
        more, bb, ba, quotable = next_wake(S, interval)
        if not more:
            return wakes
        wakes += 1
        if not quotable:
            continue
        mid = (bb + ba) * 0.5 * tick_size
        ts = now(S)
        if not math.isnan(last_mid) and ts > last_ts:
            rate = (mid - last_mid) ** 2 / ((ts - last_ts) * 1e-9)
            variance += alpha * (rate - variance)
        last_mid = mid
        last_ts = ts
        pos = position(S)
        reservation = mid - (pos / qty) * gamma * variance * horizon_s
        spread = gamma * variance * horizon_s + (2.0 / gamma) * math.log1p(gamma / kappa)
        bid = min(math.floor((reservation - spread / 2) / tick_size + 1e-9), ba - 1)
        ask = max(math.ceil((reservation + spread / 2) / tick_size - 1e-9), bb + 1)
        want_bid, want_ask = sides_within_limit(pos, qty, max_position, lot_size(S))
        requote(S, bid, ask, qty, want_bid, want_ask)
