"""Volatility regimes: trailing realized volatility cut at train-split terciles, then frozen.

The volatility is a feature column (``rv_<window>`` of
:mod:`bundle.features`), so trading reads the very number the thresholds were
fitted on. The paper uses a 5-day window; for a single day of ticks the
default is 5 minutes (the schema's longest ``rv`` window; any window in
``FeatureSchema.rv_windows_ns`` can be chosen).

Thresholds are quantiles of the train split's volatility, the 1/3 and 2/3
ones unless that leaves a regime with fewer than ``min_rows`` samples in the
train, validation or test split (a calm morning and a busy close can put a
whole split in one regime). Then :func:`choose` tries the other volatility
windows of the schema and other quantile pairs, nearest to the terciles
first, and keeps the first where every regime has ``min_rows`` samples in
every split; where none does, training is refused with one line naming the
regime and split that fall short. Choosing looks at the volatility (a
feature, known at each decision) of all three splits, never at a target.
The thresholds are then frozen, and validation, test and trading only
classify against them: regime 0 (low) for ``vol <= low``, 1 (mid) for
``low < vol <= high``, 2 (high) above, and -1 where the volatility is not
finite (warm-up, one-sided book).
"""
from __future__ import annotations

from typing import Callable

import msgspec
import numpy as np

from bundle.features import FeatureSchema, duration_name

DEFAULT_WINDOW_NS = 300_000_000_000
N_REGIMES = 3
REGIME_NAMES = ("low", "mid", "high")
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


def occupancy(regime: np.ndarray) -> dict[str, int]:
    """Samples per regime: {"low": n, "mid": n, "high": n}."""
    return {name: int(np.count_nonzero(regime == r)) for r, name in enumerate(REGIME_NAMES)}


class Choice(msgspec.Struct, frozen=True):
    """What :func:`choose` settled on, for the report: the window, the quantiles and each split's occupancy."""

    window_ns: int
    quantiles: tuple[float, float]
    occupancy: dict[str, dict[str, int]]    # split -> regime -> samples
    tried: int                              # (window, quantile pair) candidates looked at


def _quantile_pairs(step: float = 0.05) -> list[tuple[float, float]]:
    """(q_low, q_high) pairs, q_low < q_high, each regime at least ``step`` of train, nearest the terciles first."""
    qs = np.round(np.arange(step, 1.0, step), 4)
    pairs = [(float(a), float(b)) for a in qs for b in qs if b - a >= step - 1e-9]
    return sorted(pairs, key=lambda p: (abs(p[0] - 1 / 3) + abs(p[1] - 2 / 3), p))


def choose(vol_of: Callable[[int], np.ndarray], windows: list[int], splits: dict[str, np.ndarray],
           min_rows: int) -> tuple[RegimeThresholds, Choice]:
    """Thresholds under which every regime has ``min_rows`` samples in every split (see the module docstring).

    ``vol_of(window)`` is the volatility column of that window on the grid; ``splits`` the grid indices of
    each split's samples, train first; ``windows`` the windows to try, in order. ValueError, one line, naming
    the best candidate's shortfall when none qualifies.
    """
    best, tried = None, 0
    for window in windows:
        vol = np.asarray(vol_of(window), dtype=np.float64)
        train = vol[splits["train"]]
        train = train[np.isfinite(train)]
        if train.size < N_REGIMES:
            continue
        for q in _quantile_pairs():
            tried += 1
            low, high = np.quantile(train, q)
            if not low < high:
                continue
            thresholds = RegimeThresholds(feature=vol_feature(window), low=float(low), high=float(high))
            table = {name: occupancy(classify(vol[idx], thresholds)) for name, idx in splits.items()}
            short = min((n, split, regime) for split, row in table.items() for regime, n in row.items())
            if short[0] >= min_rows:
                return thresholds, Choice(window_ns=window, quantiles=q, occupancy=table, tried=tried)
            if best is None or short[0] > best[0][0]:
                best = (short, window, q)
    if best is None:
        raise ValueError(f"no volatility window among {windows} has {N_REGIMES} finite train values")
    (n, split, regime), window, q = best
    raise ValueError(f"no volatility window and thresholds give every regime {min_rows} samples in every split: "
                     f"at best ({vol_feature(window)}, train quantiles {q[0]:.2f}/{q[1]:.2f}) the {regime} regime has "
                     f"{n} in {split}; lower regimes.min_rows or use more data")


def classify(vol: np.ndarray, thresholds: RegimeThresholds) -> np.ndarray:
    """Regime of each volatility, int8: 0 low, 1 mid, 2 high, -1 not finite."""
    vol = np.asarray(vol, dtype=np.float64)
    regime = np.searchsorted(np.array([thresholds.low, thresholds.high]), vol, side="left").astype(np.int8)
    regime[~np.isfinite(vol)] = UNKNOWN
    return regime
