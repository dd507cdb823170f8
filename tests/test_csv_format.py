"""Our CSV format: the committed sample, the preamble, and every kind of bad row."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

import feeds
from feeds.readers import csv as csv_format
from feeds import events as E
from common.errors import DataError
from feeds.readers.base import ReadOptions
from tests.conftest import SAMPLES

SAMPLE = str(SAMPLES / "sample_events.csv")
T = 1_723_075_200_000_000_000          # 2024-08-08 00:00 UTC
HEAD = "# tick_size=0.5\nexch_ts,local_ts,event,side,price,qty,order_id\n"
SKIP = ReadOptions(on_error="skip")


def _write(tmp_path, text: str, name: str = "events.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _row(i: int, rest: str) -> str:
    return f"{T + i},{T + i + 100},{rest}\n"


def _tuple(e) -> tuple:
    return (int(e["ev"]), int(e["exch_ts"]), int(e["local_ts"]), float(e["px"]), float(e["qty"]),
            int(e["order_id"]), int(e["ival"]), float(e["fval"]))


def _error(tmp_path, text: str, options: ReadOptions = ReadOptions()) -> DataError:
    path = _write(tmp_path, text)
    with pytest.raises(DataError) as info:
        csv_format.read([path], options)
    assert info.value.path == path
    return info.value


# ---------------------------------------------------------------- the committed sample


@pytest.fixture(scope="module")
def sample():
    return csv_format.read([SAMPLE], ReadOptions())


def test_sample_instrument_and_counts(sample):
    assert sample.instrument == feeds.Instrument("BTCUSDT", 0.1, 0.001, 1.0)
    assert sample.meta.source_rows == 28
    assert sample.meta.source_rows_by_kind == {
        "depth": 10, "trade": 4, "depth_clear": 2, "depth_snapshot": 6, "add_order": 2,
        "cancel_order": 1, "modify_order": 1, "fill": 1, "trading_status": 1}


def test_sample_rows_become_events_in_source_order(sample):
    ev = sample.events
    assert _tuple(ev[0]) == (E.TRADING_STATUS, T, T + 412_000, 0.0, 0.0, 0, 0, 1.0)
    assert _tuple(ev[1]) == (E.DEPTH_CLEAR | E.BUY, T, T + 412_000, 0.0, 0.0, 0, 0, 0.0)
    assert _tuple(ev[6]) == (E.DEPTH_SNAPSHOT | E.SELL, T, T + 412_000, 60000.1, 0.5, 0, 0, 0.0)
    assert _tuple(ev[10]) == (E.TRADE | E.BUY, T + 2_950_000, T + 3_510_000, 60000.1, 0.2, 0, 0, 0.0)
    assert _tuple(ev[19]) == (E.MODIFY_ORDER | E.BUY, T + 9_000_000, T + 9_330_000, 59999.8, 0.3, 1001, 0, 0.0)
    assert _tuple(ev[27]) == (E.DEPTH | E.BUY, T + 14_000_000, T + 14_380_000, 60000.0, 1.69, 0, 0, 0.0)


def test_sample_through_feeds_read_gives_a_sane_book():
    conv = feeds.read([SAMPLE], "csv")
    book = feeds.check_book(conv.events, conv.instrument.tick_size)
    assert book.crossed == 0
    assert (book.final_best_bid, book.final_best_ask) == pytest.approx((60000.0, 60000.2))
    # The trade at exch 2.95 ms arrived after the depth update at exch 3.1 ms: split on the timelines.
    assert len(conv.events) == 29


def test_sniff():
    assert csv_format.sniff(SAMPLE)
    assert not csv_format.sniff(str(SAMPLES / "GOOG_2012-06-21_10_head.zip"))
    assert not csv_format.sniff("/nonexistent.csv")


def test_sniff_and_read_gzip(tmp_path):
    path = tmp_path / "events.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("# a comment\n" + HEAD.replace(",order_id", "") + _row(0, "trade,,100.5,3"))
    assert csv_format.sniff(str(path))
    assert feeds.detect(str(path)) == "csv"
    conv = csv_format.read([str(path)], ReadOptions())
    assert _tuple(conv.events[0]) == (E.TRADE, T, T + 100, 100.5, 3.0, 0, 0, 0.0)


# ---------------------------------------------------------------- preamble and instrument


def test_comments_blank_lines_and_case(tmp_path):
    text = ("# written by my-capture v2 (prices in USD)\n#\n" + HEAD + "\n# a note between rows\n"
            + _row(0, "DEPTH,Bid,100.0,1,") + "  \n" + _row(1, " trade , ASK , 100.0 , 2 , "))
    conv = csv_format.read([_write(tmp_path, text)], ReadOptions())
    assert [int(e) for e in conv.events["ev"]] == [E.DEPTH | E.BUY, E.TRADE | E.SELL]
    assert conv.events["qty"].tolist() == [1.0, 2.0]


def test_unknown_instrument_key_names_its_line(tmp_path):
    err = _error(tmp_path, "# symbol=X\n# tick=0.1\n" + HEAD)
    assert (err.line, err.field) == (2, "tick")
    assert "tick_size" in err.reason


@pytest.mark.parametrize("line, reason", [("# tick_size=0", "positive"), ("# lot_size=abc", "positive"),
                                           ("# symbol=", "empty")])
def test_bad_instrument_values(tmp_path, line, reason):
    err = _error(tmp_path, line + "\n" + HEAD)
    assert err.line == 1 and reason in err.reason


def test_wrong_header_says_what_was_expected(tmp_path):
    err = _error(tmp_path, "# tick_size=1\n\nts,event,price,qty\n")
    assert (err.line, err.field) == (3, "header")
    assert "exch_ts,local_ts,event,side,price,qty" in err.reason


def test_no_tick_size_anywhere(tmp_path):
    err = _error(tmp_path, "exch_ts,local_ts,event,side,price,qty\n" + _row(0, "trade,,1,1"))
    assert "# tick_size=" in err.reason and "--tick-size" in err.reason


def test_options_override_the_file(tmp_path):
    path = _write(tmp_path, "# symbol=A\n# lot_size=2\n" + HEAD)
    conv = csv_format.read([path], ReadOptions(symbol="B", tick_size=0.25))
    assert conv.instrument == feeds.Instrument("B", 0.25, 2.0, 1.0)
    assert len(conv.events) == 0


def test_tick_size_from_options_alone(tmp_path):
    path = _write(tmp_path, "exch_ts,local_ts,event,side,price,qty\n", name="mydata.csv")
    assert csv_format.read([path], ReadOptions(tick_size=0.01)).instrument == \
        feeds.Instrument("mydata", 0.01, 1.0, 1.0)


# ---------------------------------------------------------------- bad rows


@pytest.mark.parametrize("row, field, reason", [
    ("abc,1723075200000000100,trade,,1,1,", "exch_ts", "expected an integer, got 'abc'"),
    ("1723075200000000000,1.5,trade,,1,1,", "local_ts", "expected an integer"),
    ("1723075200,1723075200,trade,,1,1,", "exch_ts", "got '1723075200': a time in s?"),
    ("1723075200000000,1723075200000100,trade,,1,1,", "exch_ts", "got '1723075200000000': a time in µs?"),
    ("1723075200000000000,1723075200000100,trade,,1,1,", "local_ts", "a time in µs?"),
    ("1723075200000000000,5000000000000000000,trade,,1,1,", "local_ts", "from 2000 to 2100"),
    ("1723075200000000000,1723075200000000100,quote,,1,1,", "event", "got 'quote'"),
    ("1723075200000000000,1723075200000000100,trade,long,1,1,", "side", "got 'long'"),
    ("1723075200000000000,1723075200000000100,depth,,1,1,", "side", "depth event needs a side"),
    ("1723075200000000000,1723075200000000100,trading_status,buy,1,,", "side", "takes no side"),
    ("1723075200000000000,1723075200000000100,trading_status,,2,,", "price", "got '2'"),
    ("1723075200000000000,1723075200000000100,depth,bid,1e999,1,", "price", "too large"),
    ("1723075200000000000,1723075200000000100,depth,bid,0,1,", "price", "positive price, got '0'"),
    ("1723075200000000000,1723075200000000100,depth,bid,,1,", "price", "empty field"),
    ("1723075200000000000,1723075200000000100,depth,bid,1,-2,", "qty", "quantity >= 0"),
    ("1723075200000000000,1723075200000000100,trade,,1,x,", "qty", "expected a decimal number"),
    ("1723075200000000000,1723075200000000100,add_order,bid,1,1,", "order_id", "needs an order id"),
    ("1723075200000000000,1723075200000000100,trade,,1,1,-3", "order_id", "order id >= 0"),
    ("1723075200000000000,1723075200000000100,trade,,1,1", "fields", "expected 7 comma-separated fields, got 6"),
    ("1723075200000000000,1723075200000000100,trade,,1,1,,", "fields", "got 8"),
])
def test_bad_row_is_located(tmp_path, row, field, reason):
    err = _error(tmp_path, HEAD + _row(0, "trade,,1,1,") + row + "\n" + _row(9, "trade,,1,1,"))
    assert (err.line, err.field) == (4, field)
    assert reason in err.reason


def test_l3_rows_need_the_order_id_column(tmp_path):
    err = _error(tmp_path, "# tick_size=1\nexch_ts,local_ts,event,side,price,qty\n" + _row(0, "fill,bid,1,1"))
    assert (err.line, err.field) == (3, "order_id")
    assert "add the order_id column" in err.reason


def test_optional_fields_may_be_empty(tmp_path):
    text = HEAD + _row(0, "depth_clear,ask,,,") + _row(1, "cancel_order,,,,7") + _row(2, "trade,,5,1,")
    ev = csv_format.read([_write(tmp_path, text)], ReadOptions()).events
    assert [_tuple(e)[0::3] for e in ev] == [(E.DEPTH_CLEAR | E.SELL, 0.0, 0), (E.CANCEL_ORDER, 0.0, 0),
                                            (E.TRADE, 5.0, 0)]
    assert ev["order_id"].tolist() == [0, 7, 0]


def test_skip_mode_counts_bad_rows_and_keeps_the_rest(tmp_path):
    text = (HEAD + _row(0, "depth,bid,10,1,") + _row(1, "depth,middle,10,1,") + "garbage\n"
            + _row(2, "trade,buy,10,x,") + _row(3, "depth,ask,11,2,"))
    conv = csv_format.read([_write(tmp_path, text)], SKIP)
    assert conv.events["px"].tolist() == [10.0, 11.0]
    assert conv.meta.skipped == 3
    assert conv.meta.source_rows == 5
    assert [s.split(": ")[0].rsplit(":", 1)[1] for s in conv.meta.skipped_examples] == ["4", "5", "6"]
    assert "side: expected buy, sell" in conv.meta.skipped_examples[0]


def test_a_bad_row_does_not_leak_into_the_next(tmp_path):
    # The rejected status row wrote fval before failing on its side; the next row must not inherit it.
    text = HEAD + "1723075200000000000,1723075200000000100,trading_status,,1,,5,extra\n" + _row(1, "trade,,1,1,")
    ev = csv_format.read([_write(tmp_path, text)], SKIP).events
    assert _tuple(ev[0]) == (E.TRADE, T + 1, T + 101, 1.0, 1.0, 0, 0, 0.0)


@pytest.mark.parametrize("options", [ReadOptions(), SKIP])
def test_local_ts_going_back_is_an_error_in_every_mode(tmp_path, options):
    text = HEAD + f"{T},{T + 500},trade,,1,1,\n{T},{T + 400},trade,,1,1,\n"
    err = _error(tmp_path, text, options)
    assert (err.line, err.field) == (4, "local_ts")
    assert "goes backwards" in err.reason and "line 3" in err.reason


@pytest.mark.parametrize("options", [ReadOptions(), SKIP])
def test_a_row_whose_latency_is_far_below_the_rest_is_an_error_in_every_mode(tmp_path, options):
    ms = 1_000_000
    rows = [f"{T + i * ms},{T + i * ms + 2 * ms + i % 3},trade,,1,1,\n" for i in range(20)]
    rows[12] = f"{T + 10_012 * ms},{T + 12 * ms + 2 * ms},trade,,1,1,\n"   # exch_ts 10 s late
    err = _error(tmp_path, HEAD + "".join(rows), options)
    assert (err.line, err.field) == (15, "local_ts")
    assert err.reason.startswith("receive time 10.000 s earlier than its exchange time puts it (feed latency "
                                 "-9,998.0 ms, the file's median 2.0 ms)")


def test_several_files_in_time_order(tmp_path):
    a = _write(tmp_path, HEAD + _row(0, "trade,,1,1,"), "a.csv")
    b = _write(tmp_path, HEAD + _row(5, "trade,,2,1,"), "b.csv")
    conv = csv_format.read([a, b], ReadOptions())
    assert conv.events["px"].tolist() == [1.0, 2.0]
    assert conv.instrument.symbol == "a"
    with pytest.raises(DataError, match="time order"):
        csv_format.read([b, a], ReadOptions())


def test_files_with_different_instruments_are_refused(tmp_path):
    a = _write(tmp_path, HEAD, "a.csv")
    b = _write(tmp_path, HEAD.replace("0.5", "0.25"), "b.csv")
    with pytest.raises(DataError, match="differs"):
        csv_format.read([a, b], ReadOptions())


def test_large_generated_file_matches_numpy(tmp_path):
    n = 20_000
    rng = np.random.default_rng(7)
    local = T + np.cumsum(rng.integers(0, 1000, n))
    px = np.round(100 + rng.integers(-50, 50, n) * 0.5, 1)
    qty = rng.integers(0, 100, n) / 8
    side = np.where(rng.random(n) < 0.5, "bid", "ask")
    lines = [f"{t - 50},{t},depth,{s},{p},{q},\n" for t, s, p, q in zip(local, side, px, qty)]
    ev = csv_format.read([_write(tmp_path, HEAD + "".join(lines))], ReadOptions()).events
    assert np.array_equal(ev["local_ts"], local)
    assert np.array_equal(ev["exch_ts"], local - 50)
    assert np.array_equal(ev["px"], px) and np.array_equal(ev["qty"], qty)
    assert np.array_equal(ev["ev"], np.where(side == "bid", E.DEPTH | E.BUY, E.DEPTH | E.SELL).astype(np.uint64))
