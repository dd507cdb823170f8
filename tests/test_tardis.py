"""Tardis.dev CSV files: the snapshot differ, each data type, hftbacktest's own converter, units, a backtest."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

import feeds
from common.errors import DataError
from feeds.events import BUY, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, KIND_MASK, LOCAL, SELL, TRADE
from feeds.readers import tardis
from feeds.readers.snapshot_diff import diff_snapshots
from tests.conftest import REPO, SAMPLES

DIR = SAMPLES / "tardis"
NAME = "binance-futures_{}_2024-08-08_ETHUSDT.csv.gz"
L2, TRADES, QUOTES, SNAP5 = (str(DIR / NAME.format(t)) for t in
                             ("incremental_book_L2", "trades", "quotes", "book_snapshot_5"))
nan = np.nan


def rows(events) -> list[tuple]:
    """(kind, side, local_ts, px, qty) of each event: what a test can compare by hand."""
    return [(int(e["ev"]) & KIND_MASK, "B" if int(e["ev"]) & BUY else "S" if int(e["ev"]) & SELL else "",
             int(e["local_ts"]), float(e["px"]), float(e["qty"])) for e in events]


def test_the_differ_emits_only_what_changed():
    events = diff_snapshots(np.array([1, 2, 3]), np.array([1, 2, 3]),
                            np.array([[100, 99], [100, 98], [nan, 101]]), np.array([[1, 2], [1, 3], [nan, 5]]),
                            np.array([[101, 102], [101, 102], [102, 103]]), np.array([[1, 1], [2, 1], [1, 1]]))
    assert rows(events) == [
        (DEPTH_CLEAR, "B", 1, 99.0, 0.0), (DEPTH_SNAPSHOT, "B", 1, 100.0, 1.0), (DEPTH_SNAPSHOT, "B", 1, 99.0, 2.0),
        (DEPTH_CLEAR, "S", 1, 102.0, 0.0), (DEPTH_SNAPSHOT, "S", 1, 101.0, 1.0), (DEPTH_SNAPSHOT, "S", 1, 102.0, 1.0),
        (DEPTH, "B", 2, 99.0, 0.0), (DEPTH, "B", 2, 98.0, 3.0),          # 99 left, 98 came; 100 unchanged
        (DEPTH, "S", 2, 101.0, 2.0),
        (DEPTH, "B", 3, 101.0, 5.0), (DEPTH, "B", 3, 100.0, 0.0), (DEPTH, "B", 3, 98.0, 0.0),   # levels unsorted
        (DEPTH, "S", 3, 101.0, 0.0), (DEPTH, "S", 3, 103.0, 1.0),
    ]


def test_the_differ_refuses_a_price_twice_on_a_side():
    with pytest.raises(DataError, match=r"f\.csv:7: bids: snapshot bids: the same price twice"):
        diff_snapshots([1], [1], [[100, 100]], [[1, 2]], [[101, nan]], [[1, nan]], path="f.csv", lines=np.array([7]))


def _book_after_each_row(events) -> dict:
    """The book the events build, keyed by local_ts: {ts: (bids, asks)} after the last event of each ts."""
    book, out = {True: {}, False: {}}, {}
    for kind, side, ts, px, qty in rows(events):
        bid = side == "B"
        if kind == DEPTH_CLEAR:
            book[bid].clear()
        elif qty > 0:
            book[bid][px] = qty
        else:
            book[bid].pop(px, None)
        out[ts] = (dict(book[True]), dict(book[False]))
    return out


def test_book_snapshot_rows_are_rebuilt_exactly():
    """After the last book_snapshot_5 row of each local_timestamp, the book its events build is that row's levels."""
    events = feeds.read([SNAP5]).events
    books = _book_after_each_row(events[(events["ev"] & np.uint64(LOCAL)) != 0])
    with gzip.open(SNAP5, "rt") as f:
        lines = f.read().splitlines()[1:]
    expected = {}
    for line in lines:
        cells = line.split(",")
        levels = [float(c) for c in cells[4:]]
        expected[int(cells[3]) * 1000] = (dict(zip(levels[2::4], levels[3::4])), dict(zip(levels[0::4], levels[1::4])))
    assert len(lines) == 149 and len(expected) > 100
    assert {ts: books[ts] for ts in expected} == expected


