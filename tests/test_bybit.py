"""Bybit order-book archives and trades CSVs in: the repo samples, sequence gaps, units, bad input, fuzz."""
from __future__ import annotations

import gzip
import importlib.util
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import feeds
from common.errors import DataError
from feeds.events import BUY, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, EXCH, KIND_MASK, SELL, TRADE
from feeds.readers.base import ReadOptions
from tests.conftest import REPO, SAMPLES
from tests.test_fuzz_readers import FUZZ, OPTIONS, _parses_or_data_error, damaged

_spec = importlib.util.spec_from_file_location("make_bybit_sample", SAMPLES / "make_bybit_sample.py")
sample = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sample)

BOOK = SAMPLES / sample.BOOK
TRADES = SAMPLES / sample.TRADES
LINES, TRADE_ROWS, FINAL = sample.build()


@pytest.fixture(scope="module")
def converted():
    return feeds.read([BOOK, TRADES])


def _book_file(tmp_path, lines, name="book.data"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _trades_file(tmp_path, rows, header=sample.TRADES_HEADER, name="trades.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _kinds(events):
    return events["ev"] & np.uint64(KIND_MASK)


def test_samples_are_detected_and_carry_the_spec_layouts():
    assert feeds.detect(str(BOOK)) == "bybit" and feeds.detect(str(TRADES)) == "bybit"
    with zipfile.ZipFile(BOOK) as zf:
        (member,) = zf.namelist()
        first = zf.read(member).split(b"\n", 1)[0]
    assert member == "2024-08-08_ETHUSDT_ob500.data" and first.startswith(b'{"topic":"orderbook.500.ETHUSDT"')
    assert gzip.decompress(TRADES.read_bytes()).split(b"\n", 1)[0].decode() == sample.TRADES_HEADER


def test_sample_book_never_crosses_and_matches_the_generator(converted):
    ins = converted.instrument
    assert (ins.symbol, ins.tick_size, ins.lot_size) == ("ETHUSDT", 0.01, 0.01)
    assert feeds.check_book(converted.events, 0.01).crossed == 0
    book = {}
    for kind, ev, px, qty in zip(_kinds(converted.events), converted.events["ev"], converted.events["px"],
                                 converted.events["qty"]):
        side = 1 if ev & np.uint64(BUY) else -1
        if kind in (DEPTH, DEPTH_SNAPSHOT):
            book[(side, round(px * 100))] = qty
        elif kind == DEPTH_CLEAR:
            book = {k: v for k, v in book.items() if k[0] != side}
    ours = {k: v for k, v in book.items() if v > 0}
    # the top 20 levels a side: below 500 levels the restart snapshot cut what the generator kept
    for side in (1, -1):
        top = sorted((p for s, p in FINAL if s == side), reverse=side == 1)[:20]
        assert {p: ours[(side, p)] for p in top} == {p: FINAL[(side, p)] / 100 for p in top}


def test_trades_rows_become_trade_events(converted):
    on_exchange = (converted.events["ev"] & np.uint64(EXCH)) != 0     # a row split across the timelines counts once
    trades = converted.events[(_kinds(converted.events) == TRADE) & on_exchange]
    assert len(trades) == len(TRADE_ROWS)
    first = TRADE_ROWS[0].split(",")
    assert trades["exch_ts"][0] == int(first[0].replace(".", "")) * 100_000      # 4 decimals of a second, exact
    assert trades["local_ts"][0] == trades["exch_ts"][0]
    assert (trades["ev"][0] & np.uint64(SELL)) and first[2] == "Sell"
    assert trades["px"][0] == float(first[4]) and trades["qty"][0] == float(first[3])


def test_snapshot_and_delta_timestamps(tmp_path):
    conv = feeds.read([_book_file(tmp_path, LINES[:2])], "bybit")
    delta = conv.events[_kinds(conv.events) == DEPTH]
    import json
    msg = json.loads(LINES[1])
    assert delta["exch_ts"][0] == msg["cts"] * 1_000_000 and delta["local_ts"][0] == msg["ts"] * 1_000_000


def test_a_gap_is_refused_or_resynced_at_the_next_snapshot(tmp_path):
    lines = LINES[:10] + LINES[12:]          # two deltas lost: u jumps by 3
    path = _book_file(tmp_path, lines)
    with pytest.raises(DataError) as e:
        feeds.read([path], "bybit")
    assert str(e.value).startswith(f"{path}:11: u: update id") and "2 updates missing" in str(e.value)
    conv = feeds.read([path], "bybit", ReadOptions(on_error="skip"))
    assert conv.meta.skipped == 1
    note = next(n for n in conv.meta.notes if "gap at line 11" in n)
    restart = next(i for i, line in enumerate(lines) if i and '"type":"snapshot"' in line) + 1
    assert f"book empty until the snapshot at line {restart}" in note
    kinds = _kinds(conv.events)
    clears = np.flatnonzero(kinds == DEPTH_CLEAR)
    assert len(clears) == 6                 # opening snapshot, the gap, the restart: both sides each
    gap_ts = conv.events["local_ts"][clears[2]]
    restart_ts = conv.events["local_ts"][clears[4]]
    between = (conv.events["local_ts"] > gap_ts) & (conv.events["local_ts"] < restart_ts)
    assert not between.any()                 # nothing between the gap and the resync
    assert feeds.check_book(conv.events, 0.01).crossed == 0


def test_deltas_before_the_first_snapshot_are_left_out_and_said(tmp_path):
    conv = feeds.read([_book_file(tmp_path, LINES[1:5] + LINES[301:])], "bybit")
    assert any("4 deltas before the first snapshot left out" in n for n in conv.meta.notes)
    assert conv.meta.book_partial_until_ts is not None


@pytest.mark.parametrize("case,needle", [
    ("book_us", "ts 1723075200012000 is a time in µs, but Bybit's orderbook archives give ms"),
    ("trades_ms", "timestamp 1723075200286 is a time in ms, but Bybit's derivatives trade files give s"),
    ("spot_s", "timestamp 1723075200 is a time in s, but Bybit's spot trade files give ms"),
    ("side", ":2: side: expected Buy or Sell"),
    ("json", ":2: json: expected an orderbook message as JSON"),
    ("columns", ":3: fields: expected 10 comma-separated fields"),
    ("two_symbols", "inputs hold several symbols (BTCUSDT, ETHUSDT)"),
    ("no_snapshot", "type: no snapshot among 3 deltas: deltas alone do not make a book"),
    ("depth", ":1: data: a snapshot of 500 levels on a side in topic 'orderbook.50.ETHUSDT', which carries 50"),
])
def test_bad_input_is_one_line(tmp_path, case, needle):
    rows = TRADE_ROWS[:3]
    if case == "book_us":
        paths = [_book_file(tmp_path, [LINES[0].replace('"ts":1723075200012', '"ts":1723075200012000')])]
    elif case == "trades_ms":
        paths = [_trades_file(tmp_path, [r.replace("1723075200.2860", "1723075200286") for r in rows])]
    elif case == "spot_s":
        paths = [_trades_file(tmp_path, ["1,1723075200,2700.00,0.5,buy"], header="id,timestamp,price,volume,side")]
    elif case == "side":
        paths = [_trades_file(tmp_path, [rows[0].replace("Sell", "Short")])]
    elif case == "json":
        paths = [_book_file(tmp_path, [LINES[0], LINES[1][:40]])]
    elif case == "columns":
        paths = [_trades_file(tmp_path, [rows[0], rows[1].rsplit(",", 2)[0]])]
    elif case == "depth":
        paths = [_book_file(tmp_path, [LINES[0].replace("orderbook.500.", "orderbook.50.")])]
    elif case == "no_snapshot":
        paths = [_book_file(tmp_path, LINES[1:4])]
    else:
        paths = [_trades_file(tmp_path, [rows[0].replace("ETHUSDT", "BTCUSDT")]), _book_file(tmp_path, LINES[:2])]
    with pytest.raises(DataError) as e:
        feeds.read(paths, "auto")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_spot_trades_in_ms_and_newest_first_files(tmp_path):
    spot = _trades_file(tmp_path, ["2,1723075200150,2700.01,0.25,buy", "1,1723075200074,2700.00,0.5,sell"],
                        header="id,timestamp,price,volume,side,rpi".rsplit(",", 1)[0])
    conv = feeds.read([spot], "auto")
    assert list(conv.events["exch_ts"]) == [1723075200074000000, 1723075200150000000]
    assert list(conv.events["qty"]) == [0.5, 0.25] and conv.events["ev"][0] & np.uint64(SELL)


def test_cli_refuses_a_gap_with_one_line(tmp_path):
    path = _book_file(tmp_path, LINES[:10] + LINES[12:], name="gap.data")
    proc = subprocess.run([sys.executable, "-m", "cmm", "data", "convert", str(path), "--out",
                           str(tmp_path / "x.npz")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert f"{path}:11: u: update id" in proc.stderr


BOOK_BASE = ("\n".join(LINES[:6]) + "\n").encode()
TRADES_BASE = ("\n".join([sample.TRADES_HEADER, *TRADE_ROWS[:8]]) + "\n").encode()


@FUZZ
@given(data=st.one_of(damaged(BOOK_BASE), st.binary(max_size=300)), options=OPTIONS)
def test_fuzz_book(tmp_path_factory, data, options):
    path = tmp_path_factory.getbasetemp() / "fuzz_book.data"
    path.write_bytes(data)
    _parses_or_data_error([path], "bybit", options)


@FUZZ
@given(data=damaged(TRADES_BASE), gz=st.booleans(), options=OPTIONS)
def test_fuzz_trades(tmp_path_factory, data, gz, options):
    path = tmp_path_factory.getbasetemp() / ("fuzz_trades.csv.gz" if gz else "fuzz_trades.csv")
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    _parses_or_data_error([path], "bybit", options)
