"""The LOBSTER reader (L3 events + exact L2 window) and its message/orderbook check."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import feeds
from feeds.readers import csvparse
from feeds import events as E
from feeds.readers import lobster
from feeds.book_check import check_book
from common.errors import DataError, SkipCounter
from feeds.readers.lobster_check import check
from feeds.readers.base import ReadOptions
from tests.conftest import SAMPLES, shared_path

SAMPLE = str(SAMPLES / "GOOG_2012-06-21_10_head.zip")
SAMPLE_MESSAGE = "GOOG_2012-06-21_34200000_57600000_message_10.csv"
SAMPLE_BOOK = "GOOG_2012-06-21_34200000_57600000_orderbook_10.csv"
NS = 1_000_000_000
MIDNIGHT = 1_340_251_200 * NS      # 2012-06-21 00:00 in New York (EDT) = 04:00 UTC
STEM = "TEST_2012-06-21_34200000_57600000"
SKIP = ReadOptions(on_error="skip")


@pytest.fixture(scope="module")
def sample():
    return lobster.read([SAMPLE], ReadOptions())


def _sample_day():
    return lobster.load_day(lobster.input_pairs(SAMPLE)[0], SkipCounter())


def _kind(events):
    return events["ev"] & np.uint64(E.KIND_MASK)


def _event(events, i):
    e = events[i]
    return (int(e["ev"]), int(e["exch_ts"]), float(e["px"]), float(e["qty"]), int(e["order_id"]),
            int(e["ival"]), float(e["fval"]))


# ---------------------------------------------------------------- the committed sample


def test_sample_opens_with_the_book_before_message_1(sample):
    ev = sample.events
    t0 = MIDNIGHT + 34_200_015_105_074
    assert _event(ev, 0) == (E.DEPTH_CLEAR | E.SELL, t0, 589.26, 0.0, 0, 0, 0.0)   # deepest ask of the window
    assert _event(ev, 1) == (E.DEPTH_CLEAR | E.BUY, t0, 570.0, 0.0, 0, 0, 0.0)     # deepest bid
    snapshot = ev[2:22]
    assert (_kind(snapshot) == E.DEPTH_SNAPSHOT).all()
    assert snapshot["px"][:3].tolist() == [580.23, 580.43, 580.5]
    # Row 1 shows 496 at 579.40 after message 1 executed 4 shares there: 500 before it.
    assert _event(ev, 12) == (E.DEPTH_SNAPSHOT | E.BUY, t0, 579.4, 500.0, 0, 0, 0.0)
    assert snapshot["qty"][10:].tolist() == [500, 400, 500, 500, 100, 100, 100, 100, 20, 100]


def test_sample_first_messages_by_hand(sample):
    ev = sample.events
    t1, t2, t3 = (MIDNIGHT + s for s in (34_200_015_105_074, 34_200_059_901_970, 34_200_113_246_707))
    assert t1 == 1_340_285_400_015_105_074          # 13:30:00.015105074 UTC
    # 34200.015105074,4,15818974,4,5794000,1: a buy order executed, so a seller-initiated trade.
    assert _event(ev, 22) == (E.TRADE | E.SELL, t1, 579.4, 4.0, 15818974, 4, 0.0)
    assert _event(ev, 23) == (E.FILL | E.BUY, t1, 579.4, 4.0, 15818974, 4, 0.0)
    assert _event(ev, 24) == (E.DEPTH | E.BUY, t1, 579.4, 496.0, 0, 0, 0.0)
    # 34200.05990197,4,15818974,300,5794000,1 (the time has 8 decimals)
    assert _event(ev, 25) == (E.TRADE | E.SELL, t2, 579.4, 300.0, 15818974, 4, 0.0)
    assert _event(ev, 26) == (E.FILL | E.BUY, t2, 579.4, 300.0, 15818974, 4, 0.0)
    assert _event(ev, 27) == (E.DEPTH | E.BUY, t2, 579.4, 196.0, 0, 0, 0.0)
    # 34200.113246707,5,0,1,5795100,1: a hidden buy order executed; the visible book is unchanged.
    assert _event(ev, 28) == (E.TRADE | E.SELL, t3, 579.51, 1.0, 0, 5, 0.0)
    assert _event(ev, 29) == (E.TRADE | E.SELL, t3, 579.5, 1.0, 0, 5, 0.0)


def test_a_new_level_pushes_the_deepest_out_of_the_window(sample):
    ev = sample.events
    # Message 9: 34200.173594288,1,16160421,100,5791200,1 adds a bid level between 579.40 and 578.70.
    i = int(np.flatnonzero(ev["order_id"] == 16160421)[0])
    t = MIDNIGHT + 34_200_173_594_288
    assert _event(ev, i) == (E.ADD_ORDER | E.BUY, t, 579.12, 100.0, 16160421, 1, 0.0)
    assert _event(ev, i + 1) == (E.DEPTH | E.BUY, t, 579.12, 100.0, 0, 0, 0.0)
    assert _event(ev, i + 2) == (E.DEPTH | E.BUY, t, 570.0, 0.0, 0, 0, 0.0)    # 11th level now


def test_sample_counts_reconcile_with_message_rows(sample):
    meta, ev = sample.meta, sample.events
    assert meta.source_format == "lobster" and meta.source_rows == 20_000
    assert meta.source_rows_by_kind == {"add": 9678, "partial_cancel": 4, "delete": 9145,
                                        "visible_execution": 644, "hidden_execution": 529}
    kind, ival = _kind(ev), ev["ival"]
    by_type = meta.source_rows_by_kind
    assert np.count_nonzero(kind == E.ADD_ORDER) == by_type["add"]
    assert np.count_nonzero((kind == E.CANCEL_ORDER) & (ival == 2)) == by_type["partial_cancel"]
    assert np.count_nonzero((kind == E.CANCEL_ORDER) & (ival == 3)) == by_type["delete"]
    assert np.count_nonzero((kind == E.FILL) & (ival == 4)) == by_type["visible_execution"]
    assert np.count_nonzero((kind == E.TRADE) & (ival == 4)) == by_type["visible_execution"]
    assert np.count_nonzero((kind == E.TRADE) & (ival == 5)) == by_type["hidden_execution"]
    assert np.count_nonzero(kind == E.DEPTH) == 34_464
    assert (ival[np.isin(kind, np.array(E.L2_KINDS, dtype=np.uint64))] == 0).all()
    assert (ev["exch_ts"] == ev["local_ts"]).all()
    assert sample.instrument == feeds.Instrument("GOOG", 0.01, 1.0, 1.0)
    assert any("223 orders predate the file" in note for note in meta.notes)


def test_l2_events_replay_every_orderbook_row(sample):
    """After the last message of each timestamp, the DEPTH stream equals LOBSTER's orderbook row."""
    with zipfile.ZipFile(SAMPLE) as zf:
        book = np.loadtxt(zf.open(SAMPLE_BOOK), delimiter=",", dtype=np.int64)
    ev = sample.events
    is_l2 = np.isin(_kind(ev), np.array((E.DEPTH, E.DEPTH_SNAPSHOT), dtype=np.uint64))
    ts_rows = {int(t): row for row, t in enumerate(_sample_day().ts)}    # timestamp -> its last row
    sides = ({}, {})   # ask, bid: price x 10000 -> size
    ends = np.r_[np.flatnonzero(np.diff(ev["exch_ts"])), len(ev) - 1]
    start = 0
    for end in ends:
        for e in ev[start:end + 1][is_l2[start:end + 1]]:
            side = sides[1 if int(e["ev"]) & E.BUY else 0]
            side[round(e["px"] * 10_000)] = int(e["qty"])
        start = end + 1
        row = book[ts_rows[int(ev["exch_ts"][end])]]
        asks = {int(p): int(q) for p, q in zip(row[0::4], row[1::4])}
        bids = {int(p): int(q) for p, q in zip(row[2::4], row[3::4])}
        assert ({p: q for p, q in sides[0].items() if q}, {p: q for p, q in sides[1].items() if q}) \
            == (asks, bids)
    assert len(ends) == len(ts_rows)