@pytest.mark.parametrize("paths", [[L2], [TRADES], [QUOTES], [SNAP5], [TRADES, L2], [L2, TRADES], [TRADES, QUOTES]])
def test_each_sample_converts_to_a_book_that_never_crosses(paths):
    conv = feeds.read(paths)
    assert conv.meta.source_format == "tardis" and feeds.resolve_format(paths) == "tardis"
    assert conv.instrument == feeds.Instrument("ETHUSDT", 0.01, 0.001)
    book = feeds.check_book(conv.events, conv.instrument.tick_size)
    assert book.crossed == 0
    if paths != [TRADES]:
        assert (book.final_best_bid, book.final_best_ask) == pytest.approx((2681.59, 2681.60))


def test_l2_snapshot_rows_and_updates():
    conv = feeds.read([L2])
    kinds = np.bincount((conv.events["ev"] & np.uint64(KIND_MASK)).astype(int), minlength=5)
    # The sample's snapshot is Binance's REST snapshot of 1000 levels a side, then 9,910 level updates.
    assert (kinds[DEPTH_CLEAR], kinds[DEPTH_SNAPSHOT], kinds[DEPTH]) == (2, 2000, 9910)
    assert conv.meta.source_rows_by_kind == {"incremental_book_L2": 11910}


def test_same_events_as_hftbacktests_own_converter(monkeypatch):
    """hftbacktest 2.4.4's tardis.convert on [trades, incremental_book_L2] gives our file byte for byte.

    Its converter orders timelines with correct_event_order, which can read past an index array's end;
    it gets the same function with padded indices (tests/hbt_reference.py), which returns exactly what
    it would. Where the two differ by design (not in this sample): a snapshot with one side empty (we
    clear that side too, as Tardis says the book is discarded), a file ending inside a snapshot (we keep
    it), and rows before the first snapshot (we skip them, as Tardis says; hftbacktest applies them).
    """
    pytest.importorskip("hftbacktest")
    from hftbacktest.data.utils import tardis as hbt_tardis
    from tests.hbt_reference import reference_event_order
    monkeypatch.setattr(hbt_tardis, "correct_event_order", lambda data, *_: reference_event_order(data))
    theirs = hbt_tardis.convert([TRADES, L2], buffer_size=100_000)
    ours = feeds.read([TRADES, L2]).events
    assert len(ours) == 12_159
    assert np.array_equal(theirs, ours)


def _rewrite(src: str, dst, transform) -> str:
    with gzip.open(src, "rt") as f:
        lines = f.read().splitlines()
    with gzip.open(dst, "wt") as f:
        f.write("\n".join([lines[0], *(transform(line) for line in lines[1:])]) + "\n")
    return str(dst)


def test_nanosecond_timestamps_are_refused_naming_the_unit(tmp_path):
    def to_ns(line):
        c = line.split(",")
        c[2], c[3] = c[2] + "000", c[3] + "000"
        return ",".join(c)

    path = _rewrite(TRADES, tmp_path / "binance-futures_trades_ns.csv.gz", to_ns)
    with pytest.raises(DataError) as e:
        feeds.read([path])
    assert str(e.value) == (f"{path}:2: timestamp: expected microseconds since the epoch from 2000 to 2100, got "
                            f"1723161256560000000: a time in ns, not µs; Tardis files are in microseconds")


def test_rows_before_the_first_snapshot_are_skipped_and_noted(tmp_path):
    path = tmp_path / "l2.csv"
    path.write_text("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
                    "x,BTC,1723161256000000,1723161256000100,false,bid,99.5,1\n"
                    "x,BTC,1723161256000000,1723161256000200,true,ask,101,2\n"
                    "x,BTC,1723161256000000,1723161256000200,true,bid,100,3\n"
                    "x,BTC,1723161256000000,1723161256000200,true,bid,99,1\n"
                    "x,BTC,1723161256001000,1723161256001300,false,ask,101,0\n"
                    "x,BTC,1723161256001000,1723161256001300,false,ask,102,4\n")
    conv = tardis.read([str(path)])
    t, u = 1723161256000200_000, 1723161256001300_000
    assert rows(conv.events) == [(DEPTH_CLEAR, "B", t, 99.0, 0.0), (DEPTH_SNAPSHOT, "B", t, 100.0, 3.0),
                                 (DEPTH_SNAPSHOT, "B", t, 99.0, 1.0), (DEPTH_CLEAR, "S", t, 101.0, 0.0),
                                 (DEPTH_SNAPSHOT, "S", t, 101.0, 2.0), (DEPTH, "S", u, 101.0, 0.0),
                                 (DEPTH, "S", u, 102.0, 4.0)]
    assert any("1 incremental_book_L2 rows before the file's first snapshot skipped" in n for n in conv.meta.notes)


