"""Avellaneda–Stoikov (2008): quote around a reservation price, with the optimal spread.

With mid ``s``, inventory ``q`` (in quote sizes), risk aversion ``gamma``,
order-arrival decay ``kappa`` (per unit of price), variance rate ``sigma2``
(price² per second) and horizon ``tau`` (seconds, held constant: the
stationary form used for continuous market making)::

    r      = s - q * gamma * sigma2 * tau
    spread = gamma * sigma2 * tau + (2 / gamma) * ln(1 + gamma / kappa)
    bid    = r - spread / 2,   ask = r + spread / 2

The bid is rounded down and the ask up to ticks, and each is kept at least
one tick off the opposite best so post-only quotes are not rejected. A side
that would take |position| beyond ``max_position`` is not quoted, counted in
whole lots.
``sigma2`` is estimated online: an exponential moving average, over
``sigma_window`` wake-ups, of squared mid changes per second, starting from
``sigma0``². :mod:`strategies.kernels.avellaneda_stoikov` is the same logic
as a jitted kernel.
"""
from __future__ import annotations

import math

import msgspec

from strategies.api import Context
from strategies.base import Strategy
from strategies.fixed_spread import requote
from strategies.kernels.limits import sides_within_limit
from strategies.params import NonNegative, Positive, PositiveInt



class AvellanedaStoikovParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    gamma: Positive = 0.1
    kappa: Positive = 1.5
    horizon_s: Positive = 60.0
    sigma0: NonNegative = 0.0          # price per sqrt(second), used until the estimate has data
    sigma_window: PositiveInt = 100
    qty: Positive = 1.0
    max_position: Positive = 10.0


class VarianceRate:
    """EWMA of squared mid changes per second, updated once per wake-up."""

    def __init__(self, sigma0: float, window: int):
        self.value = sigma0 * sigma0
        self.alpha = 2.0 / (window + 1.0)
        self.last_mid = math.nan
        self.last_ts = 0

    def update(self, mid: float, ts: int) -> float:
        if not math.isnan(self.last_mid) and ts > self.last_ts:
            rate = (mid - self.last_mid) ** 2 / ((ts - self.last_ts) * 1e-9)
            self.value += self.alpha * (rate - self.value)
        self.last_mid, self.last_ts = mid, ts
        return self.value


def quotes(mid: float, q: float, sigma2: float, p: AvellanedaStoikovParams) -> tuple[float, float]:
    """Bid and ask prices before rounding to ticks."""
    reservation = mid - q * p.gamma * sigma2 * p.horizon_s
    spread = p.gamma * sigma2 * p.horizon_s + (2.0 / p.gamma) * math.log1p(p.gamma / p.kappa)
    return reservation - spread / 2, reservation + spread / 2


def to_ticks(bid: float, ask: float, best_bid: int, best_ask: int, tick_size: float) -> tuple[int, int]:
    """Round outward to ticks, at least one tick off the opposite best."""
    return (min(math.floor(bid / tick_size + 1e-9), best_ask - 1),
            max(math.ceil(ask / tick_size - 1e-9), best_bid + 1))


class AvellanedaStoikov(Strategy):
    Params = AvellanedaStoikovParams

    def on_start(self, ctx: Context) -> None:
        self.variance = VarianceRate(self.params.sigma0, self.params.sigma_window)

    def on_timer(self, ctx: Context) -> None:
        p = self.params
        if math.isnan(ctx.best_bid) or math.isnan(ctx.best_ask):
            return
        tick = ctx.tick_size
        best_bid, best_ask = round(ctx.best_bid / tick), round(ctx.best_ask / tick)
        mid = (best_bid + best_ask) * 0.5 * tick
        sigma2 = self.variance.update(mid, ctx.now)
        bid, ask = quotes(mid, ctx.position / p.qty, sigma2, p)
        bid_tick, ask_tick = to_ticks(bid, ask, best_bid, best_ask, tick)
        requote(ctx, bid_tick * tick, ask_tick * tick, p.qty,
                *sides_within_limit(ctx.position, p.qty, p.max_position, ctx.lot_size))