def test_sample_passes_the_common_pipeline_and_never_crosses():
    conv = feeds.read([SAMPLE], fmt="lobster")
    assert check_book(conv.events, conv.instrument.tick_size).crossed == 0
    assert conv.meta.local_ts_offset_ns == 0


def test_time_parse_is_exact_for_every_sample_row():
    with zipfile.ZipFile(SAMPLE) as zf:
        raw = zf.read(SAMPLE_MESSAGE)
    exact = csvparse.parse(raw, [csvparse.SECONDS_NS] + [csvparse.INT] * 5)
    assert np.array_equal(_sample_day().msg[:, 0], exact.ints[:, 0])


def test_check_explains_every_sample_row():
    r = check(SAMPLE)
    assert (r.rows, r.equal, r.resynced, r.unexplained) == (20_000, 12_529, 7_471, 0)
    assert r.outside_window_messages == 0 and r.ok


def test_sniff(tmp_path):
    assert lobster.sniff(SAMPLE)
    assert lobster.sniff(f"/x/{STEM}_message_5.csv") and lobster.sniff(f"/x/{STEM}_orderbook_5.csv")
    assert not lobster.sniff("/x/prices.csv")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("prices.csv", "1,2\n")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(b"PK\x03\x04 not a whole zip")
    assert not lobster.sniff(str(other)) and not lobster.sniff(str(cut))


