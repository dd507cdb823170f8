"""Causal features: hand-computed values, live updates equal the replay, nothing looks ahead."""
from __future__ import annotations

import io
import math
import zipfile

import msgspec
import numpy as np
import pytest

import feeds
from feeds.events import (ADD_ORDER, BUY, DEPTH, DEPTH_BBO, DEPTH_CLEAR, EXCH, LOCAL, SELL, TRADE,
                          empty)
from bundle.features import (FEATURE_VERSION, FeatureSchema, apply_rows, new_state, replay_features,
                            snapshot, tick_range, update)
from tests.conftest import SAMPLES

SEC = 1_000_000_000
T0 = 1_000 * SEC
TICK = 0.01
GOOG = SAMPLES / "GOOG_2012-06-21_10_head.zip"

# (seconds after T0, kind | flags, px, qty); LOCAL unless flagged otherwise.
HAND_ROWS = [
    (0.0, DEPTH | BUY, 100.00, 10),
    (0.0, DEPTH | BUY, 99.99, 20),
    (0.0, DEPTH | BUY, 99.98, 5),
    (0.0, DEPTH | SELL, 100.02, 30),
    (0.0, DEPTH | SELL, 100.03, 10),
    (0.5, TRADE | BUY, 100.02, 3),
    (0.5, TRADE | SELL, 100.00, 2),
    (0.5, TRADE, 100.01, 1),              # no aggressor side: counts, adds volume, no sign
    (0.7, ADD_ORDER | BUY, 100.01, 50),   # L3 rows do not move the L2 features
    (1.0, DEPTH | SELL, 100.02, 0),       # best ask leaves: 100.03
    (1.5, DEPTH | BUY | EXCH, 100.05, 9),  # exchange timeline only: never seen locally
    (2.0, DEPTH | BUY, 100.02, 4),
    (2.5, TRADE | BUY, 100.03, 5),
]
HAND_SCHEMA = FeatureSchema(tick_size=TICK, depth_levels=2, flow_windows_ns=(SEC, 3 * SEC),
                            return_horizons_ns=(SEC, 2 * SEC), rv_windows_ns=(2 * SEC,), rv_step_ns=SEC)


def hand_events() -> np.ndarray:
    ev = empty(len(HAND_ROWS))
    for i, (t, kind, px, qty) in enumerate(HAND_ROWS):
        ev[i]["ev"] = kind | (0 if kind & EXCH else LOCAL)
        ev[i]["exch_ts"] = ev[i]["local_ts"] = T0 + round(t * SEC)
        ev[i]["px"], ev[i]["qty"] = px, qty
    return ev


def at(seconds: float) -> int:
    return T0 + round(seconds * SEC)


def hand_features(*seconds: float) -> dict[str, np.ndarray]:
    """The features by name; sizes back from their logs (``bid_depth_2`` = exp(log_bid_depth_2) - 1, ...), so
    the hand values below read as quantities."""
    f = dict(zip(HAND_SCHEMA.names, replay_features(hand_events(), HAND_SCHEMA, np.array([at(s) for s in seconds])).T))
    for name in list(f):
        if name.startswith("log_") and not name.startswith("log_return"):
            f[name[4:]] = np.round(np.expm1(f[name]), 9)
    return f


def test_schema_names_and_json_round_trip():
    assert HAND_SCHEMA.names == (
        "mid", "spread_ticks", "imbalance_2", "log_bid_depth_2", "log_ask_depth_2",
        "flow_imbalance_1s", "log_flow_volume_1s", "log_trade_count_1s", "flow_imbalance_3s", "log_flow_volume_3s",
        "log_trade_count_3s", "log_return_1s", "log_return_2s", "rv_2s")
    # the price level is carried for targets and quotes, never a model input
    assert HAND_SCHEMA.model_inputs.tolist() == [False] + [True] * 13
    assert FeatureSchema.from_json(HAND_SCHEMA.to_json()) == HAND_SCHEMA


def test_schema_refuses_other_versions_and_wrong_names():
    raw = msgspec.json.decode(HAND_SCHEMA.to_json())
    with pytest.raises(msgspec.ValidationError, match=f"this code computes version {FEATURE_VERSION}"):
        FeatureSchema.from_json(msgspec.json.encode({**raw, "version": FEATURE_VERSION + 1}))
    with pytest.raises(msgspec.ValidationError, match="do not match the parameters"):
        FeatureSchema.from_json(msgspec.json.encode({**raw, "names": raw["names"][::-1]}))
    with pytest.raises(ValueError, match="rv window 1500000000 ns is not a multiple of rv_step_ns"):
        FeatureSchema(tick_size=TICK, rv_windows_ns=(1500 * 1_000_000,), rv_step_ns=SEC)
    with pytest.raises(ValueError, match="spread window 1500000000 ns is not a multiple of rv_step_ns"):
        FeatureSchema(tick_size=TICK, spread_windows_ns=(1500 * 1_000_000,), rv_step_ns=SEC)


