"""ReduceOnlyCMM: the CMM ladder, but once inventory is large it only quotes the side that reduces it.

The worked example of a CMM variant. It adds one parameter by subclassing the
Params Struct (so a config checks it like any other) and overrides one hook,
:meth:`risk_check`: it keeps the base checks (position limit, order count),
then drops the bids while ``position >= reduce_only_at * max_position`` and
the asks while ``position <= -reduce_only_at * max_position``. Features,
regimes, the model call, the ladder and the order diff are all inherited; the
order diff cancels the dropped side's resting quotes by itself.
"""
from __future__ import annotations

from strategies.api import Context
from strategies.cmm import CMMParams, CMMStrategy
from strategies.kernels.limits import EPS
from strategies.ladder import Ladder
from strategies.params import Fraction


class ReduceOnlyParams(CMMParams, frozen=True, forbid_unknown_fields=True):
    reduce_only_at: Fraction = 0.5     # share of max_position from which only the reducing side is quoted


class ReduceOnlyCMM(CMMStrategy):
    Params = ReduceOnlyParams

    def risk_check(self, ctx: Context, quotes: Ladder) -> Ladder:
        quotes = super().risk_check(ctx, quotes)
        held = round(ctx.position / ctx.lot_size)      # in whole lots: float sums of fills miss the cut
        cut = self.params.reduce_only_at * self.params.max_position / ctx.lot_size - EPS
        if held >= cut:
            return quotes._replace(bid_ticks=(), bid_lots=())
        if held <= -cut:
            return quotes._replace(ask_ticks=(), ask_lots=())
        return quotes