# ---------------------------------------------------------------- hand-made files


BOOK_ROWS = [   # level 2: ask px, ask size, bid px, bid size, then level 2
    "1000000,100,999500,50,1001000,200,999000,300",
    "1000000,100,999500,30,1001000,200,999000,300",
    "1001000,200,999500,30,1002000,500,999000,300",    # 100.20 x 500 enters the ask window
    "1001000,200,999500,30,1002000,500,999000,300",
    "1001000,200,999000,300,1002000,500,998000,400",   # 99.80 x 400 enters the bid window
    "1001000,200,999000,300,1002000,500,998000,400",
]
MESSAGE_ROWS = [
    "34200.5,1,11,50,999500,1",         # add a buy at 99.95: a new best bid
    "34201,2,11,20,999500,1",           # partial cancel of 20
    "34201,4,5,100,1000000,-1",         # sell order 5 executed in full: buyer-initiated trade
    "34202.25,5,0,10,1000500,1",        # hidden execution
    "34203,3,11,30,999500,1",           # delete the rest of order 11
    "34204,7,0,0,-1,-1",                # trading halt
]


def _write(tmp_path, messages, books, levels=2, date="2012-06-21"):
    stem = tmp_path / f"TEST_{date}_34200000_57600000"
    message = f"{stem}_message_{levels}.csv"
    with open(message, "w") as f:
        f.write("".join(m + "\n" for m in messages))
    with open(f"{stem}_orderbook_{levels}.csv", "w") as f:
        f.write("".join(b + "\n" for b in books))
    return message


def test_handmade_day_every_type(tmp_path):
    conv = lobster.read([_write(tmp_path, MESSAGE_ROWS, BOOK_ROWS)], ReadOptions())
    ev = conv.events
    kinds = [(int(k), int(f)) for k, f in zip(_kind(ev), ev["ev"] & np.uint64(E.BUY | E.SELL))]
    assert kinds == [
        (E.DEPTH_CLEAR, E.SELL), (E.DEPTH_CLEAR, E.BUY),
        (E.DEPTH_SNAPSHOT, E.SELL), (E.DEPTH_SNAPSHOT, E.SELL), (E.DEPTH_SNAPSHOT, E.BUY),
        (E.ADD_ORDER, E.BUY), (E.DEPTH, E.BUY),
        (E.CANCEL_ORDER, E.BUY), (E.DEPTH, E.BUY),
        (E.TRADE, E.BUY), (E.FILL, E.SELL), (E.DEPTH, E.SELL), (E.DEPTH, E.SELL),
        (E.TRADE, E.SELL),
        (E.CANCEL_ORDER, E.BUY), (E.DEPTH, E.BUY), (E.DEPTH, E.BUY),
        (E.TRADING_STATUS, 0),
    ]
    # The bid window before message 1 had only 99.90 in view: 99.80 is not known until it enters.
    assert ev["px"][2:5].tolist() == [100.0, 100.1, 99.9]
    assert [(e["px"], e["qty"]) for e in ev[11:13]] == [(100.0, 0.0), (100.2, 500.0)]
    assert [(e["px"], e["qty"]) for e in ev[15:17]] == [(99.95, 0.0), (99.8, 400.0)]
    assert (ev["qty"][14], ev["order_id"][14], ev["ival"][14]) == (30.0, 11, 3)
    assert (ev["ival"][17], ev["fval"][17], ev["exch_ts"][17]) == (7, -1.0, MIDNIGHT + 34_204 * NS)
    assert conv.meta.source_rows_by_kind == {"add": 1, "partial_cancel": 1, "delete": 1,
                                             "visible_execution": 1, "hidden_execution": 1, "halt": 1}
    assert any("1 orders predate the file (1 cancel/execution" in n for n in conv.meta.notes)


