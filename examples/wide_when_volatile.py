"""WideWhenVolatile: CMM that quotes a wider spread while the market is in its high-volatility regime.

The bundle's model predicts the spread from the features, but it was trained to
be right on average; a quoter may want more room when prices move fast. This
variant adds one parameter, ``high_vol_widen_ticks``, by subclassing the Params
Struct (so a config checks it like any other key), and overrides one hook,
:meth:`aggregate`, the step that turns the model's output into a predicted mid,
spread and volume: in regime 2 (high volatility) it widens the spread by that
many ticks, still clipped to ``max_spread_ticks``. Features, regimes and the
model call are inherited untouched, so the strategy still runs batched in a
backtest; the ladder, the risk check and the order diff are inherited too.
"""
from __future__ import annotations

from strategies.cmm import CMMParams, CMMStrategy, Prediction
from strategies.params import NonNegative

HIGH_VOLATILITY = 2       # the bundle's regimes: 0 low, 1 mid, 2 high, -1 not yet known


class WideWhenVolatileParams(CMMParams, frozen=True, forbid_unknown_fields=True):
    high_vol_widen_ticks: NonNegative = 4.0    # ticks added to the predicted spread in the high regime


class WideWhenVolatile(CMMStrategy):
    Params = WideWhenVolatileParams

    def aggregate(self, ctx, x, regime, y, weights) -> Prediction:
        prediction = super().aggregate(ctx, x, regime, y, weights)
        if regime != HIGH_VOLATILITY:
            return prediction
        p = self.params
        wider = min(prediction.spread_ticks + p.high_vol_widen_ticks, p.max_spread_ticks)
        return prediction._replace(spread_ticks=wider)
