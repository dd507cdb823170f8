"""Decision grid, targets, chronological splits, train-only normalization and frozen regimes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import feeds
from cmm_models import dataset, regimes
from cmm_models.dataset import DatasetConfig, Normalization
from cmm_models.regimes import RegimeThresholds
from feeds.events import BUY, LOCAL, TRADE
from bundle.features import FeatureSchema, replay_features
from tests.test_features import GOOG, HAND_SCHEMA, SEC, T0, at, hand_events

HALF = SEC // 2


def test_decision_grid_starts_on_a_multiple_of_dt():
    ev = hand_events()
    ev["local_ts"] += 123
    grid = dataset.decision_times(ev, HALF)
    assert grid[0] == T0 + HALF and grid[-1] == T0 + 2 * SEC + HALF
    assert (np.diff(grid) == HALF).all()


def test_targets_by_hand():
    ev = hand_events()
    grid = dataset.decision_times(ev, HALF)             # 0, 0.5, ... 2.5 s
    f = replay_features(ev, HAND_SCHEMA, grid)
    y = dataset.compute_targets(ev, HAND_SCHEMA, grid, f, horizon_steps=2)
    # mids 100.01 100.01 100.015 100.015 100.025 100.025; spreads 2 2 3 3 1 1
    np.testing.assert_allclose(y[:4, 0], [0.5, 0.5, 1.0, 1.0], rtol=1e-9)
    np.testing.assert_array_equal(y[:4, 1], [2.5, 3.0, 2.0, 1.0])
    # volume in (t, t + 1 s]: the 0.5 s trades count for t = 0 only, the 2.5 s trade for t = 1.5
    np.testing.assert_allclose(y[:4, 2], np.log1p([6, 0, 0, 5]), rtol=1e-15)     # log1p_volume
    assert np.isnan(y[4:]).all()


def test_targets_use_only_the_horizon_after_the_decision():
    """Changing rows at or before t, or after t + H, leaves the volume target alone; inside it moves."""
    ev = hand_events()
    grid = dataset.decision_times(ev, HALF)
    i = 3                                                 # t = 1.5 s, horizon (1.5, 2.5]
    base = dataset.compute_targets(ev, HAND_SCHEMA, grid, replay_features(ev, HAND_SCHEMA, grid), 2)[i]
    for seconds, inside in ((1.5, False), (2.5, True), (2.6, False)):
        extra = hand_events()[-1:].copy()
        extra["local_ts"] = extra["exch_ts"] = at(seconds)
        extra["ev"] = TRADE | BUY | LOCAL
        changed = np.sort(np.concatenate([ev, extra]), order="local_ts", kind="stable")
        y = dataset.compute_targets(changed, HAND_SCHEMA, grid, replay_features(changed, HAND_SCHEMA, grid), 2)[i]
        assert (y[2] != base[2]) == inside
        np.testing.assert_array_equal(y[:2], base[:2])


@pytest.fixture(scope="module")
def goog_dataset() -> dataset.Dataset:
    conv = feeds.read([GOOG])
    return dataset.build(conv.events, FeatureSchema(tick_size=conv.instrument.tick_size), DatasetConfig())


def test_splits_are_chronological_and_targets_stay_inside_them(goog_dataset):
    ds = goog_dataset
    k, w = ds.config.horizon_steps, ds.config.window
    val_start, test_start = ds.bounds
    assert 0 < val_start < test_start < ds.decision_ts.size
    assert ds.train.max() + k < val_start and ds.val.min() >= val_start
    assert ds.val.max() + k < test_start and ds.test.min() >= test_start
    assert ds.test.max() + k < ds.decision_ts.size
    for split in (ds.train, ds.val, ds.test):
        assert (np.diff(split) > 0).all()
        x = dataset.windows(ds.features, split, w)
        assert x.shape == (split.size, w, ds.schema.n_features) and np.isfinite(x).all()
        assert np.isfinite(ds.targets[split]).all()
    np.testing.assert_array_equal(dataset.windows(ds.features, ds.val[:1], w)[0],
                                  ds.features[ds.val[0] - w + 1: ds.val[0] + 1])


def test_normalization_is_fitted_on_train_only(goog_dataset):
    ds = goog_dataset
    norm = dataset.fit_normalization(ds)
    rows = ds.features[: ds.bounds[0]]
    rows = rows[np.isfinite(rows).all(axis=1)]
    np.testing.assert_allclose(norm.feature_mean, rows.mean(axis=0))
    # without a mean-spread feature every target is learned as it is
    assert norm.target_base == ("", "", "")
    np.testing.assert_allclose(norm.target_std, ds.targets[ds.train].std(axis=0))
    # scrambling everything from validation on changes nothing
    later = np.arange(ds.bounds[0], ds.decision_ts.size)
    features, targets = ds.features.copy(), ds.targets.copy()
    features[later] *= 7.0
    targets[later] += 100.0
    assert dataset.fit_normalization(dataclasses.replace(ds, features=features, targets=targets)) == norm
    assert Normalization.from_json(norm.to_json()) == norm
    x = ds.features[ds.train]
    z = norm.targets(ds.targets[ds.train], x).astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(norm.targets_raw(z, x), ds.targets[ds.train], rtol=1e-5, atol=1e-3)


def test_goog_dataset_shapes_and_values(goog_dataset):
    ds = goog_dataset
    n = ds.decision_ts.size
    assert n == 24_630                                    # ~41 min at 100 ms
    assert ds.features.shape == (n, ds.schema.n_features) and ds.targets.shape == (n, 3)
    assert (ds.train.size, ds.val.size, ds.test.size) == (14_200, 3_684, 3_685)
    y = ds.targets[ds.train]
    assert (y[:, 1] >= 1).all() and (y[:, 2] >= 0).all()
    assert np.abs(y[:, 0]).max() < 1_000


def test_regime_thresholds_are_train_terciles_then_frozen(goog_dataset):
    ds = goog_dataset
    vol = regimes.trailing_vol(ds.features, ds.schema)
    th = regimes.fit(vol[ds.train], regimes.vol_feature())
    assert th.feature == "rv_300s" and th.feature in ds.schema.names
    np.testing.assert_allclose([th.low, th.high], np.quantile(vol[ds.train], [1 / 3, 2 / 3]))
    counts = np.bincount(regimes.classify(vol[ds.train], th), minlength=3)
    assert counts.sum() == ds.train.size and counts.min() >= 0.32 * ds.train.size
    # the test split is classified against the frozen train thresholds, whatever its own spread
    frozen = RegimeThresholds.from_json(th.to_json())
    assert frozen == th
    test_vol = vol[ds.test]
    expected = np.where(test_vol <= th.low, 0, np.where(test_vol <= th.high, 1, 2))
    np.testing.assert_array_equal(regimes.classify(test_vol, frozen), expected)
    np.testing.assert_array_equal(regimes.classify(test_vol * 10, frozen), 2)


def test_classify_boundaries():
    th = RegimeThresholds(feature="rv_300s", low=1.0, high=2.0)
    vol = np.array([0.0, 1.0, 1.5, 2.0, 2.5, np.nan, np.inf])
    assert regimes.classify(vol, th).tolist() == [0, 0, 1, 1, 2, -1, -1]
    fitted = regimes.fit(np.array([1.0, 2.0, 3.0, np.nan]), "x")
    assert (fitted.low, fitted.high) == pytest.approx((5 / 3, 7 / 3))
    with pytest.raises(KeyError, match="no feature 'rv_7s'"):
        regimes.trailing_vol(np.zeros((1, HAND_SCHEMA.n_features)), HAND_SCHEMA, 7 * SEC)


def test_config_refuses_a_horizon_off_the_grid():
    with pytest.raises(ValueError, match="not a multiple of dt_ns"):
        DatasetConfig(dt_ns=300_000_000, horizon_ns=SEC)


def test_regimes_are_chosen_so_every_split_has_each_regime():
    """On the 60 s column validation holds calm (5) and wild (250) rows only, so no thresholds give it a mid
    row; on the 300 s column the terciles leave validation and test ten high rows, short of 11, so a pair
    further from the terciles is taken. Too strict a minimum is refused with one line."""
    calm = np.r_[np.arange(300.0), np.full(85, 5.0), np.full(15, 250.0), np.full(100, 150.0)]
    later = np.r_[np.arange(0.0, 200.0, 2.0)]
    vols = {60 * SEC: calm, 300 * SEC: np.r_[np.arange(300.0), later, later]}
    splits = {"train": np.arange(300), "val": np.arange(300, 400), "test": np.arange(400, 500)}
    thresholds, choice = regimes.choose(vols.__getitem__, [60 * SEC, 300 * SEC], splits, min_rows=11)
    assert choice.window_ns == 300 * SEC and thresholds.feature == "rv_300s"
    assert choice.quantiles != (0.35, 0.65)
    assert all(n >= 11 for row in choice.occupancy.values() for n in row.values())
    for split, idx in splits.items():
        assert regimes.occupancy(regimes.classify(vols[300 * SEC][idx], thresholds)) == choice.occupancy[split]
    terciles = regimes.RegimeThresholds("rv_300s", *np.quantile(vols[300 * SEC][:300], [0.35, 0.65]))
    assert regimes.occupancy(regimes.classify(vols[300 * SEC][300:400], terciles))["high"] < 11
    with pytest.raises(ValueError, match=r"^no volatility window .* the (low|mid|high) regime has \d+ in (val|test); "
                                         r"lower regimes.min_rows or use more data$"):
        regimes.choose(vols.__getitem__, [60 * SEC], splits, min_rows=11)


def test_the_spread_is_learned_from_the_shortest_mean_spread():
    with_means = FeatureSchema(tick_size=0.01, spread_windows_ns=(300 * 10**9, 60 * 10**9))
    assert dataset.target_bases(with_means) == ("", "mean_spread_60s", "")
    assert dataset.target_bases(FeatureSchema(tick_size=0.01)) == ("", "", "")