def test_book_features_by_hand():
    f = hand_features(0.0, 1.0, 2.0)
    # t=0: bids 100.00x10 99.99x20 99.98x5, asks 100.02x30 100.03x10
    assert f["mid"][0] == pytest.approx(100.01)
    assert f["spread_ticks"][0] == 2
    assert (f["bid_depth_2"][0], f["ask_depth_2"][0]) == (30, 40)
    assert f["imbalance_2"][0] == pytest.approx(-10 / 70)
    # t=1: the 100.02 ask is gone; the L3 add at 100.01 changed nothing
    assert f["mid"][1] == pytest.approx(100.015)
    assert f["spread_ticks"][1] == 3
    assert (f["bid_depth_2"][1], f["ask_depth_2"][1]) == (30, 10)
    # t=2: a bid at 100.02 (the EXCH-only 100.05 bid never shows)
    assert f["mid"][2] == pytest.approx(100.025)
    assert f["spread_ticks"][2] == 1
    assert (f["bid_depth_2"][2], f["ask_depth_2"][2]) == (14, 10)
    assert f["imbalance_2"][2] == pytest.approx(4 / 24)


def test_a_decision_sees_rows_at_its_own_time_and_not_after():
    f = hand_features(1.0 - 1e-9, 1.0)
    assert f["mid"][0] == pytest.approx(100.01)
    assert f["mid"][1] == pytest.approx(100.015)


def test_trade_flow_by_hand():
    f = hand_features(0.5, 1.4, 2.0, 3.0, 3.5)
    # windows are (now - T, now]
    # signed volume 1, 1, 0, 5, 0 over volume 6, 6, 0, 5, 0 (no trade: 0)
    assert [f["flow_imbalance_1s"][i] for i in range(5)] == pytest.approx([1 / 6, 1 / 6, 0, 1, 0])
    assert [f["flow_volume_1s"][i] for i in range(5)] == [6, 6, 0, 5, 0]
    assert [f["trade_count_1s"][i] for i in range(5)] == [3, 3, 0, 1, 0]
    assert f["log_flow_volume_1s"][0] == pytest.approx(math.log(7))
    assert [f["flow_imbalance_3s"][i] for i in range(5)] == pytest.approx([1 / 6, 1 / 6, 1 / 6, 6 / 11, 1])
    assert [f["flow_volume_3s"][i] for i in range(5)] == [6, 6, 6, 11, 5]
    assert [f["trade_count_3s"][i] for i in range(5)] == [3, 3, 3, 4, 1]


def test_returns_and_realized_vol_by_hand():
    f = hand_features(-1.0, 0.0, 1.0, 2.0, 3.0)
    m0, m1, m2 = 100.01, 100.015, 100.025          # mids from 0 s, 1 s, 2 s on
    # before any row: no mid; at 0 s and 1 s the 2 s lookback reaches before the first mid
    assert np.isnan(f["mid"][0]) and np.isnan(f["log_return_1s"][0])
    assert (f["flow_volume_1s"][0], f["trade_count_3s"][0]) == (0, 0)
    assert np.isnan(f["log_return_1s"][1]) and np.isnan(f["rv_2s"][1])
    assert f["log_return_1s"][2] == pytest.approx(math.log(m1 / m0), rel=1e-9)
    assert np.isnan(f["log_return_2s"][2]) and np.isnan(f["rv_2s"][2])
    assert f["log_return_1s"][3] == pytest.approx(math.log(m2 / m1), rel=1e-9)
    assert f["log_return_2s"][3] == pytest.approx(math.log(m2 / m0), rel=1e-9)
    assert f["rv_2s"][3] == pytest.approx(math.hypot(math.log(m2 / m1), math.log(m1 / m0)), rel=1e-9)
    assert f["log_return_1s"][4] == 0
    assert f["log_return_2s"][4] == pytest.approx(math.log(m2 / m1), rel=1e-9)
    assert f["rv_2s"][4] == pytest.approx(abs(math.log(m2 / m1)), rel=1e-9)


