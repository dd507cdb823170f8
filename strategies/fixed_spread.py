"""FixedSpread: symmetric post-only quotes ``half_spread_ticks`` around the mid, with an inventory limit.

At each wake-up it prices ``bid = floor(mid - k)`` and ``ask = ceil(mid + k)``
in ticks, cancels quotes resting elsewhere, and places ``qty`` where none
rests. A side that would take |position| beyond ``max_position`` is not
quoted, counted in whole lots (:mod:`strategies.kernels.limits`).
:mod:`strategies.kernels.fixed_spread` is the same logic as a jitted kernel;
the two give identical fills.
"""
from __future__ import annotations

import math
import msgspec

from strategies.api import Context, place
from strategies.base import Strategy
from strategies.kernels.fixed_spread import quote_ticks
from strategies.kernels.limits import sides_within_limit
from strategies.params import NonNegativeInt, Positive



class FixedSpreadParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    half_spread_ticks: NonNegativeInt = 1
    qty: Positive = 1.0
    max_position: Positive = 10.0


class FixedSpread(Strategy):
    Params = FixedSpreadParams

    def on_timer(self, ctx: Context) -> None:
        p = self.params
        if math.isnan(ctx.best_bid) or math.isnan(ctx.best_ask):
            return
        tick = ctx.tick_size
        bid, ask = quote_ticks(round(ctx.best_bid / tick), round(ctx.best_ask / tick), p.half_spread_ticks)
        requote(ctx, bid * tick, ask * tick, p.qty, *sides_within_limit(ctx.position, p.qty, p.max_position,
                                                                         ctx.lot_size))


def requote(ctx: Context, bid: float, ask: float, qty: float, want_bid: bool, want_ask: bool) -> None:
    """Keep one post-only quote at ``bid`` and one at ``ask``; cancel every other live quote."""
    has_bid = has_ask = False
    tol = ctx.tick_size / 2
    for order in ctx.orders():
        wanted, price = (want_bid, bid) if order.side == "buy" else (want_ask, ask)
        if wanted and abs(order.price - price) < tol:
            if order.side == "buy":
                has_bid = True
            else:
                has_ask = True
        elif order.is_live and not order.pending:
            ctx.cancel(order.id)
    if want_bid and not has_bid:
        place(ctx, "buy", bid, qty)
    if want_ask and not has_ask:
        place(ctx, "sell", ask, qty)