def test_handmade_check_adopts_levels_entering_at_the_deep_end(tmp_path):
    r = check(_write(tmp_path, MESSAGE_ROWS, BOOK_ROWS))
    assert (r.rows, r.equal, r.resynced, r.unexplained) == (6, 4, 2, 0)


def test_check_reports_a_message_the_book_does_not_show(tmp_path):
    messages = list(MESSAGE_ROWS)
    messages[1] = "34201,2,11,25,999500,1"       # the book shows 20 cancelled, not 25
    r = check(_write(tmp_path, messages, BOOK_ROWS))
    assert (r.equal, r.resynced, r.unexplained) == (3, 2, 1)
    m = r.first_mismatches[0]
    assert (m.line, m.side, m.level, m.expected, m.got) == (2, "bid", 1, (99.95, 30), (99.95, 25))
    assert "1 unexplained" in r.format_report() and ":2 bid level 1" in str(r)


@pytest.mark.parametrize("entering,counts", [
    ("1002000", (2, 1, 0)),     # 100.20: beyond the 100.10 that left, so it was never in view
    ("1000500", (2, 0, 1)),     # 100.05: inside the old window, so the messages should have shown it
])
def test_check_adopts_an_entering_level_only_beyond_the_old_window(tmp_path, entering, counts):
    messages = MESSAGE_ROWS[:2] + ["34201,3,6,200,1001000,-1"]     # delete the deepest ask, 100.10
    books = BOOK_ROWS[:2] + [f"1000000,100,999500,30,{entering},9,999000,300"]
    r = check(_write(tmp_path, messages, books))
    assert (r.equal, r.resynced, r.unexplained) == counts
    if r.unexplained:
        m = r.first_mismatches[0]
        assert (m.line, m.side, m.level, m.expected, m.got) == (3, "ask", 2, (100.05, 9), None)


def test_empty_levels_use_lobster_markers(tmp_path):
    messages = ["34200.1,1,1,10,1000000,-1", "34200.2,1,2,7,1001000,-1", "34200.3,3,1,10,1000000,-1"]
    books = ["1000000,10,999000,5,9999999999,0,-9999999999,0",
             "1000000,10,999000,5,1001000,7,-9999999999,0",
             "1001000,7,999000,5,9999999999,0,-9999999999,0"]
    path = _write(tmp_path, messages, books)
    ev = lobster.read([path], ReadOptions()).events
    assert [(int(k), float(p), float(q)) for k, p, q in zip(_kind(ev), ev["px"], ev["qty"])] == [
        (E.DEPTH_CLEAR, 0.0, 0.0), (E.DEPTH_CLEAR, 99.9, 0.0), (E.DEPTH_SNAPSHOT, 99.9, 5.0),
        (E.ADD_ORDER, 100.0, 10.0), (E.DEPTH, 100.0, 10.0),
        (E.ADD_ORDER, 100.1, 7.0), (E.DEPTH, 100.1, 7.0),
        (E.CANCEL_ORDER, 100.0, 10.0), (E.DEPTH, 100.0, 0.0),
    ]
    r = check(path)
    assert (r.equal, r.resynced, r.unexplained) == (3, 0, 0)


def test_days_concatenate_and_the_second_clears_the_first(tmp_path):
    day1 = _write(tmp_path, MESSAGE_ROWS, BOOK_ROWS)
    day2 = _write(tmp_path, ["34200.5,1,12,5,1002500,-1"], ["1002500,5,999900,9,1003000,8,999800,7"],
                  date="2012-06-22")
    conv = lobster.read([day1, day2], ReadOptions())
    ev = conv.events
    opening = np.flatnonzero(_kind(ev) == E.DEPTH_CLEAR)
    assert opening.tolist() == [0, 1, 18, 19]
    # Day 2 clears through the deepest level either day showed: ask 100.30 (day 2), bid 99.80 (day 1).
    assert (ev["px"][18], ev["px"][19]) == (100.3, 99.8)
    assert ev["exch_ts"][18] == MIDNIGHT + 86_400 * NS + 34_200_500_000_000
    assert conv.meta.source_rows == 7 and len(conv.meta.sources) == 2
    with pytest.raises(DataError, match="starts before the previous input ends"):
        lobster.read([day2, day1], ReadOptions())


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("row,field,text", [
    (1, "fields", "expected 6 comma-separated fields, got 5"),
    (1, "size", "expected an integer"),
    (2, "price", "expected an integer"),
    (2, "price", "expected a positive price"),
    (2, "price", "expected a positive price"),
    (3, "size", "expected a positive number of shares"),
    (3, "type", "expected a LOBSTER type"),
    (3, "direction", "expected 1 (buy order) or -1"),
    (3, "order_id", "expected an order id >= 0"),
    (4, "time", "time goes backwards"),
    (4, "time", "decimal number"),
    (6, "price", "on a halt row: -1, 0 or 1"),
], ids=["columns", "text", "nan", "zero-price", "negative-price", "negative-size", "type", "direction",
        "order-id", "time-backwards", "time-text", "halt-price"])