def test_clear_bbo_and_crossing():
    rows = [(0, DEPTH | BUY, 10.00, 1), (0, DEPTH | BUY, 9.99, 2), (0, DEPTH | SELL, 10.02, 3),
            (0, DEPTH | SELL, 10.03, 4),
            (1, DEPTH | BUY, 10.02, 5),           # crosses: the 10.02 ask is kept but hidden, best ask 10.03
            (2, DEPTH_BBO | SELL, 10.01, 6),      # BBO feed: the ask is 10.01, the 10.02 bid goes
            (3, DEPTH_CLEAR | BUY, 10.00, 0),     # clears bids from the best down to 10.00
            (4, DEPTH_CLEAR, 0.0, 0)]             # clears everything
    ev = empty(len(rows))
    for i, (t, kind, px, qty) in enumerate(rows):
        ev[i]["ev"], ev[i]["local_ts"], ev[i]["px"], ev[i]["qty"] = kind | LOCAL, T0 + t * SEC, px, qty
    schema = FeatureSchema(tick_size=TICK, depth_levels=3)
    f = replay_features(ev, schema, T0 + np.arange(5) * SEC)
    best = np.round(np.c_[f[:, 0] / TICK - f[:, 1] / 2, f[:, 0] / TICK + f[:, 1] / 2]).tolist()
    assert best[:3] == [[1000, 1002], [1002, 1003], [1000, 1001]]
    depth = np.round(np.expm1(f[:, 3:5]), 9)              # the log depths back as quantities
    assert depth[1].tolist() == [5 + 1 + 2, 4]
    assert depth[2].tolist() == [1 + 2, 6 + 3 + 4]       # the hidden 10.02 ask is behind the BBO again
    assert (f[3, 1], depth[3, 0], depth[3, 1]) == (2, 2, 13)     # bids: 9.99 only; spread 10.01 - 9.99
    assert np.isnan(f[4, 0]) and np.isnan(f[4, 2]) and depth[4].tolist() == [0, 0]


def test_history_past_the_ring_is_nan_not_truncated():
    small = FeatureSchema(tick_size=TICK, flow_windows_ns=(3 * SEC,), return_horizons_ns=(2 * SEC,),
                          rv_windows_ns=(2 * SEC,), rv_step_ns=SEC, ring_capacity=2)
    f = replay_features(hand_events(), small, np.array([at(2.0), at(3.0)]))
    names = small.names
    # mids ring holds 1 s and 2 s; the 2 s lookback from 2 s needs the (overwritten) 0 s entry
    assert np.isnan(f[0, names.index("log_return_2s")]) and np.isnan(f[0, names.index("rv_2s")])
    assert f[1, names.index("log_return_2s")] == pytest.approx(math.log(100.025 / 100.015), rel=1e-9)
    # trades ring holds 0.5 s and 2.5 s (one entry per timestamp): the 3 s window from 3 s is (0, 3]
    assert f[1, names.index("log_flow_volume_3s")] == pytest.approx(math.log(12))


def _live(events: np.ndarray, schema: FeatureSchema, decision_ts: np.ndarray, batched: bool) -> np.ndarray:
    """What a strategy computes: updates as rows arrive, a snapshot at each decision."""
    state = new_state(schema, *tick_range(events, schema.tick_size))
    out = np.empty((decision_ts.size, schema.n_features))
    row = 0
    for d, now in enumerate(decision_ts):
        stop = int(np.searchsorted(events["local_ts"], now, side="right"))
        if batched:
            chunk = events[row:stop]
            apply_rows(state, chunk["ev"], chunk["local_ts"], chunk["px"], chunk["qty"])
        else:
            for r in events[row:stop]:
                if r["ev"] & LOCAL:
                    update(state, r["ev"], r["local_ts"], r["px"], r["qty"])
        row = stop
        snapshot(state, now, out[d])
    return out


@pytest.fixture(scope="module")
def goog() -> np.ndarray:
    return feeds.read([GOOG]).events


def _grid(events: np.ndarray, step: int) -> np.ndarray:
    ts = events["local_ts"]
    return np.arange(ts[0], ts[-1] + step, step)


def test_live_updates_equal_the_replay_on_the_hand_stream():
    decisions = T0 + np.arange(-1, 8) * SEC // 2
    replayed = replay_features(hand_events(), HAND_SCHEMA, decisions)
    for batched in (False, True):
        np.testing.assert_array_equal(_live(hand_events(), HAND_SCHEMA, decisions, batched), replayed)


def test_live_updates_equal_the_replay_on_goog(goog):
    schema = FeatureSchema(tick_size=0.01)
    decisions = _grid(goog, 250_000_000)
    replayed = replay_features(goog, schema, decisions)
    np.testing.assert_array_equal(_live(goog, schema, decisions, batched=True), replayed)
    # one row at a time through update() is slow from Python: the first 10 minutes
    first = decisions[decisions < goog["local_ts"][0] + 600 * SEC]
    np.testing.assert_array_equal(_live(goog, schema, first, batched=False), replayed[: first.size])