@pytest.mark.parametrize("line, needle", [
    ("x,BTC,1723161256000000,1723161256000200,maybe,bid,100,1", "l2.csv:2: is_snapshot: expected one of true, false"),
    ("x,BTC,1723161256000000,1723161256000200,true,buy,100,1", "l2.csv:2: side: expected one of bid, ask"),
    ("x,BTC,1723161256000000,1723161256000200,true,bid,-100,1", "l2.csv:2: price: expected a positive price"),
    ("x,BTC,1723161256000000,1723161256000200,true,bid,100", "l2.csv:2: fields: expected 8 comma-separated"),
    ("x,BTC,1723161256000,1723161256000200,true,bid,100,1", "a time in ms, not µs"),
])
def test_bad_rows_get_one_line(tmp_path, line, needle):
    path = tmp_path / "l2.csv"
    path.write_text("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n" + line + "\n")
    with pytest.raises(DataError, match=needle.replace(".", r"\.")):
        feeds.read([str(path)])


def test_data_types_without_a_book_are_refused_by_name(tmp_path):
    path = tmp_path / "deribit_derivative_ticker.csv"
    path.write_text("exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,predicted_funding_rate,"
                    "open_interest,last_price,index_price,mark_price\n")
    with pytest.raises(DataError, match="derivative_ticker file holds no book or trades"):
        feeds.read([str(path)])
    with pytest.raises(DataError, match="two sources of the book"):
        feeds.read([L2, QUOTES])


def test_a_tardis_pair_backtests_end_to_end_with_fixed_spread(tmp_path):
    text = (REPO / "configs" / "backtest_fixed_spread.toml").read_text()
    text = text.replace('files = ["../data/samples/GOOG_2012-06-21_10_head.zip"]', f'files = ["{TRADES}", "{L2}"]')
    text = (text.replace("half_spread_ticks = 2", "half_spread_ticks = 1").replace("qty = 100", "qty = 0.5")
            .replace("max_position = 500", "max_position = 5").replace("episode_s = 60", "episode_s = 2"))
    config = tmp_path / "tardis.toml"
    config.write_text(text)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "cmm", "backtest", "--config", str(config), "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_fills"] > 0 and metrics["ticks"] > 80          # 8.6 s woken every 100 ms
    trades = feeds.read([TRADES]).events
    assert np.count_nonzero((trades["ev"] & np.uint64(KIND_MASK)) == TRADE) == 247


def test_book_ticker_is_read_as_quotes_are(tmp_path):
    """Tardis's book_ticker (the exchange's own BBO stream) has quotes' columns; its name labels it."""
    ticker = tmp_path / "binance-futures_book_ticker_2024-08-08_ETHUSDT.csv.gz"
    ticker.write_bytes((DIR / NAME.format("quotes")).read_bytes())
    conv = feeds.read([str(ticker)])
    assert conv.meta.source_rows_by_kind == {"book_ticker": 142}
    assert np.array_equal(conv.events, feeds.read([QUOTES]).events)


def test_days_in_a_row_each_snapshot_clears_all_the_side_held(tmp_path):
    """The second day's snapshot discards the whole book: its clear reaches the first day's deepest bid."""
    head = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
    day1 = tmp_path / "x_incremental_book_L2_day1.csv"
    day1.write_text(head + "x,BTC,1723161256000000,1723161256000200,true,bid,100,3\n"
                           "x,BTC,1723161256000000,1723161256000200,true,ask,101,2\n"
                           "x,BTC,1723161256001000,1723161256001300,false,bid,98,1\n")
    day2 = tmp_path / "x_incremental_book_L2_day2.csv"
    day2.write_text(head + "x,BTC,1723247656000000,1723247656000200,true,bid,99,5\n"
                           "x,BTC,1723247656000000,1723247656000200,true,ask,102,4\n")
    events = tardis.read([str(day1), str(day2)]).events
    t = 1723247656000200_000
    assert rows(events)[-4:] == [(DEPTH_CLEAR, "B", t, 98.0, 0.0), (DEPTH_SNAPSHOT, "B", t, 99.0, 5.0),
                                 (DEPTH_CLEAR, "S", t, 102.0, 0.0), (DEPTH_SNAPSHOT, "S", t, 102.0, 4.0)]
    book = feeds.check_book(feeds.read([str(day1), str(day2)]).events, 1.0)
    assert (book.final_best_bid, book.final_best_ask, book.bid_levels, book.ask_levels) == (99.0, 102.0, 1, 1)