def test_bad_message_rows_name_file_line_and_field(tmp_path, row, field, text, request):
    bad = {
        "columns": "34200.5,1,11,50,999500", "text": "34200.5,1,11,abc,999500,1",
        "nan": "34201,2,11,20,nan,1", "zero-price": "34201,2,11,20,0,1",
        "negative-price": "34201,2,11,20,-999500,1", "negative-size": "34201,4,5,-100,1000000,-1",
        "type": "34201,8,5,100,1000000,-1", "direction": "34201,4,5,100,1000000,0",
        "order-id": "34201,4,-5,100,1000000,-1", "time-backwards": "34200.9,5,0,10,1000500,1",
        "time-text": "9:30,5,0,10,1000500,1", "halt-price": "34204,7,0,0,2,-1",
    }[request.node.callspec.id]
    messages = list(MESSAGE_ROWS)
    messages[row - 1] = bad
    path = _write(tmp_path, messages, BOOK_ROWS)
    with pytest.raises(DataError) as info:
        lobster.read([path], ReadOptions())
    e = info.value
    assert (e.path, e.line, e.field) == (path, row, field)
    assert text in e.reason


@pytest.mark.parametrize("row,bad,field,text", [
    (3, "1001000,200,999500,30,1002000,500,999000", "fields", "expected 8 comma-separated fields, got 7"),
    (3, "1001000,200,1001000,30,1002000,500,999000,300", "bid_price_1", "crossed book"),
    (3, "1001000,200,999500,30,1002000,-5,999000,300", "ask_size_2", "expected a positive size"),
    (3, "1001000,200,999500,30,1002000,0,999000,300", "ask_size_2", "expected a positive size"),
    (3, "1001000,200,999500,30,9999999999,3,999000,300", "ask_size_2", "0 on an empty level"),
    (3, "9999999999,0,999500,30,1002000,500,999000,300", "ask_price_2", "the level above is empty"),
    (3, "1001000,200,999500,30,1000500,500,999000,300", "ask_price_2", "ask prices to get worse"),
    (3, "1001000,200,999000,30,1002000,500,999500,300", "bid_price_2", "bid prices to get worse"),
    (3, "1001000,200,-999500,30,1002000,500,999000,300", "bid_price_1", "expected a positive price"),
])
def test_bad_orderbook_rows_name_file_line_and_field(tmp_path, row, bad, field, text):
    books = list(BOOK_ROWS)
    books[row - 1] = bad
    path = _write(tmp_path, MESSAGE_ROWS, books)
    with pytest.raises(DataError) as info:
        lobster.read([path], ReadOptions())
    e = info.value
    assert (e.path, e.line, e.field) == (path.replace("_message_", "_orderbook_"), row, field)
    assert text in e.reason


def test_row_counts_must_match(tmp_path):
    path = _write(tmp_path, MESSAGE_ROWS, BOOK_ROWS[:-1])
    with pytest.raises(DataError, match="orderbook has 5 rows but the message file 6") as info:
        lobster.read([path], ReadOptions())
    assert (info.value.line, info.value.field) == (6, "rows")


def test_skip_drops_a_bad_row_from_both_files(tmp_path):
    messages = list(MESSAGE_ROWS)
    messages[3] = "34202.25,5,0,10,1000500,2"        # hidden execution with a bad direction
    books = list(BOOK_ROWS)
    books[5] = "1001000,200,999000,300,1002000,500,998000"   # halt row's book cut short
    path = _write(tmp_path, messages, books)
    conv = lobster.read([path], SKIP)
    assert conv.meta.skipped == 2 and conv.meta.source_rows == 4
    assert conv.meta.source_rows_by_kind == {"add": 1, "partial_cancel": 1, "visible_execution": 1,
                                             "delete": 1}
    assert conv.meta.skipped_examples == [
        f"{path.replace('_message_', '_orderbook_')}:6: fields: expected 8 comma-separated fields, got 7",
        f"{path}:4: direction: expected 1 (buy order) or -1 (sell order)",
    ]
    r = check(path, SKIP)
    assert (r.rows, r.unexplained, r.skipped) == (4, 0, 2)