def test_rows_after_a_decision_do_not_change_its_features(goog):
    schema = FeatureSchema(tick_size=0.01)
    decisions = _grid(goog, 100_000_000)
    cut = decisions[decisions.size // 2]
    changed = goog.copy()
    later = changed["local_ts"] > cut
    changed["px"][later] += 0.05
    changed["qty"][later] *= 2
    changed["ev"][later] ^= BUY | SELL          # and every side flipped
    before, after = replay_features(goog, schema, decisions), replay_features(changed, schema, decisions)
    seen = decisions <= cut
    np.testing.assert_array_equal(before[seen], after[seen])
    assert not np.array_equal(before[~seen], after[~seen])


def test_book_matches_lobsters_own_orderbook_file(goog):
    """LOBSTER prints the top 10 levels after every message: our mid, spread and depth agree."""
    with zipfile.ZipFile(GOOG) as z:
        names = sorted(z.namelist())
        messages = np.loadtxt(io.StringIO(z.read(names[0]).decode()), delimiter=",", usecols=0)
        book = np.loadtxt(io.StringIO(z.read(names[1]).decode()), delimiter=",")
    # the book after the last message at each distinct time
    last = np.flatnonzero(np.r_[messages[1:] != messages[:-1], True])[::97]
    ns = np.round(messages * SEC).astype(np.int64)
    decisions = goog["local_ts"][0] - ns[0] + ns[last]      # the first row is at the first message's time
    f = replay_features(goog, FeatureSchema(tick_size=0.01), decisions)
    ask, bid = book[last, 0] / 10_000, book[last, 2] / 10_000
    np.testing.assert_allclose(f[:, 0], (ask + bid) / 2, rtol=1e-12)
    np.testing.assert_array_equal(f[:, 1], np.round((ask - bid) * 100))
    np.testing.assert_allclose(f[:, 3], np.log1p(book[last][:, 3:20:4].sum(axis=1)), rtol=1e-14)
    np.testing.assert_allclose(f[:, 4], np.log1p(book[last][:, 1:20:4].sum(axis=1)), rtol=1e-14)


def test_the_model_inputs_do_not_see_the_price_level(goog):
    """The same market 1,000 ticks higher: every model input but the returns and the volatility is the same
    number, and those move by the ratio of the levels only (the mid itself is no model input)."""
    schema = FeatureSchema(tick_size=0.01)
    decisions = _grid(goog, 1_000_000_000)
    higher = goog.copy()
    priced = higher["px"] > 0
    higher["px"][priced] = np.round(higher["px"][priced] / 0.01 + 1000) * 0.01
    before, after = replay_features(goog, schema, decisions), replay_features(higher, schema, decisions)
    returns = np.array([n.startswith(("log_return", "rv_")) for n in schema.names])
    same = schema.model_inputs & ~returns
    np.testing.assert_array_equal(before[:, same], after[:, same])
    finite = np.isfinite(before[:, returns])
    ratio = np.abs(after[:, returns][finite]) / np.maximum(np.abs(before[:, returns][finite]), 1e-300)
    assert ratio.max() < 1.0 and np.median(ratio[ratio > 0]) > 0.9     # 10 dollars on ~580: a few % smaller
    assert not schema.model_inputs[schema.index("mid")]


def test_goog_features_are_finite_after_warm_up(goog):
    schema = FeatureSchema(tick_size=0.01)
    decisions = _grid(goog, 100_000_000)
    f = replay_features(goog, schema, decisions)
    assert f.shape == (decisions.size, schema.n_features) and f.dtype == np.float64
    warm = decisions >= decisions[0] + max(schema.rv_windows_ns) + SEC
    assert np.isfinite(f[warm]).all()
    assert (f[:, schema.index("spread_ticks")] >= 1).all()


def test_mean_spread_by_hand():
    """Spreads 2 ticks from 0 s, 3 from 1 s, 1 from 2 s; sampled every second back from now, two samples."""
    schema = msgspec.structs.replace(HAND_SCHEMA, spread_windows_ns=(2 * SEC,), names=())
    assert schema.names[-2:] == ("mean_spread_2s", "log_spread_ratio_2s")
    # the spread reaches a model only as its ratio to its recent level
    assert schema.model_inputs.tolist() == [False, False] + [True] * 12 + [False, True]
    out = replay_features(hand_events(), schema, np.array([at(s) for s in (0.5, 1.0, 2.0, 3.0)]))
    assert np.isnan(out[0, -2]) and np.isnan(out[0, -1])    # the sample at -0.5 s is before the first book
    assert out[1:, -2].tolist() == [2.5, 2.0, 1.0]
    np.testing.assert_allclose(out[1:, -1], np.log([3 / 2.5, 1 / 2.0, 1 / 1.0]))
    np.testing.assert_array_equal(out[:, :-2], replay_features(hand_events(), HAND_SCHEMA, np.array(
        [at(s) for s in (0.5, 1.0, 2.0, 3.0)])))      # the other columns do not move
    # a schema written before spread windows existed reads as one without them
    raw = msgspec.json.decode(HAND_SCHEMA.to_json())
    del raw["spread_windows_ns"]
    assert FeatureSchema.from_json(msgspec.json.encode(raw)) == HAND_SCHEMA
