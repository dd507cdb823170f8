"""Our event files run in hftbacktest, and hftbacktest's files read back through our reader."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

import feeds
from common.atomic import atomic_write
from feeds import events as E
from feeds.readers import hftbacktest_npz
from common.errors import DataError
from feeds.readers.base import ReadOptions
from tests.conftest import SAMPLES

pytest.importorskip("hftbacktest")
from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest  # noqa: E402
from hftbacktest.data import validate_event_order  # noqa: E402
from hftbacktest.data.utils import binancefutures  # noqa: E402
from hftbacktest.types import event_dtype  # noqa: E402

from tests.hbt_reference import reference_event_order  # noqa: E402

GOOG = str(SAMPLES / "GOOG_2012-06-21_10_head.zip")
MS = 1_000_000
T0 = 1_723_075_200_000 * MS   # 2024-08-08 00:00 UTC in ns


@pytest.fixture(scope="module")
def goog(tmp_path_factory):
    conv = feeds.read([GOOG], "lobster")
    path = tmp_path_factory.mktemp("interop") / "goog.npz"
    with atomic_write(path) as f_out:
        feeds.write(f_out, conv.events, conv.instrument, conv.meta)
    return conv, str(path)


def test_our_file_loads_with_hftbacktests_dtype(goog):
    conv, path = goog
    data = np.load(path)["data"]
    assert data.dtype == event_dtype
    assert np.array_equal(data, conv.events)
    validate_event_order(data)   # hftbacktest's own check of both timelines


def test_hftbacktest_replays_our_file_to_the_end(goog):
    conv, path = goog
    asset = (BacktestAsset().data([path]).linear_asset(1.0).constant_order_latency(0, 0)
             .risk_adverse_queue_model().no_partial_fill_exchange().trading_value_fee_model(0.0, 0.0)
             .tick_size(conv.instrument.tick_size).lot_size(conv.instrument.lot_size))
    bt = HashMapMarketDepthBacktest([asset])
    try:
        steps = 0
        while (rc := bt.elapse(60 * 1_000_000_000)) == 0:
            steps += 1
            assert steps < 10_000
        assert rc == 1                                   # 1: the end of the data
        local = conv.events[(conv.events["ev"] & np.uint64(E.LOCAL)) != 0]
        # The last feed it saw is our last local event: it read the whole file.
        assert bt.feed_latency(0) == (int(local["exch_ts"][-1]), int(local["local_ts"][-1]))
        ours = feeds.check_book(conv.events, conv.instrument.tick_size)
        depth = bt.depth(0)
        assert (ours.final_best_bid, ours.final_best_ask) == pytest.approx((575.40, 575.93))
        assert depth.best_bid == pytest.approx(ours.final_best_bid)
        assert depth.best_ask == pytest.approx(ours.final_best_ask)
    finally:
        bt.close()


# ---------------------------------------------------------------- hftbacktest's files, read by us


def _line(local_ns: int, data: dict) -> str:
    return f"{local_ns} {json.dumps({'stream': 'btcusdt@x', 'data': data})}\n"


@pytest.fixture
def converted(tmp_path, monkeypatch):
    """hftbacktest's Binance converter run on a 4-message capture whose trade arrives out of exchange order.

    Its converter orders the rows with ``correct_event_order``, whose read past the end of a
    4-element index array can crash; the converter gets the same function with padded indices
    (tests/hbt_reference.py), which returns exactly what it would.
    """
    monkeypatch.setattr(binancefutures, "correct_event_order", lambda data, *_: reference_event_order(data))
    capture = tmp_path / "capture.gz"
    with gzip.open(capture, "wt") as f:
        f.write(_line(T0 + 100 * MS, {"e": "depthUpdate", "E": 1, "T": 1_723_075_200_050,
                                      "b": [["60000.0", "1.0"]], "a": [["60000.1", "2.0"]]}))
        f.write(_line(T0 + 110 * MS, {"e": "trade", "E": 1, "T": 1_723_075_200_040, "p": "60000.1",
                                      "q": "0.5", "X": "MARKET", "m": False}))
        f.write(_line(T0 + 120 * MS, {"e": "markPriceUpdate", "E": 1, "T": 1_723_075_200_070,
                                      "i": "60001.0", "p": "60000.5", "r": "0.0001"}))
        f.write(_line(T0 + 130 * MS, {"e": "depthUpdate", "E": 1, "T": 1_723_075_200_060,
                                      "b": [["60000.0", "0.0"], ["59999.9", "3.0"]], "a": []}))
    out = tmp_path / "btcusdt.npz"
    data = binancefutures.convert(str(capture), str(out), opt="m", buffer_size=100)
    return data, str(out)


def test_converter_output_has_split_rows(converted):
    data, _ = converted
    flags = data["ev"] & np.uint64(E.EXCH | E.LOCAL)
    # The trade (exch 40 ms) precedes the first depth update (exch 50 ms) on the exchange timeline
    # but follows it locally, so hftbacktest split rows into EXCH-only and LOCAL-only copies.
    assert np.count_nonzero(flags == E.EXCH) == np.count_nonzero(flags == E.LOCAL) > 0
    assert len(data) > 9


def test_our_reader_recovers_the_source_rows_once_each(converted):
    _, path = converted
    assert hftbacktest_npz.sniff(path)
    conv = hftbacktest_npz.read([path], ReadOptions(tick_size=0.1, lot_size=0.001, symbol="BTCUSDT"))
    got = [(int(e["ev"]), int(e["exch_ts"] - T0) // MS, int(e["local_ts"] - T0) // MS, float(e["px"]),
            float(e["qty"])) for e in conv.events]
    assert got == [
        (E.DEPTH | E.BUY, 50, 100, 60000.0, 1.0),
        (E.DEPTH | E.SELL, 50, 100, 60000.1, 2.0),
        (E.TRADE | E.BUY, 40, 110, 60000.1, 0.5),
        (E.DEPTH | E.BUY, 60, 130, 60000.0, 0.0),
        (E.DEPTH | E.BUY, 60, 130, 59999.9, 3.0),
    ]
    assert conv.instrument == feeds.Instrument("BTCUSDT", 0.1, 0.001)
    assert conv.meta.source_rows == 11    # 8 source rows; the trade and the last two depth rows split in two
    assert any("kind 100: 1" in n and "kind 102: 1" in n for n in conv.meta.notes)


def test_full_read_orders_timelines_as_hftbacktest_does(converted):
    _, path = converted
    options = ReadOptions(tick_size=0.1)
    source = hftbacktest_npz.read([path], options).events
    expected = reference_event_order(source)
    assert np.array_equal(feeds.read([path], "hftbacktest", options).events, expected)


def test_hftbacktest_built_array_round_trips(tmp_path):
    rows = np.zeros(3, dtype=event_dtype)
    rows[0] = (E.DEPTH_SNAPSHOT | E.BUY, 10, 15, 99.0, 4.0, 0, 0, 0.0)
    rows[1] = (E.DEPTH | E.SELL, 12, 14, 101.0, 2.0, 0, 0, 0.0)
    rows[2] = (E.TRADE | E.SELL, 11, 16, 99.0, 1.0, 0, 0, 0.0)
    ordered = reference_event_order(rows)
    path = tmp_path / "built.npz"
    np.savez_compressed(path, data=ordered)
    conv = hftbacktest_npz.read([str(path)], ReadOptions(tick_size=1.0))
    by_local = rows[np.argsort(rows["local_ts"])]
    assert np.array_equal(conv.events, by_local)
    assert conv.instrument.symbol == "built"
    assert any("assumed 1.0" in n for n in conv.meta.notes)


def test_bare_npy_is_accepted(tmp_path):
    rows = np.zeros(2, dtype=event_dtype)
    rows[0] = (E.DEPTH | E.BUY, 1, 2, 10.0, 1.0, 0, 0, 0.0)
    rows[1] = (E.DEPTH | E.SELL, 1, 2, 11.0, 1.0, 0, 0, 0.0)
    path = tmp_path / "bare.npy"
    np.save(path, rows)
    assert hftbacktest_npz.sniff(str(path))
    assert np.array_equal(hftbacktest_npz.read([str(path)], ReadOptions(tick_size=1.0)).events, rows)


def test_without_a_tick_size_it_asks_for_one(converted):
    with pytest.raises(DataError, match="--tick-size"):
        hftbacktest_npz.read([converted[1]], ReadOptions())


def test_options_override_the_stored_instrument(goog):
    _, path = goog
    conv = hftbacktest_npz.read([path], ReadOptions(lot_size=100.0))
    assert conv.instrument == feeds.Instrument("GOOG", 0.01, 100.0)


def test_sniff_rejects_other_files(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, data=np.zeros(3))
    assert not hftbacktest_npz.sniff(str(other))
    assert not hftbacktest_npz.sniff(GOOG)
    assert not hftbacktest_npz.sniff(str(SAMPLES / "sample_events.csv"))
    assert not hftbacktest_npz.sniff(str(tmp_path / "missing.npz"))


def test_real_binance_capture_round_trips_through_hftbacktests_converter(tmp_path):
    capture = SAMPLES / "ethusdt_usdm_20240808_head.gz"
    if not capture.exists():
        pytest.skip(f"{capture} is absent")
    out = tmp_path / "ethusdt.npz"
    data = binancefutures.convert(str(capture), str(out), buffer_size=2_000_000)
    source = hftbacktest_npz.read([str(out)], ReadOptions(tick_size=0.01, lot_size=0.001)).events
    assert len(source) == np.count_nonzero(data["ev"] & np.uint64(E.LOCAL))   # each row once
    # Ordering our rows again the way hftbacktest does gives back its file exactly.
    again = reference_event_order(source)
    assert np.array_equal(again, data)
