"""Volatility regimes: trailing realized volatility cut at train-split terciles, then frozen.

The volatility is a feature column (``rv_<window>`` of
:mod:`bundle.features`), so trading reads the very number the thresholds were
fitted on. The paper uses a 5-day window; for a single day of ticks the
default is 5 minutes (the schema's longest ``rv`` window; any window in
``FeatureSchema.rv_windows_ns`` can be chosen).

Thresholds are the 1/3 and 2/3 quantiles of the train split's volatility;
they are fitted once and stored, and validation, test and trading only
classify against them: regime 0 (low) for ``vol <= low``, 1 (mid) for
``low < vol <= high``, 2 (high) above, and -1 where the volatility is not
finite (warm-up, one-sided book).
"""
from __future__ import annotations

import msgspec
import numpy as np

from bundle.features import FeatureSchema, duration_name

DEFAULT_WINDOW_NS = 300_000_000_000
N_REGIMES = 3
UNKNOWN = -1


class RegimeThresholds(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    feature: str     # the volatility feature column, e.g. "rv_300s"
    low: float       # train 1/3 quantile
    high: float      # train 2/3 quantile

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> "RegimeThresholds":
        return msgspec.json.decode(raw, type=cls)


def vol_feature(window_ns: int = DEFAULT_WINDOW_NS) -> str:
    return f"rv_{duration_name(window_ns)}"


def trailing_vol(features: np.ndarray, schema: FeatureSchema, window_ns: int = DEFAULT_WINDOW_NS) -> np.ndarray:
    """The trailing realized volatility at each decision: the schema's ``rv`` column for the window."""
    return features[:, schema.index(vol_feature(window_ns))]


def fit(train_vol: np.ndarray, feature: str) -> RegimeThresholds:
    """Terciles of the train split's finite volatilities."""
    vol = np.asarray(train_vol, dtype=np.float64)
    vol = vol[np.isfinite(vol)]
    if vol.size < N_REGIMES:
        raise ValueError(f"{vol.size} finite train volatilities; terciles need at least {N_REGIMES}")
    low, high = np.quantile(vol, [1 / 3, 2 / 3])
    return RegimeThresholds(feature=feature, low=float(low), high=float(high))


def classify(vol: np.ndarray, thresholds: RegimeThresholds) -> np.ndarray:
    """Regime of each volatility, int8: 0 low, 1 mid, 2 high, -1 not finite."""
    vol = np.asarray(vol, dtype=np.float64)
    regime = np.searchsorted(np.array([thresholds.low, thresholds.high]), vol, side="left").astype(np.int8)
    regime[~np.isfinite(vol)] = UNKNOWN
    return regime