def test_truncated_zip(tmp_path):
    cut = tmp_path / "GOOG_cut.zip"
    cut.write_bytes(open(SAMPLE, "rb").read()[:200_000])
    with pytest.raises(DataError, match="corrupt or truncated") as info:
        lobster.read([str(cut)], ReadOptions())
    assert info.value.path == str(cut)


def test_a_zip_member_cut_short_is_reported(tmp_path):
    with zipfile.ZipFile(SAMPLE) as src:
        message = src.read(SAMPLE_MESSAGE)
        book = src.read(SAMPLE_BOOK)
    z = tmp_path / "GOOG.zip"
    with zipfile.ZipFile(z, "w") as dst:
        dst.writestr(SAMPLE_MESSAGE, message)
        dst.writestr(SAMPLE_BOOK, b"".join(book.splitlines(keepends=True)[:10_000]))
    with pytest.raises(DataError, match="orderbook has 10,000 rows but the message file 20,000") as info:
        lobster.read([str(z)], ReadOptions())
    assert info.value.path == f"{z}[{SAMPLE_BOOK}]" and info.value.line == 10_001


def test_missing_orderbook_and_wrong_names(tmp_path):
    path = _write(tmp_path, MESSAGE_ROWS, BOOK_ROWS)
    orderbook = path.replace("_message_", "_orderbook_")
    with pytest.raises(DataError, match="give its message file"):
        lobster.read([orderbook], ReadOptions())
    os.remove(orderbook)
    with pytest.raises(DataError, match="orderbook file missing") as info:
        lobster.read([path], ReadOptions())
    assert info.value.path == orderbook
    other = tmp_path / "goog_messages.csv"
    other.write_text(MESSAGE_ROWS[0] + "\n")
    with pytest.raises(DataError, match="expected LOBSTER's file name") as info:
        lobster.read([str(other)], ReadOptions())
    assert info.value.field == "name"


def test_tickers_are_not_mixed(tmp_path):
    path = _write(tmp_path, MESSAGE_ROWS, BOOK_ROWS)
    with pytest.raises(DataError, match=r"different tickers \(GOOG, TEST\)"):
        lobster.read([SAMPLE, path], ReadOptions())


# ---------------------------------------------------------------- the public sample files

README_ROWS = {
    "GOOG_2012-06-21_10": 147_916, "GOOG_2012-06-21_5": 112_673, "GOOG_2012-06-21_1": 49_482,
    "AMZN_2012-06-21_5": 155_935, "AMZN_2012-06-21_1": 57_515, "AAPL_2012-06-21_1": 118_497,
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", README_ROWS)
def test_every_public_file_converts(name):
    conv = lobster.read([str(shared_path("lobster", f"LOBSTER_SampleFile_{name}.zip"))], ReadOptions())
    assert conv.meta.source_rows == README_ROWS[name]
    assert sum(conv.meta.source_rows_by_kind.values()) == README_ROWS[name]


# The rule that explains every difference between the book rebuilt from the messages and the
# orderbook file: LOBSTER's message file only holds events inside the requested levels, so a level
# enters the window without a message of its own only at the deep end (worse than every level of a
# window that was full before the message), and its size is then adopted from the orderbook file.
@pytest.mark.shared_data
@pytest.mark.parametrize("name,equal,resynced", [
    ("GOOG_2012-06-21_10", 103_465, 44_451),
    ("AMZN_2012-06-21_5", 122_095, 33_840),
    ("AAPL_2012-06-21_1", 88_426, 30_071),
])
def test_check_explains_every_row_of_the_public_files(name, equal, resynced):
    r = check(str(shared_path("lobster", f"LOBSTER_SampleFile_{name}.zip")))
    assert (r.rows, r.equal, r.resynced, r.unexplained) == (README_ROWS[name], equal, resynced, 0)
    assert r.outside_window_messages == 0


@pytest.mark.shared_data
def test_amzn_time_printed_past_the_nanosecond_rounds_to_it():
    # Line 67,823 of AMZN level 5 reads 43002.632812672004: a float64 printed with 17 digits.
    day = lobster.load_day(lobster.input_pairs(str(shared_path(
        "lobster", "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip")))[0], SkipCounter())
    assert day.msg[67_822, 0] == 43_002_632_812_672
